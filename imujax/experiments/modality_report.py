"""Test scores with a modality missing, in a report (eval.missing_modalities).

A section of `report.py`'s report.md for runs scored a second time with a
modality's channels at their mean (keys "test_without_<m>/<metric>",
configs/sweeps/modality.py).
"""

import numpy as np

from imujax.experiments import stats



def without_table(runs: list) -> list:
  """Markdown lines ([] if none): test scores with modalities missing (keys
  "test_without_<m>/<metric>", eval.missing_modalities), means over runs."""
  lines = []
  for (dataset, budget), arms in sorted(stats.cells(runs).items()):
    for arm in stats.arm_order(arms):
      done = list(arms[arm].values())
      for p in sorted({k[:-8] for r in done for k in r.test if k.startswith(
          "test_without_") and k.endswith("/macro_f1")}):
        f1, acc, full = ([r.test[k] for r in done if p + "macro_f1" in r.test]
                         for k in (p + "macro_f1", p + "accuracy", "macro_f1"))
        lines.append(f"| {dataset} | {budget or 'all'} | {arm} | {len(f1)} | "
                     f"{p[13:-1]} | {stats.fmt(np.mean(f1))} | "
                     f"{stats.fmt(np.mean(acc))}"
                     f" | {stats.fmt(np.mean(full) - np.mean(f1))} |")
  return ["## Test scores with modalities missing (their channels at 0, the "
          "mean)", "", "| dataset | labelled subjects | arm | runs | missing | "
          "test macro-F1 | test accuracy | macro-F1 drop vs all present |",
          "|---" * 8 + "|", *lines, ""] if lines else []
