r"""One live stream: channel check, resampling, normalisation, model, smoothing.

Owns `Streamer`, which turns raw samples `(t, x)` of one source into
per-frame outputs: it checks the source's channels against the model's
(`check_channels`), puts the samples on the model's grid (`resampler`),
steps the model (any object with the `model.Model` interface: the jitted
`model.Model`, `numpy_model.NumpyModel` or an exported `export.Artifact`;
the model applies the run's saved normaliser), resets the state when the
resampler restarts the stream, and smooths the probabilities causally
(`Smoother`) for a stable displayed label. A clock that jumps back by more
than `max_gap_s` (a new clock, or the end of one spurious timestamp far in the
future) restarts the stream there, like a long gap forward does, instead of
dropping every later sample as out of order; `restart()` starts afresh on
request (the next recording of a replay).

  streamer = Streamer(model, source_channel_names, gap_policy="interpolate")
  outs = streamer.push(t, x)    # one raw sample -> the frames it completes
"""

import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from imujax.online import resampler


class ChannelMismatchError(ValueError):
  """The incoming channels are not the ones the run was trained on."""


def check_channels(expected: Sequence[str], got: Sequence[str], *,
                   source: str, reorder: bool = False) -> np.ndarray:
  """Indices into `got` that give the run's channels in the run's order.

  Args:
    expected: the run's channel names.
    got: the names of the incoming channels, in their order.
    source: names the input in errors.
    reorder: accept any order and extra channels (picked by name); otherwise
      names and order must match exactly.

  Raises:
    ChannelMismatchError: naming the missing, extra or misplaced channels.
  """
  expected, got = list(expected), list(got)
  missing = [c for c in expected if c not in got]
  extra = [c for c in got if c not in expected]
  dup = sorted({c for c in got if got.count(c) > 1})
  problems = []
  if missing:
    problems.append(f"missing {missing}")
  if extra and not reorder:
    problems.append(f"extra {extra}")
  if dup:
    problems.append(f"repeated {dup}")
  if not problems and not reorder and got != expected:
    problems.append(f"order {got} instead of {expected}")
  if problems:
    raise ChannelMismatchError(
        f"{source}: channels do not match the model's: "
        + "; ".join(problems) + f". The model expects {expected}; send exactly "
        "those, in that order (or map the source's names onto them).")
  return np.asarray([got.index(c) for c in expected], np.int64)


class Smoother:
  """Causal smoothing of class probabilities for a stable displayed label.

  ema: p_t <- ema * p_{t-1} + (1 - ema) * p_t (0 = off).
  hysteresis: the label switches from c to k only when p_k - p_c > hysteresis
  (0 = plain argmax).
  """

  def __init__(self, ema: float = 0., hysteresis: float = 0.):
    if not 0 <= ema < 1:
      raise ValueError(f"ema={ema} must be in [0, 1).")
    if not 0 <= hysteresis < 1:
      raise ValueError(f"hysteresis={hysteresis} must be in [0, 1).")
    self.ema, self.hysteresis = ema, hysteresis
    self.reset()

  def reset(self):
    self._p = None
    self._label = None

  def __call__(self, probs: np.ndarray) -> tuple[np.ndarray, int]:
    """<float>[K] probabilities -> (smoothed [K], label)."""
    if not self.ema and not self.hysteresis:  # Off: the plain argmax.
      self._p = probs
      return probs, int(probs.argmax())
    probs = np.asarray(probs, np.float64)
    self._p = probs if self._p is None or not self.ema else (
        self.ema * self._p + (1. - self.ema) * probs)
    best = int(np.argmax(self._p))
    if self._label is None or (
        self._p[best] - self._p[self._label] > self.hysteresis):
      self._label = best
    return self._p, self._label


def smooth_labels(probs: np.ndarray, ema: float = 0.,
                  hysteresis: float = 0.) -> np.ndarray:
  """<int32>[T] labels of `Smoother` applied to <float>[T, K] probs."""
  if not ema and not hysteresis:
    return np.asarray(probs).argmax(-1).astype(np.int32)
  s = Smoother(ema, hysteresis)
  return np.asarray([s(p)[1] for p in probs], np.int32)


# Most frames per `model.steps` call (shapes 2..STEPS_CHUNK get compiled).
STEPS_CHUNK = 4


class Output(NamedTuple):
  t: float            # Grid time of the frame, seconds (source clock).
  probs: np.ndarray   # <float32>[K] the model's probabilities.
  smoothed: np.ndarray  # [K] after EMA (probs itself without smoothing).
  label: int          # After smoothing / hysteresis.
  reset: bool         # The state was zeroed before this frame.
  # <float32>[C] the frame the model saw, the run's channels in the run's
  # order, raw units (after resampling, before the normaliser).
  frame: Optional[np.ndarray] = None
  # A model without a classifier (its `outputs` lack "probs"; probs and
  # smoothed are then empty, label -1): {"regression": <float32>[R] in the
  # targets' units, "events": [(track, frames back to the peak)] decided at
  # this frame by the causal decoder (at most its delay back)}.
  heads: Optional[dict] = None


