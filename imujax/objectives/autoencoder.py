"""Sequence autoencoder: the whole window from the final state."""

import jax
import jax.numpy as jnp

from imujax import cells
from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options

def _decoder_in_dim(cfg, opts) -> int:
  return cfg.in_dim if opts["decoder_input"] == "previous" else 1


def _init_autoencoder(key, cfg, opts):
  opts = options.validate("autoencoder", opts)
  cell = cells.get(cfg.cell)
  n_leaves = len(jax.tree.leaves(cell.initial_carry(1, cfg.hidden)))
  k_init, k_cell, k_out = jax.random.split(key, 3)
  return {"decoder": {
      "init": losses.linear_init(k_init, cfg.hidden, n_leaves * cfg.hidden),
      "cell": cell.init(k_cell, _decoder_in_dim(cfg, opts), cfg.hidden),
      "out": losses.linear_init(k_out, cfg.hidden, cfg.in_dim)}}


def autoencoder_loss(params, batch, rng, stats, *, cfg: models.ModelConfig,
                     opts: dict, dropout: bool = True):
  """Sequence autoencoder (Srivastava et al. 2015): the window from one state.

  The code z is the encoder's top-layer output at the last valid frame (what
  the online classifier reads). A one-layer decoder of the encoder's cell kind
  starts from carry = tanh(W z + b) and emits one frame per step, most recent
  first when `reverse` (short dependencies first). Its input is a constant 1
  ("none": unconditioned, so everything must come from z) or, with
  "previous", the clean frame emitted before (teacher forcing; easier, but the
  decoder can lean on its input instead of z). `denoise_std` > 0 adds
  N(0, std^2) noise to the encoder's input only: the target stays clean.
  """
  opts = options.validate("autoencoder", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, c = x.shape
  enc_rng, noise_rng = jax.random.split(rng)
  x_in = x
  if opts["denoise_std"] > 0:
    x_in = jnp.where(valid[..., None], x + opts["denoise_std"]
                     * jax.random.normal(noise_rng, x.shape), x)
  h = losses.encode(params, cfg, x_in, enc_rng, dropout)
  last = losses.last_valid_index(valid)
  z = jnp.take_along_axis(h, last[:, None, None], axis=1)[:, 0]

  dec = params["decoder"]
  cell = cells.get(cfg.cell)
  template = cell.initial_carry(b, cfg.hidden)
  leaves, treedef = jax.tree.flatten(template)
  init = jnp.tanh(losses.linear(dec["init"], z))
  carry = jax.tree.unflatten(treedef, jnp.split(init, len(leaves), axis=-1))

  i = jnp.arange(time)[None]
  src = last[:, None] - i if opts["reverse"] else jnp.broadcast_to(i, (b, time))
  in_range = src >= 0
  src = jnp.clip(src, 0, time - 1)
  target = jnp.take_along_axis(x, src[..., None], axis=1)
  mask = in_range & jnp.take_along_axis(valid, src, axis=1)
  if opts["decoder_input"] == "previous":
    inputs = jnp.concatenate([jnp.zeros((b, 1, c)), target[:, :-1]], 1)
  else:
    inputs = jnp.ones((b, time, 1), jnp.float32)
  hs, _ = cells.scan(cell.step, dec["cell"], carry, inputs, unroll=cfg.unroll)
  pred = losses.linear(dec["out"], hs)
  loss = losses.masked_mse(pred, target, mask)
  return loss, {"mse": loss}


OBJECTIVE = objectives.Objective('autoencoder', _init_autoencoder, autoencoder_loss)
