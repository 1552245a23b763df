"""Pretext and fine-tune losses as pure functions of (params, batch, rng).

`dropout=False` turns dropout off (evaluation); the rng still draws masks and
augmentations.

A batch is a dict of host arrays:
  signals: <float32>[batch, time, channels], normalised;
  labels:  <int32>[batch, time], -1 where a frame has no label;
  valid:   <bool>[batch, time], False on padding (a suffix of the window).

Every loss returns (scalar loss, dict of scalar metrics). The model config and
objective options are bound with `functools.partial` before jit, so the loss
passed to the train step is a function of (params, batch, rng) only.

Self-supervised objectives live in `PRETEXTS` (issue 4). Each one is the same
causal encoder (`models.encode`) plus its own heads:

  pretext = PRETEXTS[kind]
  opts = {**config.pretrain[kind], **data_options(names, mean, std)}
  params = {"encoder": models.init_encoder(k1, cfg),
            **pretext.init_heads(k2, cfg, opts)}
  loss_fn = functools.partial(pretext.loss, cfg=cfg, opts=opts)

Options and defaults: `pretext_options.DEFAULTS`. Every loss is factored into
a pure core on predictions and targets (`masked_mse`, `forecast_targets`,
`info_nce`, `nt_xent`, `binary_transform_loss`, `multiclass_loss`), which the
tests check on perfect and wrong predictions.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from imujax import augment
from imujax import cells
from imujax import models
from imujax import pretext_options

validate = pretext_options.validate
# The models' dense layer, shared by every pretext head.
_linear = models._linear  # pylint: disable=protected-access
_linear_init = models._linear_init  # pylint: disable=protected-access


class Pretext(NamedTuple):
  """A self-supervised objective: its heads and its loss."""
  # (key, cfg, opts) -> {group name: params}; never "encoder"/"classifier".
  init_heads: Callable[..., dict]
  # (params, batch, rng, *, cfg, opts, dropout=True) -> (loss, metrics).
  loss: Callable[..., tuple]


def data_options(channel_names, mean, std) -> dict:
  """The data-dependent options (pretext_options.DATA_KEYS) of a dataset.

  Args:
    channel_names: the dataset's channel names.
    mean, std: the training normaliser's per-channel statistics.
  """
  return {"channel_names": tuple(channel_names),
          "norm_mean": tuple(float(m) for m in mean),
          "norm_std": tuple(float(s) for s in std)}


# --------------------------------------------------------------------- helpers
def _mlp_init(key, dims: tuple[int, ...]) -> dict:
  keys = jax.random.split(key, len(dims) - 1)
  return {f"layer_{i}": _linear_init(k, a, b)
          for i, (k, a, b) in enumerate(zip(keys, dims[:-1], dims[1:]))}


def _mlp(params: dict, x: jax.Array) -> jax.Array:
  n = len(params)
  for i in range(n):
    x = _linear(params[f"layer_{i}"], x)
    if i < n - 1:
      x = jax.nn.relu(x)
  return x


def _encode(params, cfg, x, rng, dropout: bool) -> jax.Array:
  h, _ = models.encode(params["encoder"], cfg, x,
                       dropout_rng=rng if dropout else None)
  return h


def last_valid_index(valid: jax.Array) -> jax.Array:
  """<int32>[B]: the last valid frame of each sequence (0 if none)."""
  t = jnp.arange(valid.shape[1])
  return jnp.max(jnp.where(valid, t, 0), axis=1)


def _pool(h: jax.Array, valid: jax.Array, how: str) -> jax.Array:
  """<float32>[B, H] from h [B, T, H]: the last valid frame or the mean."""
  if how == "last":
    idx = last_valid_index(valid)
    return jnp.take_along_axis(h, idx[:, None, None], axis=1)[:, 0]
  w = valid[..., None].astype(h.dtype)
  return (h * w).sum(1) / jnp.maximum(w.sum(1), 1.)


def _normalize(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.square(x).sum(-1, keepdims=True),
                                       1e-12))


def _physical(opts: dict, kind: str, need_groups: bool):
  """(mean, std, groups) from the data options, or a clear error."""
  missing = [k for k in pretext_options.DATA_KEYS if k not in opts]
  if missing:
    raise ValueError(
        f"pretrain.{kind} augments in physical units and needs the data "
        f"options {missing}: pass opts={{**config.pretrain.{kind}, "
        "**objectives.data_options(channel_names, normalizer.mean, "
        "normalizer.std)}.")
  names = tuple(opts["channel_names"])
  mean, std = opts["norm_mean"], opts["norm_std"]
  if not len(mean) == len(std) == len(names):
    raise ValueError(f"pretrain.{kind}: norm_mean ({len(mean)}), norm_std "
                     f"({len(std)}) and channel_names ({len(names)}) must "
                     "have one entry per channel.")
  groups = augment.triplets(names)
  if need_groups and not groups:
    raise ValueError(
        f"pretrain.{kind} rotates sensor vectors, but no channel of {names} "
        "completes an x/y/z triplet named <placement>_<sensor>_<axis>; set "
        f"pretrain.{kind}.rotation_deg=0 (or drop 'rotation').")
  return mean, std, groups


def _check_time(kind: str, key: str, need: int, time: int) -> None:
  if time < need:
    raise ValueError(f"pretrain.{kind}.{key} needs windows of at least {need} "
                     f"frames, but they have {time}; lower it or raise "
                     "data.window.")


# ------------------------------------------------------------------- cores
def masked_mse(pred: jax.Array, target: jax.Array,
               mask: jax.Array) -> jax.Array:
  """Mean over the frames where `mask` of the per-frame mean squared error.

  pred, target: <float32>[..., C]; mask: <bool>[...]. 0 if nothing is masked.
  """
  per_frame = jnp.square(pred - target).mean(-1)
  return jnp.where(mask, per_frame, 0.).sum() / jnp.maximum(mask.sum(), 1)


def forecast_targets(x: jax.Array, valid: jax.Array, horizon: int,
                     residual: bool):
  """What h_t must predict: frames t+1..t+horizon.

  Returns:
    (targets <float32>[B, T, horizon, C], mask <bool>[B, T, horizon]); the
    target j (0-based) of frame t is x[t+1+j], minus x[t] when `residual`;
    the mask is False where t or t+1+j is padding or past the window.
  """
  b, time, c = x.shape
  targets, mask = [], []
  for j in range(1, horizon + 1):
    ahead = jnp.concatenate([x[:, j:], jnp.zeros((b, min(j, time), c))], 1)
    ok = jnp.concatenate([valid[:, j:], jnp.zeros((b, min(j, time)), bool)], 1)
    targets.append(ahead - x if residual else ahead)
    mask.append(ok & valid)
  return jnp.stack(targets, 2), jnp.stack(mask, 2)


def info_nce(pred: jax.Array, target: jax.Array, valid: jax.Array,
             temperature: float):
  """InfoNCE of pred[i] against target[i] among all valid targets.

  Scores are cosine similarities / temperature; row i's negatives are every
  other valid target (other positions and other sequences).

  Args:
    pred, target: <float32>[N, D]; valid: <bool>[N].

  Returns:
    (mean loss over valid rows, top-1 accuracy of picking the positive).
  """
  logits = _normalize(pred) @ _normalize(target).T / temperature
  logits = jnp.where(valid[None, :], logits, -1e9)
  positive = jnp.diagonal(logits)
  row = jax.nn.logsumexp(logits, axis=1) - positive
  n = jnp.maximum(valid.sum(), 1)
  correct = logits.argmax(1) == jnp.arange(logits.shape[0])
  return (jnp.where(valid, row, 0.).sum() / n,
          jnp.where(valid, correct, False).sum() / n)


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float):
  """SimCLR's NT-Xent: z1[i] and z2[i] are positives, all else negatives.

  Args:
    z1, z2: <float32>[B, D] projections of the two views.

  Returns:
    (mean loss over the 2B anchors, top-1 accuracy of finding the positive).
  """
  b = z1.shape[0]
  z = _normalize(jnp.concatenate([z1, z2], 0))
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * b, dtype=bool), -1e9, logits)
  pos = jnp.concatenate([jnp.arange(b, 2 * b), jnp.arange(b)])
  positive = jnp.take_along_axis(logits, pos[:, None], 1)[:, 0]
  loss = (jax.nn.logsumexp(logits, axis=1) - positive).mean()
  return loss, (logits.argmax(1) == pos).mean()


def binary_transform_loss(logits: jax.Array, labels: jax.Array):
  """Saeed et al.'s binary heads: head j tells transform j from the original.

  Args:
    logits: <float32>[B, n], one logit per transform (> 0: "transformed").
    labels: <int32>[B], 0 = original, j + 1 = transform j applied.

  Head j is trained on the originals (target 0) and on the windows that got
  transform j (target 1), others ignored, the two classes weighted equally.

  Returns:
    (mean over heads of the balanced binary cross-entropy, mean accuracy over
    each head's own examples).
  """
  n = logits.shape[1]
  pos = labels[:, None] == jnp.arange(1, n + 1)[None]  # [B, n]
  neg = (labels == 0)[:, None] & jnp.ones((1, n), bool)
  def mean(v, m):
    return jnp.where(m, v, 0.).sum(0) / jnp.maximum(m.sum(0), 1)

  loss = 0.5 * (mean(jax.nn.softplus(-logits), pos)
                + mean(jax.nn.softplus(logits), neg))
  used = pos | neg
  correct = jnp.where(used, (logits > 0) == pos, False).sum()
  return loss.mean(), correct / jnp.maximum(used.sum(), 1)


def multiclass_loss(logits: jax.Array, labels: jax.Array):
  """Softmax cross-entropy over {original, transform 1..n}; labels <int>[B]."""
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None],
                             1)[:, 0]
  return nll.mean(), (logits.argmax(1) == labels).mean()


# ------------------------------------------------------ masked reconstruction
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
  opts = validate("masked_reconstruction", opts)
  heads = {"reconstructor": models.init_reconstructor(key, cfg)}
  if opts["mask_value"] == "learned":
    heads["mask_token"] = {"value": jnp.zeros((cfg.in_dim,), jnp.float32)}
  return heads


def masked_reconstruction_loss(params, batch, rng, *, cfg: models.ModelConfig,
                               opts: dict, dropout: bool = True):
  """MSE on masked valid frames; masked inputs replaced by `mask_value`.

  The encoder is causal, so a masked frame is predicted from the frames before
  it plus any unmasked context inside the span: a forecasting-flavoured BERT.
  "zero" fills with the training mean of each channel, "noise" with N(0, 1)
  (the channels' own scale), "learned" with a trained token.
  """
  opts = validate("masked_reconstruction", opts)
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
  h = _encode(params, cfg, jnp.where(masked[..., None], fill, x),
              dropout_rng, dropout)
  loss = masked_mse(models.reconstruct(params, h), x, masked)
  return loss, {"masked_fraction": masked.sum() / jnp.maximum(valid.sum(), 1)}


# -------------------------------------------------------------------- forecast
def _init_forecast(key, cfg, opts):
  opts = validate("forecast", opts)
  return {"forecaster": _linear_init(
      key, cfg.hidden, opts["horizon"] * cfg.in_dim)}


def forecast_loss(params, batch, rng, *, cfg: models.ModelConfig, opts: dict,
                  dropout: bool = True):
  """MSE of h_t's forecasts of frames t+1..t+horizon (valid targets only).

  GPT-style: every frame is a training position, and the causal encoder never
  sees the frames it forecasts. With `residual` the head predicts the change
  from x[t], which removes the (strong) persistence baseline from the target.
  """
  opts = validate("forecast", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, c = x.shape
  k = opts["horizon"]
  _check_time("forecast", "horizon", k + 1, time)
  h = _encode(params, cfg, x, rng, dropout)
  pred = _linear(params["forecaster"], h).reshape(b, time, k, c)
  targets, mask = forecast_targets(x, valid, k, opts["residual"])
  metrics = {"mse_h1": masked_mse(pred[:, :, 0], targets[:, :, 0],
                                  mask[:, :, 0])}
  if k > 1:
    metrics[f"mse_h{k}"] = masked_mse(pred[:, :, -1], targets[:, :, -1],
                                      mask[:, :, -1])
  return masked_mse(pred, targets, mask), metrics


# ----------------------------------------------------------------- autoencoder
def _decoder_in_dim(cfg, opts) -> int:
  return cfg.in_dim if opts["decoder_input"] == "previous" else 1


def _init_autoencoder(key, cfg, opts):
  opts = validate("autoencoder", opts)
  cell = cells.get(cfg.cell)
  n_leaves = len(jax.tree.leaves(cell.initial_carry(1, cfg.hidden)))
  k_init, k_cell, k_out = jax.random.split(key, 3)
  return {"decoder": {
      "init": _linear_init(k_init, cfg.hidden, n_leaves * cfg.hidden),
      "cell": cell.init(k_cell, _decoder_in_dim(cfg, opts), cfg.hidden),
      "out": _linear_init(k_out, cfg.hidden, cfg.in_dim)}}


def autoencoder_loss(params, batch, rng, *, cfg: models.ModelConfig,
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
  opts = validate("autoencoder", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, c = x.shape
  enc_rng, noise_rng = jax.random.split(rng)
  x_in = x
  if opts["denoise_std"] > 0:
    x_in = jnp.where(valid[..., None], x + opts["denoise_std"]
                     * jax.random.normal(noise_rng, x.shape), x)
  h = _encode(params, cfg, x_in, enc_rng, dropout)
  last = last_valid_index(valid)
  z = jnp.take_along_axis(h, last[:, None, None], axis=1)[:, 0]

  dec = params["decoder"]
  cell = cells.get(cfg.cell)
  template = cell.initial_carry(b, cfg.hidden)
  leaves, treedef = jax.tree.flatten(template)
  init = jnp.tanh(_linear(dec["init"], z))
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
  pred = _linear(dec["out"], hs)
  loss = masked_mse(pred, target, mask)
  return loss, {"mse": loss}


# ------------------------------------------------------------------------- CPC
def _init_cpc(key, cfg, opts):
  opts = validate("cpc", opts)
  k, d = opts["horizon"], opts["embedding_dim"]
  k_pred, k_tgt = jax.random.split(key)
  w = jax.nn.initializers.lecun_normal(batch_axis=0)(
      k_pred, (k, cfg.hidden, d), jnp.float32)
  return {"cpc": {
      "predictors": {"w": w, "b": jnp.zeros((k, d), jnp.float32)},
      "frame_embedding": _mlp_init(k_tgt, (cfg.in_dim, cfg.hidden, d))}}


def cpc_loss(params, batch, rng, *, cfg: models.ModelConfig, opts: dict,
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
  opts = validate("cpc", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, _ = x.shape
  k_max, s = opts["horizon"], opts["anchors"]
  _check_time("cpc", "horizon + anchors", k_max + s, time)
  anchor_rng, dropout_rng = jax.random.split(rng)
  h = _encode(params, cfg, x, dropout_rng, dropout)
  z = _mlp(params["cpc"]["frame_embedding"], x)
  t0 = jnp.argsort(jax.random.uniform(anchor_rng, (b, time - k_max)),
                   axis=1)[:, :s]  # Distinct anchors per sequence.
  take = lambda a, t: jnp.take_along_axis(  # noqa: E731
      a, t.reshape(b, s, *([1] * (a.ndim - 2))), axis=1)
  c = take(h, t0).reshape(b * s, -1)
  anchor_ok = take(valid, t0).reshape(-1)
  pred_params = params["cpc"]["predictors"]
  losses, accs = [], []
  for k in range(1, k_max + 1):
    pred = c @ pred_params["w"][k - 1] + pred_params["b"][k - 1]
    tgt = take(z, t0 + k).reshape(b * s, -1)
    ok = anchor_ok & take(valid, t0 + k).reshape(-1)
    loss_k, acc_k = info_nce(pred, tgt, ok, opts["temperature"])
    losses.append(loss_k)
    accs.append(acc_k)
  return jnp.mean(jnp.stack(losses)), {"accuracy": jnp.mean(jnp.stack(accs)),
                                       "accuracy_k1": accs[0]}


# ---------------------------------------------------------------------- SimCLR
def _init_simclr(key, cfg, opts):
  opts = validate("simclr", opts)
  return {"projection": _mlp_init(
      key, (cfg.hidden, cfg.hidden, opts["projection_dim"]))}


def simclr_view(rng, x: jax.Array, valid: jax.Array, opts: dict) -> jax.Array:
  """One augmented view of normalised windows x [B, T, C] (simclr options).

  Rotation (one per placement, shared by its sensors) and scaling act on raw
  units through the normaliser; time warp, jitter and channel dropout on the
  normalised signals. Padding stays 0.
  """
  mean, std, groups = _physical(opts, "simclr", opts["rotation_deg"] > 0)
  k_rot, k_scale, k_warp, k_jit, k_drop = jax.random.split(rng, 5)
  lengths = valid.sum(1)
  raw = augment.to_raw(x, mean, std)
  if opts["rotation_deg"] > 0:
    raw = augment.rotation(k_rot, raw, groups,
                           jnp.deg2rad(opts["rotation_deg"]))
  if opts["scale_std"] > 0:
    raw = augment.scaling(k_scale, raw, opts["scale_std"])
  v = augment.from_raw(raw, mean, std)
  if opts["time_warp_std"] > 0:
    v = augment.time_warp(k_warp, v, opts["time_warp_std"], lengths=lengths)
  if opts["jitter_std"] > 0:
    v = augment.jitter(k_jit, v, opts["jitter_std"])
  if opts["channel_dropout"] > 0:
    v = augment.channel_dropout(k_drop, v, opts["channel_dropout"])
  return jnp.where(valid[..., None], v, 0.)


def simclr_loss(params, batch, rng, *, cfg: models.ModelConfig, opts: dict,
                dropout: bool = True):
  """SimCLR (Chen et al. 2020): NT-Xent between two views of each window.

  The representation is the encoder output at the last valid frame ("last",
  the state the online classifier reads) or its mean over valid frames,
  through a 2-layer projection MLP.
  """
  opts = validate("simclr", opts)
  x, valid = batch["signals"], batch["valid"]
  b = x.shape[0]
  view_rng, dropout_rng = jax.random.split(rng)
  # vmap over the two keys: one copy of each random op (faster compile).
  views = jax.vmap(lambda k: simclr_view(k, x, valid, opts))(
      jax.random.split(view_rng)).reshape(2 * b, *x.shape[1:])
  both_valid = jnp.concatenate([valid, valid], 0)
  h = _encode(params, cfg, views, dropout_rng, dropout)
  proj = _mlp(params["projection"], _pool(h, both_valid, opts["pool"]))
  loss, acc = nt_xent(proj[:b], proj[b:], opts["temperature"])
  return loss, {"accuracy": acc}


# -------------------------------------------------------- transform prediction
def _transform_names(opts) -> tuple[str, ...]:
  return tuple(opts["transforms"].split(","))


def _init_transform_prediction(key, cfg, opts):
  opts = validate("transform_prediction", opts)
  n = len(_transform_names(opts))
  out = n if opts["head"] == "binary" else n + 1
  return {"transform_head": _linear_init(key, cfg.hidden, out)}


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
                    opts: dict) -> jax.Array:
  """x [B, T, C] with window b transformed as labels[b] says (0: as is).

  Noise, flip, permutation and time warp act on the normalised signals;
  scaling, rotation, negation and channel shuffle on raw units (see augment).
  """
  names = _transform_names(opts)
  mean, std, groups = _physical(opts, "transform_prediction",
                                "rotation" in names)
  lengths = valid.sum(1)
  raw = augment.to_raw(x, mean, std)
  back = lambda r: augment.from_raw(r, mean, std)  # noqa: E731
  make = {
      "noise": lambda k: augment.jitter(k, x, opts["noise_std"]),
      "scaling": lambda k: back(augment.scaling(k, raw, opts["scale_std"])),
      "rotation": lambda k: back(augment.rotation(
          k, raw, groups, jnp.deg2rad(opts["rotation_deg"]))),
      "negation": lambda k: back(augment.negate(k, raw)),
      "flip": lambda k: augment.flip(k, x, lengths),
      "permutation": lambda k: augment.permutation(k, x, opts["segments"],
                                                   lengths),
      "time_warp": lambda k: augment.time_warp(k, x, opts["time_warp_std"],
                                               lengths=lengths),
      "channel_shuffle": lambda k: back(augment.channel_shuffle(k, raw)),
  }
  keys = jax.random.split(rng, len(names))
  out = x
  for j, (name, k) in enumerate(zip(names, keys)):
    out = jnp.where((labels == j + 1)[:, None, None], make[name](k), out)
  return jnp.where(valid[..., None], out, 0.)


def transform_prediction_loss(params, batch, rng, *,
                              cfg: models.ModelConfig, opts: dict,
                              dropout: bool = True):
  """Transformation recognition (Saeed et al. 2019), one transform per window.

  "binary": one logistic head per transform, each trained on originals vs
  windows with that transform (Saeed's multi-task setup, sampled per batch);
  "multiclass": one softmax head over {original, transforms}. The heads read
  the pooled encoder output (see simclr_loss).
  """
  opts = validate("transform_prediction", opts)
  x, valid = batch["signals"], batch["valid"]
  n = len(_transform_names(opts))
  if "permutation" in _transform_names(opts):
    _check_time("transform_prediction", "segments", opts["segments"],
                x.shape[1])
  label_rng, tf_rng, dropout_rng = jax.random.split(rng, 3)
  labels = transform_labels(label_rng, x.shape[0], n,
                            opts["original_fraction"])
  xt = transform_batch(tf_rng, x, valid, labels, opts)
  h = _encode(params, cfg, xt, dropout_rng, dropout)
  logits = _linear(params["transform_head"],
                          _pool(h, valid, opts["pool"]))
  core = binary_transform_loss if opts["head"] == "binary" else multiclass_loss
  loss, acc = core(logits, labels)
  return loss, {"accuracy": acc}


# ------------------------------------------------------------------- fine-tune
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


PRETEXTS: dict[str, Pretext] = {
    "masked_reconstruction": Pretext(_init_masked_reconstruction,
                                     masked_reconstruction_loss),
    "forecast": Pretext(_init_forecast, forecast_loss),
    "autoencoder": Pretext(_init_autoencoder, autoencoder_loss),
    "cpc": Pretext(_init_cpc, cpc_loss),
    "simclr": Pretext(_init_simclr, simclr_loss),
    "transform_prediction": Pretext(_init_transform_prediction,
                                    transform_prediction_loss),
}
