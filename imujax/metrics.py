"""Per-frame metrics, pure NumPy: one definition for all.

Classification (confusion matrix, macro-F1; per-class Cohen's kappa and
event-level F1 with events matched by overlap, for gaze), regression (MAE,
RMSE, R², Pearson r), events (the causal decoder, tolerance matching, F1
and timing) and prediction (RMSE against last-value and constant-velocity
baselines); `HIGHER_IS_BETTER` says which way each is better.

Training evaluation, streaming evaluation and reports score with these, so
a number means the same wherever it is printed.
"""

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """<int64>[num_classes, num_classes]; rows are true classes."""
  return np.bincount(y_true * num_classes + y_pred,
                     minlength=num_classes**2).reshape(num_classes, num_classes)


F1_CLASSES = ("present", "all", "truth")  # Config key eval.f1_classes.


def scores(confusion: np.ndarray, f1_classes: str = "present") -> dict:
  """Accuracy, macro-F1 and per-class F1 from a confusion matrix.

  Macro-F1 averages over `f1_classes`: "present" (the default) the classes
  that occur in the truth or in the predictions (scikit-learn's `f1_score`
  without `labels=`), so a class absent from the test subjects and never
  predicted does not count as F1 = 0; "all" every class (absent ones count
  as 0: `labels=range(K)`); "truth" the classes in the truth only
  (`labels=` the true classes; a predicted absent class still costs
  precision in the others).
  """
  if f1_classes not in F1_CLASSES:
    raise ValueError(f"eval.f1_classes={f1_classes!r}; choose one of "
                     f"{F1_CLASSES}.")
  tp = np.diag(confusion).astype(np.float64)
  support = confusion.sum(1)
  predicted = confusion.sum(0)
  denom = support + predicted
  f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.)
  present = {"present": denom > 0, "all": np.ones_like(denom, bool),
             "truth": support > 0}[f1_classes]
  total = confusion.sum()
  return {
      "accuracy": float(tp.sum() / total) if total else float("nan"),
      "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
      "f1_per_class": f1.tolist(),
      "frames": int(total),
  }


# ------------------------------------------ agreement and event segments
def kappa_per_class(confusion: np.ndarray) -> list:
  """Sample-level Cohen's kappa of each class, one-vs-rest.

  Class c's kappa is scikit-learn's `cohen_kappa_score(y_true == c,
  y_pred == c)`, computed from the K x K confusion matrix (rows true); NaN
  where it is undefined (chance agreement 1: the class is everywhere or
  nowhere in both).
  """
  c = np.asarray(confusion, np.float64)
  n = c.sum()
  out = []
  for k in range(len(c)):
    tp = c[k, k]
    fn, fp = c[k].sum() - tp, c[:, k].sum() - tp
    tn = n - tp - fn - fp
    if not n:
      out.append(float("nan"))
      continue
    po = (tp + tn) / n
    pe = ((tp + fn) * (tp + fp) + (tn + fp) * (tn + fn)) / n**2
    out.append(float((po - pe) / (1 - pe)) if pe < 1 else float("nan"))
  return out


def segments(labels: np.ndarray) -> np.ndarray:
  """<int64>[N, 3] (start, end, class) of each run of one class, [start,
  end); frames labelled < 0 (unlabelled) belong to no run."""
  y = np.asarray(labels)
  if not len(y):
    return np.zeros((0, 3), np.int64)
  cut = np.flatnonzero(y[1:] != y[:-1]) + 1
  starts = np.concatenate([[0], cut])
  ends = np.concatenate([cut, [len(y)]])
  runs = np.stack([starts, ends, y[starts]], 1).astype(np.int64)
  return runs[runs[:, 2] >= 0]


def event_overlap_counts(y_true: np.ndarray, y_pred: np.ndarray,
                         num_classes: int) -> np.ndarray:
  """<int64>[num_classes, 3]: (matched, true events, predicted events).

  An event is a run of one class (`segments`); a predicted event matches a
  true event of the same class that it overlaps by at least one frame, one
  to one, in time order (the earliest unmatched overlapping true event).
  Frames whose truth is unlabelled (< 0) are left out of both sequences
  (pass y_pred there as -1): they end an event.
  """
  y_true, y_pred = np.asarray(y_true), np.asarray(y_pred).copy()
  y_pred[y_true < 0] = -1
  t_runs, p_runs = segments(y_true), segments(y_pred)
  out = np.zeros((num_classes, 3), np.int64)
  for k in range(num_classes):
    t = t_runs[t_runs[:, 2] == k]
    p = p_runs[p_runs[:, 2] == k]
    i = j = matched = 0
    while i < len(t) and j < len(p):
      if t[i, 1] <= p[j, 0]:
        i += 1          # The true event ends before the prediction starts.
      elif p[j, 1] <= t[i, 0]:
        j += 1          # The prediction ends before the true event starts.
      else:
        matched, i, j = matched + 1, i + 1, j + 1
    out[k] = matched, len(t), len(p)
  return out


