"""The scale question in a report: test macro-F1 against pre-training hours.

A section of `report.py`'s report.md (written when the sweep has a fine-tune
from a pooled corpus, `pretrain.corpus`), e.g. configs/sweeps/scale.py:

* per target and label budget, each point's test macro-F1 (mean over the
  (subject, seed) scores, 95% interval from the hierarchical bootstrap of
  `paired`: subjects, then seeds) against the hours the encoder was
  pre-trained on: scratch at 0 h, a pooled corpus at its actual hours (sum of
  its members' hours in the pre-training's run.json), in-domain pre-training
  (the target's own training subjects) as a dashed line (its hours are not
  in its run record); with the paired difference to scratch;
* "pooled vs in-domain": per corpus size, pooled − in-domain on the same
  (subject, seed), its mean, n, interval and sign-flip p (`paired.summary`).

Controls (linear probe, +aug) and encoders from another single dataset are
left out here; the report's other tables list them.
"""

import math
import pathlib

import numpy as np

from imujax.experiments import paired
from imujax.experiments import stats

POOLED, IN_DOMAIN, SCRATCH = "pooled", "in-domain", "scratch"


def _json(path: pathlib.Path):
  return stats.read_json(path) if path.exists() else None


def _source_run(sweep_dir: pathlib.Path, init_from: str):
  """The run.json of the encoder a fine-tune started from (or None);
  `sweep_dir` holds the fine-tune (<sweep_dir>/finetune/<run>)."""
  info = _json(pathlib.Path(init_from) / "run.json")
  if info is None:  # The sweep dir moved.
    info = _json(sweep_dir / "pretrain" /
                 pathlib.Path(init_from).name / "run.json")
  return info


def classify(run):
  """(kind, objective, requested hours, actual hours) of a fine-tune; None
  for a control or an encoder from another single dataset."""
  arm = run.arm
  if arm == "scratch":
    return SCRATCH, "", 0., 0.
  if " [" in arm or "+aug" in arm:
    return None
  objective, _, where = arm.partition("@")
  if not where:
    return IN_DOMAIN, objective, math.nan, math.nan
  if not where.startswith("corpus"):
    return None
  info = _json(pathlib.Path(run.path) / "run.json") or {}
  init_from = (info.get("source") or {}).get("init_from", "")
  source = _source_run(pathlib.Path(run.path).parent.parent, init_from)
  if source is None:
    return None
  requested = float(source["config"]["pretrain"].get("corpus_hours", 0.))
  hours = float(sum(m["hours"] for m in source.get("corpus") or []))
  return POOLED, objective, requested, hours


def scores(run) -> dict:
  """{(subject, seed): test macro-F1}; one pseudo-subject per seed when the
  run has no per-subject scores."""
  per = (run.test or {}).get("per_subject") or {}
  if per:
    return {(s, run.seed): v["macro_f1"] for s, v in per.items()}
  return {(f"seed{run.seed}", run.seed): run.test["macro_f1"]}


def points(runs: list) -> dict:
  """{(dataset, budget): {(kind, objective, requested h): {"hours": [...],
  "scores": {(subject, seed): F1}}}} of the finished runs."""
  out = {}
  for r in runs:
    if r.test is None:
      continue
    what = classify(r)
    if what is None:
      continue
    kind, objective, requested, hours = what
    cell = out.setdefault((r.dataset, r.budget), {}).setdefault(
        (kind, objective, requested), {"hours": [], "scores": {}})
    cell["hours"].append(hours)
    cell["scores"].update(scores(r))
  return out


def _mean_ci(values: dict) -> tuple:
  lo, hi = paired.hierarchical_ci(values)
  return float(np.mean(list(values.values()))), lo, hi


def _diff(a: dict, b: dict) -> dict:
  return {k: a[k] - b[k] for k in sorted(set(a) & set(b))}


def rows(cells: dict) -> tuple[list, list]:
  """(points rows, pooled-vs-in-domain rows), sorted for reading."""
  table, versus = [], []
  for (dataset, budget), arms in sorted(cells.items()):
    scratch = arms.get((SCRATCH, "", 0.), {}).get("scores", {})
    for (kind, objective, requested), cell in sorted(
        arms.items(), key=lambda kv: (kv[0][1], kv[0][0] != SCRATCH,
                                      kv[0][0] == POOLED, kv[1]["hours"][0])):
      mean, lo, hi = _mean_ci(cell["scores"])
      row = {"dataset": dataset, "budget": budget, "kind": kind,
             "objective": objective, "requested_hours": requested,
             "hours": float(np.mean(cell["hours"])), "mean": mean,
             "ci_lo": lo, "ci_hi": hi,
             "subjects": len({s for s, _ in cell["scores"]}),
             "seeds": len({s for _, s in cell["scores"]})}
      if kind != SCRATCH and scratch:
        d = paired.summary(_diff(cell["scores"], scratch))
        row.update({f"vs_scratch_{k}": d[k] for k in
                    ("mean", "ci_lo", "ci_hi", "pairs")})
      table.append(row)
      own = next((c for (k, o, _), c in arms.items()
                  if k == IN_DOMAIN and o == objective), None)
      if kind == POOLED and own:
        d = paired.summary(_diff(cell["scores"], own["scores"]))
        versus.append({"dataset": dataset, "budget": budget,
                       "objective": objective, "hours": row["hours"],
                       "requested_hours": requested, **d})
  return table, versus


