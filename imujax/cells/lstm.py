"""LSTM (PyTorch gate layout: input, forget, cell, output)."""

import jax
import jax.numpy as jnp

from imujax import cells


def lstm_init(key, in_dim: int, hidden: int) -> cells.Params:
  params = cells.dense_init(key, in_dim, hidden, 4)
  # Forget-gate bias 1: the usual remedy for early vanishing memory.
  params["b"] = jnp.zeros((4 * hidden,), jnp.float32).at[hidden:2 * hidden].set(1.)
  return params


def lstm_initial_carry(batch: int, hidden: int) -> tuple[jax.Array, jax.Array]:
  # Two buffers, not one shared: a jitted step may donate the carry.
  return (jnp.zeros((batch, hidden), jnp.float32),
          jnp.zeros((batch, hidden), jnp.float32))  # (c, h)


def lstm_step(params: cells.Params, carry, x: jax.Array):
  """One LSTM step.  x: [B, C], carry (c, h): [B, H] each -> ((c', h'), h')."""
  c, h = carry
  z = x @ params["w_ih"] + h @ params["w_hh"] + params["b"]
  i, f, g, o = jnp.split(z, 4, axis=-1)
  c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
  h = jax.nn.sigmoid(o) * jnp.tanh(c)
  return (c, h), h


CELL = cells.Cell(lstm_init, lstm_initial_carry, lstm_step)