def event_overlap_scores(counts: np.ndarray) -> dict:
  """Event-level F1 per class from summed `event_overlap_counts`.

  Returns {"event_f1_per_class": [K] (NaN for a class with no true and no
  predicted event), "event_f1": their mean over the classes with an event}.
  """
  counts = np.asarray(counts, np.float64)
  tp, n_true, n_pred = counts[:, 0], counts[:, 1], counts[:, 2]
  denom = n_true + n_pred
  f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
  return {"event_f1_per_class": f1.tolist(),
          "event_f1": float(np.nanmean(f1)) if (denom > 0).any()
          else float("nan")}


# ------------------------------------------------------------- regression
def regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
  """MAE, RMSE, R² and Pearson r of one target, in its own units.

  Args:
    y_true: <float>[N], NaN where a frame has no value (not scored).
    y_pred: <float>[N], the predictions at the same frames.

  Returns:
    {"mae", "rmse", "r2", "pearson_r", "frames"}. R² is 1 − SS_res / SS_tot
    (scikit-learn's r2_score); R² and r are NaN when the truth (or, for r,
    the prediction) is constant, where neither is defined; every score is
    NaN when no frame has a value.
  """
  keep = np.isfinite(y_true)
  t = np.asarray(y_true, np.float64)[keep]
  p = np.asarray(y_pred, np.float64)[keep]
  nan = float("nan")
  if not t.size:
    return {"mae": nan, "rmse": nan, "r2": nan, "pearson_r": nan,
            "frames": 0}
  err = p - t
  ss_tot = np.square(t - t.mean()).sum()
  sd_t, sd_p = t.std(), p.std()
  r = (float(np.mean((t - t.mean()) * (p - p.mean())) / (sd_t * sd_p))
       if sd_t > 0 and sd_p > 0 else nan)
  return {"mae": float(np.abs(err).mean()),
          "rmse": float(np.sqrt(np.square(err).mean())),
          "r2": float(1 - np.square(err).sum() / ss_tot) if ss_tot > 0
                else nan,
          "pearson_r": r, "frames": int(t.size)}


# ----------------------------------------------------------------- events
def decode_events(prob: np.ndarray, threshold: float, delay: int):
  """Causal peak picking with a bounded delay: what an online system fires.

  Frame by frame: a frame with prob >= threshold becomes the candidate peak
  when it beats the current candidate; the candidate fires when `delay`
  frames have passed since it, or when prob falls below the threshold
  (the peak is then over), whichever comes first; after firing, no new
  candidate until prob has been below the threshold once (one detection
  per excursion). Each decision uses frames up to the firing frame only.

  Args:
    prob: <float>[T] per-frame event probability.
    threshold: in (0, 1).
    delay: frames, >= 0; the latest a peak may fire after it.

  Returns:
    (peaks, fired): <int64>[N] each; detection i is placed at frame
    peaks[i] and decided at frame fired[i], with
    0 <= fired[i] - peaks[i] <= delay. A candidate still open at the end
    fires at the last frame.
  """
  peaks, fired = [], []
  best, best_at, armed = -1., -1, True
  for t, p in enumerate(np.asarray(prob, np.float64)):
    if armed and p >= threshold and p > best:
      best, best_at = p, t  # Strictly higher: a plateau keeps its start.
    if best_at >= 0 and (p < threshold or t - best_at >= delay):
      # Checked every frame, so the candidate fires by best_at + delay.
      peaks.append(best_at)
      fired.append(t)
      best, best_at, armed = -1., -1, False
    if p < threshold:
      armed = True
  if best_at >= 0:
    peaks.append(best_at)
    fired.append(len(prob) - 1)
  return np.asarray(peaks, np.int64), np.asarray(fired, np.int64)


def match_events(true: np.ndarray, detected: np.ndarray, tolerance: int):
  """One-to-one matching of detections to true events within ± tolerance.

  Detections are taken in time order, each matched to the earliest
  still-unmatched true event within `tolerance` frames of it. On a line
  with one tolerance for all, this greedy order matches as many pairs as
  any matching can; the others are false positives (a double detection
  leaves its second one unmatched) and misses.

  Args:
    true, detected: <int>[N], <int>[M] frames, each sorted.
    tolerance: frames, >= 0.

  Returns:
    (true_index, detected_index): <int64>[P] each, the matched pairs.
  """
  true, detected = np.asarray(true), np.asarray(detected)
  pairs_t, pairs_d = [], []
  i = 0  # The earliest true event not yet matched nor passed.
  for j, d in enumerate(detected):
    while i < len(true) and true[i] < d - tolerance:
      i += 1  # Too early for this and every later detection.
    if i < len(true) and abs(int(true[i]) - int(d)) <= tolerance:
      pairs_t.append(i)
      pairs_d.append(j)
      i += 1
  return np.asarray(pairs_t, np.int64), np.asarray(pairs_d, np.int64)


