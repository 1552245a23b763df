"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): parallel over time.

  i_t  = sigmoid(x_t W_i + b_i),  f_t = sigmoid(x_t W_f + b_f)
  h~_t = x_t W_h + b_h
  h_t  = f_t / (f_t + i_t) * h_{t-1} + i_t / (f_t + i_t) * h~_t

Gates from the input only and no output gate or separate cell state (the
paper's minLSTM): the state is h. Parameters: `w: [in_dim, 3*hidden]`,
`b: [3*hidden]`, gates [input, forget, candidate] along the last axis (the
order of PyTorch's LSTM without its output gate).

Log space where it matters: the normalised gates are computed from the gates'
logarithms, f / (f + i) = sigmoid(log f - log i) with log sigmoid(k) =
-softplus(-k), as the paper's log-space version does. The plain quotient is
0 / 0 = NaN once both gates underflow (pre-activations below about -88 in
float32, where XLA:CPU flushes denormals). The scan stays in linear space:
`parallel.linear_recurrence` never divides (see `mingru.py` and
`parallel.py`), so the paper's log-space scan and its positive-candidate
activation g(.) are not needed.
"""

import functools

import jax
import jax.numpy as jnp

from imujax import cells
from imujax.cells import parallel

# Forget-gate bias at init, as imujax's LSTM (lstm.py): with the input-gate
# bias 0 the state keeps sigmoid(1) / (sigmoid(1) + 1/2) = 59 % per frame.
FORGET_BIAS = 1.


def minlstm_init(key, in_dim: int, hidden: int) -> cells.Params:
  w = jax.nn.initializers.lecun_normal()(key, (in_dim, 3 * hidden))
  b = jnp.zeros((3 * hidden,), jnp.float32).at[hidden:2 * hidden].set(
      FORGET_BIAS)
  return {"w": w.astype(jnp.float32), "b": b}


def minlstm_initial_carry(batch: int, hidden: int) -> jax.Array:
  return jnp.zeros((batch, hidden), jnp.float32)


def _decay_and_input(params: cells.Params, x: jax.Array):
  """(f', i' * h~), each <float32>[..., hidden], for x [..., in_dim]."""
  k_i, k_f, candidate = jnp.split(
      parallel.dense(x, params["w"]) + params["b"], 3, axis=-1)
  # log f - log i, from the log-gates: finite for any finite pre-activation.
  log_ratio = jax.nn.softplus(-k_i) - jax.nn.softplus(-k_f)
  return jax.nn.sigmoid(log_ratio), jax.nn.sigmoid(-log_ratio) * candidate


# The update is the min-RNNs' shared form; only the gates differ.
minlstm_step = functools.partial(parallel.gated_step, _decay_and_input)
minlstm_scan = functools.partial(parallel.gated_scan, _decay_and_input)


CELL = cells.Cell(minlstm_init, minlstm_initial_carry, minlstm_step,
                  minlstm_scan)
