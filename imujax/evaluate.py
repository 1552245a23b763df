"""Per-frame evaluation of whole recordings, run causally.

The classifier runs the same causal scan as in training over each whole
held-out recording from a zero state, so the prediction at frame t uses frames
0..t only: what an online system would have output at that moment.
"""

import functools
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from imujax import distributed
from imujax import models


@functools.partial(jax.jit, static_argnames="cfg")
def predict(params, signals, *, cfg: models.ModelConfig):
  """Per-frame class ids <int32>[batch, time] for signals [batch, time, C]."""
  return models.classify_sequence(params, cfg, signals).argmax(-1)


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


def evaluate_classifier(params, cfg: models.ModelConfig,
                        batches: Iterable[dict], sharding=None) -> dict:
  """Scores and confusion matrix over every valid, labelled frame."""
  confusion = np.zeros((cfg.num_classes, cfg.num_classes), np.int64)
  for batch in batches:
    signals = batch["signals"]
    if sharding is not None:
      signals = jax.device_put(signals, sharding)
    pred = distributed.to_host(predict(params, signals, cfg=cfg))
    keep = batch["valid"] & (batch["labels"] >= 0)
    confusion += confusion_matrix(batch["labels"][keep], pred[keep],
                                  cfg.num_classes)
  return {**scores(confusion), "confusion": confusion.tolist()}


@functools.partial(jax.jit, static_argnames="loss_fn")
def _batch_loss(params, batch, rng, *, loss_fn):
  return loss_fn(params, batch, rng)[0]


def evaluate_loss(params, loss_fn, batches: Iterable[dict],
                  rng: jax.Array) -> dict:
  """Mean objective over fixed batches (for pretext validation)."""
  losses = [float(_batch_loss(params, b, jax.random.fold_in(rng, i),
                              loss_fn=loss_fn))
            for i, b in enumerate(batches)]
  return {"loss": float(np.mean(losses))}

