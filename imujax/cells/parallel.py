"""Diagonal linear recurrences h_t = a_t * h_{t-1} + b_t over whole sequences.

The recurrence under minGRU, minLSTM and the LRU. Their gates depend on the
input only, so a_t and b_t are known for every frame before the recurrence
runs: the matmuls become one big matmul over all frames (`dense`), and what
is left is this element-wise recurrence, evaluated one of two ways:

- "associative": `jax.lax.associative_scan`, about 2 log2(time) levels of
  element-wise work over the whole sequence: parallel over time, the form
  for accelerators (and long sequences on them);
- "sequential": `jax.lax.scan` of the element-wise update, one frame per
  iteration with no matmul inside. On XLA:CPU this is the faster one (the
  2-core CPU of bench/NOTES.md: ~3x at T = 128 and 1024, forward + backward):
  the associative form does about twice the element-wise work through strided
  slices, and the batch and hidden axes already fill a CPU's few cores.

`method=None` takes "sequential" on the CPU and "associative" elsewhere. Both
give the same values and gradients to float rounding (tests).

Pairs compose as (a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2): a product of
decays and the state of a sub-sequence started from zero. Nothing is divided
and, with |a| <= 1, no intermediate grows past what the states themselves
reach, so linear space is stable in float32 (the log-space scan of Feng et al. 2024 exists for
the other parallel form, h_t = A_t (h_0 + sum_k b_k / A_k) with A_t the
cumulative product of decays, whose division underflows).

`a`, `b` and `h0` may be pytrees with their own `multiply` (a complex state
as (re, im) pairs: `complex_multiply`). `chunked` bounds the memory of long
sequences: chunks of frames one after another, carry passed between them,
each chunk rematerialised in the backward pass.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp

METHODS = ("associative", "sequential")


def dense(x: jax.Array, w: jax.Array) -> jax.Array:
  """x @ w <float32>[..., out] for x [..., in], as ONE 2-D matmul.

  XLA:CPU computes the weight gradient of a [batch, time, in] @ [in, out]
  dot, which contracts over two axes, about 2x slower than that of the same
  dot on [batch * time, in] (measured at W, bench/NOTES.md).
  """
  flat = x.reshape((-1, x.shape[-1])) @ w
  return flat.reshape(x.shape[:-1] + (w.shape[-1],))


def complex_multiply(u, v):
  """The complex product of (re, im) pairs, in real arithmetic."""
  return (u[0] * v[0] - u[1] * v[1], u[0] * v[1] + u[1] * v[0])


def _add(u, v):
  return jax.tree.map(jnp.add, u, v)


def _time_major(tree):
  return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)


def linear_recurrence(a, b, h0, *, multiply: Callable = jnp.multiply,
                      method: str | None = None, time_major: bool = False):
  """Every h_t of h_t = a_t * h_{t-1} + b_t, from h_{-1} = h0.

  Args:
    a: <float>[batch or 1, time, n] decays (1: shared by the batch), or a
      pytree of them that `multiply` understands.
    b: <float>[batch, time, n] inputs (a pytree like `a`).
    h0: <float>[batch, n] the state before the first frame (likewise).
    multiply: the product of decays and states (elementwise by default).
    method: "associative", "sequential" or None (see the module docstring).
    time_major: `a`, `b` and the result are [time, batch (or 1), n] instead.

  Returns:
    <float>[batch, time, n] (a pytree like `b`): h_0 ... h_{time-1}.
  """
  if method is None:
    method = "sequential" if jax.default_backend() == "cpu" else "associative"
  if method not in METHODS:
    raise ValueError(f"method={method!r}: choose one of {METHODS}, or None "
                     "for the backend's faster one.")
  if not time_major:
    return _time_major(linear_recurrence(
        *_time_major((a, b)), h0, multiply=multiply, method=method,
        time_major=True))
  if method == "sequential":
    def body(h, frame):
      a_t, b_t = frame
      h = _add(multiply(a_t, h), b_t)
      return h, h
    _, hs = jax.lax.scan(body, h0, (a, b))
    return hs
  # The initial state enters as part of frame 0's input, so the scan itself
  # starts from zero and needs no identity element.
  first = lambda tree: jax.tree.map(lambda x: x[0], tree)
  b0 = _add(multiply(first(a), h0), first(b))
  b = jax.tree.map(lambda x, x0: x.at[0].set(x0), b, b0)

  def compose(earlier, later):
    (a_1, b_1), (a_2, b_2) = earlier, later
    return multiply(a_2, a_1), _add(multiply(a_2, b_1), b_2)

  _, hs = jax.lax.associative_scan(compose, (a, b), axis=0)
  return hs


def chunked(parallel_scan: Callable, params, carry, xs: jax.Array,
            chunk: int):
  """`parallel_scan` over chunks of `chunk` frames, one chunk after another.

  Training memory then grows with time / chunk carries plus one chunk's
  intermediates instead of with every intermediate of the whole sequence
  (each chunk is recomputed in the backward pass: about one extra forward).
  Values and gradients are those of `parallel_scan` over the whole sequence.

  Args:
    parallel_scan: a cell's `(params, carry, xs) -> (hs, final_carry)`.
    params: that cell's parameters.
    carry: the initial carry.
    xs: <float>[batch, time, in_dim].
    chunk: frames per chunk, >= 1.

  Returns:
    (hs <float32>[batch, time, hidden], final_carry).
  """
  if chunk < 1:
    raise ValueError(f"chunk={chunk} must be a positive number of frames, or "
                     "None for the whole sequence at once.")
  batch, time = xs.shape[:2]
  if time <= chunk:
    return parallel_scan(params, carry, xs)
  n_chunks, rest = divmod(time, chunk)

  def body(c, x_chunk):  # x_chunk: [batch, chunk, in_dim]
    hs, c = parallel_scan(params, c, x_chunk)
    return c, hs

  # prevent_cse=False is safe (and faster) inside scan, as jax.checkpoint says.
  body = jax.checkpoint(body, prevent_cse=False)
  head = xs[:, :n_chunks * chunk].reshape(
      (batch, n_chunks, chunk) + xs.shape[2:])
  carry, hs = jax.lax.scan(body, carry, jnp.swapaxes(head, 0, 1))
  hs = jnp.swapaxes(hs, 0, 1).reshape((batch, n_chunks * chunk) +
                                      hs.shape[3:])
  if rest:
    hs_tail, carry = parallel_scan(params, carry, xs[:, n_chunks * chunk:])
    hs = jnp.concatenate([hs, hs_tail], axis=1)
  return hs, carry


def gated_step(decay_and_input: Callable, params, h: jax.Array,
               x: jax.Array):
  """One frame of h' = a(x) * h + b(x), the min-RNNs' update.

  x: <float>[batch, in_dim], h: <float32>[batch, hidden] -> (h', h').
  `decay_and_input(params, x)` gives (a, b), each [batch, hidden].
  """
  a, b = decay_and_input(params, x)
  h = a * h + b
  return h, h


def gated_scan(decay_and_input: Callable, params, h: jax.Array,
               xs: jax.Array, *, chunk: int | None = None,
               method: str | None = None):
  """All frames at once: (hs <float32>[batch, time, hidden], h_last).

  Args:
    decay_and_input: (params, xs) -> (a, b), each [batch, time, hidden].
    params: the cell's parameters.
    h: <float32>[batch, hidden] the initial carry.
    xs: <float>[batch, time, in_dim].
    chunk: None (the whole sequence at once) or frames per chunk, chunks
      one after another and rematerialised (`chunked`).
    method: the recurrence's evaluation (`linear_recurrence`):
      "associative", "sequential", or None for the backend's faster one.
  """
  if chunk:
    return chunked(functools.partial(gated_scan, decay_and_input,
                                     method=method), params, h, xs, chunk)
  # Gates from time-major inputs: the recurrence scans over the leading
  # axis, and transposing the input here, not a and b after the gates, is
  # what keeps XLA:CPU's stacked-layer backward pass free of relayout copies
  # (2-layer minGRU 2x155 with layer norm: 31 -> 11-14 ms per training step,
  # bench/NOTES.md).
  a, b = decay_and_input(params, jnp.swapaxes(xs, 0, 1))
  hs = linear_recurrence(a, b, h, method=method, time_major=True)
  return jnp.swapaxes(hs, 0, 1), hs[-1]
