"""Eye-movement events in a report: per-class kappa and event F1 per arm.

A section of `report.py`'s report.md, written when fine-tune runs carry
`kappa_per_class` in their test scores (gaze channels: training/evaluate.py),
e.g. configs/sweeps/gaze.py:

* per dataset x label budget, one line per arm: runs, mean ± sd over runs
  (sample sd) of each class's sample-level Cohen's kappa (one class vs the
  rest, pooled over the run's test participants: `metrics.kappa_per_class`),
  of event F1 (`metrics.event_overlap_scores`) and of macro-F1. A kappa is
  undefined (NaN) where a class is neither true nor predicted in a run's
  test participants; such runs are left out of that class's mean and
  counted ("n/a in k runs");
* paired differences arm − scratch in event F1 and in each class's kappa.
  Pairs are the same (participant, seed) when every run of both arms has
  per-participant kappa and event F1 (`per_subject`, written since
  evaluate.py scores each participant's own confusion); otherwise the same
  (fold, seed), each value pooled over the fold's test participants (runs
  without folds: the same seed). Mean difference, a 95% interval from the
  hierarchical bootstrap of `paired` (units: participants or folds, then
  seeds within them; none under 3 units), a sign-flip p over the units
  Holm-adjusted across the arms compared with one scratch (not across
  metrics), and n. Pairs with a NaN on either side are left out and counted.

For Lund 2013 the section ends with reference figures: the two raters'
agreement and a published detector's, from imujax/datasets/gaze_lund2013/
README.md (different protocols: read them as context, not as a baseline
run here).
"""

import collections
import math
import pathlib

import numpy as np

from imujax.experiments import paired
from imujax.experiments import stats

KEY = "kappa_per_class"

# Published per-class kappas to set beside a model's on gaze_lund2013
# (citations, as printed in imujax/datasets/gaze_lund2013/README.md): (who,
# what, {class: kappa}). The raters' own agreement is computed, not quoted:
# `python -m imujax.datasets.gaze_lund2013 --manual_dir=...`.
REFERENCES = {"gaze_lund2013": (
    ("REMoDNaV vs RA, images", "Dar et al. 2021, published",
     {"fixation": "0.55", "saccade": "0.78", "pso": "0.59"}),
    ("REMoDNaV vs RA, dots", "Dar et al. 2021, published",
     {"fixation": "0.37", "saccade": "0.72", "pso": "0.38"}),
    ("REMoDNaV vs RA, videos", "Dar et al. 2021, published",
     {"fixation": "0.44", "saccade": "0.76", "pso": "0.45"}),
)}


def _finite(x) -> bool:
  return x is not None and math.isfinite(float(x))


def gaze_runs(runs: list) -> list:
  """The finished fine-tune runs whose test scores have per-class kappa."""
  return [r for r in runs if r.test is not None and KEY in r.test]


def _budget_order(kv):
  (dataset, budget), _ = kv
  return dataset, budget or 1e9


def _metrics(class_names: list) -> list:
  """(metric name, reader of a score dict) for the paired comparisons."""
  out = [("event_f1", lambda s: s.get("event_f1"))]
  for c, name in enumerate(class_names):
    out.append((f"kappa_{name}", lambda s, c=c: (
        s[KEY][c] if KEY in s and c < len(s[KEY]) else None)))
  return out


def table_rows(runs: list) -> list[dict]:
  """One row per dataset x budget x arm: mean, sd and n/a count over runs
  of each class's kappa, of event F1 and of macro-F1."""
  rows = []
  for (dataset, budget), arms in sorted(stats.cells(gaze_runs(runs)).items(),
                                        key=_budget_order):
    for arm in stats.arm_order(arms):
      done = list(arms[arm].values())
      names = done[0].class_names
      row = {"dataset": dataset, "budget": budget,
             "labelled_subjects": done[0].labelled_subjects, "arm": arm,
             "runs": len(done)}
      for key, read in _metrics(names) + [("macro_f1",
                                           lambda s: s.get("macro_f1"))]:
        values = [read(r.test) for r in done]
        finite = [float(v) for v in values if _finite(v)]
        row[f"{key}_mean"], row[f"{key}_sd"] = stats.mean_std(finite)
        row[f"{key}_na"] = len(values) - len(finite)
      rows.append(row)
  return rows


