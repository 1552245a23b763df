"""SimCLR: NT-Xent between two augmented views of each window."""

import jax
import jax.numpy as jnp

from imujax.objectives import augment
from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options

def _init_simclr(key, cfg, opts):
  opts = options.validate("simclr", opts)
  return {"projection": losses.mlp_init(
      key, (cfg.hidden, cfg.hidden, opts["projection_dim"]))}


def simclr_view(rng, x: jax.Array, valid: jax.Array, opts: dict,
                stats: dict) -> jax.Array:
  """One augmented view of normalised windows x [B, T, C] (simclr options).

  Rotation (one per placement, shared by its sensors), scaling, left/right
  swap and gaze drift act on raw units through the normaliser, each only on
  the modalities it makes sense for (`augment.layout`); time warp, jitter and
  channel dropout on the normalised signals, every channel. Padding stays 0.
  """
  opts = {**options.DEFAULTS["simclr"], **opts}
  mean, std, lay = losses.physical(opts, stats, "simclr",
                                   opts["rotation_deg"] > 0,
                                   optional_rotation=True)
  k_rot, k_scale, k_warp, k_jit, k_drop = jax.random.split(rng, 5)
  lengths = valid.sum(1)
  raw = augment.to_raw(x, mean, std)
  if opts["rotation_deg"] > 0:
    raw = augment.rotation(k_rot, raw, lay.groups,
                           jnp.deg2rad(opts["rotation_deg"]))
  if opts["scale_std"] > 0:
    raw = augment.gain(k_scale, raw, opts["scale_std"], lay.gain)
  if lay.swap or lay.drift:  # Insoles, gaze: keys apart from the five above.
    k_swap, k_drift = jax.random.split(jax.random.fold_in(rng, 5))
    raw = augment.swap_left_right(k_swap, raw, lay.swap,
                                  opts["swap_left_right"])
    raw = augment.drift(k_drift, raw, lay.drift, opts["gaze_offset_std"],
                        opts["gaze_drift_std"], lengths)
  v = augment.from_raw(raw, mean, std)
  if opts["time_warp_std"] > 0:
    v = augment.time_warp(k_warp, v, opts["time_warp_std"], lengths=lengths)
  if opts["jitter_std"] > 0:
    v = augment.jitter(k_jit, v, opts["jitter_std"])
  if opts["channel_dropout"] > 0:
    v = augment.channel_dropout(k_drop, v, opts["channel_dropout"])
  return jnp.where(valid[..., None], v, 0.)


def simclr_loss(params, batch, rng, stats, *, cfg: models.ModelConfig, opts: dict,
                dropout: bool = True):
  """SimCLR (Chen et al. 2020): NT-Xent between two views of each window.

  The representation is the encoder output at the last valid frame ("last",
  the state the online classifier reads) or its mean over valid frames,
  through a 2-layer projection MLP.
  """
  opts = options.validate("simclr", opts)
  x, valid = batch["signals"], batch["valid"]
  b = x.shape[0]
  view_rng, dropout_rng = jax.random.split(rng)
  # vmap over the two keys: one copy of each random op (faster compile).
  views = jax.vmap(lambda k: simclr_view(k, x, valid, opts, stats))(
      jax.random.split(view_rng)).reshape(2 * b, *x.shape[1:])
  both_valid = jnp.concatenate([valid, valid], 0)
  h = losses.encode(params, cfg, views, dropout_rng, dropout)
  proj = losses.mlp(params["projection"], losses.pool(h, both_valid, opts["pool"]))
  loss, acc = losses.nt_xent(proj[:b], proj[b:], opts["temperature"])
  return loss, {"accuracy": acc}


OBJECTIVE = objectives.Objective('simclr', _init_simclr, simclr_loss)
