r"""The report of a sweep: tables, paired claims with intervals, plots.

  python -m imujax.experiments.report <sweep_dir> [--out=<sweep_dir>/report]
  python -m imujax.experiments.report <sweep_dir> --also=<sweep_dir2> --out=<dir>

Reads every run under the sweep dir (run.json, metrics.jsonl, summary.json;
see imujax/training/checkpoints.py) — single and multiseed runs alike — and writes
`report.md` with its PNGs, `runs.csv` (one row per fine-tune run) and
`summary.csv` (one row per dataset x label budget x arm).

A fine-tune run's arm is the objective of the encoder it started from
(`scratch` without init_from; `<objective>@<dataset>` when pre-trained on
another dataset). Seeds pair the arms: the same seed is the same subject
split, the same labelled subjects and the same head initialisation, so each
arm is compared with scratch on the differences of paired seeds: the mean
difference in test macro-F1 with a percentile-bootstrap 95% interval, and a
Wilcoxon signed-rank p-value when there are at least 5 pairs.

Convergence, per seed: the first fine-tune step at which the validation
macro-F1 reaches 90% (95%) of the best validation macro-F1 that scratch
reached with the same seed, and the area under the validation-F1 curve
divided by its span of steps (the curve's mean height; 1 is perfect).
"""

import argparse
import json
import math
import pathlib
import sys

import numpy as np

from imujax import metrics as metrics_lib
from imujax.experiments import cells_report
from imujax.experiments import claims
from imujax.experiments import gaze_report
from imujax.experiments import modality_report
from imujax.experiments import plots
from imujax.experiments import run_records
from imujax.experiments import scale_report
from imujax.experiments import stats
from imujax.experiments import targets_report

TARGETS = (0.90, 0.95)


def summarise(runs: list) -> list[dict]:
  """One row per (dataset, budget, arm): scores, paired claim, convergence."""
  rows = []
  for (dataset, budget), arms in sorted(stats.cells(runs).items(),
                                        key=lambda kv: (kv[0][0],
                                                        kv[0][1] or 1e9)):
    for arm in stats.arm_order(arms):
      by_seed, control = arms[arm], stats.is_control(arm)
      scratch = arms.get(stats.control_arm(arm), {})
      f1 = [r.test["macro_f1"] for r in by_seed.values()]
      acc = [r.test["accuracy"] for r in by_seed.values()]
      row = {"dataset": dataset, "budget": budget,
             "labelled_subjects": next(iter(by_seed.values())).labelled_subjects,
             "arm": arm, "seeds": len(by_seed),
             "test_macro_f1_mean": stats.mean_std(f1)[0],
             "test_macro_f1_std": stats.mean_std(f1)[1],
             "test_accuracy_mean": stats.mean_std(acc)[0],
             "test_accuracy_std": stats.mean_std(acc)[1],
             "auc_mean": stats.mean_std([stats.curve_auc(r.val)
                                    for r in by_seed.values()])[0]}
      paired = sorted(set(by_seed) & set(scratch))
      diffs = [by_seed[s].test["macro_f1"] - scratch[s].test["macro_f1"]
               for s in paired]
      row["pairs"] = len(paired) if not control else 0
      if not control and paired:
        row["diff_mean"] = float(np.mean(diffs))
        row["diff_ci_lo"], row["diff_ci_hi"] = stats.bootstrap_ci(diffs)
        row["wilcoxon_p"] = stats.wilcoxon_p(diffs)
      for target in TARGETS:
        reached = []
        for s in paired if not control else sorted(by_seed):
          best = max((f for _, f in scratch[s].val), default=None) if (
              s in scratch) else None
          if best is None:
            continue
          reached.append(stats.steps_to(by_seed[s].val, target * best))
        key = f"steps_to_{round(target * 100)}"
        hits = [x for x in reached if x is not None]
        row[key + "_mean"] = float(np.mean(hits)) if hits else math.nan
        row[key + "_reached"] = f"{len(hits)}/{len(reached)}"
      rows.append(row)
  return rows


# ----------------------------------------------------------------- writing

def _claim(row: dict) -> tuple[str, str]:
  if stats.is_control(row["arm"]):
    return "(reference)", ""
  if not row["pairs"]:
    return "no paired scratch run", ""
  ci = (f" [{row['diff_ci_lo']:+.3f}, {row['diff_ci_hi']:+.3f}]"
        if not math.isnan(row["diff_ci_lo"]) else "")
  p = row.get("wilcoxon_p")
  return (f"{row['diff_mean']:+.3f}{ci} (n={row['pairs']})",
          stats.fmt_p(p) if p is not None
          else f"n<{stats.MIN_WILCOXON_PAIRS}")


def _steps(row: dict, target: int) -> str:
  mean = row[f"steps_to_{target}_mean"]
  reached = row[f"steps_to_{target}_reached"]
  if reached.endswith("/0"):
    return "–"
  return f"{stats.fmt(mean, 0)} ({reached})"