def _has_subject_scores(run) -> bool:
  per = run.test.get("per_subject") or {}
  return bool(per) and all(KEY in s and "event_f1" in s
                           for s in per.values())


def _values(run, read, per_participant: bool) -> dict:
  """{(unit, seed): value} of one run: its participants', or its own under
  its fold (under its seed without folds)."""
  if per_participant:
    return {(subject, run.seed): read(s)
            for subject, s in run.test["per_subject"].items()}
  unit = f"fold {run.fold}" if run.fold >= 0 else f"seed {run.seed}"
  return {(unit, run.seed): read(run.test)}


def paired_rows(runs: list, seed: int = 0) -> list[dict]:
  """One row per dataset x budget x metric x arm: arm − scratch, paired."""
  rows = []
  for (dataset, budget), arms in sorted(stats.cells(gaze_runs(runs)).items(),
                                        key=_budget_order):
    scratch = arms.get("scratch")
    if not scratch:
      continue
    names = next(iter(scratch.values())).class_names
    for metric, read in _metrics(names):
      cell = []
      for arm in stats.arm_order(arms):
        mine = arms[arm]
        both = sorted(set(mine) & set(scratch))
        if arm == "scratch" or not both:
          continue
        per_participant = all(_has_subject_scores(r) for k in both
                              for r in (mine[k], scratch[k]))
        a, s = {}, {}
        for k in both:
          a.update(_values(mine[k], read, per_participant))
          s.update(_values(scratch[k], read, per_participant))
        common = sorted(set(a) & set(s))
        kept = [k for k in common if _finite(a[k]) and _finite(s[k])]
        diffs = {k: float(a[k]) - float(s[k]) for k in kept}
        row = {"dataset": dataset, "budget": budget, "metric": metric,
               "arm": arm, "unit": "participant" if per_participant else (
                   "fold" if mine[both[0]].fold >= 0 else "seed"),
               "arm_mean": float(np.mean([a[k] for k in kept]))
               if kept else math.nan,
               "scratch_mean": float(np.mean([s[k] for k in kept]))
               if kept else math.nan,
               "nan_pairs": len(common) - len(kept)}
        row.update(paired.summary(diffs, seed=seed) if diffs else {
            "mean": math.nan, "ci_lo": math.nan, "ci_hi": math.nan,
            "p": math.nan, "d_z": math.nan, "subjects": 0, "seeds": 0,
            "pairs": 0})
        row["units"] = row.pop("subjects")  # Participants or folds.
        cell.append(row)
      adjusted = paired.holm({r["arm"]: r["p"] for r in cell})
      for r in cell:
        r["p_holm"] = adjusted[r["arm"]]
      rows += cell
  return rows


# ----------------------------------------------------------------- writing

def _cell(row: dict, key: str) -> str:
  """"mean ± sd" over runs (the mean alone from one run), n/a counted."""
  n = row["runs"] - row[f"{key}_na"]
  text = stats.fmt(row[f"{key}_mean"]) + (
      f" ± {stats.fmt(row[f'{key}_sd'])}" if n > 1 else "")
  na = row[f"{key}_na"]
  return text + (f" (n/a in {na} run{'s' * (na > 1)})" if na else "")


_UNITS = {
    "participant": ("participant", "participants, then seeds within them",
                    "per participant (its own recordings)"),
    "fold": ("fold", "folds, then seeds within them",
             "per fold, pooled over its test participants"),
    "seed": ("seed", "seeds", "per run, pooled over its test participants"),
}


def _references(dataset: str) -> list:
  """Markdown lines of the reference kappas for `dataset` ([] if none)."""
  refs = REFERENCES.get(dataset.split("/")[0])
  if not refs:
    return []
  names = list(dict.fromkeys(n for _, _, k in refs for n in k))
  lines = ["Reference kappas from imujax/datasets/gaze_lund2013/README.md "
           "(one class vs the rest, samples pooled): a published rule-based "
           "detector (no training) per stimulus type, on the article "
           "subset. Other recordings, no held-out split: context, not "
           "baselines run here. The ceiling, the two raters' agreement, is "
           "computed by `python -m imujax.datasets.gaze_lund2013 "
           "--manual_dir=<dir>` (README of the builder).", "",
           "| reference | source | " + " | ".join(names) + " |",
           "|---" * (2 + len(names)) + "|"]
  for who, source, kappas in refs:
    lines.append(f"| {who} | {source} | " + " | ".join(
        kappas.get(n, "–") for n in names) + " |")
  return lines + [""]


