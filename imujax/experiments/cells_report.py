"""Recurrent cells side by side in a report: accuracy and what it cost.

A section of `report.py`'s report.md, written when a sweep's fine-tunes
differ in `model.cell` (configs/sweeps/cells.py). Per dataset × label budget
× arm (scratch, simclr, ...), one line per cell:

* hidden width (the sweep matches encoder parameter counts: its docstring);
* runs and test macro-F1, mean ± sd over runs;
* the paired difference cell − LSTM in per-subject test macro-F1, same arm,
  same (subject, seed): mean, 95% hierarchical bootstrap interval
  (`paired`: subjects, then seeds), sign-flip p Holm-adjusted across the
  cells compared with one LSTM arm, n = subjects × seeds;
* wall time: the median over programs of the fine-tune's wall seconds
  (summary.json `wall_s_this_session`: compilation, training and every
  validation and test evaluation of one program, which trains the vmapped
  seeds together), and of its pre-training's (0 for scratch); only programs
  that ran from step 0 in one session count (a resumed run's clock restarts).
  Wall time is this machine's at that time: compare cells within one sweep
  run, not across machines.
"""

import collections
import math
import pathlib
from typing import Optional

import numpy as np

from imujax.experiments import paired
from imujax.experiments import stats

REFERENCE = "lstm"


def wall_s(summary: Optional[dict]) -> float:
  """A finished program's wall seconds when one session ran all its steps;
  nan otherwise (a resumed run's clock restarts) or without a summary."""
  if not summary or "wall_s_this_session" not in summary:
    return math.nan
  if summary.get("steps_this_session") != summary.get("step"):
    return math.nan
  return float(summary["wall_s_this_session"])


def name_arms(finetunes: list, pretrains: list) -> list:
  """When runs differ in model.cell: fine-tune arms of cells other than the
  LSTM end " (<cell>)", and so do those pre-trainings' objectives (in
  place); the LSTM keeps the plain names, so "scratch" stays every table's
  reference. Returns the fine-tunes."""
  if len({r.cell for r in finetunes} | {p["cell"] for p in pretrains}) < 2:
    return finetunes
  for p in pretrains:
    if p["cell"] != REFERENCE:
      p["objective"] += f" ({p['cell']})"
  return [r._replace(arm=f"{r.arm} ({r.cell})") if r.cell != REFERENCE
          else r for r in finetunes]


def base_arm(run) -> str:
  """The arm without the " (<cell>)" that `run_records.read_runs` appends."""
  suffix = f" ({run.cell})"
  return run.arm[:-len(suffix)] if run.arm.endswith(suffix) else run.arm


def _median(values) -> float:
  values = [v for v in values if v is not None and math.isfinite(v)]
  return float(np.median(values)) if values else math.nan


def _per_subject(runs) -> dict:
  """{(subject, seed): test macro-F1} over `runs`."""
  return {(s, r.seed): v["macro_f1"] for r in runs
          for s, v in (r.test.get("per_subject") or {}).items()}


def rows(runs: list) -> list[dict]:
  """One dict per dataset × budget × arm × cell (finished runs only)."""
  done = [r for r in runs if r.test is not None]
  if len({r.cell for r in done}) < 2:
    return []
  groups = collections.defaultdict(list)
  for r in done:
    groups[(r.dataset, r.budget, base_arm(r), r.cell)].append(r)
  out = []
  for dataset, budget, arm in sorted({k[:3] for k in groups},
                                     key=lambda k: (k[0], k[1] or 1e9, k[2])):
    reference = _per_subject(groups.get((dataset, budget, arm, REFERENCE),
                                        []))
    cells = sorted({k[3] for k in groups if k[:3] == (dataset, budget, arm)},
                   key=lambda c: (c != REFERENCE, c))
    cell_rows, pvalues = [], {}
    for cell in cells:
      members = groups[(dataset, budget, arm, cell)]
      f1 = [r.test["macro_f1"] for r in members]
      row = {"dataset": dataset, "budget": budget, "arm": arm, "cell": cell,
             "hidden": members[0].hidden, "runs": len(members),
             "test_macro_f1_mean": float(np.mean(f1)),
             "test_macro_f1_std": (float(np.std(f1, ddof=1)) if len(f1) > 1
                                   else math.nan),
             "finetune_wall_s": _median(r.wall_s for r in members),
             "pretrain_wall_s": (0. if arm == "scratch" else _median(
                 r.pretrain_wall_s for r in members))}
      if cell != REFERENCE and reference:
        mine = _per_subject(members)
        diffs = {k: mine[k] - reference[k]
                 for k in sorted(set(mine) & set(reference))}
        if diffs:
          s = paired.summary(diffs)
          row.update(diff_mean=s["mean"], diff_ci_lo=s["ci_lo"],
                     diff_ci_hi=s["ci_hi"], p=s["p"], subjects=s["subjects"],
                     seeds=s["seeds"])
          pvalues[cell] = s["p"]
      cell_rows.append(row)
    adjusted = paired.holm(pvalues)
    for row in cell_rows:
      if row["cell"] in adjusted:
        row["p_holm"] = adjusted[row["cell"]]
    out.extend(cell_rows)
  return out


def section(runs: list, out) -> str:
  """The report's section ("" unless cells differ); writes cells.csv."""
  table = rows(runs)
  if table:
    stats.write_csv(pathlib.Path(out) / "cells.csv", table)
  return markdown(table)



def markdown(table: list) -> str:
  """The section's markdown ("" without rows)."""
  if not table:
    return ""
  lines = [
      "## Cells", "",
      "Per dataset, label budget and arm, each cell against the LSTM of the "
      "same arm: Δ is the paired per-subject difference in test macro-F1 "
      "(same subject, seed, split and labels), 95% hierarchical bootstrap "
      "over subjects then seeds, sign-flip p over subjects Holm-adjusted "
      "across the cells of one arm. Wall: median seconds per program (the "
      "vmapped seeds train as one program; compilation and evaluations "
      "included; runs resumed mid-way left out), on the machine and load "
      "of that sweep.", "",
      "| dataset | labelled subjects | arm | cell | hidden | runs | test "
      "macro-F1 | Δ vs LSTM [95% CI] | n | p (Holm) | fine-tune wall (s) | "
      "pre-training wall (s) |",
      "|---" * 12 + "|"]
  for r in table:
    if "diff_mean" in r:
      lo, mean, hi = (stats.fmt(r[k], sign=True)
                      for k in ("diff_ci_lo", "diff_mean", "diff_ci_hi"))
      claim = f"{mean} [{lo}, {hi}]"
      n, p = f"{r['subjects']} × {r['seeds']}", stats.fmt_p(r.get("p_holm"))
    else:
      claim, n, p = ("(reference)" if r["cell"] == REFERENCE else "–"), "", ""
    sd = "" if math.isnan(r["test_macro_f1_std"]) else (
        f" ± {r['test_macro_f1_std']:.3f}")
    lines.append(
        f"| {r['dataset']} | {r['budget'] or 'all'} | {r['arm']} | "
        f"{r['cell']} | {r['hidden']} | {r['runs']} | "
        f"{r['test_macro_f1_mean']:.3f}{sd} | {claim} | {n} | {p} | "
        f"{stats.fmt(r['finetune_wall_s'], 0)} | "
        f"{stats.fmt(r['pretrain_wall_s'], 0)} |")
  return "\n".join(lines) + "\n"