def _mean_sd(row: dict, key: str) -> str:
  """"mean ± sd" over seeds; the mean alone for one seed (no spread)."""
  if row["seeds"] < 2:
    return stats.fmt(row[key + "_mean"])
  return f"{stats.fmt(row[key + '_mean'])} ± {stats.fmt(row[key + '_std'])}"


def arms_table(rows: list) -> str:
  """Markdown: one line per (budget, arm) of `summarise`'s rows.

  A dataset column is added when the rows span several datasets.
  """
  several = len({r["dataset"] for r in rows}) > 1
  lines = [("| dataset " if several else "") +
           "| labelled subjects | arm | runs | test macro-F1 | test "
           "accuracy | Δ F1 vs scratch [95% CI] | Wilcoxon p | steps to "
           "90% | steps to 95% | val AUC |",
           "|---" * (10 + several) + "|"]
  for r in rows:
    claim, p = _claim(r)
    budget = r["budget"] or f"all ({r['labelled_subjects']})"
    lines.append((f"| {r['dataset']} " if several else "") +
        f"| {budget} | {r['arm']} | {r['seeds']} | "
        f"{_mean_sd(r, 'test_macro_f1')} | {_mean_sd(r, 'test_accuracy')} | "
        f"{claim} | {p} | "
        f"{_steps(r, 90)} | {_steps(r, 95)} | {stats.fmt(r['auc_mean'])} |")
  return "\n".join(lines) + "\n"


def markdown(rows: list, runs: list, pretrains: list, images: dict,
             sweep_dir: str, chosen: dict | None = None, also=()) -> str:
  lines = ["# Sweep report: " + " + ".join(
      f"`{d}`" for d in (sweep_dir, *also)), ""]
  done = [r for r in runs if r.test is not None]
  plans = [planned_runs(d) for d in (sweep_dir, *also)]
  planned = None if None in plans else sum(plans)
  if planned is not None:
    finished = len(done) + sum(p["done"] for p in pretrains) + sum(
        o["test"] is not None for o in run_records.other_targets(sweep_dir))
    lines += [(f"**Complete**: all {planned} planned runs of the sweep "
               "finished." if finished >= planned else
               f"**PARTIAL SWEEP**: {finished} of {planned} planned runs "
               "(sweep.json) have finished; every number below rests on the "
               "finished runs only and is not the study's result."), ""]
  lines += [
      f"{len(done)} finished fine-tune runs ({len(runs) - len(done)} "
      f"unfinished), {sum(p['done'] for p in pretrains)} finished "
      f"pre-training runs and {len(run_records.other_targets(sweep_dir))} "
      "fine-tunes of other targets (their own sections below). Classification "
      "test scores are per-frame macro-F1 and accuracy on "
      "the whole recordings of held-out test subjects, run causally; mean ± "
      "std over seeds (sample std).", "",
      "Δ F1 vs scratch: mean paired difference (same seed = same split, "
      f"labels and head init) in test macro-F1, 95% percentile-bootstrap "
      f"interval ({stats.BOOTSTRAP_SAMPLES} resamples); Wilcoxon signed-rank p "
      f"(two-sided), given only with at least {stats.MIN_WILCOXON_PAIRS} pairs (n<5 "
      "otherwise). With few pairs (3 seeds) "
      "the bootstrap interval is narrower than the truth: read it as a "
      "description of these seeds, not a population claim. Steps to 90% / "
      "95%: mean "
      "first fine-tune step whose validation macro-F1 reaches that fraction "
      "of the same seed's best scratch validation macro-F1 (seeds reaching "
      "it / seeds). AUC: area under the validation-F1 curve over its span "
      "of steps.", ""]
  for dataset in sorted({r["dataset"] for r in rows}):
    lines += [f"## {dataset}", "",
              arms_table([r for r in rows if r["dataset"] == dataset])]
    for title, key in (("Label efficiency", "label_efficiency"),
                       ("Convergence (validation)", "convergence"),
                       ("Confusion matrices of the best arm per budget "
                        "(test, summed over seeds, rows normalised)",
                        "confusion")):
      if (dataset, key) in images:
        lines += [f"### {title}", "",
                  f"![{key} {dataset}]({images[(dataset, key)]})", ""]
  lines += modality_report.without_table(runs)
  subject_level = claims.markdown(runs, chosen or {})
  if subject_level:
    lines += [subject_level]
  if pretrains:
    lines += ["## Pre-training runs", "",
              "| dataset | objective | seed | steps | final val loss | done |",
              "|---|---|---|---|---|---|"]
    for p in sorted(pretrains, key=lambda p: (p["dataset"], p["objective"],
                                              p["seed"])):
      lines.append(f"| {p['dataset']} | {p['objective']} | {p['seed']} | "
                   f"{p['steps']} | {stats.fmt(p['val_loss'], 4)} | "
                   f"{'yes' if p['done'] else 'no'} |")
    lines.append("")
  lines.append(other_targets_table(sweep_dir))
  lines.append(targets_report.markdown(run_records.other_targets(sweep_dir)))
  unfinished = [r.path for r in runs if r.test is None]
  if unfinished:
    lines += ["## Unfinished fine-tune runs (not in the tables)", "",
              *(f"- `{p}`" for p in unfinished), ""]
  return "\n".join(lines)


