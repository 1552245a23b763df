"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): parallel over time.

  z_t  = sigmoid(x_t W_z + b_z)          update gate, from the input only
  h~_t = x_t W_h + b_h                   candidate, from the input only
  h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

No recurrent weights, so training computes the gates of all frames in one
matmul and the recurrence with `parallel.linear_recurrence` (an associative
scan, or on the CPU the element-wise loop that is faster there); `step` is
the same maths for one frame (streaming). Parameters: `w: [in_dim,
2*hidden]` and `b: [2*hidden]`, gates [update, candidate] along the last
axis.

Log space: not used, on purpose. The paper's log-space scan protects the
cumulative-product form of the parallel scan (a division by products of
decays that underflows) and needs positive candidates (their g(.)
activation); `jax.lax.associative_scan` composes (decay, input) pairs and
never divides (`parallel.py`), so the linear-space form is stable in float32
and the candidate keeps its sign (tests/test_parallel_cells.py: 8192 frames
with decays up to 1 - 1e-7 against float64). Where log space matters here,
in the decay, it is kept: 1 - z_t is computed as sigmoid(-k), exact where
1 - sigmoid(k) would cancel to 0.
"""

import functools

import jax
import jax.numpy as jnp

from imujax import cells
from imujax.cells import parallel

# Update-gate bias at init: z = sigmoid(-1) keeps 73 % of the state per frame,
# the retention of imujax's LSTM with its forget-gate bias 1 (not the paper's
# choice; it gives no init).
UPDATE_BIAS = -1.


def mingru_init(key, in_dim: int, hidden: int) -> cells.Params:
  w = jax.nn.initializers.lecun_normal()(key, (in_dim, 2 * hidden))
  b = jnp.zeros((2 * hidden,), jnp.float32).at[:hidden].set(UPDATE_BIAS)
  return {"w": w.astype(jnp.float32), "b": b}


def mingru_initial_carry(batch: int, hidden: int) -> jax.Array:
  return jnp.zeros((batch, hidden), jnp.float32)


def _decay_and_input(params: cells.Params, x: jax.Array):
  """(1 - z, z * h~), each <float32>[..., hidden], for x [..., in_dim]."""
  k_z, candidate = jnp.split(
      parallel.dense(x, params["w"]) + params["b"], 2, axis=-1)
  return jax.nn.sigmoid(-k_z), jax.nn.sigmoid(k_z) * candidate


# The update is the min-RNNs' shared form; only the gates differ.
mingru_step = functools.partial(parallel.gated_step, _decay_and_input)
mingru_scan = functools.partial(parallel.gated_scan, _decay_and_input)


CELL = cells.Cell(mingru_init, mingru_initial_carry, mingru_step, mingru_scan)
