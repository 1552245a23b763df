"""eval.f1_classes: which classes macro-F1 averages over, against sklearn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from imujax import configlib
from imujax import metrics
from imujax.training import evaluate


def _case(seed, k=6):
  """Test subjects without classes 4 and 5; class 5 is still predicted."""
  rng = np.random.default_rng(seed)
  y_true = rng.integers(0, k - 2, 400)
  y_pred = np.where(rng.random(400) < 0.6, y_true, rng.integers(0, k, 400))
  y_pred[y_pred == 4] = 0  # Class 4: neither true nor predicted.
  return y_true, y_pred, metrics.confusion_matrix(y_true, y_pred, k)


@pytest.mark.parametrize("seed", [0, 1])
def test_each_choice_is_sklearn_with_labels(seed):
  y_true, y_pred, cm = _case(seed)
  f1 = lambda **kw: skm.f1_score(y_true, y_pred, average="macro",
                                 zero_division=0, **kw)
  assert metrics.scores(cm)["macro_f1"] == pytest.approx(f1())  # Default.
  assert metrics.scores(cm, "present")["macro_f1"] == pytest.approx(f1())
  assert metrics.scores(cm, "all")["macro_f1"] == pytest.approx(
      f1(labels=range(6)))
  assert metrics.scores(cm, "truth")["macro_f1"] == pytest.approx(
      f1(labels=np.unique(y_true)))
  # They differ here: 5 classes present, 6 in all, 4 in the truth.
  assert len({round(metrics.scores(cm, c)["macro_f1"], 9)
              for c in metrics.F1_CLASSES}) == 3


def test_unknown_choice_is_an_error():
  with pytest.raises(ValueError, match="eval.f1_classes"):
    metrics.scores(np.eye(2, dtype=np.int64), "some")


def test_config_key_default_and_check():
  config = configlib.base()
  assert config.eval.f1_classes == "present"
  config.eval.f1_classes = "most"
  with pytest.raises(ValueError, match="eval.f1_classes"):
    configlib.check(config)


def test_evaluator_reads_the_key():
  config = configlib.base()
  config.eval.f1_classes = "all"

  class _Run:  # Only what Evaluator's constructor reads.
    class data:  # pylint: disable=invalid-name
      recordings = [type("R", (), {"labels": np.zeros(3)})]
    loss_fn = staticmethod(lambda *a, **k: None)
    objective = type("O", (), {"predict": None})

  ev = evaluate.Evaluator(_Run, config, 4, None, None)
  assert ev.f1_classes == "all"
