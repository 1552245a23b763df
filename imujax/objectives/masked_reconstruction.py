"""Masked reconstruction: predict masked spans of the input from the rest."""

import jax
import jax.numpy as jnp

from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options

def span_mask(rng, batch: int, time: int, mask_ratio: float,
              span: int) -> jax.Array:
  """Fixed-length spans: round(mask_ratio * time / span) per sequence.

  Spans start uniformly at random and may overlap, so the masked fraction is
  at most mask_ratio (close to it while spans are few).

  Returns:
    <bool>[batch, time], True where a frame is masked.
  """
  n_spans = max(1, round(mask_ratio * time / span))
  starts = jax.random.randint(rng, (batch, n_spans), 0, max(1, time - span + 1))
  t = jnp.arange(time)
  inside = (t[None, None, :] >= starts[..., None]) & (
      t[None, None, :] < starts[..., None] + span)
  return inside.any(axis=1)


def geometric_span_mask(rng, batch: int, time: int, mask_ratio: float,
                        span_mean: float) -> jax.Array:
  """Spans from a stationary two-state Markov chain along time.

  A masked frame stays masked with probability 1 - 1/span_mean, so masked
  spans (and unmasked gaps) are geometric; masked spans average span_mean
  frames and each frame is masked with probability mask_ratio.

  Returns:
    <bool>[batch, time], True where a frame is masked.
  """
  leave = 1. / span_mean
  enter = leave * mask_ratio / (1. - mask_ratio)
  k0, k1 = jax.random.split(rng)
  first = jax.random.uniform(k0, (batch,)) < mask_ratio
  u = jax.random.uniform(k1, (time - 1, batch))

  def step(m, u_t):
    m = jnp.where(m, u_t >= leave, u_t < enter)
    return m, m

  _, rest = jax.lax.scan(step, first, u)
  return jnp.concatenate([first[:, None], rest.T], axis=1)


def _init_masked_reconstruction(key, cfg, opts):
  opts = options.validate("masked_reconstruction", opts)
  heads = {"reconstructor": models.init_reconstructor(key, cfg)}
  if opts["mask_value"] == "learned":
    heads["mask_token"] = {"value": jnp.zeros((cfg.in_dim,), jnp.float32)}
  return heads


def masked_reconstruction_loss(params, batch, rng, stats, *, cfg: models.ModelConfig,
                               opts: dict, dropout: bool = True):
  """MSE on masked valid frames; masked inputs replaced by `mask_value`.

  The encoder is causal, so a masked frame is predicted from the frames before
  it plus any unmasked context inside the span: a forecasting-flavoured BERT.
  "zero" fills with the training mean of each channel, "noise" with N(0, 1)
  (the channels' own scale), "learned" with a trained token.
  """
  opts = options.validate("masked_reconstruction", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, _ = x.shape
  mask_rng, noise_rng, dropout_rng = jax.random.split(rng, 3)
  if opts["span_dist"] == "fixed":
    masked = span_mask(mask_rng, b, time, opts["mask_ratio"],
                       max(1, round(opts["span_mean"])))
  else:
    masked = geometric_span_mask(mask_rng, b, time, opts["mask_ratio"],
                                 opts["span_mean"])
  masked = masked & valid
  if opts["mask_value"] == "zero":
    fill = jnp.zeros_like(x)  # The training mean of every channel.
  elif opts["mask_value"] == "noise":
    fill = jax.random.normal(noise_rng, x.shape)  # Unit variance, as x.
  else:
    fill = jnp.broadcast_to(params["mask_token"]["value"], x.shape)
  h = losses.encode(params, cfg, jnp.where(masked[..., None], fill, x),
              dropout_rng, dropout)
  loss = losses.masked_mse(models.reconstruct(params, h), x, masked)
  return loss, {"masked_fraction": masked.sum() / jnp.maximum(valid.sum(), 1)}


OBJECTIVE = objectives.Objective('masked_reconstruction', _init_masked_reconstruction, masked_reconstruction_loss)
