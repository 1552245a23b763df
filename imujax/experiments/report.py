r"""The report of a sweep: tables, paired claims with intervals, plots.

  python -m imujax.experiments.report <sweep_dir> [--out=<sweep_dir>/report]

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
import collections
import csv
import json
import math
import pathlib
import sys
from typing import NamedTuple, Optional

import numpy as np

BOOTSTRAP_SAMPLES = 10_000
MIN_WILCOXON_PAIRS = 5
MIN_BOOTSTRAP_PAIRS = 3  # Resampling 2 pairs gives little but their range.
TARGETS = (0.90, 0.95)


class FinetuneRun(NamedTuple):
  """What the report needs of one fine-tune run."""
  path: str
  dataset: str
  arm: str
  budget: int               # Labelled training subjects; 0 = all.
  labelled_subjects: int    # The budget as a number (all = training subjects).
  seed: int
  steps: int                # Configured fine-tune steps.
  val: list                 # [(step, macro_f1)], in step order.
  test: Optional[dict]      # summary.json's test record; None if unfinished.
  class_names: list


# ----------------------------------------------------------------- reading
def _read_jsonl(path: pathlib.Path) -> list:
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line]


def read_runs(sweep_dir) -> tuple[list, list]:
  """(fine-tune runs, pre-training runs) under `sweep_dir`, sorted by path."""
  finetunes, pretrains = [], []
  for run_json in sorted(pathlib.Path(sweep_dir).rglob("run.json")):
    workdir = run_json.parent
    info = json.loads(run_json.read_text())
    summary_path = workdir / "summary.json"
    summary = (json.loads(summary_path.read_text())
               if summary_path.exists() else None)
    metrics = _read_jsonl(workdir / "metrics.jsonl")
    config = info["config"]
    if info["phase"] != "finetune":
      val = [m for m in metrics if m["split"] == "val"]
      pretrains.append({
          "path": str(workdir), "dataset": info["dataset"],
          "objective": info["objective"], "seed": config["seed"],
          "steps": val[-1]["step"] if val else 0,
          "val_loss": val[-1].get("loss") if val else None,
          "done": summary is not None})
      continue
    source = info.get("source") or {}
    arm = source.get("objective", "scratch")
    if source and source.get("dataset") != info["dataset"]:
      arm = f"{arm}@{source['dataset']}"
    budget = int(config["data"]["labeled_subjects"])
    finetunes.append(FinetuneRun(
        path=str(workdir), dataset=info["dataset"], arm=arm, budget=budget,
        labelled_subjects=budget or len(info["splits"]["train"]),
        seed=int(config["seed"]), steps=int(config["finetune"]["steps"]),
        val=sorted((m["step"], m["macro_f1"]) for m in metrics
                   if m["split"] == "val"),
        test=summary["test"] if summary else None,
        class_names=info["class_names"]))
  return finetunes, pretrains


# ----------------------------------------------------------------- statistics
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


def _mean_std(xs) -> tuple[float, float]:
  xs = np.asarray([x for x in xs if x is not None], np.float64)
  if not len(xs):
    return math.nan, math.nan
  return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.


def cells(runs: list) -> dict:
  """{(dataset, budget): {arm: {seed: run}}} of the finished runs."""
  out = collections.defaultdict(lambda: collections.defaultdict(dict))
  for r in runs:
    if r.test is not None:
      out[(r.dataset, r.budget)][r.arm][r.seed] = r
  return out


def arm_order(arms) -> list:
  return sorted(arms, key=lambda a: (a != "scratch", a))


def summarise(runs: list) -> list[dict]:
  """One row per (dataset, budget, arm): scores, paired claim, convergence."""
  rows = []
  for (dataset, budget), arms in sorted(cells(runs).items(),
                                        key=lambda kv: (kv[0][0],
                                                        kv[0][1] or 1e9)):
    scratch = arms.get("scratch", {})
    for arm in arm_order(arms):
      by_seed = arms[arm]
      f1 = [r.test["macro_f1"] for r in by_seed.values()]
      acc = [r.test["accuracy"] for r in by_seed.values()]
      row = {"dataset": dataset, "budget": budget,
             "labelled_subjects": next(iter(by_seed.values())).labelled_subjects,
             "arm": arm, "seeds": len(by_seed),
             "test_macro_f1_mean": _mean_std(f1)[0],
             "test_macro_f1_std": _mean_std(f1)[1],
             "test_accuracy_mean": _mean_std(acc)[0],
             "test_accuracy_std": _mean_std(acc)[1],
             "auc_mean": _mean_std([curve_auc(r.val)
                                    for r in by_seed.values()])[0]}
      paired = sorted(set(by_seed) & set(scratch))
      diffs = [by_seed[s].test["macro_f1"] - scratch[s].test["macro_f1"]
               for s in paired]
      row["pairs"] = len(paired) if arm != "scratch" else 0
      if arm != "scratch" and paired:
        row["diff_mean"] = float(np.mean(diffs))
        row["diff_ci_lo"], row["diff_ci_hi"] = bootstrap_ci(diffs)
        row["wilcoxon_p"] = wilcoxon_p(diffs)
      for target in TARGETS:
        reached = []
        for s in paired if arm != "scratch" else sorted(by_seed):
          best = max((f for _, f in scratch[s].val), default=None) if (
              s in scratch) else None
          if best is None:
            continue
          reached.append(steps_to(by_seed[s].val, target * best))
        key = f"steps_to_{round(target * 100)}"
        hits = [x for x in reached if x is not None]
        row[key + "_mean"] = float(np.mean(hits)) if hits else math.nan
        row[key + "_reached"] = f"{len(hits)}/{len(reached)}"
      rows.append(row)
  return rows


# ----------------------------------------------------------------- plots
def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def plot_label_efficiency(rows: list, dataset: str, path: pathlib.Path):
  """Test macro-F1 against labelled subjects, one line per arm, ±1 std."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  mine = [r for r in rows if r["dataset"] == dataset]
  for arm in arm_order({r["arm"] for r in mine}):
    pts = sorted((r["labelled_subjects"], r["test_macro_f1_mean"],
                  r["test_macro_f1_std"]) for r in mine if r["arm"] == arm)
    x, m, s = (np.array(v, np.float64) for v in zip(*pts))
    ax.plot(x, m, marker="o", label=arm,
            **({"color": "black", "linestyle": "--"}
               if arm == "scratch" else {}))
    ax.fill_between(x, m - s, m + s, alpha=0.15,
                    **({"color": "black"} if arm == "scratch" else {}))
  ticks = sorted({(r["labelled_subjects"], r["budget"]) for r in mine})
  ax.set_xticks([t for t, _ in ticks])
  ax.set_xticklabels([f"{t}" if b else f"all ({t})" for t, b in ticks])
  ax.set_xlabel("labelled training subjects")
  ax.set_ylabel("test macro-F1 (per frame)")
  ax.set_title(f"{dataset}: label efficiency (mean ± std over seeds)",
               fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_convergence(runs: list, dataset: str, path: pathlib.Path):
  """Validation macro-F1 against fine-tune step, per budget and arm, ±1 std."""
  plt = _plt()
  grid = cells(runs)
  budgets = sorted((b for d, b in grid if d == dataset), key=lambda b: b or 1e9)
  fig, axes = plt.subplots(1, len(budgets), figsize=(4 * len(budgets), 3.4),
                           squeeze=False, sharey=True)
  for ax, budget in zip(axes[0], budgets):
    arms = grid[(dataset, budget)]
    for arm in arm_order(arms):
      curves = [dict(r.val) for r in arms[arm].values() if r.val]
      steps = sorted(set.intersection(*(set(c) for c in curves))) if (
          curves) else []
      if not steps:
        continue
      y = np.array([[c[s] for s in steps] for c in curves])
      m, s = y.mean(0), y.std(0)
      style = ({"color": "black", "linestyle": "--"} if arm == "scratch"
               else {})
      ax.plot(steps, m, label=arm, **style)
      ax.fill_between(steps, m - s, m + s, alpha=0.15,
                      **({"color": "black"} if arm == "scratch" else {}))
    some = next(iter(next(iter(arms.values())).values()))
    ax.set_title(f"{dataset}, {budget or f'all ({some.labelled_subjects})'} "
                 "labelled subjects", fontsize=8)
    ax.set_xlabel("fine-tune step")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("validation macro-F1")
  axes[0][-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def best_arms(rows: list, dataset: str) -> list:
  """Per budget of `dataset`: the row of the arm with the best mean test F1."""
  best = {}
  for r in rows:
    if r["dataset"] == dataset and (
        r["budget"] not in best
        or r["test_macro_f1_mean"] > best[r["budget"]]["test_macro_f1_mean"]):
      best[r["budget"]] = r
  return [best[b] for b in sorted(best, key=lambda b: b or 1e9)]


def plot_confusions(runs: list, rows: list, dataset: str,
                    path: pathlib.Path):
  """Test confusion (rows: true class, normalised) of each budget's best arm,
  summed over its seeds."""
  plt = _plt()
  grid = cells(runs)
  best = best_arms(rows, dataset)
  fig, axes = plt.subplots(1, len(best), figsize=(4.2 * len(best), 4.2),
                           squeeze=False)
  for ax, row in zip(axes[0], best):
    members = grid[(dataset, row["budget"])][row["arm"]].values()
    cm = sum(np.array(r.test["confusion"], np.float64) for r in members)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    names = next(iter(members)).class_names
    ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    for i in range(len(names)):
      for j in range(len(names)):
        if norm[i, j] >= 0.005:
          ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center",
                  fontsize=5, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"{row['arm']}, {row['budget'] or 'all'} labelled "
                 f"(F1 {row['test_macro_f1_mean']:.3f}, {row['seeds']} seeds)",
                 fontsize=7)
    ax.set_xlabel("predicted", fontsize=7)
    ax.set_ylabel("true", fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# ----------------------------------------------------------------- writing
def _fmt(x, digits=3) -> str:
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "–"
  return f"{x:.{digits}f}"


def _claim(row: dict) -> tuple[str, str]:
  if row["arm"] == "scratch":
    return "(reference)", ""
  if not row["pairs"]:
    return "no paired scratch run", ""
  ci = (f" [{row['diff_ci_lo']:+.3f}, {row['diff_ci_hi']:+.3f}]"
        if not math.isnan(row["diff_ci_lo"]) else "")
  p = row.get("wilcoxon_p")
  return (f"{row['diff_mean']:+.3f}{ci} (n={row['pairs']})",
          _fmt(p, 3) if p is not None else f"n<{MIN_WILCOXON_PAIRS}")


def _steps(row: dict, target: int) -> str:
  mean = row[f"steps_to_{target}_mean"]
  reached = row[f"steps_to_{target}_reached"]
  if reached.endswith("/0"):
    return "–"
  return f"{_fmt(mean, 0)} ({reached})"


def _mean_sd(row: dict, key: str) -> str:
  """"mean ± sd" over seeds; the mean alone for one seed (no spread)."""
  if row["seeds"] < 2:
    return _fmt(row[key + "_mean"])
  return f"{_fmt(row[key + '_mean'])} ± {_fmt(row[key + '_std'])}"


def arms_table(rows: list) -> str:
  """Markdown: one line per (budget, arm) of `summarise`'s rows.

  A dataset column is added when the rows span several datasets.
  """
  several = len({r["dataset"] for r in rows}) > 1
  lines = [("| dataset " if several else "") +
           "| labelled subjects | arm | seeds | test macro-F1 | test "
           "accuracy | Δ F1 vs scratch [95% CI] | Wilcoxon p | steps to "
           "90% | steps to 95% | val AUC |",
           "|---" * (10 + several) + "|"]
  for r in rows:
    claim, p = _claim(r)
    budget = r["budget"] or f"all ({r['labelled_subjects']})"
    lines.append(
        (f"| {r['dataset']} " if several else "") +
        f"| {budget} | {r['arm']} | {r['seeds']} | "
        f"{_mean_sd(r, 'test_macro_f1')} | {_mean_sd(r, 'test_accuracy')} | "
        f"{claim} | {p} | "
        f"{_steps(r, 90)} | {_steps(r, 95)} | {_fmt(r['auc_mean'])} |")
  return "\n".join(lines) + "\n"


def markdown(rows: list, runs: list, pretrains: list, images: dict,
             sweep_dir: str) -> str:
  lines = [f"# Sweep report: `{sweep_dir}`", ""]
  done = [r for r in runs if r.test is not None]
  lines += [
      f"{len(done)} finished fine-tune runs ({len(runs) - len(done)} "
      f"unfinished), {sum(p['done'] for p in pretrains)} finished "
      f"pre-training runs. Test scores are per-frame macro-F1 and accuracy on "
      "the whole recordings of held-out test subjects, run causally; mean ± "
      "std over seeds (sample std).", "",
      "Δ F1 vs scratch: mean paired difference (same seed = same split, "
      f"labels and head init) in test macro-F1, 95% percentile-bootstrap "
      f"interval ({BOOTSTRAP_SAMPLES} resamples); Wilcoxon signed-rank p "
      f"(two-sided), given only with at least {MIN_WILCOXON_PAIRS} pairs (n<5 "
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
  if pretrains:
    lines += ["## Pre-training runs", "",
              "| dataset | objective | seed | steps | final val loss | done |",
              "|---|---|---|---|---|---|"]
    for p in sorted(pretrains, key=lambda p: (p["dataset"], p["objective"],
                                              p["seed"])):
      lines.append(f"| {p['dataset']} | {p['objective']} | {p['seed']} | "
                   f"{p['steps']} | {_fmt(p['val_loss'], 4)} | "
                   f"{'yes' if p['done'] else 'no'} |")
    lines.append("")
  unfinished = [r.path for r in runs if r.test is None]
  if unfinished:
    lines += ["## Unfinished fine-tune runs (not in the tables)", "",
              *(f"- `{p}`" for p in unfinished), ""]
  return "\n".join(lines)


def _write_csv(path: pathlib.Path, rows: list) -> None:
  if not rows:
    path.write_text("")
    return
  fields = list(dict.fromkeys(k for r in rows for k in r))
  with path.open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)


def write_report(sweep_dir, out=None) -> pathlib.Path:
  """Writes report.md, runs.csv, summary.csv and PNGs; returns report.md."""
  out = pathlib.Path(out or pathlib.Path(sweep_dir) / "report")
  out.mkdir(parents=True, exist_ok=True)
  runs, pretrains = read_runs(sweep_dir)
  rows = summarise(runs)
  images = {}
  try:
    _plt()
  except ImportError:  # Tables and CSVs need numpy only.
    print("matplotlib is not installed: writing the report without plots "
          "(pip install -r requirements.txt).", file=sys.stderr)
    rows_to_plot = []
  else:
    rows_to_plot = sorted({r["dataset"] for r in rows})
  for dataset in rows_to_plot:
    for key, plot in (
        ("label_efficiency", lambda p, d=dataset: plot_label_efficiency(
            rows, d, p)),
        ("convergence", lambda p, d=dataset: plot_convergence(runs, d, p)),
        ("confusion", lambda p, d=dataset: plot_confusions(runs, rows, d, p))):
      name = f"{key}_{_slug(dataset)}.png"
      plot(out / name)
      images[(dataset, key)] = name
  _write_csv(out / "summary.csv", rows)
  _write_csv(out / "runs.csv", [
      {"path": r.path, "dataset": r.dataset, "arm": r.arm,
       "budget": r.budget, "labelled_subjects": r.labelled_subjects,
       "seed": r.seed, "steps": r.steps,
       "test_macro_f1": r.test["macro_f1"] if r.test else None,
       "test_accuracy": r.test["accuracy"] if r.test else None,
       "best_val_macro_f1": max((f for _, f in r.val), default=None),
       "val_auc": curve_auc(r.val)} for r in runs])
  path = out / "report.md"
  path.write_text(markdown(rows, runs, pretrains, images, str(sweep_dir)))
  return path


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m imujax.experiments.report",
                              description=__doc__.split("\n")[0])
  p.add_argument("sweep_dir")
  p.add_argument("--out", default=None,
                 help="Output folder (default: <sweep_dir>/report).")
  args = p.parse_args(argv)
  if not pathlib.Path(args.sweep_dir).is_dir():
    p.error(f"{args.sweep_dir} is not a directory.")
  path = write_report(args.sweep_dir, args.out)
  print(path.read_text())
  print(f"Wrote {path}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
