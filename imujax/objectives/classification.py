"""Per-frame classification: the fine-tune target, and supervised pre-training."""

import jax
import jax.numpy as jnp

from imujax import models
from imujax import objectives
from imujax.objectives import simclr


def _init_classification(key, cfg: models.ModelConfig, opts) -> dict:
  del opts  # No options.
  return {"classifier": models.init_classifier(key, cfg)}


def classification_loss(params, batch, rng, stats, *, cfg: models.ModelConfig,
                        opts=None, dropout: bool = True):
  """Per-frame softmax cross-entropy over labelled, valid frames.

  With opts["augment"] == "simclr" the training inputs are augmented as
  simclr's views are (`finetune.augment`); labels are unchanged.
  """
  x = batch["signals"]
  if opts and opts.get("augment") == "simclr" and dropout:
    # The control for simclr's augmentations: the same views (no time warp,
    # which would move frames away from their labels), in training only.
    aug_rng, rng = jax.random.split(rng)
    x = simclr.simclr_view(aug_rng, x, batch["valid"], opts["augment_opts"],
                           stats)
  logits = models.classify_sequence(params, cfg, x,
                                    dropout_rng=rng if dropout else None)
  labels = batch["labels"]
  labelled = batch["valid"] & (labels >= 0)
  log_probs = jax.nn.log_softmax(logits)
  nll = -jnp.take_along_axis(log_probs, jnp.maximum(labels, 0)[..., None],
                             axis=-1)[..., 0]
  n = jnp.maximum(labelled.sum(), 1)
  loss = jnp.where(labelled, nll, 0.).sum() / n
  correct = jnp.where(labelled, logits.argmax(-1) == labels, False).sum()
  return loss, {"accuracy": correct / n}


OBJECTIVE = objectives.Objective('classification', _init_classification, classification_loss, uses_labels=True)
