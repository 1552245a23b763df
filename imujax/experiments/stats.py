"""The statistics and groupings a sweep report is made of.

Pure functions of run records and numbers: paired bootstrap intervals,
Wilcoxon p, steps to a validation target, the area under a validation curve,
and the {(dataset, budget): {arm: {seed: run}}} grid.
"""

import collections
import csv
import json
import math
import pathlib
import re
from typing import Optional

import numpy as np

BOOTSTRAP_SAMPLES = 10_000
MIN_WILCOXON_PAIRS = 5
MIN_BOOTSTRAP_PAIRS = 3  # Resampling 2 pairs gives little but their range.

def bootstrap_ci(diffs, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
  """Percentile-bootstrap interval of the mean of `diffs` (nan if < 3)."""
  diffs = np.asarray(diffs, np.float64)
  if len(diffs) < MIN_BOOTSTRAP_PAIRS:
    return math.nan, math.nan
  rng = np.random.default_rng(seed)
  means = diffs[rng.integers(0, len(diffs), (samples, len(diffs)))].mean(1)
  lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
  return float(lo), float(hi)


def wilcoxon_p(diffs) -> Optional[float]:
  """Two-sided Wilcoxon signed-rank p, or None with fewer than 5 pairs."""
  diffs = np.asarray(diffs, np.float64)
  if len(diffs) < MIN_WILCOXON_PAIRS:
    return None
  if not np.any(diffs):
    return 1.0
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return float(stats.wilcoxon(diffs).pvalue)


def steps_to(val: list, target: float) -> Optional[int]:
  """The first evaluated step whose validation F1 reaches `target`."""
  for step, f1 in val:
    if f1 >= target:
      return step
  return None


def curve_auc(val: list) -> float:
  """Area under the validation-F1 curve over its span of steps (mean height)."""
  if not val:
    return math.nan
  steps = np.array([s for s, _ in val], np.float64)
  f1 = np.array([f for _, f in val], np.float64)
  if len(val) == 1:
    return float(f1[0])
  area = float(np.sum((f1[1:] + f1[:-1]) / 2 * np.diff(steps)))
  return area / float(steps[-1] - steps[0])


def mean_std(xs) -> tuple[float, float]:
  xs = np.asarray([x for x in xs if x is not None], np.float64)
  if not len(xs):
    return math.nan, math.nan
  return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.


def cells(runs: list) -> dict:
  """{(dataset, budget): {arm: {(seed, fold): run}}} of the finished runs.

  Runs pair across arms by (seed, fold): the same split, labels and head
  initialisation.
  """
  out = collections.defaultdict(lambda: collections.defaultdict(dict))
  for r in runs:
    if r.test is not None:
      out[(r.dataset, r.budget)][r.arm][(r.seed, r.fold)] = r
  return out


_CELL_SUFFIX = re.compile(r" \(\w+\)$")


def supervision_tag(pretrain: Optional[dict]) -> str:
  """What an arm's name adds for a pre-training on a corpus's labels (its
  run.json config's `pretrain`): "+sup<w>" for a self-supervised objective
  plus w x the multi-task loss, ":shared" for the shared label map; "" else.
  configs/sweeps/supervised.py's arms differ in these alone."""
  pretrain = pretrain or {}
  weight = float(pretrain.get("corpus_supervised_weight", 0) or 0)
  tag = f"+sup{weight:g}" if weight > 0 else ""
  if ((weight > 0 or pretrain.get("objective") == "corpus_supervised")
      and pretrain.get("corpus_label_map", "member") != "member"):
    tag += f":{pretrain['corpus_label_map']}"
  return tag


def control_arm(arm: str) -> str:
  """The scratch arm that `arm` is paired with: the one of the same cell.

  An arm of a cell other than the LSTM ends " (<cell>)"
  (`cells_report.name_arms`), and so does its control: "simclr (gru)" ->
  "scratch (gru)", "simclr [linear_probe] (lru)" -> "scratch (lru)",
  "simclr" -> "scratch". Pairing "simclr (gru)" with the LSTM's scratch
  would mix the cell's effect into pre-training's.
  """
  cell = _CELL_SUFFIX.search(arm)
  return "scratch" + (cell.group(0) if cell else "")


def is_control(arm: str) -> bool:
  """Whether `arm` is a scratch control ("scratch", "scratch (gru)")."""
  return arm == control_arm(arm)


def arm_order(arms) -> list:
  """Controls first ("scratch", then the other cells'), then by name."""
  return sorted(arms, key=lambda a: (not is_control(a), a))


def fmt(x, digits: int = 3, sign: bool = False) -> str:
  """A table's number: "–" for None or NaN (nothing measured), else fixed
  point, with its sign when `sign`."""
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "–"
  return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_p(p) -> str:
  """A p-value for a table: "<0.001" below that (three decimals would print
  0.000, which no test can give), "–" when there is none."""
  if p is not None and not (isinstance(p, float) and math.isnan(p)) and (
      p < 0.001):
    return "<0.001"
  return fmt(p)


def write_csv(path: pathlib.Path, rows: list) -> None:
  """`rows` (dicts) as a CSV with the union of their keys; empty: no rows."""
  if not rows:
    path.write_text("")
    return
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)


class DamagedRecordError(ValueError):
  """A run's JSON file in a sweep dir does not parse."""


def read_json(path: pathlib.Path, line: int = 0):
  """The JSON in `path` (or its 1-based `line`); a clear error if damaged."""
  text = path.read_text()
  if line:
    text = text.splitlines()[line - 1]
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    where = f"{path}:{line}" if line else str(path)
    raise DamagedRecordError(
        f"{where} is not valid JSON ({e}): that run's record is damaged (a "
        "bad merge or copy?). Restore it from git, or delete it and rerun "
        "the sweep (the run resumes, or reruns from the start).") from None
