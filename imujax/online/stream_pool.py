r"""Many streams, one device-resident state: micro-batched online inference.

`StreamPool` keeps the carried state of `num_streams` streams on the device,
one slot (row) per stream: every state leaf is <float32>[num_streams + 1,
...]; the last row is a scratch slot that padding rows read and write.
A server that receives frames of many streams at spread phases steps whatever
frames have arrived since its last step in ONE call (adaptive micro-batching,
like the dynamic batching of an inference server):

  pool = StreamPool(model.load(workdir), num_streams=10_000)
  pool.warmup(max_batch=1024)              # compile every bucket up front
  probs = pool.step(slot_ids, frames)      # <int>[b], <float32>[b, C] raw
  pool.reset(slot_ids)                     # initial carries (gap / new stream)

A regression or events run has no probs: `pool.step_outputs(slot_ids,
frames)` returns the dict of its heads, as `export.Artifact.step_outputs`:
"regression" [b, R] in the targets' physical units, "event_probs" [b, E]
(decode them causally with `export.EventDecoder`), "probs" [b, K].

One call gathers the listed slots' carries, normalises the raw frames with the
run's saved normaliser exactly as `model.Model` does, runs the pure
`step.step` with the run record's model config, scatters the new carries back
into their slots (the state is donated, so it is updated in place) and
returns the probabilities on the host.
The batch is padded up to a bucket (a power of two, at least 8) with the
scratch slot and zero frames, so only log2(max batch) shapes ever compile.
Rows of a batched step are independent, so a stream stepped through the pool
in any mix of calls gets the frame-by-frame outputs of `step.scan_steps` on
that stream alone (tests/test_stream_pool.py).
"""

import numpy as np
import jax
import jax.numpy as jnp

from imujax.online import model
from imujax.online import step

MIN_BUCKET = 8


def bucket(b: int) -> int:
  """The padded batch size of a call with b frames: a power of two >= 8."""
  return max(MIN_BUCKET, 1 << max(0, int(b) - 1).bit_length())


def _pool_step(params, cfg, mean, std, state, slot_ids, x_raw, target=None):
  """Pure: (state [S, ...] leaves, <int32>[b], <float32>[b, C]) -> (state, out).

  `out` holds the heads of `export`'s artifact: "probs", "event_probs",
  "regression" (un-standardised with `target` = (target_mean, target_std)).
  Padding rows name the scratch slot; the scatter of duplicate scratch ids
  keeps any one of them, which nothing reads as a real stream.
  """
  carries = jax.tree.map(
      lambda a: a.at[slot_ids].get(mode="promise_in_bounds"), state)
  carries, out = step.step(params, cfg, carries, (x_raw - mean) / std)
  state = jax.tree.map(
      lambda a, c: a.at[slot_ids].set(c, mode="promise_in_bounds"),
      state, carries)
  kept = {k: out[k] for k in ("probs", "event_probs") if k in out}
  if "regression" in out:
    kept["regression"] = out["regression"] * target[1] + target[0]
  return state, kept


def _pool_reset(initial, state, slot_ids):
  """Pure: the carries of <int32>[b] slots back to `initial` ([1, ...] leaves).

  The cell's initial carry, which need not be zeros.
  """
  return jax.tree.map(
      lambda a, i: a.at[slot_ids].set(
          jnp.broadcast_to(i, slot_ids.shape + i.shape[1:]),
          mode="promise_in_bounds"), state, initial)


