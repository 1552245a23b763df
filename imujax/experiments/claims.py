"""The claims a sweep supports, from per-subject test scores (see `paired`).

`select_by_validation` keeps, per dataset × budget × arm, the learning rate
with the best mean final validation macro-F1 (validation subjects only: test
scores never choose anything). `claim_rows` compares each arm with scratch
per dataset × budget (Holm-adjusted across the arms of a cell),
`pooled_rows` per arm over every dataset and budget, and
`convergence_rows` counts fine-tune steps to validation targets with runs
that never reach a target censored, not dropped. `versus_markdown` pairs
each arm with another reference arm than scratch:

  python -m imujax.experiments.claims <sweep_dir> --versus=simclr@corpus

`--other_dir` pairs with the arms of another sweep on the same cohort (one
input changed between two declared variants: configs/sweeps/gaze.py readme
vs velocity), tagged "(<tag>)":

  python -m imujax.experiments.claims launch/results/gaze_velocity \
      --other_dir=launch/results/gaze_readme --other_tag=positions \
      --versus="scratch (positions)"
"""

import argparse
import collections
import math
import sys

import numpy as np

from imujax.experiments import paired
from imujax.experiments import run_records
from imujax.experiments import stats

ABSOLUTE_TARGETS = (0.5, 0.7)     # Validation macro-F1 levels.
RELATIVE_TARGETS = (0.9, 0.95)    # Fractions of the same seed's scratch best.


def _final_val(run) -> float:
  return run.val[-1][1] if run.val else math.nan


def select_by_validation(runs: list) -> tuple[list, dict]:
  """(runs at each arm's chosen learning rate, {cell arm: chosen rate}).

  Cells whose arm has one learning rate keep it; the choice is reported
  only where there was one to make.
  """
  groups = collections.defaultdict(lambda: collections.defaultdict(list))
  for r in runs:
    if r.test is not None:
      groups[(r.dataset, r.budget, r.arm)][r.learning_rate].append(r)
  kept, chosen = [], {}
  for key, by_rate in sorted(groups.items()):
    best = max(by_rate, key=lambda lr: (np.nanmean(
        [_final_val(r) for r in by_rate[lr]]), -lr))
    if len(by_rate) > 1:
      chosen[key] = best
    kept.extend(by_rate[best])
  return kept, chosen


def subject_scores(runs: list) -> dict:
  """{(dataset, budget): {arm: {(subject, seed): test macro-F1}}}."""
  out = collections.defaultdict(lambda: collections.defaultdict(dict))
  for r in runs:
    if r.test is None:
      continue
    for subject, s in (r.test.get("per_subject") or {}).items():
      out[(r.dataset, r.budget)][r.arm][(subject, r.seed)] = s["macro_f1"]
  return out


def _diffs(arm: dict, scratch: dict) -> dict:
  return {k: arm[k] - scratch[k] for k in sorted(set(arm) & set(scratch))}


def claim_rows(runs: list) -> list[dict]:
  """Per dataset × budget × arm: the paired difference with scratch."""
  rows = []
  for (dataset, budget), arms in sorted(subject_scores(runs).items(),
                                        key=lambda kv: (kv[0][0],
                                                        kv[0][1] or 1e9)):
    diffs = {arm: _diffs(scores, arms.get(stats.control_arm(arm), {}))
             for arm, scores in sorted(arms.items())
             if not stats.is_control(arm)}
    cell = {arm: paired.summary(d) for arm, d in diffs.items() if d}
    adjusted = paired.holm({a: s["p"] for a, s in cell.items()})
    for arm, s in cell.items():
      rows.append({"dataset": dataset, "budget": budget, "arm": arm, **s,
                   "p_holm": adjusted[arm]})
  return rows