def pooled_rows(cells: dict) -> list:
  """Per (kind, objective, requested hours): Δ vs scratch and, for pooled
  corpora, Δ vs the same objective in-domain, pooled over every target and
  budget. Units: a target's subject (subjects of different targets are
  different people), with its (budget, seed) pairs as the repeats."""
  diffs = {}
  for (dataset, budget), arms in cells.items():
    scratch = arms.get((SCRATCH, "", 0.), {}).get("scores", {})
    for (kind, objective, requested), cell in arms.items():
      if kind == SCRATCH:
        continue
      refs = [("scratch", scratch)]
      own = next((c for (k, o, _), c in arms.items()
                  if k == IN_DOMAIN and o == objective), None)
      if kind == POOLED and own:
        refs.append(("in-domain", own["scores"]))
      key = (kind, objective, requested)
      for versus, ref in refs:
        for (subject, seed), d in _diff(cell["scores"], ref).items():
          diffs.setdefault((key, versus), {})[
              (f"{dataset}:{subject}", f"{budget}:{seed}")] = d
  def order(item):  # Objective, versus, in-domain, then sizes, "all" last.
    (kind, objective, requested), versus = item[0]
    return (objective, versus, kind == POOLED,
            -1. if kind != POOLED else requested or 1e9)

  out = []
  for ((kind, objective, requested), versus), d in sorted(diffs.items(),
                                                          key=order):
    out.append({"kind": kind, "objective": objective,
                "requested_hours": requested, "versus": versus,
                **paired.summary(d)})
  return out



def _ci(lo, hi, sign=True) -> str:
  return ("–" if math.isnan(lo) else
          f"[{lo:+.3f}, {hi:+.3f}]" if sign else f"[{lo:.3f}, {hi:.3f}]")


def _hours(row) -> str:
  if row["kind"] == IN_DOMAIN:
    return "target's training subjects"
  if row["kind"] == SCRATCH:
    return "0"
  asked = row["requested_hours"]
  return f"{row['hours']:.2f}" + (f" (asked {asked:g})" if asked else " (all)")


