"""Linear recurrent unit (Orvieto et al. 2023): complex diagonal, parallel.

The complex version with the paper's stable exponential parametrisation:

  lambda = exp(-exp(nu_log) + i exp(theta_log))      |lambda| < 1 for any
                                                     parameters
  s_t = lambda * s_{t-1} + exp(gamma_log) * (x_t B)   s: complex [hidden]
  y_t = gelu(Re(s_t C) + x_t D + b)

B = w_in_re + i w_in_im: [in_dim, hidden], C = w_out_re + i w_out_im:
[hidden, hidden]; nu_log, theta_log, gamma_log: [hidden]. Initialised as in
the paper (ring r_min = 0 <= |lambda| < r_max = 1, phases in [0, 2 pi),
gamma = sqrt(1 - |lambda|^2), B ~ N(0, 1 / (2 in_dim)), C ~ N(0, 1 / hidden)
per part).

Two departures, both because the LRU here is one cell of imujax's encoder
(layer norm and dropout between layers, nothing else): D is a dense
[in_dim, hidden] map rather than a diagonal (the first layer's in_dim is not
hidden), and the output passes through a GELU with a bias, standing in for
the MLP the paper puts after every LRU layer (without it a stack of LRUs and
layer norms is nearly linear in its input).

The complex state travels as a float32 carry (re, im), each [batch, hidden],
and all arithmetic is real (complex products written out,
`parallel.complex_multiply`): a real carry and real ops stream, export and
run in NumPy like every other cell's, and XLA:CPU was slow on complex64 (the
recurrence alone at W, forward + backward: 17.9 ms in complex64 against
6.6 ms for float32 of the same shape).
"""

import functools
import math

import jax
import jax.numpy as jnp

from imujax import cells
from imujax.cells import parallel

R_MIN, R_MAX, MAX_PHASE = 0., 1., 2 * math.pi


def lru_init(key, in_dim: int, hidden: int) -> cells.Params:
  k_r, k_phase, k_in, k_out, k_skip = jax.random.split(key, 5)
  # Uniform on the ring R_MIN <= |lambda| < R_MAX (kept off 0 so no log(0)).
  u = jax.random.uniform(k_r, (hidden,), minval=1e-7, maxval=1.)
  nu_log = jnp.log(-0.5 * jnp.log(u * (R_MAX**2 - R_MIN**2) + R_MIN**2))
  theta_log = jnp.log(MAX_PHASE * jax.random.uniform(
      k_phase, (hidden,), minval=1e-7, maxval=1.))
  # gamma = sqrt(1 - |lambda|^2), |lambda|^2 = exp(-2 exp(nu_log)); expm1
  # keeps it accurate for |lambda| near 1.
  gamma_log = 0.5 * jnp.log(-jnp.expm1(-2. * jnp.exp(nu_log)))
  normal = lambda k, shape, scale: scale * jax.random.normal(k, shape)
  k_in_re, k_in_im = jax.random.split(k_in)
  k_out_re, k_out_im = jax.random.split(k_out)
  params = {
      "nu_log": nu_log, "theta_log": theta_log, "gamma_log": gamma_log,
      "w_in_re": normal(k_in_re, (in_dim, hidden), (2 * in_dim)**-0.5),
      "w_in_im": normal(k_in_im, (in_dim, hidden), (2 * in_dim)**-0.5),
      "w_out_re": normal(k_out_re, (hidden, hidden), hidden**-0.5),
      "w_out_im": normal(k_out_im, (hidden, hidden), hidden**-0.5),
      "w_skip": jax.nn.initializers.lecun_normal()(k_skip, (in_dim, hidden)),
      "b": jnp.zeros((hidden,)),
  }
  return {k: v.astype(jnp.float32) for k, v in params.items()}


def lru_initial_carry(batch: int, hidden: int):
  # Two buffers, not one shared: a jitted step may donate the carry.
  return (jnp.zeros((batch, hidden), jnp.float32),
          jnp.zeros((batch, hidden), jnp.float32))  # (re, im)


def _decay(params: cells.Params):
  """lambda as (re, im), each <float32>[hidden].

  |lambda| = exp(-exp(nu_log)) < 1 for any nu_log; in float32 it rounds to
  1 once exp(nu_log) < 6e-8 (no decay then, but never growth).
  """
  radius = jnp.exp(-jnp.exp(params["nu_log"]))
  phase = jnp.exp(params["theta_log"])
  return radius * jnp.cos(phase), radius * jnp.sin(phase)


def _project(params: cells.Params, x: jax.Array):
  """(gamma * (x B) as (re, im), x D), each <float32>[..., hidden].

  One matmul for the three: x [..., in_dim] @ [B_re | B_im | D].
  """
  w = jnp.concatenate(
      [params["w_in_re"], params["w_in_im"], params["w_skip"]], axis=1)
  u_re, u_im, skip = jnp.split(parallel.dense(x, w), 3, axis=-1)
  gamma = jnp.exp(params["gamma_log"])
  return (gamma * u_re, gamma * u_im), skip


def _output(params: cells.Params, s, skip: jax.Array) -> jax.Array:
  """gelu(Re(s C) + x D + b) <float32>[..., hidden]; s = (re, im)."""
  # Re(s C) = s_re C_re - s_im C_im: one matmul of [s_re | s_im].
  w = jnp.concatenate([params["w_out_re"], -params["w_out_im"]], axis=0)
  y = parallel.dense(jnp.concatenate(s, axis=-1), w) + skip + params["b"]
  return jax.nn.gelu(y, approximate=True)


def lru_step(params: cells.Params, carry, x: jax.Array):
  """One frame.  x: <float>[batch, in_dim], carry (re, im): [batch, hidden]."""
  u, skip = _project(params, x)
  re, im = parallel.complex_multiply(_decay(params), carry)
  s = (re + u[0], im + u[1])
  return s, _output(params, s, skip)


def lru_scan(params: cells.Params, carry, xs: jax.Array, *,
             chunk: int | None = None, method: str | None = None):
  """All frames at once: (ys <float32>[batch, time, hidden], (re, im)).

  Args:
    params: the cell's parameters.
    carry: (re, im), each <float32>[batch, hidden], the initial state.
    xs: <float>[batch, time, in_dim].
    chunk: None (the whole sequence at once) or frames per chunk, chunks
      one after another and rematerialised (`parallel.chunked`).
    method: the recurrence's evaluation (`parallel.linear_recurrence`):
      "associative", "sequential", or None for the backend's faster one.
  """
  if chunk:
    return parallel.chunked(functools.partial(lru_scan, method=method),
                            params, carry, xs, chunk)
  # Time-major from the input on, as parallel.gated_scan (why: there).
  u, skip = _project(params, jnp.swapaxes(xs, 0, 1))
  # One decay for every frame and sequence: broadcast, not materialised.
  a = tuple(jnp.broadcast_to(part, xs.shape[1:2] + (1,) + part.shape)
            for part in _decay(params))
  s = parallel.linear_recurrence(a, u, tuple(carry),
                                 multiply=parallel.complex_multiply,
                                 method=method, time_major=True)
  return (jnp.swapaxes(_output(params, s, skip), 0, 1),
          (s[0][-1], s[1][-1]))


CELL = cells.Cell(lru_init, lru_initial_carry, lru_step, lru_scan)
