"""A classic velocity-threshold (I-VT) baseline on the Lund 2013 data.

The textbook I-VT of Salvucci & Goldberg (2000, "Identifying fixations and
saccades in eye-tracking protocols", ETRA): the point-to-point angular speed
of each sample, no filter or smoothing, a sample faster than the threshold is
a saccade and every other sample a fixation. The threshold is fixed a priori
at 30 deg/s, a common default; it is NOT tuned on this data. No training, so
it scores every recording, on the same labels and with the same metrics
(`metrics.kappa_per_class`, `metrics.event_overlap_counts`) as the models:
a floor to set beside them, as the inter-rater agreement is a ceiling.

Track loss: the builder keeps track-loss samples as NaN in both channels
with their raters' labels, and the raters coded them almost all as blink
(5,200 blink, 138 undefined, 2 fixation in the 96 files; README). So a
non-finite sample is called "blink" when the class list has it. Blinks with
gaze still present (57 % of blink samples) are beyond I-VT: they come out
as saccade or fixation. I-VT never predicts PSO or smooth pursuit.

  python -m imujax.datasets.gaze_lund2013 \
      --manual_dir=../shared/data/gaze_lund2013 --ivt_deg_s=30

Layering: this module (datasets) reads a dataset only through the fields of
`imujax.data.input_pipeline.Dataset` (`recordings` with `signals`, `labels`,
`subject`; `channel_names`, `class_names`, `sample_rate_hz`), without
importing that layer.
"""

from typing import Sequence

import numpy as np

from imujax import metrics

DEFAULT_THRESHOLD_DEG_S = 30.0
CHANNELS = ("gaze_x_deg", "gaze_y_deg")


def sample_speed(xy: np.ndarray, rate_hz: float) -> np.ndarray:
  """Point-to-point angular speed of each sample, deg/s, no filter.

  Args:
    xy: <float>[T, 2] gaze (x, y) in degrees; NaN / inf = track loss.
    rate_hz: samples per second.

  Returns:
    <float64>[T]: speed[t] = |xy[t] - xy[t-1]| * rate_hz (Euclidean over the
    two axes). A finite sample without a finite predecessor (the first
    sample, or the first after a gap) takes the speed to its successor,
    |xy[t+1] - xy[t]| * rate_hz, i.e. the speed of the second sample of its
    stretch; 0 when its successor is not finite either (a lone sample).
    NaN at the non-finite samples themselves.
  """
  xy = np.asarray(xy, np.float64)
  if xy.ndim != 2 or xy.shape[1] != 2:
    raise ValueError(f"xy must be [T, 2] (x, y in degrees); got {xy.shape}.")
  if not rate_hz > 0:
    raise ValueError(f"rate_hz must be positive; got {rate_hz}.")
  finite = np.isfinite(xy).all(1)
  step = np.full(len(xy), np.nan)  # step[t]: |xy[t] - xy[t-1]|, t >= 1.
  step[1:] = np.hypot(*(xy[1:] - xy[:-1]).T)
  speed = step * rate_hz
  has_prev = np.zeros(len(xy), bool)
  has_prev[1:] = finite[1:] & finite[:-1]
  has_next = np.zeros(len(xy), bool)
  has_next[:-1] = has_prev[1:]
  first = finite & ~has_prev  # Start of a finite stretch.
  forward = np.zeros(len(xy))
  forward[:-1] = np.where(has_next[:-1], speed[1:], 0.)
  speed[first] = forward[first]
  speed[~finite] = np.nan
  return speed


def ivt_labels(xy: np.ndarray, rate_hz: float, class_names: Sequence[str],
               threshold_deg_s: float = DEFAULT_THRESHOLD_DEG_S
               ) -> np.ndarray:
  """The I-VT class of every sample.

  Args:
    xy: <float>[T, 2] gaze (x, y) in degrees of visual angle; NaN = track
      loss.
    rate_hz: samples per second.
    class_names: the dataset's classes; must hold "fixation" and "saccade".
    threshold_deg_s: a sample whose `sample_speed` is strictly above it is a
      saccade, else a fixation.

  Returns:
    <int32>[T] indices into `class_names`: "saccade" above the threshold,
    "fixation" at or below it; a non-finite sample (track loss) is "blink"
    when `class_names` has it, else -1 (no decision; `evaluate` needs a
    blink class).
  """
  names = list(class_names)
  for needed in ("fixation", "saccade"):
    if needed not in names:
      raise ValueError(f"I-VT needs a {needed!r} class; the classes are "
                       f"{names}.")
  if not threshold_deg_s > 0:
    raise ValueError(f"threshold_deg_s must be positive; got "
                     f"{threshold_deg_s}.")
  speed = sample_speed(xy, rate_hz)
  out = np.where(speed > threshold_deg_s, names.index("saccade"),
                 names.index("fixation")).astype(np.int32)
  out[np.isnan(speed)] = names.index("blink") if "blink" in names else -1
  return out