def plot_hours(table: list, dataset: str, path: pathlib.Path) -> None:
  """Test macro-F1 against pre-training hours, one panel per budget."""
  from imujax.experiments import plots  # pylint: disable=g-import-not-at-top
  plt = plots._plt()  # pylint: disable=protected-access
  mine = [r for r in table if r["dataset"] == dataset]
  budgets = sorted({r["budget"] for r in mine}, key=lambda b: b or 1e9)
  fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 3.8),
                           squeeze=False, sharey=True)
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  objectives = sorted({r["objective"] for r in mine if r["objective"]})
  for ax, budget in zip(axes[0], budgets):
    cell = [r for r in mine if r["budget"] == budget]
    err = lambda r: [[r["mean"] - r["ci_lo"]], [r["ci_hi"] - r["mean"]]] if (
        not math.isnan(r["ci_lo"])) else None
    for r in cell:
      if r["kind"] == SCRATCH:
        ax.errorbar([0], [r["mean"]], yerr=err(r), color="black", marker="s",
                    capsize=3, label="scratch (0 h)")
        ax.axhline(r["mean"], color="black", linestyle=":", linewidth=0.8)
    for i, objective in enumerate(objectives):
      colour = colours[i % len(colours)]
      pooled = sorted((r for r in cell if r["objective"] == objective
                       and r["kind"] == POOLED), key=lambda r: r["hours"])
      if pooled:
        ax.plot([r["hours"] for r in pooled], [r["mean"] for r in pooled],
                marker="o", color=colour, label=f"{objective}, pooled")
        for r in pooled:
          if err(r):
            ax.errorbar([r["hours"]], [r["mean"]], yerr=err(r), color=colour,
                        capsize=3)
      for r in cell:
        if r["objective"] == objective and r["kind"] == IN_DOMAIN:
          ax.axhline(r["mean"], color=colour, linestyle="--",
                     label=f"{objective}, in-domain")
          if err(r):
            ax.axhspan(r["ci_lo"], r["ci_hi"], color=colour, alpha=0.08)
    ax.set_xscale("symlog", linthresh=0.5, linscale=0.5)
    top = max([r["hours"] for r in cell if r["kind"] == POOLED] + [1.])
    ticks = [t for t in (0, 0.5, 1, 2, 4, 8, 16, 32, 64) if t <= top * 1.05]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlim(-0.1, top * 1.4)
    ax.set_xlabel("pre-training corpus (hours)")
    ax.set_title(f"{dataset}: {budget or 'all'} labelled subject(s)")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("test macro-F1 (95% CI)")
  axes[0][-1].legend(fontsize=7, loc="best")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def section(runs: list, out, plot: bool = True) -> str:
  """The report's "pre-training hours" section ("" without pooled runs);
  writes scale.csv, scale_vs_in_domain.csv and one PNG per target (`plot`)
  into `out`."""
  cells = points(runs)
  if not any(k == POOLED for arms in cells.values() for k, _, _ in arms):
    return ""
  table, versus = rows(cells)
  out = pathlib.Path(out)
  stats.write_csv(out / "scale.csv", table)
  stats.write_csv(out / "scale_vs_in_domain.csv", versus)
  lines = [
      "## Pre-training hours: scratch, in-domain, pooled corpora", "",
      "Test macro-F1: mean over (subject, seed) scores; 95% interval: "
      "hierarchical bootstrap (subjects, then seeds; "
      f"{paired.SAMPLES} resamples). Hours: the corpus's actual hours "
      "(whole recordings, a fixed nested subset: data/corpus_budget.py). "
      "Δ: paired on the same (subject, seed); n = pairs.", ""]
  for dataset in sorted({r["dataset"] for r in table}):
    lines += [f"### {dataset}", ""]
    if plot:
      name = f"scale_{''.join(c if c.isalnum() else '_' for c in dataset)}.png"
      plot_hours(table, dataset, out / name)
      lines += [f"![scale {dataset}]({name})", ""]
    lines += ["| labelled subjects | pre-training | objective | hours | "
              "subjects × seeds | test macro-F1 [95% CI] | Δ vs scratch "
              "[95% CI] (n) |", "|---" * 7 + "|"]
    for r in table:
      if r["dataset"] != dataset:
        continue
      vs = (f"{stats.fmt(r['vs_scratch_mean'], sign=True)} "
            f"{_ci(r['vs_scratch_ci_lo'], r['vs_scratch_ci_hi'])} "
            f"({r['vs_scratch_pairs']})" if "vs_scratch_mean" in r else "–")
      lines.append(f"| {r['budget'] or 'all'} | {r['kind']} | "
                   f"{r['objective'] or '–'} | {_hours(r)} | "
                   f"{r['subjects']} × {r['seeds']} | {stats.fmt(r['mean'])} "
                   f"{_ci(r['ci_lo'], r['ci_hi'], False)} | {vs} |")
    lines.append("")
  lines += ["### Pooled vs in-domain pre-training (pooled − in-domain, "
            "test macro-F1)", "",
            "| dataset | labelled subjects | objective | pooled hours | n "
            "(subjects × seeds) | Δ F1 | 95% CI | p |", "|---" * 8 + "|"]
  wins = losses = 0
  for v in versus:
    wins += v["ci_lo"] > 0
    losses += v["ci_hi"] < 0
    lines.append(f"| {v['dataset']} | {v['budget'] or 'all'} | "
                 f"{v['objective']} | {v['hours']:.2f} | {v['subjects']} × "
                 f"{v['seeds']} | {stats.fmt(v['mean'], sign=True)} | "
                 f"{_ci(v['ci_lo'], v['ci_hi'])} | {stats.fmt_p(v['p'])} |")
  lines += ["", f"Pooled beats in-domain (interval above 0) in {wins} of "
            f"{len(versus)} cells, loses (below 0) in {losses}; the rest are "
            "undecided at these n.", ""]
  pooled = pooled_rows(cells)
  stats.write_csv(out / "scale_pooled.csv", pooled)
  lines += ["### Pooled over targets and label budgets", "",
            "Units: subjects (each target's own), repeats: budget × seed; "
            "hierarchical bootstrap 95% CI, sign-flip p over subjects. "
            "Requested hours; \"all\" is each target's whole corpus.", "",
            "| pre-training | objective | hours | versus | n (subjects × "
            "budget-seeds) | Δ F1 | 95% CI | p |", "|---" * 8 + "|"]
  for r in pooled:
    hours = ("–" if r["kind"] == IN_DOMAIN else "all"
             if not r["requested_hours"] else f"{r['requested_hours']:g}")
    lines.append(f"| {r['kind']} | {r['objective']} | {hours} | "
                 f"{r['versus']} | {r['subjects']} × {r['seeds']} | "
                 f"{stats.fmt(r['mean'], sign=True)} | "
                 f"{_ci(r['ci_lo'], r['ci_hi'])} | "
                 f"{stats.fmt_p(r['p'])} |")
  return "\n".join(lines + [""])
