"""Puts one irregularly sampled recording on a uniform time grid.

Every imujax builder stores `signals [T, C]` on a uniform grid at the config's
rate (see CONVENTIONS.md); real IMU files rarely are. `resample_to_grid` is the
one place where that happens, so every builder repairs the same defects the same
way and counts every repair.

Grid: frame k is at `t0 + k / rate_hz`, t0 the first timestamp, up to the last
timestamp (inclusive). `rate_hz=None` keeps the recording's native rate, the
inverse of the median interval between samples. `span_s=(start, end)` puts the
grid on a given interval instead, so that several devices recorded side by side
can share one grid (their overlap).

Signals are linearly interpolated in time, channel by channel. A label at a
frame is the label of the last sample at or before that frame (previous-sample
hold): labels say which class is in force from their sample on, and
interpolating class ids would invent classes.

Repair policies (keys of `Resampled.repairs`, always all present):

* `duplicate_timestamps_dropped`: samples whose timestamp equals the previous
  one. Of a run of equal timestamps only the LAST sample is kept, since it is
  the one in force from that instant on (for its label as for its values).
* `nonfinite_samples_interpolated`: samples with NaN/Inf in any channel whose
  run of consecutive non-finite values in that channel is at most
  `max_nonfinite_run` samples long. Those values are treated as missing and the
  channel is interpolated from its finite neighbours (held at the edges).
* `gaps_interpolated`: intervals between consecutive kept samples longer than
  `_GAP_FACTOR` times the median interval (samples were lost); the signal is
  linearly interpolated across them and the label held.

Errors (`ResampleError`, a ValueError naming `source`, the sample and the fix):

* a timestamp smaller than the previous one (out of order, or a clock reset):
  reordering silently could splice unrelated data, so the user must sort or
  split the recording;
* a non-finite timestamp;
* a run of non-finite values longer than `max_nonfinite_run`, or a channel with
  no finite value at all;
* a gap longer than `max_gap_s` seconds (interpolating it would invent motion);
* fewer than two samples, or arrays whose lengths disagree.

Sample indices in messages are 0-based rows of the arrays passed in; with
`first_line` set they are reported as file lines (`first_line` being the line
of sample 0, or an array giving each sample's line), which is what builders
reading text files pass.
"""

from typing import NamedTuple

import numpy as np

# An interval this many times the median one means samples went missing.
_GAP_FACTOR = 1.5
REPAIR_KEYS = ("duplicate_timestamps_dropped", "nonfinite_samples_interpolated",
               "gaps_interpolated")


class Resampled(NamedTuple):
  """A recording on a uniform grid.

  Attributes:
    timestamps_s: <float64>[T'] grid times in seconds, `t0 + k / rate`.
    signals: <float32>[T', C] linearly interpolated signals.
    labels: track name -> <int32>[T'] labels held from the previous sample.
    repairs: repair name -> count (see module docstring); every key present.
  """
  timestamps_s: np.ndarray
  signals: np.ndarray
  labels: dict[str, np.ndarray]
  repairs: dict[str, int]


class ResampleError(ValueError):
  """A defect `resample_to_grid` refuses to repair; `index` is the sample."""

  def __init__(self, message: str, index: int | None = None):
    super().__init__(message)
    self.index = index


def _where(source: str, index: int, first_line) -> str:
  if first_line is None:
    return f"{source}: sample {index}"
  if np.ndim(first_line):
    return f"{source}:{int(first_line[index])}"
  return f"{source}:{index + first_line}"


def _check_shapes(timestamps_s, signals, labels, source):
  if timestamps_s.ndim != 1:
    raise ResampleError(f"{source}: timestamps must be 1-D [T], got shape "
                        f"{timestamps_s.shape}.")
  if signals.ndim != 2 or signals.shape[0] != timestamps_s.shape[0]:
    raise ResampleError(
        f"{source}: signals must be [T={timestamps_s.shape[0]}, C], got shape "
        f"{signals.shape}; pass one row per timestamp.")
  for name, track in labels.items():
    if track.shape != timestamps_s.shape:
      raise ResampleError(
          f"{source}: label track {name!r} has shape {track.shape}, expected "
          f"{timestamps_s.shape}; pass one label per timestamp.")
  if timestamps_s.shape[0] < 2:
    raise ResampleError(
        f"{source}: {timestamps_s.shape[0]} sample(s); at least 2 are needed "
        "to define a time grid. Drop this recording.")


def _check_timestamps(t, source, first_line):
  """Raises on non-finite or decreasing timestamps. t: <float64>[T]."""
  bad = np.flatnonzero(~np.isfinite(t))
  if bad.size:
    i = int(bad[0])
    raise ResampleError(
        f"{_where(source, i, first_line)}: timestamp is {t[i]}; fix or delete "
        "that row.", i)
  back = np.flatnonzero(np.diff(t) < 0)
  if back.size:
    i = int(back[0]) + 1
    raise ResampleError(
        f"{_where(source, i, first_line)}: timestamp {t[i]!r} s is earlier "
        f"than the previous sample's {t[i - 1]!r} s. Timestamps must not "
        "decrease: sort the file by time, or split the recording where the "
        "clock jumps back.", i)


def _last_of_equal_runs(t: np.ndarray) -> np.ndarray:
  """<bool>[T] mask keeping the last sample of each run of equal times."""
  keep = np.ones(t.shape, bool)
  keep[:-1] = t[1:] != t[:-1]
  return keep


