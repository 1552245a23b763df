"""Framework-free recurrent cells (Elman RNN, LSTM, GRU, minGRU, minLSTM, LRU).

Every cell is three pure functions over an explicit parameter pytree (a dict of
arrays) and a float32 carry:

  init(key, in_dim, hidden) -> params
  initial_carry(batch, hidden) -> carry
  step(params, carry, x_t) -> (carry, h_t)     x_t: <float>[batch, in_dim]

and `scan` drives any of them over `<float>[batch, time, in_dim]` with
`jax.lax.scan`. A cell whose gates depend on the input only may add its own
`Cell.scan(params, carry, xs) -> (hs, carry)` over the whole sequence at once
(`parallel.py`); the encoder then trains with it and streams with `step`.
Nothing here imports Flax: this package is what other research code imports.

Cells are registered by name: the built-in "rnn", "lstm", "gru" and the
parallel-in-time "mingru", "minlstm" and "lru" (whose `Cell.scan` runs the
whole sequence at once, `parallel.py`) live in a file each (`rnn.py`, ...)
defining `CELL`, listed in `_BUILT_IN`, and imported when first asked for
(`get`). Adding a cell: a new file and one line in `_BUILT_IN`, or
`register(name, Cell(...))` from your own code; the encoder, every objective,
streaming and export then use it by `model.cell=<name>`.

Gate layouts follow PyTorch's `nn.LSTM` / `nn.GRU` (so weights can be compared
or ported): LSTM gates are [input, forget, cell, output] along the last axis,
GRU gates are [reset, update, new]. Weights are stored input-major
(`w_ih: [in_dim, G*hidden]`) so a step is two dense matmuls.
"""

import importlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]
Carry = Any  # A pytree of float32 arrays, each <float32>[batch, hidden].


class Cell(NamedTuple):
  """The pure functions that define one recurrent cell.

  `scan` is optional: a cell whose recurrence is parallel over time gives
  `scan(params, carry, xs) -> (hs, final_carry)` over <float>[batch, time,
  in_dim], equal (to float rounding) to `scan(step, params, carry, xs)` of
  this module; the encoder uses it when present, and `step` online.
  """
  init: Callable[..., Params]
  initial_carry: Callable[[int, int], Carry]
  step: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
  scan: Callable[..., tuple[jax.Array, Carry]] | None = None


def dense_init(key, in_dim: int, hidden: int, gates: int) -> Params:
  """Lecun-normal input weights, orthogonal recurrent weights (per gate)."""
  k_in, k_rec = jax.random.split(key)
  w_ih = jax.nn.initializers.lecun_normal()(k_in, (in_dim, gates * hidden))
  rec_keys = jax.random.split(k_rec, gates)
  w_hh = jnp.concatenate(
      [jax.nn.initializers.orthogonal()(k, (hidden, hidden)) for k in rec_keys],
      axis=1)
  return {"w_ih": w_ih.astype(jnp.float32), "w_hh": w_hh.astype(jnp.float32)}


# Built-in cells: name -> module of this package that defines CELL.
_BUILT_IN = {"rnn": "rnn", "lstm": "lstm", "gru": "gru",
             # Parallel over time (Cell.scan): gates from the input only.
             "mingru": "mingru", "minlstm": "minlstm", "lru": "lru"}
_REGISTERED: dict[str, Cell] = {}


def names() -> tuple[str, ...]:
  """Every cell's name: built in, then registered."""
  return (*_BUILT_IN, *(n for n in _REGISTERED if n not in _BUILT_IN))


def register(name: str, cell: Cell) -> None:
  """Adds `cell` under `name`: `model.cell=<name>` then trains and streams it."""
  if name in _BUILT_IN:
    raise ValueError(f"Cell {name!r} is built in; register yours under "
                     "another name.")
  _REGISTERED[name] = cell


def get(kind: str) -> Cell:
  """Returns the cell called `kind`; an error listing the choices otherwise."""
  if kind in _REGISTERED:
    return _REGISTERED[kind]
  if kind not in _BUILT_IN:
    raise ValueError(
        f"Unknown cell {kind!r}; choose one of {list(names())} "
        "(config key model.cell).")
  return importlib.import_module(f"imujax.cells.{_BUILT_IN[kind]}").CELL


def scan(step: Callable, params: Params, carry: Carry, xs: jax.Array,
         *, unroll: int = 1, reverse: bool = False,
         remat_chunk: int | None = None):
  """Runs `step` over time with `jax.lax.scan`.

  Args:
    step: a cell's step function.
    params: that cell's parameters.
    carry: the initial carry (float32 pytree, leaves [batch, hidden]).
    xs: <float>[batch, time, in_dim] inputs.
    unroll: how many steps `lax.scan` unrolls per loop iteration.
    reverse: run from the last frame to the first (for anti-causal use only).
    remat_chunk: if set, differentiate by rematerialisation over chunks of
      this many frames: the backward pass keeps only the carry at each chunk
      boundary (plus the outputs) and recomputes one chunk's forward at a time,
      so training memory grows with time / remat_chunk + remat_chunk instead
      of with time, for about one extra forward pass. Values and gradients are
      those of the plain scan. None (the default) stores every step.

  Returns:
    (hs, final_carry): hs <float32>[batch, time, hidden] holds every hidden
    state, final_carry the carry after the last processed frame.
  """
  body = lambda c, x: step(params, c, x)
  xs_time_major = jnp.swapaxes(xs, 0, 1)
  if not remat_chunk:
    carry, hs = jax.lax.scan(body, carry, xs_time_major, unroll=unroll,
                             reverse=reverse)
    return jnp.swapaxes(hs, 0, 1), carry
  if remat_chunk < 1:
    raise ValueError(f"scan: remat_chunk={remat_chunk} must be a positive "
                     "number of frames, or None to store every step.")
  time = xs_time_major.shape[0]
  n_chunks, rest = divmod(time, remat_chunk)

  def chunk_scan(c, x_chunk):
    return jax.lax.scan(body, c, x_chunk, unroll=unroll, reverse=reverse)

  # prevent_cse=False is safe (and faster) inside scan, as jax.checkpoint says.
  remat = jax.checkpoint(chunk_scan, prevent_cse=False)
  head = xs_time_major[:n_chunks * remat_chunk].reshape(
      (n_chunks, remat_chunk) + xs_time_major.shape[1:])
  tail = xs_time_major[n_chunks * remat_chunk:]

  def run_head(c):
    c, hs = jax.lax.scan(remat, c, head, reverse=reverse)
    return c, hs.reshape((n_chunks * remat_chunk,) + hs.shape[2:])

  # The frames left over after whole chunks are processed last going
  # forward and first going backward, each as a plain scan.
  if n_chunks == 0:
    carry, hs = chunk_scan(carry, tail)
  elif not rest:
    carry, hs = run_head(carry)
  elif reverse:
    carry, hs_tail = chunk_scan(carry, tail)
    carry, hs_head = run_head(carry)
    hs = jnp.concatenate([hs_head, hs_tail], axis=0)
  else:
    carry, hs_head = run_head(carry)
    carry, hs_tail = chunk_scan(carry, tail)
    hs = jnp.concatenate([hs_head, hs_tail], axis=0)
  return jnp.swapaxes(hs, 0, 1), carry