class StreamPool:
  """The carried state of `num_streams` streams in device slots; see module doc.

  Attributes:
    num_streams: N; valid slot ids are 0 .. N - 1 (slot N is scratch).
    channels, num_classes: C and K of the run (K = 0 without a classifier).
    channel_names, class_names, sample_rate_hz: the run's.
    outputs: the heads (`model.Checkpoint.outputs`: names, units, decoder).
  """

  def __init__(self, ckpt: model.Checkpoint, num_streams: int):
    if int(num_streams) < 1:
      raise ValueError(f"num_streams must be >= 1, got {num_streams}.")
    record = ckpt.record
    cfg = record.model
    self.outputs = ckpt.outputs()
    if not self.outputs:
      raise ValueError("StreamPool needs a classifier, regression or events "
                       "run (run.json: model_config.num_classes is 0 and "
                       "the params hold no regressor or event_detector).")
    self.num_streams = int(num_streams)
    self.channel_names = list(record.channel_names)
    self.class_names = list(record.class_names)
    self.sample_rate_hz = float(record.sample_rate_hz)
    self.channels = cfg.in_dim
    self.num_classes = cfg.num_classes
    params = jax.tree.map(jnp.asarray, ckpt.params)
    mean, std = jnp.asarray(ckpt.mean), jnp.asarray(ckpt.std)
    reg = self.outputs.get("regression")
    target = reg and (jnp.asarray(reg["target_mean"], jnp.float32),
                      jnp.asarray(reg["target_std"], jnp.float32))
    # Params and normaliser are constants of the compiled step (as in
    # `model.Model`); the state is donated and never leaves the device.
    self._step = jax.jit(
        lambda state, ids, x: _pool_step(params, cfg, mean, std, state, ids,
                                         x, target), donate_argnums=0)
    initial = step.init_state(cfg, 1)
    self._reset = jax.jit(
        lambda state, ids: _pool_reset(initial, state, ids), donate_argnums=0)
    self._state = step.init_state(cfg, self.num_streams + 1)
    self._stamp = np.zeros(self.num_streams, np.int32)  # Duplicate check.
    self._rows = np.arange(self.num_streams, dtype=np.int32)

  # ------------------------------------------------------------- checking
  def _slot_ids(self, slot_ids) -> np.ndarray:
    ids = np.asarray(slot_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype,
                                                        np.integer)):
      raise ValueError(
          f"slot_ids must be <int>[b] (one slot per frame), got "
          f"{ids.dtype}{list(ids.shape)}.")
    if ids.size:
      lo, hi = int(ids.min()), int(ids.max())
      if lo < 0 or hi >= self.num_streams:
        raise ValueError(
            f"slot id {lo if lo < 0 else hi} out of range: this pool has "
            f"{self.num_streams} streams, slot ids 0..{self.num_streams - 1}.")
      # Duplicates without sorting: write each row's position into its slot;
      # a repeated slot holds one position, so another row reads a mismatch
      # (whichever write wins).
      rows = self._rows[:ids.size] if ids.size <= self._rows.size else (
          np.arange(ids.size, dtype=np.int32))
      self._stamp[ids] = rows
      if (self._stamp[ids] != rows).any():
        raise ValueError(
            "slot_ids repeat a slot: one frame per stream and call (step a "
            "stream's later frames in later calls, in order).")
    return ids.astype(np.int32)

  def _pad(self, ids: np.ndarray, x=None):
    size = bucket(ids.size)
    if size == ids.size:
      return ids, x
    pad = size - ids.size
    ids = np.concatenate([ids, np.full(pad, self.num_streams, np.int32)])
    if x is not None:
      x = np.concatenate([x, np.zeros((pad, self.channels), np.float32)])
    return ids, x

  # ------------------------------------------------------------------- API
  def step(self, slot_ids, frames) -> np.ndarray:
    """One frame for each listed stream; returns their probabilities.

    Args:
      slot_ids: <int>[b] distinct slots in [0, num_streams).
      frames: <float32>[b, C] raw frames (the run's units, channel order),
        row i for stream slot_ids[i].

    Returns:
      <float32>[b, K] probabilities on the host, row i for slot_ids[i].
    """
    if "probs" not in self.outputs:
      raise ValueError(
          f"This run has no classifier head (its outputs are "
          f"{sorted(self.outputs)}): call step_outputs(slot_ids, frames).")
    return self.step_outputs(slot_ids, frames)["probs"]

  def step_outputs(self, slot_ids, frames) -> dict:
    """As `step`, returning every head: {"probs" [b, K], "regression"
    [b, R] in the targets' units, "event_probs" [b, E]}: those it has."""
    ids = self._slot_ids(slot_ids)
    x = np.asarray(frames, np.float32)
    if x.shape != (ids.size, self.channels):
      raise ValueError(
          f"frames must be <float32>[b, C] = [{ids.size}, {self.channels}] "
          f"(one frame of the run's {self.channels} channels per slot id), "
          f"got shape {list(x.shape)}.")
    if not ids.size:
      return {k: np.zeros((0, len(v["names"])), np.float32) for k, v in
              (("event_probs" if k == "events" else k, v)
               for k, v in self.outputs.items())}
    b = ids.size
    ids, x = self._pad(ids, x)
    self._state, out = self._step(self._state, ids, x)
    return {k: np.asarray(v)[:b] for k, v in out.items()}

  def reset(self, slot_ids) -> None:
    """Restarts <int>[b] distinct slots (a new or gapped stream)."""
    ids = self._slot_ids(slot_ids)
    if ids.size:
      self._state = self._reset(self._state, self._pad(ids)[0])

  def warmup(self, max_batch: int) -> list[int]:
    """Compiles `step` and `reset` for every bucket up to bucket(max_batch).

    Only the scratch slot is touched. Returns the bucket sizes compiled.
    """
    sizes, size = [], MIN_BUCKET
    while size <= bucket(max_batch):
      ids = np.full(size, self.num_streams, np.int32)
      self._state, out = self._step(
          self._state, ids, np.zeros((size, self.channels), np.float32))
      jax.block_until_ready(out)
      self._state = self._reset(self._state, ids)
      sizes.append(size)
      size *= 2
    jax.block_until_ready(self._state)
    return sizes
