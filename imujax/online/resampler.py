r"""Online resampling: samples arriving one by one onto the model's grid.

Owns `OnlineResampler` and its gap policies. It puts samples `(t, x)`
arriving one at a time on the model's uniform grid (`t0 + k / rate`) by linear
interpolation, exactly as `datasets.resample.resample_to_grid` does for a
whole recording, so on a whole recording (no duplicate timestamps) both give
the same frames (tests/test_stream.py).

Gaps: an interval between samples longer than `gap_factor / rate` (a grid
frame has no sample of its own) is a gap, handled by `gap_policy`:

* "interpolate" (default): the gap's frames are linearly interpolated, as
  offline;
* "hold": the gap's frames repeat the last sample before the gap;
* "reset": the gap's frames are skipped, and the grid restarts at the first
  sample after the gap (a new recording; the caller zeroes the model's state).

Any gap longer than `max_gap_s` resets, whatever the policy (offline refuses
such gaps; online there is no one to ask).

Online differences from offline, all counted in `OnlineResampler.repairs`:
a sample whose timestamp is earlier than the previous one is dropped (offline
raises); of samples with equal timestamps the last one is used from then on,
but a frame already emitted at exactly that instant is not revised (offline
uses the last one for it too); a channel non-finite for more than
`max_nonfinite_run` samples is held at its last finite value (offline raises).
"""

import math

import numpy as np

GAP_POLICIES = ("interpolate", "hold", "reset")


