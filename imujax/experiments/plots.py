"""The report's plots: label efficiency, convergence, confusion matrices.

matplotlib is imported when a plot is drawn (Agg backend), so tables and
CSVs need NumPy only.
"""

import pathlib

import numpy as np

from imujax.experiments import stats

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
  for arm in stats.arm_order({r["arm"] for r in mine}):
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
  grid = stats.cells(runs)
  budgets = sorted((b for d, b in grid if d == dataset), key=lambda b: b or 1e9)
  fig, axes = plt.subplots(1, len(budgets), figsize=(4 * len(budgets), 3.4),
                           squeeze=False, sharey=True)
  for ax, budget in zip(axes[0], budgets):
    arms = grid[(dataset, budget)]
    for arm in stats.arm_order(arms):
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
  grid = stats.cells(runs)
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


