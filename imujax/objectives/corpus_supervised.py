"""Supervised multi-task pre-training on a pooled corpus (`pretrain.corpus`).

"corpus_supervised": a linear head per labelled member of the corpus, in the
member's own classes (or one head over a shared label space,
`pretrain.corpus_label_map=shared`), and per-frame cross-entropy over each
row's labelled frames through its member's head only. `with_supervised`
adds it, weighted, to a self-supervised objective's loss
(`pretrain.corpus_supervised_weight`). Design: `imujax/data/CORPUS.md`.

Static options (`corpus_labels.LabelSpaces.options`, set by the corpus
pre-training, not by the user):
  corpus_heads: ((head name, classes), ...);
  corpus_member_heads: per member, its head's index (-1: none);
  corpus_label_maps: per member, each class's index in its head (-1: ignored);
  corpus_members: per member, its name as a metric suffix.
The batch needs "member" <int32>[batch] (each row's member, as
`Corpus.batch` gives it); without it (e.g. the target's held-out windows)
no frame is labelled and the loss is 0.
"""

import jax
import jax.numpy as jnp

from imujax import models
from imujax import objectives

_KEYS = ("corpus_heads", "corpus_member_heads", "corpus_label_maps",
         "corpus_members")
_HEAD_KEY = 0x5EED  # fold_in of the pretext heads' key: the corpus heads.


def init_heads(key, cfg: models.ModelConfig, opts: dict) -> dict:
  """{"corpus_heads": {head name: linear hidden -> classes}}."""
  heads = opts["corpus_heads"]
  keys = jax.random.split(key, max(len(heads), 1))
  return {"corpus_heads": {name: models.linear_init(k, cfg.hidden, size)
                           for k, (name, size) in zip(keys, heads)}}


def heads_loss(heads: dict, h: jax.Array, batch: dict, opts: dict):
  """Cross-entropy of per-frame features h [B, T, hidden] through the heads.

  Each row reads its member's head only; frames count when valid, labelled,
  and their class maps into the head. The loss is the mean over those
  frames of the whole batch (members weigh as often as they are drawn).

  Returns:
    (loss, metrics): "sup_loss", "sup_accuracy", "sup_frames" over the
    batch, and per member "sup_accuracy_<member>", "sup_frames_<member>"
    (accuracy 0 where the batch has no labelled frame of it).
  """
  labels, valid = batch["labels"], batch["valid"]
  member = batch.get("member")
  if member is None:
    member = jnp.full(labels.shape[:1], -1, jnp.int32)
  names = [name for name, _ in opts["corpus_heads"]]
  log_probs = {}
  total, count, correct, metrics = 0., 0, 0, {}
  for k, name in enumerate(opts["corpus_members"]):
    head = opts["corpus_member_heads"][k]
    if head < 0:
      continue
    if head not in log_probs:
      logits = models.linear(heads[names[head]], h)
      log_probs[head] = jax.nn.log_softmax(logits)
    lut = jnp.asarray(tuple(opts["corpus_label_maps"][k]) + (-1,), jnp.int32)
    y = lut[jnp.where(labels >= 0, labels, -1)]  # -1 -> lut's last: -1.
    mask = valid & (member[:, None] == k) & (y >= 0)
    lp = log_probs[head]
    nll = -jnp.take_along_axis(lp, jnp.maximum(y, 0)[..., None], -1)[..., 0]
    n_k = mask.sum()
    hits = jnp.where(mask, lp.argmax(-1) == y, False).sum()
    total += jnp.where(mask, nll, 0.).sum()
    count += n_k
    correct += hits
    metrics[f"sup_accuracy_{name}"] = hits / jnp.maximum(n_k, 1)
    metrics[f"sup_frames_{name}"] = n_k
  n = jnp.maximum(count, 1)
  loss = total / n
  metrics.update(sup_loss=loss, sup_accuracy=correct / n, sup_frames=count)
  return loss, metrics


def corpus_supervised_loss(params, batch, rng, stats, *,
                           cfg: models.ModelConfig, opts: dict,
                           dropout: bool = True):
  """Per-frame multi-task cross-entropy on the corpus members' labels."""
  del stats  # Labels only.
  h, _ = models.encode(params["encoder"], cfg, batch["signals"],
                       dropout_rng=rng if dropout else None)
  return heads_loss(params["corpus_heads"], h, batch, opts)


def with_supervised(objective: objectives.Objective,
                    weight: float) -> objectives.Objective:
  """`objective` (self-supervised) + weight x the corpus multi-task loss.

  Its heads and loss are exactly the objective's own (same keys, same
  options without the corpus ones, same rng); the corpus heads take their
  own key and the supervised pass its own dropout rng. On batches without
  "member" (validation) the added term is 0, so the pretext loss is
  reported unchanged.
  """
  def pretext_opts(opts):
    return {k: v for k, v in opts.items() if k not in _KEYS}

  def init(key, cfg, opts):
    return {**objective.init_heads(key, cfg, pretext_opts(opts)),
            **init_heads(jax.random.fold_in(key, _HEAD_KEY), cfg, opts)}

  def loss(params, batch, rng, stats, *, cfg, opts, dropout=True):
    pretext, metrics = objective.loss(params, batch, rng, stats, cfg=cfg,
                                      opts=pretext_opts(opts),
                                      dropout=dropout)
    sup, sup_metrics = corpus_supervised_loss(
        params, batch, jax.random.fold_in(rng, _HEAD_KEY), stats, cfg=cfg,
        opts=opts, dropout=dropout)
    return pretext + weight * sup, {**metrics, **sup_metrics,
                                    "pretext_loss": pretext}
  return objective._replace(init_heads=init, loss=loss)


OBJECTIVE = objectives.Objective("corpus_supervised", init_heads,
                                 corpus_supervised_loss)
