"""Transformation recognition (Saeed et al. 2019)."""

import jax
import jax.numpy as jnp

from imujax.objectives import augment
from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options

def _transform_names(opts) -> tuple[str, ...]:
  return tuple(opts["transforms"].split(","))


def _init_transform_prediction(key, cfg, opts):
  opts = options.validate("transform_prediction", opts)
  n = len(_transform_names(opts))
  out = n if opts["head"] == "binary" else n + 1
  return {"transform_head": losses.linear_init(key, cfg.hidden, out)}


def transform_labels(rng, batch: int, n: int,
                     original_fraction: float) -> jax.Array:
  """<int32>[batch]: 0 (original) or j+1 (transform j), stratified.

  round(batch * original_fraction) originals (at least one, and at least one
  transformed window), the rest cycling through the n transforms from a random
  one, shuffled: every batch has the same mix (steady per-head gradients),
  and a batch with fewer transformed windows than transforms still visits
  every transform over the steps.
  """
  k_offset, k_perm = jax.random.split(rng)
  n_orig = min(max(round(batch * original_fraction), 1), batch - 1)
  cycle = jnp.arange(batch - n_orig) + jax.random.randint(k_offset, (), 0, n)
  base = jnp.concatenate([jnp.zeros((n_orig,), jnp.int32),
                          (1 + cycle % n).astype(jnp.int32)])
  return jax.random.permutation(k_perm, base)


def transform_batch(rng, x: jax.Array, valid: jax.Array, labels: jax.Array,
                    opts: dict, stats: dict) -> jax.Array:
  """x [B, T, C] with window b transformed as labels[b] says (0: as is).

  Noise, flip, permutation and time warp act on the normalised signals;
  scaling, rotation, negation and channel shuffle on raw units, each only on
  the modalities it makes sense for (see augment.layout).
  """
  names = _transform_names(opts)
  mean, std, lay = losses.physical(opts, stats, "transform_prediction",
                                  "rotation" in names)
  lengths = valid.sum(1)
  raw = augment.to_raw(x, mean, std)
  back = lambda r: augment.from_raw(r, mean, std)  # noqa: E731
  make = {
      "noise": lambda k: augment.jitter(k, x, opts["noise_std"]),
      "scaling": lambda k: back(augment.gain(k, raw, opts["scale_std"],
                                             lay.gain)),
      "rotation": lambda k: back(augment.rotation(
          k, raw, lay.groups, jnp.deg2rad(opts["rotation_deg"]))),
      "negation": lambda k: back(augment.negate_channels(k, raw,
                                                         lay.negation)),
      "flip": lambda k: augment.flip(k, x, lengths),
      "permutation": lambda k: augment.permutation(k, x, opts["segments"],
                                                   lengths),
      "time_warp": lambda k: augment.time_warp(k, x, opts["time_warp_std"],
                                               lengths=lengths),
      "channel_shuffle": lambda k: back(augment.shuffle_within(k, raw,
                                                               lay.shuffle)),
  }
  keys = jax.random.split(rng, len(names))
  out = x
  for j, (name, k) in enumerate(zip(names, keys)):
    out = jnp.where((labels == j + 1)[:, None, None], make[name](k), out)
  return jnp.where(valid[..., None], out, 0.)


def transform_prediction_loss(params, batch, rng, stats, *,
                              cfg: models.ModelConfig, opts: dict,
                              dropout: bool = True):
  """Transformation recognition (Saeed et al. 2019), one transform per window.

  "binary": one logistic head per transform, each trained on originals vs
  windows with that transform (Saeed's multi-task setup, sampled per batch);
  "multiclass": one softmax head over {original, transforms}. The heads read
  the pooled encoder output (see simclr_loss).
  """
  opts = options.validate("transform_prediction", opts)
  x, valid = batch["signals"], batch["valid"]
  n = len(_transform_names(opts))
  if "permutation" in _transform_names(opts):
    losses.check_time("transform_prediction", "segments", opts["segments"],
                x.shape[1])
  label_rng, tf_rng, dropout_rng = jax.random.split(rng, 3)
  labels = transform_labels(label_rng, x.shape[0], n,
                            opts["original_fraction"])
  xt = transform_batch(tf_rng, x, valid, labels, opts, stats)
  h = losses.encode(params, cfg, xt, dropout_rng, dropout)
  logits = losses.linear(params["transform_head"],
                          losses.pool(h, valid, opts["pool"]))
  core = losses.binary_transform_loss if opts["head"] == "binary" else losses.multiclass_loss
  loss, acc = core(logits, labels)
  return loss, {"accuracy": acc}


OBJECTIVE = objectives.Objective('transform_prediction', _init_transform_prediction, transform_prediction_loss)