def pooled_rows(runs: list) -> list[dict]:
  """Per arm, every dataset and budget together (clusters: dataset+subject)."""
  pooled = collections.defaultdict(dict)
  for (dataset, budget), arms in subject_scores(runs).items():
    for arm, scores in arms.items():
      if stats.is_control(arm):
        continue
      scratch = arms.get(stats.control_arm(arm), {})
      for (subject, seed), d in _diffs(scores, scratch).items():
        pooled[arm][(f"{dataset}/{subject}", f"{budget}/{seed}")] = d
  return [{"arm": arm, **paired.summary(d)} for arm, d in sorted(
      pooled.items())]


def _first_step(val: list, target: float) -> float:
  """The first validated step at or above target; inf if never (censored)."""
  return next((float(s) for s, f in val if f >= target), math.inf)


def censored_median(times: list, seed: int = 0) -> tuple:
  """(median, lo, hi): censored times are inf, so the median is inf when
  half or more never reached; the interval resamples runs."""
  times = np.asarray(times, np.float64)
  if not len(times):
    return math.nan, math.nan, math.nan
  rng = np.random.default_rng(seed)
  finite = np.where(np.isinf(times), 1e18, times)  # Order kept, no inf - inf.
  boots = np.median(finite[rng.integers(0, len(times),
                                        (2000, len(times)))], axis=1)
  out = [np.median(finite), *np.percentile(boots, [2.5, 97.5])]
  return tuple(math.inf if v >= 1e17 else float(v) for v in out)


def convergence_rows(runs: list) -> list[dict]:
  """Steps to each target per dataset × budget × arm, censored honestly."""
  cells = collections.defaultdict(lambda: collections.defaultdict(dict))
  for r in runs:
    if r.test is not None:
      cells[(r.dataset, r.budget)][r.arm][(r.seed, r.fold)] = r
  rows = []
  for (dataset, budget), arms in sorted(cells.items(),
                                        key=lambda kv: (kv[0][0],
                                                        kv[0][1] or 1e9)):
    for arm, by_key in sorted(arms.items()):
      scratch = arms.get(stats.control_arm(arm), {})
      row = {"dataset": dataset, "budget": budget, "arm": arm,
             "runs": len(by_key)}
      targets = [(f"f1>={t}", lambda r, k, t=t: t) for t in ABSOLUTE_TARGETS]
      targets += [(f"{round(t * 100)}%scratch", lambda r, k, t=t: (
          t * max(f for _, f in scratch[k].val)
          if k in scratch and scratch[k].val else math.nan))
                  for t in RELATIVE_TARGETS]
      for name, target_of in targets:
        times = [_first_step(r.val, target_of(r, k))
                 for k, r in by_key.items()
                 if not math.isnan(target_of(r, k))]
        med, lo, hi = censored_median(times)
        row[f"{name}_reached"] = f"{sum(map(math.isfinite, times))}/" \
                                 f"{len(times)}"
        row[f"{name}_median"], row[f"{name}_lo"], row[f"{name}_hi"] = (
            med, lo, hi)
        # Time to target in total steps, pre-training included.
        row[f"{name}_median_total"] = med + np.mean(
            [r.pretrain_steps for r in by_key.values()])
      rows.append(row)
  return rows