def _scores(confusion: np.ndarray, counts: np.ndarray) -> dict:
  """Kappa per class, event F1 and macro-F1 of one confusion [K, K] and
  summed event counts [K, 3], as `training/evaluate.py` computes them."""
  s = metrics.scores(confusion)
  return {"frames": s["frames"], "accuracy": s["accuracy"],
          "macro_f1": s["macro_f1"],
          "kappa_per_class": metrics.kappa_per_class(confusion),
          **metrics.event_overlap_scores(counts),
          "confusion": confusion.tolist(), "event_counts": counts.tolist()}


def evaluate(dataset, threshold_deg_s: float = DEFAULT_THRESHOLD_DEG_S
             ) -> dict:
  """I-VT against `labels` over every recording of a dataset.

  Args:
    dataset: an `input_pipeline.Dataset` of gaze (channels "gaze_x_deg",
      "gaze_y_deg" in degrees; classes with "fixation", "saccade", "blink"):
      each recording's `signals` <float32>[T, C], `labels` <int32>[T]
      (-1 = unlabelled), `subject`.
    threshold_deg_s: the I-VT threshold (`ivt_labels`).

  Returns:
    {"threshold_deg_s", "class_names", "recordings", "subjects", and the
    pooled scores: "frames" (labelled samples), "accuracy", "macro_f1"
    (`metrics.scores`, classes present), "kappa_per_class" [K],
    "event_f1_per_class" [K] (NaN: no true and no predicted event),
    "event_f1", "confusion" [K, K] (rows true), "event_counts" [K, 3];
    "per_subject": subject -> the same scores over that participant's
    recordings}. The confusion counts labelled samples only (truth >= 0);
    events come from each whole recording with its unlabelled samples left
    out as `metrics.event_overlap_counts` does (they end an event), as the
    models are scored (`training/evaluate.py`).
  """
  names = list(dataset.class_names)
  if "blink" not in names:
    raise ValueError(f"evaluate scores track loss as blink; the classes "
                     f"{names} have no 'blink'.")
  channels = list(dataset.channel_names)
  missing = [c for c in CHANNELS if c not in channels]
  if missing:
    raise ValueError(f"I-VT needs the channels {list(CHANNELS)}; the dataset "
                     f"has {channels}.")
  cols = [channels.index(c) for c in CHANNELS]
  k = len(names)
  by_subject = {}
  for rec in dataset.recordings:
    pred = ivt_labels(np.asarray(rec.signals)[:, cols],
                      dataset.sample_rate_hz, names, threshold_deg_s)
    truth = np.asarray(rec.labels)
    keep = truth >= 0
    confusion, counts = by_subject.setdefault(
        rec.subject, (np.zeros((k, k), np.int64), np.zeros((k, 3), np.int64)))
    confusion += metrics.confusion_matrix(truth[keep], pred[keep], k)
    counts += metrics.event_overlap_counts(truth, pred, k)
  if not by_subject:
    raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: no "
                     "recordings to score.")
  pooled = sum(c for c, _ in by_subject.values())
  pooled_counts = sum(n for _, n in by_subject.values())
  return {"threshold_deg_s": float(threshold_deg_s), "class_names": names,
          "recordings": len(dataset.recordings),
          "subjects": len(by_subject), **_scores(pooled, pooled_counts),
          "per_subject": {s: _scores(c, n)
                          for s, (c, n) in sorted(by_subject.items())}}


def _f(value: float) -> str:
  return "n/a" if np.isnan(value) else f"{value:.3f}"


def format_ivt(result: dict, title: str) -> str:
  """The pooled table (class x kappa, event F1, events) and one line per
  participant (kappa per class, event F1)."""
  names = result["class_names"]
  counts = np.asarray(result["event_counts"])
  lines = [f"{title}: I-VT at {result['threshold_deg_s']:g} deg/s, "
           f"{result['recordings']} recordings, {result['subjects']} "
           f"participants, {result['frames']} labelled samples",
           f"  {'class':<15}{'kappa':>7}{'event F1':>10}"
           f"{'true ev.':>10}{'pred. ev.':>11}{'matched':>9}"]
  for c, name in enumerate(names):
    lines.append(f"  {name:<15}{_f(result['kappa_per_class'][c]):>7}"
                 f"{_f(result['event_f1_per_class'][c]):>10}"
                 f"{counts[c, 1]:>10}{counts[c, 2]:>11}{counts[c, 0]:>9}")
  lines.append(f"  event F1 (mean over classes with an event) "
               f"{_f(result['event_f1'])}, macro-F1 {_f(result['macro_f1'])}"
               f", accuracy {_f(result['accuracy'])}")
  lines.append(f"  per participant: {'frames':>7} "
               + " ".join(f"{n[:8]:>8}" for n in names) + "  event F1")
  for subject, s in result["per_subject"].items():
    lines.append(f"  {subject:<17}{s['frames']:>7} "
                 + " ".join(f"{_f(v):>8}" for v in s["kappa_per_class"])
                 + f"  {_f(s['event_f1']):>8}")
  return "\n".join(lines)
