"""Paired comparisons of regression, events and prediction fine-tunes.

The report's section "Other targets: paired": for each cell (dataset ×
target × tracks × label budget), every metric of the kind (`METRICS`) is
compared arm − scratch on the unit of the classification claims
(`experiments/paired.py`): one test subject under one seed (in the one
fold that tests it), same split, labels and head initialisation. Mean difference, a
hierarchical-bootstrap 95% interval (subjects, then seeds), a sign-flip p
over subjects Holm-adjusted across the arms of a cell and metric, and n.
Which way is better comes from `metrics.HIGHER_IS_BETTER`: "favours" names
the arm the interval lies on the better side for (or "neither").

Prediction is also compared with its two baselines on the same frames
(model − last value, model − constant velocity), and regression's MAE and
RMSE with predicting the labelled training frames' mean (`mae_train_mean`,
`rmse_train_mean`), for every arm, scratch included: the baselines are the
floor a model must beat.

Pairs where either side's metric is NaN (e.g. R² on a subject whose target
is constant, precision without a detection) are left out; n says what is left.
"""

import collections
import math

import numpy as np

from imujax import metrics
from imujax.experiments import paired
from imujax.experiments import stats

# The per-subject metrics compared per target kind; prediction's are its
# "rmse_<ms>ms", one per horizon found in the runs.
METRICS = {
    "regression": ("mae", "rmse", "r2", "pearson_r"),
    "events": ("f1", "precision", "recall", "timing_error_ms_abs",
               "delay_ms_mean"),
    "prediction": ("rmse",),
}
# Per target kind: (baseline, its per-subject key given the metric) for the
# metrics that have one.
BASELINES = {
    "prediction": (("last value", lambda m: m.replace("rmse", "rmse_last",
                                                      1)),
                   ("constant velocity",
                    lambda m: m.replace("rmse", "rmse_velocity", 1))),
    "regression": (("training mean", lambda m: (
        f"{m}_train_mean" if m in ("mae", "rmse") else "")),),
}


def _cells(others: list) -> dict:
  """{(dataset, target, tracks, budget): {arm: {(subject, seed):
  per-subject floats}}} of the finished runs."""
  out = collections.defaultdict(lambda: collections.defaultdict(dict))
  for o in others:
    if not o.get("test") or "arm" not in o:
      continue
    key = (o["dataset"], o["target"], o.get("tracks", ""), o["budget"])
    for subject, s in (o["test"].get("per_subject") or {}).items():
      # Under folds over subjects a subject is in one fold per seed.
      out[key][o["arm"]][(subject, o["seed"])] = s
  return out


def _metric_names(target: str, arms: dict) -> list:
  names = list(METRICS.get(target, (metrics.HEADLINE.get(target, "loss"),)))
  if target == "prediction":  # Per horizon; "rmse" repeats the first.
    keys = {k for runs in arms.values() for s in runs.values() for k in s}
    names = sorted(k for k in keys if k.startswith("rmse_") and
                   k.endswith("ms") and not k.startswith(
                       ("rmse_last", "rmse_velocity"))) or names
  return names


def _diffs(arm: dict, ref: dict, metric: str, ref_metric: str) -> dict:
  out = {}
  for k in sorted(set(arm) & set(ref)):
    a, r = arm[k].get(metric), ref[k].get(ref_metric)
    if a is not None and r is not None and math.isfinite(a) and \
       math.isfinite(r):
      out[k] = (float(a) - float(r), float(a), float(r))
  return out


def _favours(row: dict, higher: bool) -> str:
  lo, hi = row["ci_lo"], row["ci_hi"]
  if math.isnan(lo):
    return "n too small (< 3 subjects)"
  if lo > 0 or hi < 0:
    better = (lo > 0) == higher
    return row["arm"] if better else row["reference"]
  return "neither (interval spans 0)"


def paired_rows(others: list, seed: int = 0) -> list[dict]:
  """One row per cell × metric × (arm, reference): the paired difference."""
  rows = []
  for (dataset, target, tracks, budget), arms in sorted(
      _cells(others).items(), key=lambda kv: (kv[0][:3], kv[0][3] or 1e9)):
    for metric in _metric_names(target, arms):
      comparisons = [(arm, stats.control_arm(arm), arms[arm],
                      arms.get(stats.control_arm(arm), {}), metric)
                     for arm in sorted(arms) if not stats.is_control(arm)]
      comparisons += [(arm, name, arms[arm], arms[arm], key(metric))
                      for arm in sorted(arms)
                      for name, key in BASELINES.get(target, ())
                      if key(metric)]
      cell = []
      for arm, reference, mine, theirs, ref_metric in comparisons:
        d = _diffs(mine, theirs, metric, ref_metric)
        if not d:
          continue
        s = paired.summary({k: v[0] for k, v in d.items()}, seed=seed)
        cell.append({"dataset": dataset, "target": target, "tracks": tracks,
                     "budget": budget, "metric": metric, "arm": arm,
                     "reference": reference,
                     "arm_mean": float(np.mean([v[1] for v in d.values()])),
                     "reference_mean": float(np.mean([v[2] for v in
                                                      d.values()])), **s})
      # Holm across the arms compared with one reference.
      for reference in {r["reference"] for r in cell}:
        mine = [r for r in cell if r["reference"] == reference]
        adjusted = paired.holm({r["arm"]: r["p"] for r in mine})
        for r in mine:
          r["p_holm"] = adjusted[r["arm"]]
      higher = metrics.higher_is_better(metric)
      for r in cell:
        r["higher_is_better"] = higher
        r["favours"] = _favours(r, higher)
      rows += cell
  return rows



def markdown(others: list) -> str:
  """The section's markdown ("" when the sweep has no such pairs)."""
  rows = paired_rows(others)
  if not rows:
    return ""
  lines = ["## Other targets: paired", "",
           "Per cell and metric: mean paired difference arm − reference "
           "(same test subject, seed and fold; scratch, or for prediction "
           "also the last-value and constant-velocity baselines on the same "
           "frames, for regression's MAE / RMSE predicting the training "
           "frames' mean), hierarchical-bootstrap 95% interval (subjects, then "
           "seeds; none under 3 subjects), sign-flip p over subjects "
           "Holm-adjusted across arms; n = subjects × seeds (pairs). "
           "Better: the metric's direction (imujax.metrics."
           "HIGHER_IS_BETTER).", ""]
  cells = collections.defaultdict(list)
  for r in rows:
    cells[(r["dataset"], r["target"], r["tracks"], r["budget"])].append(r)
  for (dataset, target, tracks, budget), mine in cells.items():
    what = f"{target} {tracks}".strip()
    lines += [f"### {dataset}: {what}, labelled subjects "
              f"{budget or 'all'}", "",
              "| metric (better) | arm | reference | arm mean | reference "
              "mean | Δ [95% CI] | n | p (Holm) | favours |",
              "|---" * 9 + "|"]
    for r in mine:
      ci = (f" [{r['ci_lo']:+.4f}, {r['ci_hi']:+.4f}]"
            if not math.isnan(r["ci_lo"]) else "")
      lines.append(
          f"| {r['metric']} ({'higher' if r['higher_is_better'] else 'lower'}"
          f") | {r['arm']} | {r['reference']} | {stats.fmt(r['arm_mean'], 4)} | "
          f"{stats.fmt(r['reference_mean'], 4)} | {r['mean']:+.4f}{ci} | "
          f"{r['subjects']} × {r['seeds']} ({r['pairs']}) | "
          f"{stats.fmt_p(r['p_holm'])} | {r['favours']} |")
    lines.append("")
  return "\n".join(lines) + "\n"