def event_counts(true: np.ndarray, peaks: np.ndarray, fired: np.ndarray,
                 tolerance: int) -> dict:
  """What one recording adds to `event_scores` (sums and frame lists).

  Args:
    true: <int>[N] sorted true event frames.
    peaks, fired: <int>[M] where each detection is placed and when it was
      decided (`decode_events`).
    tolerance: frames.
  """
  ti, di = match_events(true, peaks, tolerance)
  return {"true": len(true), "detected": len(peaks), "matched": len(ti),
          "timing": (peaks[di] - true[ti]).tolist(),   # Placed − true.
          "latency": (fired[di] - true[ti]).tolist()}  # Decided − true.


def event_scores(counts: list, sample_rate_hz: float) -> dict:
  """Precision, recall, F1 and timing over recordings (`event_counts`).

  Returns:
    {"precision", "recall", "f1", "timing_error_ms_mean",
     "timing_error_ms_sd", "timing_error_ms_abs" (mean, sd and mean
     absolute value of placed − true over matched events), "delay_ms_mean"
     (decided − true: the streaming detection delay), "events", "detected",
     "matched"}; precision (recall) is NaN with no detection (no event).
  """
  n_true = sum(c["true"] for c in counts)
  n_det = sum(c["detected"] for c in counts)
  tp = sum(c["matched"] for c in counts)
  ms = 1000. / sample_rate_hz
  timing = np.asarray([e for c in counts for e in c["timing"]]) * ms
  latency = np.asarray([e for c in counts for e in c["latency"]]) * ms
  nan = float("nan")
  return {"precision": tp / n_det if n_det else nan,
          "recall": tp / n_true if n_true else nan,
          "f1": 2 * tp / (n_true + n_det) if n_true + n_det else nan,
          "timing_error_ms_mean": float(timing.mean()) if tp else nan,
          "timing_error_ms_sd": float(timing.std()) if tp else nan,
          "timing_error_ms_abs": float(np.abs(timing).mean()) if tp else nan,
          "delay_ms_mean": float(latency.mean()) if tp else nan,
          "events": n_true, "detected": n_det, "matched": tp}


# ------------------------------------------------------------- prediction
def prediction_errors(x: np.ndarray, pred: np.ndarray, horizon: int) -> dict:
  """Squared errors of h-ahead predictions and of two baselines.

  At every frame t with 1 <= t and t + horizon < T, the target is
  x[t + horizon]; the baselines are the last value x[t] (constant) and
  x[t] + horizon · (x[t] − x[t−1]) (constant velocity). The same frames
  score all three.

  Args:
    x: <float>[T, C] the signals (one recording).
    pred: <float>[T, C] the model's prediction of x[t + horizon] at t.
    horizon: frames, >= 1.

  Returns:
    {"model", "last", "velocity": sums of squared errors, "count": values
    summed (frames × channels)}; `prediction_rmse` pools them.
  """
  x = np.asarray(x, np.float64)
  t = np.arange(1, max(len(x) - horizon, 1))
  target = x[t + horizon] if len(t) else x[:0]
  last = x[t]
  velocity = last + horizon * (x[t] - x[t - 1])
  sq = lambda a: float(np.square(a - target).sum())  # noqa: E731
  return {"model": sq(np.asarray(pred, np.float64)[t]), "last": sq(last),
          "velocity": sq(velocity), "count": int(target.size)}


def prediction_rmse(errors: list) -> dict:
  """{"model", "last", "velocity"}: pooled RMSE of `prediction_errors`."""
  count = sum(e["count"] for e in errors)
  return {k: float(np.sqrt(sum(e[k] for e in errors) / count)) if count
          else float("nan") for k in ("model", "last", "velocity")}


# -------------------------------------------------- which way is better
# Each metric name (the last part of a key such as "walking_speed/mae")
# and whether a higher value is better; reports rank and colour with it.
HIGHER_IS_BETTER = {
    "accuracy": True, "macro_f1": True, "f1": True, "precision": True,
    "recall": True, "r2": True, "pearson_r": True, "loss": False,
    "mae": False, "rmse": False, "rmse_last": False, "rmse_velocity": False,
    "mae_train_mean": False, "rmse_train_mean": False,
    "timing_error_ms_abs": False, "timing_error_ms_sd": False,
    "delay_ms_mean": False, "kappa": True, "event_f1": True,
}


# The headline metric of each fine-tune target (finetune.target): what a
# report tabulates first and compares arms by.
HEADLINE = {"classification": "macro_f1", "regression": "mae",
            "events": "f1", "prediction": "rmse"}


def higher_is_better(key: str) -> bool:
  """Whether a higher `key` is better: "mae", "walking_speed/mae", "rmse_200ms".

  Raises:
    KeyError: for a metric without a known direction (e.g. the signed
      timing_error_ms_mean, where 0 is best), naming it.
  """
  name = key.rsplit("/", 1)[-1]
  for candidate in (name, name.rsplit("_", 1)[0]):
    if candidate in HIGHER_IS_BETTER:
      return HIGHER_IS_BETTER[candidate]
  raise KeyError(f"Metric {key!r} has no known better direction; add it to "
                 "imujax.metrics.HIGHER_IS_BETTER.")
