"""GRU (PyTorch form: reset, update, new)."""

import jax
import jax.numpy as jnp

from imujax import cells


def gru_init(key, in_dim: int, hidden: int) -> cells.Params:
  params = cells.dense_init(key, in_dim, hidden, 3)
  params["b_ih"] = jnp.zeros((3 * hidden,), jnp.float32)
  params["b_hh"] = jnp.zeros((3 * hidden,), jnp.float32)
  return params


def gru_initial_carry(batch: int, hidden: int) -> jax.Array:
  return jnp.zeros((batch, hidden), jnp.float32)


def gru_step(params: cells.Params, h: jax.Array, x: jax.Array):
  """One GRU step (PyTorch form).  x: [B, C], h: [B, H] -> (h', h')."""
  gi = x @ params["w_ih"] + params["b_ih"]
  gh = h @ params["w_hh"] + params["b_hh"]
  i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
  h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
  r = jax.nn.sigmoid(i_r + h_r)
  z = jax.nn.sigmoid(i_z + h_z)
  n = jnp.tanh(i_n + r * h_n)
  h = (1. - z) * n + z * h
  return h, h


CELL = cells.Cell(gru_init, gru_initial_carry, gru_step)