def _f(x, digits=3, sign=False) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "–"
  if isinstance(x, float) and math.isinf(x):
    return "never"
  return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def markdown(runs: list, chosen: dict) -> str:
  """The subject-level sections of a report (empty without per-subject
  scores, i.e. for runs written before imujax recorded them)."""
  rows = claim_rows(runs)
  if not rows:
    return ""
  lines = [
      "## Paired claims per subject (arm − scratch, test macro-F1)", "",
      "n = subjects × seeds paired with scratch on the same split, labels "
      "and head initialisation. 95% interval: hierarchical bootstrap "
      f"(subjects, then seeds within them; {paired.SAMPLES} resamples). p: "
      "sign-flip test over subjects' mean differences; Holm-adjusted across "
      "the arms of each dataset × budget. d_z: mean / sd of the subjects' "
      "mean differences.", "",
      "| dataset | labelled subjects | arm | n (subjects × seeds) | Δ F1 | "
      "95% CI | p | p (Holm) | d_z |", "|---" * 9 + "|"]
  for r in rows:
    lines.append(
        f"| {r['dataset']} | {r['budget'] or 'all'} | {r['arm']} | "
        f"{r['subjects']} × {r['seeds']} | {_f(r['mean'], sign=True)} | "
        f"[{_f(r['ci_lo'], sign=True)}, {_f(r['ci_hi'], sign=True)}] | "
        f"{stats.fmt_p(r['p'])} | {stats.fmt_p(r['p_holm'])} | "
        f"{_f(r['d_z'], 2)} |")
  lines += ["", "### Pooled over datasets and budgets", "",
            "| arm | n (dataset-subjects × budget-seeds) | Δ F1 | 95% CI | p |"
            " d_z |", "|---" * 6 + "|"]
  for r in pooled_rows(runs):
    lines.append(
        f"| {r['arm']} | {r['subjects']} × {r['seeds']} | "
        f"{_f(r['mean'], sign=True)} | [{_f(r['ci_lo'], sign=True)}, "
        f"{_f(r['ci_hi'], sign=True)}] | {stats.fmt_p(r['p'])} | "
        f"{_f(r['d_z'], 2)} |")
  conv = convergence_rows(runs)
  names = [f"f1>={t}" for t in ABSOLUTE_TARGETS] + [
      f"{round(t * 100)}%scratch" for t in RELATIVE_TARGETS]
  lines += ["", "### Fine-tune steps to validation targets", "",
            "Median first validated step reaching the target (runs that "
            "never reach it count as never: censored, not dropped), its 95% "
            "bootstrap interval over runs, reached / runs; in brackets the "
            "median in total steps including pre-training.", "",
            "| dataset | labelled subjects | arm | " + " | ".join(names) + " |",
            "|---" * (3 + len(names)) + "|"]
  for r in conv:
    cells = [f"{_f(r[n + '_median'], 0)} [{_f(r[n + '_lo'], 0)}, "
             f"{_f(r[n + '_hi'], 0)}] {r[n + '_reached']} "
             f"({_f(r[n + '_median_total'], 0)})" for n in names]
    lines.append(f"| {r['dataset']} | {r['budget'] or 'all'} | {r['arm']} | "
                 + " | ".join(cells) + " |")
  if chosen:
    lines += ["", "### Learning rates chosen on validation subjects", "",
              "| dataset | labelled subjects | arm | learning rate |",
              "|---|---|---|---|"]
    for (dataset, budget, arm), lr in sorted(chosen.items()):
      lines.append(f"| {dataset} | {budget or 'all'} | {arm} | {lr:g} |")
  return "\n".join(lines) + "\n"


def with_other_sweep(runs: list, other: list, tag: str) -> list:
  """`runs` and `other` (another sweep's runs on the same cohorts), whose
  arms become "<arm> (<tag>)" and whose datasets take the name of `runs`'
  dataset of the same TFDS base ("gaze_lund2013/500hz" pairs with
  "gaze_lund2013/500hz_velocity"), so that they share cells.

  Raises:
    ValueError: a base with no dataset, or several, in `runs`.
  """
  names = collections.defaultdict(set)
  for r in runs:
    names[r.dataset.split("/")[0]].add(r.dataset)
  out = list(runs)
  for r in other:
    base = r.dataset.split("/")[0]
    if len(names[base]) != 1:
      raise ValueError(
          f"--other_dir: its dataset {r.dataset!r} matches "
          f"{sorted(names[base]) or 'no dataset'} of the sweep; pair sweeps "
          "with one dataset of each cohort.")
    out.append(r._replace(arm=f"{r.arm} ({tag})",
                          dataset=next(iter(names[base]))))
  return out