class OnlineResampler:
  """Uniform-grid frames from samples `(t, x)` arriving one at a time.

  The grid is `t0 + k / rate_hz`, t0 the first sample's time; a frame is
  emitted as soon as every channel has a finite sample at or after its time,
  by the same linear interpolation `resample_to_grid` applies offline (see the
  module docstring for the gap policies and the online differences).
  """

  def __init__(self, rate_hz: float, channels: int, *,
               gap_policy: str = "interpolate", gap_factor: float = 1.5,
               max_gap_s: float = 1.0, max_nonfinite_run: int = 10):
    if gap_policy not in GAP_POLICIES:
      raise ValueError(f"gap_policy={gap_policy!r}; choose one of "
                       f"{GAP_POLICIES}.")
    if not rate_hz > 0:
      raise ValueError(f"rate_hz must be positive, got {rate_hz}.")
    self.rate = float(rate_hz)
    self.channels = channels
    self.gap_policy = gap_policy
    self.gap_s = gap_factor / self.rate
    self.max_gap_s = max_gap_s
    self.max_nonfinite_run = max_nonfinite_run
    self.repairs = dict.fromkeys(
        ("out_of_order_dropped", "duplicate_timestamps", "gaps_interpolated",
         "gaps_held", "resets", "nonfinite_values_held"), 0)
    self._start(None)

  def _start(self, t0):
    self.t0 = t0
    self.k = 0                      # Next grid frame to emit.
    self._t: list[float] = []       # Buffered sample times, relative to t0.
    self._x: list[np.ndarray] = []  # Buffered samples, float64 [C].
    self._last_finite = np.full(self.channels, np.nan)
    self._last_finite_t = np.full(self.channels, -np.inf)
    self._run = np.zeros(self.channels, np.int64)
    self._clean = False  # One finite sample buffered: `_add_fast` applies.

  def push(self, t: float, x) -> tuple[np.ndarray, np.ndarray, bool]:
    """Adds one sample; returns the frames it completes.

    Args:
      t: the sample time, seconds (any origin, non-decreasing).
      x: <float>[C] the sample; NaN marks a missing value.

    Returns:
      (times, frames, reset): <float64>[n] grid times, <float32>[n, C]
      frames, and whether the stream restarted before these frames (the
      caller zeroes the model's state).
    """
    t = float(t)
    x = np.array(x, np.float64).reshape(self.channels)
    if not math.isfinite(t):
      self.repairs["out_of_order_dropped"] += 1
      return self._empty(False)
    if self.t0 is None:
      self._start(t)
      return self._add(0., x, False)
    rel = t - self.t0
    last = self._t[-1] if self._t else self._last_t
    if rel < last:
      self.repairs["out_of_order_dropped"] += 1
      return self._empty(False)
    if rel == last and self._t:
      self.repairs["duplicate_timestamps"] += 1
      self._t.pop(), self._x.pop()
      return self._add(rel, x, False)
    dt = rel - last
    if dt > self.max_gap_s or (dt > self.gap_s and self.gap_policy == "reset"):
      self.repairs["resets"] += 1
      self._start(t)
      return self._add(0., x, True)
    if dt > self.gap_s and self.gap_policy == "hold":
      self.repairs["gaps_held"] += 1
      # A copy of the last sample just before the new one: the gap's frames
      # hold the last values, the one interval after it interpolates.
      self._add(np.nextafter(rel, -np.inf), self._last_finite.copy(), False,
                emit=False)
    elif dt > self.gap_s:
      self.repairs["gaps_interpolated"] += 1
    return self._add(rel, x, False)

  @property
  def _last_t(self) -> float:
    return float(np.max(self._last_finite_t))

  def _empty(self, reset):
    return (np.zeros(0), np.zeros((0, self.channels), np.float32), reset)

  def _add(self, rel, x, reset, emit=True):
    finite = np.isfinite(x).all()
    if finite and emit and len(self._t) == 1 and self._clean:
      return self._add_fast(rel, x, reset)
    self._clean = False
    bad = ~np.isfinite(x)
    self._run = np.where(bad, self._run + 1, 0)
    over = bad & (self._run > self.max_nonfinite_run) & np.isfinite(
        self._last_finite)
    if over.any():
      self.repairs["nonfinite_values_held"] += int(over.sum())
      x = np.where(over, self._last_finite, x)
      bad = ~np.isfinite(x)
    self._t.append(rel)
    self._x.append(x)
    self._last_finite = np.where(bad, self._last_finite, x)
    self._last_finite_t = np.where(bad, self._last_finite_t, rel)
    if not emit:
      return self._empty(reset)
    out = self._emit(reset)
    # Back on the fast path once the buffer is one finite sample again.
    self._clean = len(self._t) == 1 and bool(np.isfinite(self._x[0]).all())
    return out

  def _add_fast(self, rel, x, reset):
    """`_add` + `_emit` for the usual case: one finite sample buffered.

    The same arithmetic as `np.interp` between two samples, for all channels
    at once (np.interp per channel costs more than the model step).
    """
    t0, x0 = self._t[0], self._x[0]
    self._t[0], self._x[0] = rel, x
    self._last_finite, self._last_finite_t[:] = x, rel
    self._run[:] = 0
    n = int(np.floor(rel * self.rate + 1e-9)) + 1 - self.k
    if n <= 0:
      return self._empty(reset)
    if n == 1:  # The usual case (sample rate ~ model rate): scalar grid.
      g = self.k / self.rate
      self.k += 1
      frame = x if g >= rel else x0 if g == t0 else (
          (x - x0) / (rel - t0) * (g - t0) + x0)
      return (np.array([self.t0 + g]), frame[None].astype(np.float32),
              reset)
    grid = np.arange(self.k, self.k + n) / self.rate
    self.k += n
    slope = (x - x0) / (rel - t0)
    out = slope * (grid[:, None] - t0) + x0
    # np.interp's edge cases: exact hits and beyond the last sample.
    out[grid == t0] = x0
    out[grid >= rel] = x
    return self.t0 + grid, out.astype(np.float32), reset

  def flush(self) -> tuple[np.ndarray, np.ndarray, bool]:
    """The frames up to the last sample, channels still missing held.

    For the end of a stream: frames wait for every channel's next finite value,
    so after a trailing non-finite value they would never come out.
    """
    if not self._t or not np.isfinite(self._last_finite).all():
      return self._empty(False)
    return self._emit(False, frontier=self._t[-1])

  def _emit(self, reset, frontier=None):
    if frontier is None:
      frontier = float(np.min(self._last_finite_t))
    if not math.isfinite(frontier):
      return self._empty(reset)
    n = int(np.floor(frontier * self.rate + 1e-9)) + 1 - self.k
    if n <= 0:
      return self._empty(reset)
    grid = np.arange(self.k, self.k + n) / self.rate
    ts = np.asarray(self._t)
    xs = np.stack(self._x)
    if np.isfinite(xs).all():  # Every channel on the same samples: at once.
      out = _interp_rows(grid, ts, xs).astype(np.float32)
    else:
      out = np.empty((n, self.channels), np.float32)
      for c in range(self.channels):
        ok = np.isfinite(xs[:, c])
        out[:, c] = np.interp(grid, ts[ok], xs[ok, c])
    self.k += n
    # Keep, per channel, the last finite sample at or before the next frame
    # (it brackets that frame), and everything after it.
    g_next = self.k / self.rate
    keep_from = len(ts)
    for c in range(self.channels):
      ok = np.flatnonzero(np.isfinite(xs[:, c]) & (ts <= g_next + 1e-12))
      keep_from = min(keep_from, int(ok[-1]) if ok.size else 0)
    del self._t[:keep_from], self._x[:keep_from]
    return self.t0 + grid, out, reset


def _interp_rows(grid: np.ndarray, ts: np.ndarray, xs: np.ndarray):
  """`np.interp(grid, ts, xs[:, c])` for every column c at once.

  grid <float64>[n] inside [ts[0], ts[-1]] (what `_emit` asks for), ts [m]
  increasing, xs [m, C] -> [n, C], with np.interp's arithmetic (slope times
  offset plus left value; exact hits and the right end return the sample).
  """
  if len(ts) == 1:
    return np.repeat(xs, len(grid), axis=0)
  j = np.clip(np.searchsorted(ts, grid, side="right") - 1, 0, len(ts) - 2)
  slope = (xs[j + 1] - xs[j]) / (ts[j + 1] - ts[j])[:, None]
  out = slope * (grid - ts[j])[:, None] + xs[j]
  hit = grid == ts[j]
  out[hit] = xs[j][hit]
  out[grid <= ts[0]] = xs[0]
  out[grid >= ts[-1]] = xs[-1]
  return out