def markdown(runs: list, table=None, pairs=None) -> str:
  """The section's markdown ("" without runs that have per-class kappa);
  `table`, `pairs`: `table_rows(runs)`, `paired_rows(runs)` if given."""
  table = table_rows(runs) if table is None else table
  if not table:
    return ""
  pairs = paired_rows(runs) if pairs is None else pairs
  lines = [
      "## Eye-movement events: per-class kappa and event F1", "",
      "Test scores of the runs whose channels are gaze: sample-level Cohen's "
      "kappa of each class, one class vs the rest, pooled over the run's "
      "test participants (whole recordings, causal); event F1 (events are "
      "runs of one class, matched one to one by overlap; the mean over the "
      "classes with an event); macro-F1. Mean ± sd over runs (fold × seed; "
      "sample sd). n/a: runs where the class's kappa is undefined (neither "
      "true nor predicted in that run's test participants), left out of "
      "its mean.", ""]
  cells = collections.OrderedDict()
  for r in table:
    cells.setdefault((r["dataset"], r["budget"]), []).append(r)
  for (dataset, budget), mine in cells.items():
    runs_here = [r for r in gaze_runs(runs)
                 if (r.dataset, r.budget) == (dataset, budget)]
    names = runs_here[0].class_names
    lines += [f"### {dataset}, labelled subjects "
              f"{budget or 'all (%d)' % mine[0]['labelled_subjects']}", "",
              "| arm | runs | " + " | ".join(f"κ {n}" for n in names) +
              " | event F1 | macro-F1 |", "|---" * (4 + len(names)) + "|"]
    for r in mine:
      lines.append(f"| {r['arm']} | {r['runs']} | " + " | ".join(
          _cell(r, f"kappa_{n}") for n in names) + f" | "
          f"{_cell(r, 'event_f1')} | {_cell(r, 'macro_f1')} |")
    lines.append("")
    here = [p for p in pairs if (p["dataset"], p["budget"]) ==
            (dataset, budget)]
    for unit in dict.fromkeys(p["unit"] for p in here):
      name, resampled, value = _UNITS[unit]
      lines += [
          f"Paired arm − scratch on the same ({name}, seed): values "
          f"{value}; 95% interval: hierarchical bootstrap over {resampled} "
          f"({paired.SAMPLES} resamples; none under 3 {name}s); p: "
          f"sign-flip over {name}s, Holm-adjusted across arms (not across "
          f"metrics); n = {name}s × seeds (pairs). NaN pairs: pairs left "
          "out because either side is undefined.", "",
          "| metric | arm − scratch | n | arm | scratch | Δ [95% CI] | p "
          "(Holm) | NaN pairs |", "|---" * 8 + "|"]
      for p in (p for p in here if p["unit"] == unit):
        ci = (f" [{p['ci_lo']:+.3f}, {p['ci_hi']:+.3f}]"
              if not math.isnan(p["ci_lo"]) else "")
        lines.append(
            f"| {p['metric']} | {p['arm']} | {p['units']} × {p['seeds']} "
            f"({p['pairs']}) | {stats.fmt(p['arm_mean'])} | "
            f"{stats.fmt(p['scratch_mean'])} | "
            f"{stats.fmt(p['mean'], sign=True)}{ci} | "
            f"{stats.fmt_p(p['p_holm'])} | {p['nan_pairs']} |")
      lines.append("")
  for dataset in dict.fromkeys(d for d, _ in cells):
    lines += _references(dataset)
  return "\n".join(lines) + "\n"


def section(runs: list, out) -> str:
  """The report's eye-movement section ("" without gaze runs); writes
  gaze_events.csv (the table) and gaze_events_paired.csv into `out`."""
  table = table_rows(runs)
  if not table:
    return ""
  pairs = paired_rows(runs)
  out = pathlib.Path(out)
  stats.write_csv(out / "gaze_events.csv", table)
  stats.write_csv(out / "gaze_events_paired.csv", pairs)
  return markdown(runs, table, pairs)
