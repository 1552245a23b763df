"""Elman RNN: h' = tanh(x W_ih + h W_hh + b)."""

import jax
import jax.numpy as jnp

from imujax import cells


def rnn_init(key, in_dim: int, hidden: int) -> cells.Params:
  params = cells.dense_init(key, in_dim, hidden, 1)
  params["b"] = jnp.zeros((hidden,), jnp.float32)
  return params


def rnn_initial_carry(batch: int, hidden: int) -> jax.Array:
  return jnp.zeros((batch, hidden), jnp.float32)


def rnn_step(params: cells.Params, h: jax.Array, x: jax.Array):
  """h' = tanh(x W_ih + h W_hh + b).  x: [B, C], h: [B, H] -> (h', h')."""
  h = jnp.tanh(x @ params["w_ih"] + h @ params["w_hh"] + params["b"])
  return h, h


CELL = cells.Cell(rnn_init, rnn_initial_carry, rnn_step)
