"""Contrastive predictive coding, causal."""

import jax
import jax.numpy as jnp

from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options

def _init_cpc(key, cfg, opts):
  opts = options.validate("cpc", opts)
  k, d = opts["horizon"], opts["embedding_dim"]
  k_pred, k_tgt = jax.random.split(key)
  w = jax.nn.initializers.lecun_normal(batch_axis=0)(
      k_pred, (k, cfg.hidden, d), jnp.float32)
  return {"cpc": {
      "predictors": {"w": w, "b": jnp.zeros((k, d), jnp.float32)},
      "frame_embedding": losses.mlp_init(k_tgt, (cfg.in_dim, cfg.hidden, d))}}


def cpc_loss(params, batch, rng, stats, *, cfg: models.ModelConfig, opts: dict,
             dropout: bool = True):
  """Contrastive predictive coding (van den Oord et al. 2018), causal.

  Context c_t is the encoder's output h_t; the target of step k is g(x[t+k]),
  a small MLP embedding of the raw frame k ahead (not h[t+k]: a recurrent net
  can count frames, and matching h[t+k] by a position code is a shortcut).
  W_k c_t is scored by cosine / temperature against the targets of all
  anchors of the batch (other times of the same sequence and other
  sequences); `anchors` distinct anchor frames per sequence keep the score
  matrix [B*anchors, B*anchors] small. The loss averages k = 1..horizon.
  """
  opts = options.validate("cpc", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, _ = x.shape
  k_max, s = opts["horizon"], opts["anchors"]
  losses.check_time("cpc", "horizon + anchors", k_max + s, time)
  anchor_rng, dropout_rng = jax.random.split(rng)
  h = losses.encode(params, cfg, x, dropout_rng, dropout)
  z = losses.mlp(params["cpc"]["frame_embedding"], x)
  t0 = jnp.argsort(jax.random.uniform(anchor_rng, (b, time - k_max)),
                   axis=1)[:, :s]  # Distinct anchors per sequence.
  take = lambda a, t: jnp.take_along_axis(  # noqa: E731
      a, t.reshape(b, s, *([1] * (a.ndim - 2))), axis=1)
  c = take(h, t0).reshape(b * s, -1)
  anchor_ok = take(valid, t0).reshape(-1)
  pred_params = params["cpc"]["predictors"]
  per_k, accs = [], []
  for k in range(1, k_max + 1):
    pred = c @ pred_params["w"][k - 1] + pred_params["b"][k - 1]
    tgt = take(z, t0 + k).reshape(b * s, -1)
    ok = anchor_ok & take(valid, t0 + k).reshape(-1)
    loss_k, acc_k = losses.info_nce(pred, tgt, ok, opts["temperature"])
    per_k.append(loss_k)
    accs.append(acc_k)
  return jnp.mean(jnp.stack(per_k)), {"accuracy": jnp.mean(jnp.stack(accs)),
                                       "accuracy_k1": accs[0]}


OBJECTIVE = objectives.Objective('cpc', _init_cpc, cpc_loss)