class Streamer:
  """One stream: resampling, channel check, normalisation, model, smoothing."""

  def __init__(self, model, input_channels: Sequence[str], *,
               source: str = "stream", reorder: bool = False,
               gap_policy: str = "interpolate", gap_factor: float = 1.5,
               max_gap_s: float = 1.0, ema: float = 0.,
               hysteresis: float = 0., modality_gaps=None):
    self.model = model
    # None: a missing modality is an ordinary gap; a ModalityGaps: it is fed
    # as the mean and counted (online/modality_gaps.py).
    self.modality_gaps = modality_gaps
    self.index = check_channels(model.channel_names, input_channels,
                                source=source, reorder=reorder)
    self._select = list(self.index) != list(range(len(input_channels)))
    self._resampler_args = dict(gap_policy=gap_policy, gap_factor=gap_factor,
                                max_gap_s=max_gap_s)
    self.max_gap_s = max_gap_s
    self.resampler = resampler.OnlineResampler(
        model.sample_rate_hz, len(self.index), **self._resampler_args)
    self.smoother = Smoother(ema, hysteresis)
    self.state = model.init_state(1)
    outputs = getattr(model, "outputs", None) or {"probs": None}
    self.heads_only = "probs" not in outputs
    self._decoder = (model.event_decoder(1) if "events" in outputs
                     else None)
    # Restarts besides the resampler's own (its repairs["resets"]).
    self.discontinuities = {"clock_jumps_back": 0, "restarts": 0}
    self._last_t: Optional[float] = None
    self._restarted = False

  def restart(self, why: str = "restarts"):
    """Starts afresh: the next sample begins a new grid, state and smoother
    reset (its first frame has `reset` set); counted in `discontinuities`."""
    repairs = self.resampler.repairs
    self.resampler = resampler.OnlineResampler(
        self.model.sample_rate_hz, len(self.index), **self._resampler_args)
    self.resampler.repairs = repairs
    self.discontinuities[why] += 1
    self._last_t = None
    self._restarted = True

  def push(self, t: float, x) -> list[Output]:
    """One sample (in the source's channel order) -> the frames it completes."""
    if self._select:  # The resampler converts to float64 itself.
      x = np.asarray(x, np.float64)[self.index]
    if self.modality_gaps is not None:
      x = self.modality_gaps(x)
    t = float(t)
    if math.isfinite(t):
      if self._last_t is not None and t < self._last_t - self.max_gap_s:
        self.restart("clock_jumps_back")  # A new clock (the module doc).
      self._last_t = t if self._last_t is None else max(self._last_t, t)
    times, frames, reset = self.resampler.push(t, x)
    if not len(frames):
      return []
    if reset or self._restarted:
      reset, self._restarted = True, False
      self.state = self.model.init_state(1)
      self.smoother.reset()
      if self._decoder is not None:  # An open candidate ends with its stream.
        self._decoder = self.model.event_decoder(1)
    if self.heads_only:
      return self._push_heads(times, frames, reset)
    probs_all = []
    many = getattr(self.model, "steps", None)
    # At most STEPS_CHUNK frames per call: `steps` compiles once per number
    # of frames, and a gap's many frames must not compile (and stall) anew.
    for i in range(0, len(frames), STEPS_CHUNK if many else 1):
      chunk = frames[i:i + STEPS_CHUNK] if many else frames[i:i + 1]
      if len(chunk) > 1:
        self.state, probs = self.model.steps(self.state, chunk)
        probs_all.extend(np.asarray(probs))
      else:
        self.state, probs = self.model.step(self.state, chunk)
        probs_all.append(np.asarray(probs)[0])
    outs = []
    for i, (tf, probs) in enumerate(zip(times, probs_all)):
      smoothed, label = self.smoother(probs)
      outs.append(Output(float(tf), probs, smoothed, label, reset and i == 0,
                         frames[i]))
    return outs

  def _push_heads(self, times, frames, reset) -> list[Output]:
    """The frames of a model without a classifier: regression and events."""
    outs, none = [], np.zeros(0, np.float32)
    for i, (tf, x) in enumerate(zip(times, frames)):
      self.state, out = self.model.step_outputs(self.state, x[None])
      heads = {}
      if "regression" in out:
        heads["regression"] = np.asarray(out["regression"])[0]
      if self._decoder is not None:
        d = self._decoder
        found = d.push(np.asarray(out["event_probs"]))  # Advances d.t.
        heads["events"] = [(j, d.t - peak) for _, j, peak in found]
        heads["event_probs"] = np.asarray(out["event_probs"])[0]
      outs.append(Output(float(tf), none, none, -1, reset and i == 0,
                         frames[i], heads))
    return outs