def versus_markdown(runs: list, reference: str, what: str = "",
                    keep_scratch: bool = False) -> str:
  """Markdown: each arm − `reference` in test macro-F1, paired per (subject,
  seed), per dataset x budget; an arm with a protocol tag (" [linear_probe]")
  against the reference of the same tag. Holm across the arms of a cell;
  scratch (plain) is left out unless `keep_scratch` (the report pairs
  everything with it; another sweep's reference is news)."""
  lines = [f"## Paired per subject: arm − {reference} (test macro-F1{what})",
           "",
           "| dataset | labelled subjects | arm | n (subjects × seeds) | Δ F1 "
           "| 95% CI | p | p (Holm) |", "|---" * 8 + "|"]
  for (dataset, budget), arms in sorted(subject_scores(runs).items(),
                                        key=lambda kv: (kv[0][0],
                                                        kv[0][1] or 1e9)):
    cell = {}
    for arm, scores in sorted(arms.items()):
      head, bracket, protocol = arm.partition(" [")
      ref = arms.get(reference + bracket + protocol, {})
      diffs = _diffs(scores, ref)
      if ((keep_scratch or arm != "scratch") and head != reference
          and diffs):
        cell[arm] = paired.summary(diffs)
    holm = paired.holm({a: s["p"] for a, s in cell.items()})
    for arm, s in cell.items():
      lines.append(f"| {dataset} | {budget or 'all'} | {arm} | {s['subjects']}"
                   f" × {s['seeds']} | {s['mean']:+.3f} | [{s['ci_lo']:+.3f}"
                   f", {s['ci_hi']:+.3f}] | {stats.fmt_p(s['p'])} | "
                   f"{stats.fmt_p(holm[arm])} |")
  return "\n".join(lines) + "\n"


def with_scores(runs: list, prefix: str) -> list:
  """The runs with their test scores replaced by those under `prefix` (e.g.
  "test_without_gyr/": eval.missing_modalities), the prefix cut off."""
  return [r._replace(test={k[len(prefix):]: v for k, v in r.test.items()
                           if k.startswith(prefix)}) if r.test else r
          for r in runs]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m imujax.experiments.claims",
                              description="Pairs every arm of a sweep with a "
                              "reference arm (per subject and seed).")
  p.add_argument("sweep_dir")
  p.add_argument("--versus", required=True,
                 help="The reference arm, as the report names it, e.g. "
                 "'simclr@corpus' or 'scratch +aug'.")
  p.add_argument("--scores", default="",
                 help="Pair these test scores instead of the plain ones: a "
                 "prefix of the test keys, e.g. 'test_without_gyr/' "
                 "(eval.missing_modalities).")
  p.add_argument("--other_dir", default="",
                 help="Another sweep dir on the same cohorts: its arms join "
                 "as '<arm> (<other_tag>)' (e.g. --versus='scratch "
                 "(positions)').")
  p.add_argument("--other_tag", default="other")
  args = p.parse_args(argv)
  try:  # A damaged record: one line naming the file and the fix.
    runs, _ = run_records.read_runs(args.sweep_dir)
    other = run_records.read_runs(args.other_dir)[0] if args.other_dir else []
  except stats.DamagedRecordError as e:
    print(f"claims: {e}", file=sys.stderr)
    return 1
  if args.other_dir:
    if not any(r.test for r in other):
      p.error(f"--other_dir={args.other_dir!r} holds no finished fine-tune "
              "run (summary.json with test scores); give a sweep dir.")
    try:
      runs = with_other_sweep(runs, other, args.other_tag)
    except ValueError as e:
      p.error(str(e))
  if args.scores:
    runs = with_scores(runs, args.scores)
    if not any(r.test for r in runs):
      p.error(f"--scores={args.scores!r}: no run's test scores have keys "
              "with that prefix.")
  known = {r.arm for r in runs}
  if args.versus not in known:
    p.error(f"--versus={args.versus!r} is no arm of {args.sweep_dir}; its "
            f"arms: {sorted(known)}.")
  print(versus_markdown(runs, args.versus,
                        f", {args.scores}" if args.scores else "",
                        keep_scratch=bool(args.other_dir)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
