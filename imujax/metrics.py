"""Per-frame classification metrics, pure NumPy: one definition for all.

Training evaluation, streaming evaluation and reports score with these, so
a number means the same wherever it is printed.
"""

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """<int64>[num_classes, num_classes]; rows are true classes."""
  return np.bincount(y_true * num_classes + y_pred,
                     minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(confusion: np.ndarray) -> dict:
  """Accuracy, macro-F1 and per-class F1 from a confusion matrix.

  Macro-F1 averages over the classes that occur in the truth or in the
  predictions (scikit-learn's convention), so a class absent from the test
  subjects and never predicted does not count as F1 = 0.
  """
  tp = np.diag(confusion).astype(np.float64)
  support = confusion.sum(1)
  predicted = confusion.sum(0)
  denom = support + predicted
  f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.)
  present = denom > 0
  total = confusion.sum()
  return {
      "accuracy": float(tp.sum() / total) if total else float("nan"),
      "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
      "f1_per_class": f1.tolist(),
      "frames": int(total),
  }