def other_targets_table(sweep_dir) -> str:
  """Fine-tunes of regression / events / prediction, with their headline."""
  others = run_records.other_targets(sweep_dir)
  if not others:
    return ""
  lines = ["## Fine-tunes of other targets", "",
           "| run | dataset | target | headline metric | test |", "|---" * 5
           + "|"]
  for o in others:
    key = metrics_lib.HEADLINE.get(o["target"], "loss")
    value = (o["test"] or {}).get(key)
    lines.append(f"| `{o['path']}` | {o['dataset']} | {o['target']} | {key} "
                 f"({'higher' if metrics_lib.higher_is_better(key) else 'lower'}"
                 f" is better) | {stats.fmt(value, 4)} |")
  return "\n".join(lines) + "\n"


def planned_runs(sweep_dir) -> int | None:
  """How many runs the sweep's plan (sweep.json) declares; None without it."""
  plan = pathlib.Path(sweep_dir) / "sweep.json"
  if not plan.exists():
    return None
  return len(stats.read_json(plan)["jobs"])


def write_report(sweep_dir, out=None, also=()) -> pathlib.Path:
  """Writes report.md, runs.csv, summary.csv and PNGs; returns report.md.

  `also`: more sweep dirs on the same cohort whose runs join this report
  (`run_records.read_runs`); then `out` must be given (no one sweep owns
  the report).
  """
  if also and out is None:
    raise ValueError("report: a report of several sweep dirs needs --out "
                     "(none of them owns it).")
  out = pathlib.Path(out or pathlib.Path(sweep_dir) / "report")
  out.mkdir(parents=True, exist_ok=True)
  all_runs, pretrains = run_records.read_runs(sweep_dir, also)
  runs, chosen = claims.select_by_validation(all_runs)
  runs += [r for r in all_runs if r.test is None]  # Listed as unfinished.
  rows = summarise(runs)
  stats.write_csv(out / "claims.csv", claims.claim_rows(runs))
  stats.write_csv(out / "target_claims.csv", targets_report.paired_rows(
      run_records.other_targets(sweep_dir)))
  images = {}
  try:
    plots._plt()
  except ImportError:  # Tables and CSVs need numpy only.
    print("matplotlib is not installed: writing the report without plots "
          "(pip install -r requirements.txt).", file=sys.stderr)
    rows_to_plot = []
  else:
    rows_to_plot = sorted({r["dataset"] for r in rows})
  for dataset in rows_to_plot:
    for key, plot in (
        ("label_efficiency", lambda p, d=dataset: plots.plot_label_efficiency(
            rows, d, p)),
        ("convergence", lambda p, d=dataset: plots.plot_convergence(runs, d, p)),
        ("confusion", lambda p, d=dataset: plots.plot_confusions(runs, rows, d, p))):
      name = f"{key}_{plots._slug(dataset)}.png"
      plot(out / name)
      images[(dataset, key)] = name
  stats.write_csv(out / "summary.csv", rows)
  stats.write_csv(out / "runs.csv", [
      {"path": r.path, "dataset": r.dataset, "arm": r.arm,
       "budget": r.budget, "labelled_subjects": r.labelled_subjects,
       "seed": r.seed, "fold": r.fold, "learning_rate": r.learning_rate,
       "steps": r.steps,
       "test_macro_f1": r.test["macro_f1"] if r.test else None,
       "test_accuracy": r.test["accuracy"] if r.test else None,
       "best_val_macro_f1": max((f for _, f in r.val), default=None),
       "val_auc": stats.curve_auc(r.val)} for r in all_runs])
  path = out / "report.md"
  path.write_text(markdown(rows, runs, pretrains, images, str(sweep_dir),
                           chosen, also) + scale_report.section(
                               runs, out, plot=bool(rows_to_plot))
                           + gaze_report.section(runs, out)
                           + cells_report.section(runs, out))
  return path


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m imujax.experiments.report",
                              description=__doc__.split("\n")[0])
  p.add_argument("sweep_dir")
  p.add_argument("--out", default=None,
                 help="Output folder (default: <sweep_dir>/report).")
  p.add_argument("--also", action="append", default=[], metavar="DIR",
                 help="Another sweep dir on the same cohort whose runs join "
                      "the report (repeatable; needs --out), e.g. the "
                      "scratch half of a sweep run in halves.")
  args = p.parse_args(argv)
  for d in (args.sweep_dir, *args.also):
    if not pathlib.Path(d).is_dir():
      p.error(f"{d} is not a directory.")
  if args.also and args.out is None:
    p.error("--also needs --out: a report of several sweeps belongs to "
            "none of them.")
  try:
    path = write_report(args.sweep_dir, args.out, args.also)
  except stats.DamagedRecordError as e:
    print(f"report: {e}", file=sys.stderr)
    return 1
  print(path.read_text())
  print(f"Wrote {path}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