def _check_nonfinite_runs(x, rows, max_run, source, first_line) -> int:
  """Raises on long non-finite runs; returns the number of repaired rows.

  Args:
    x: <float>[T, C] signals.
    rows: <int>[T] original row index of each sample, for messages.
  """
  bad = ~np.isfinite(x)
  if not bad.any():
    return 0
  for c in range(x.shape[1]):
    if bad[:, c].all():
      raise ResampleError(
          f"{source}: channel {c} has no finite value; drop the channel or the "
          "recording.")
    # Starts and ends of runs of non-finite values in this channel.
    edges = np.diff(np.concatenate([[0], bad[:, c].astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    if lengths.size and lengths.max() > max_run:
      j = int(np.argmax(lengths > max_run))
      i = int(rows[starts[j]])
      raise ResampleError(
          f"{_where(source, i, first_line)}: {lengths[j]} consecutive "
          f"non-finite values in channel {c} (at most {max_run} are "
          "interpolated). Fix the file, split the recording around the run, "
          "or raise max_nonfinite_run.", i)
  return int(bad.any(axis=1).sum())


def native_rate_hz(timestamps_s: np.ndarray) -> float:
  """Inverse of the median positive interval of <float64>[T] timestamps."""
  d = np.diff(np.asarray(timestamps_s, np.float64))
  d = d[d > 0]
  if not d.size:
    raise ResampleError("native_rate_hz: no two distinct timestamps.")
  return float(1.0 / np.median(d))


def resample_to_grid(timestamps_s: np.ndarray,
                     signals: np.ndarray,
                     labels: dict[str, np.ndarray] | None,
                     rate_hz: float | None,
                     *,
                     source: str,
                     max_nonfinite_run: int = 10,
                     max_gap_s: float = 1.0,
                     first_line: int | np.ndarray | None = None,
                     span_s: tuple[float, float] | None = None) -> Resampled:
  """Resamples one recording onto a uniform grid (see module docstring).

  Args:
    timestamps_s: <float64>[T] sample times in seconds, non-decreasing.
    signals: <float>[T, C] samples; NaN/Inf allowed in short runs.
    labels: track name -> <int>[T], the label in force from each sample on; or
      None for unlabelled data.
    rate_hz: grid rate; None keeps the native (median) rate.
    source: names the recording in errors, e.g. the file path.
    max_nonfinite_run: longest run of non-finite values (samples, per
      channel) that is interpolated rather than an error.
    max_gap_s: longest interval between samples that is interpolated rather
      than an error.
    first_line: file line of sample 0, or <int>[T] the line of each sample
      (when a reader skipped lines), to report lines instead of indices.
    span_s: (start, end) seconds of the grid, inside [t0, t_last]; default
      (t0, t_last).

  Returns:
    `Resampled` with T' = floor((end - start) * rate) + 1 frames.
  """
  t = np.asarray(timestamps_s, np.float64)
  x = np.asarray(signals)
  labels = {k: np.asarray(v) for k, v in (labels or {}).items()}
  _check_shapes(t, x, labels, source)
  _check_timestamps(t, source, first_line)

  keep = _last_of_equal_runs(t)
  rows = np.flatnonzero(keep)
  t, x = t[keep], x[keep]
  labels = {k: v[keep] for k, v in labels.items()}
  if t.shape[0] < 2:
    raise ResampleError(f"{source}: all samples share one timestamp; drop this "
                        "recording or fix its timestamps.")
  repairs = dict.fromkeys(REPAIR_KEYS, 0)
  repairs["duplicate_timestamps_dropped"] = int((~keep).sum())
  repairs["nonfinite_samples_interpolated"] = _check_nonfinite_runs(
      x, rows, max_nonfinite_run, source, first_line)

  dt = np.diff(t)
  too_long = np.flatnonzero(dt > max_gap_s)
  if too_long.size:
    i = int(rows[too_long[0] + 1])
    raise ResampleError(
        f"{_where(source, i, first_line)}: {dt[too_long[0]]:.3f} s since the "
        f"previous sample, more than max_gap_s={max_gap_s} s. Split the "
        "recording at the gap, or raise max_gap_s.", i)
  repairs["gaps_interpolated"] = int((dt > _GAP_FACTOR * np.median(dt)).sum())

  rate = native_rate_hz(t) if rate_hz is None else float(rate_hz)
  if not rate > 0:
    raise ResampleError(f"{source}: rate_hz must be positive, got {rate_hz}.")
  start, end = (t[0], t[-1]) if span_s is None else map(float, span_s)
  if not t[0] <= start <= end <= t[-1]:
    raise ResampleError(
        f"{source}: span_s=({start}, {end}) is not inside the recording's "
        f"[{t[0]}, {t[-1]}] s; pass an interval covered by every device.")
  # Relative times keep float64 precision for unix-epoch timestamps.
  rel = t - start
  n = int(np.floor((end - start) * rate + 1e-9)) + 1
  grid = np.arange(n) / rate
  out = np.empty((n, x.shape[1]), np.float32)
  for c in range(x.shape[1]):
    ok = np.isfinite(x[:, c])
    out[:, c] = np.interp(grid, rel[ok], x[ok, c])
  # Index of the last sample at or before each frame: previous-sample hold.
  held = np.searchsorted(rel, grid + 1e-9, side="right") - 1
  held_labels = {k: v[held].astype(np.int32) for k, v in labels.items()}
  return Resampled(start + grid, out, held_labels, repairs)
