"""Metrics against scikit-learn, an independent reference."""

import numpy as np
import pytest
from sklearn import metrics as skm

from imujax import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_scikit_learn(seed):
  rng = np.random.default_rng(seed)
  k = 6
  y_true = rng.integers(0, k - 1, 500)  # Class 5 never occurs in the truth...
  y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, k, 500))
  cm = metrics.confusion_matrix(y_true, y_pred, k)
  np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred,
                                                         labels=range(k)))
  s = metrics.scores(cm)
  assert s["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
  # ...but is predicted, so it counts (as F1 = 0), like scikit-learn.
  assert s["macro_f1"] == pytest.approx(
      skm.f1_score(y_true, y_pred, average="macro"))
  np.testing.assert_allclose(
      s["f1_per_class"],
      skm.f1_score(y_true, y_pred, average=None, labels=range(k)))


def test_absent_class_is_not_averaged():
  cm = metrics.confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
  # Class 2 is neither true nor predicted: macro-F1 over classes 0 and 1.
  assert metrics.scores(cm)["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
  assert metrics.scores(cm)["frames"] == 3
