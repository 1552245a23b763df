"""Pretext and fine-tune losses as pure functions of (params, batch, rng).

`dropout=False` turns dropout off (evaluation); the rng still draws masks.

A batch is a dict of host arrays:
  signals: <float32>[batch, time, channels], normalised;
  labels:  <int32>[batch, time], -1 where a frame has no label;
  valid:   <bool>[batch, time], False on padding.

Every loss returns (scalar loss, dict of scalar metrics). The model config and
objective options are bound with `functools.partial` before jit, so the loss
passed to the train step is a function of (params, batch, rng) only.
"""

from typing import Any

import jax
import jax.numpy as jnp

from imujax import models


def span_mask(rng, batch: int, time: int, mask_ratio: float,
              span: int) -> jax.Array:
  """Random spans of masked frames.

  Each sequence gets round(mask_ratio * time / span) spans of `span` frames at
  uniform random starts; spans may overlap, so the masked fraction is at most
  mask_ratio (close to it while spans are few).

  Returns:
    <bool>[batch, time], True where a frame is masked.
  """
  n_spans = max(1, round(mask_ratio * time / span))
  starts = jax.random.randint(rng, (batch, n_spans), 0, max(1, time - span + 1))
  t = jnp.arange(time)
  inside = (t[None, None, :] >= starts[..., None]) & (
      t[None, None, :] < starts[..., None] + span)
  return inside.any(axis=1)


def masked_reconstruction_loss(params, batch, rng, *, cfg: models.ModelConfig,
                               mask_ratio: float, span: int,
                               dropout: bool = True):
  """MSE on masked frames only; masked inputs are set to 0 (the channel mean).

  The encoder is causal, so a masked frame is predicted from the frames before
  it plus any unmasked context inside the span: a forecasting-flavoured BERT.
  """
  x = batch["signals"]
  mask_rng, dropout_rng = jax.random.split(rng)
  masked = span_mask(mask_rng, x.shape[0], x.shape[1], mask_ratio, span)
  masked = masked & batch["valid"]
  h, _ = models.encode(params["encoder"], cfg,
                       jnp.where(masked[..., None], 0., x),
                       dropout_rng=dropout_rng if dropout else None)
  pred = models.reconstruct(params, h)
  per_frame = jnp.square(pred - x).mean(-1)
  n = jnp.maximum(masked.sum(), 1)
  loss = jnp.where(masked, per_frame, 0.).sum() / n
  return loss, {"masked_fraction": masked.mean()}


def classification_loss(params, batch, rng, *, cfg: models.ModelConfig,
                        dropout: bool = True):
  """Per-frame softmax cross-entropy over labelled, valid frames."""
  logits = models.classify_sequence(params, cfg, batch["signals"],
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


LOSSES: dict[str, Any] = {
    "masked_reconstruction": masked_reconstruction_loss,
    "classification": classification_loss,
}
