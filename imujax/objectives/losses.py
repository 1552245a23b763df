"""What every objective shares: pooling, small MLPs and the loss cores.

The cores are pure functions of predictions and targets (`masked_mse`,
`forecast_targets`, `info_nce`, `nt_xent`, `binary_transform_loss`,
`multiclass_loss`), which the tests check on perfect and wrong predictions.
`physical` turns the data statistics an objective receives as an argument
into what augmentations in physical units need.
"""

import jax
import jax.numpy as jnp

from imujax import models
from imujax.objectives import augment
from imujax.objectives import modality

linear = models.linear
linear_init = models.linear_init


def data_options(channel_names) -> dict:
  """The static data option of a dataset: its channel names.

  Channel names fix which channels rotate together, so they shape the
  program and are bound before jit; the normaliser's statistics are values,
  passed to every loss as `stats` (see `stats_of`).
  """
  return {"channel_names": tuple(channel_names)}


def stats_of(mean, std) -> dict:
  """{"mean", "std"}: <float32>[C] each, the training normaliser's statistics."""
  return {"mean": jnp.asarray(mean, jnp.float32),
          "std": jnp.asarray(std, jnp.float32)}


def mlp_init(key, dims: tuple[int, ...]) -> dict:
  keys = jax.random.split(key, len(dims) - 1)
  return {f"layer_{i}": linear_init(k, a, b)
          for i, (k, a, b) in enumerate(zip(keys, dims[:-1], dims[1:]))}


def mlp(params: dict, x: jax.Array) -> jax.Array:
  n = len(params)
  for i in range(n):
    x = linear(params[f"layer_{i}"], x)
    if i < n - 1:
      x = jax.nn.relu(x)
  return x


def encode(params, cfg, x, rng, dropout: bool) -> jax.Array:
  h, _ = models.encode(params["encoder"], cfg, x,
                       dropout_rng=rng if dropout else None)
  return h


def last_valid_index(valid: jax.Array) -> jax.Array:
  """<int32>[B]: the last valid frame of each sequence (0 if none)."""
  t = jnp.arange(valid.shape[1])
  return jnp.max(jnp.where(valid, t, 0), axis=1)


def pool(h: jax.Array, valid: jax.Array, how: str) -> jax.Array:
  """<float32>[B, H] from h [B, T, H]: the last valid frame or the mean."""
  if how == "last":
    idx = last_valid_index(valid)
    return jnp.take_along_axis(h, idx[:, None, None], axis=1)[:, 0]
  w = valid[..., None].astype(h.dtype)
  return (h * w).sum(1) / jnp.maximum(w.sum(1), 1.)


def normalize(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.square(x).sum(-1, keepdims=True),
                                       1e-12))


def physical(opts: dict, stats: dict, kind: str, need_groups: bool,
             optional_rotation: bool = False):
  """(mean, std, layout): what augmenting in physical units needs.

  Args:
    opts: the objective's options, with `channel_names` (`data_options`).
    stats: {"mean", "std"} <float32>[C] (`stats_of`), passed to the loss.
    kind: the objective, for messages.
    need_groups: whether the objective rotates x/y/z triplets.
    optional_rotation: a channel set of known modalities none of which
      rotates (insoles, gaze; no acc/gyr/mag) then simply is not rotated;
      otherwise no complete triplet is an error (names not understood).

  Returns:
    The normaliser's mean and std, and `augment.layout(channel_names)`
    (which channels each physical augmentation touches; `.groups` are the
    rotation triplets).
  """
  if "channel_names" not in opts:
    raise ValueError(
        f"pretrain.{kind} augments in physical units and needs the channel "
        f"names: pass opts={{**config.pretrain.{kind}, "
        "**losses.data_options(channel_names)}.")
  names = tuple(opts["channel_names"])
  mean, std = stats["mean"], stats["std"]
  if not mean.shape == std.shape == (len(names),):
    raise ValueError(f"pretrain.{kind}: stats mean {mean.shape}, std "
                     f"{std.shape} and channel_names ({len(names)}) must have "
                     "one entry per channel.")
  lay = augment.layout(names)
  kinds = set(modality.of(names))
  skip = (optional_rotation and not modality.takes(names, modality.ROTATION)
          and kinds - {"other"})
  if need_groups and not lay.groups and not skip:
    raise ValueError(
        f"pretrain.{kind} rotates sensor vectors, but no channel of {names} "
        "completes an x/y/z triplet named <placement>_<acc|gyr|mag>_<axis> "
        f"(modalities: {sorted(kinds)}); set "
        f"pretrain.{kind}.rotation_deg=0 (or drop 'rotation').")
  return mean, std, lay


def check_time(kind: str, key: str, need: int, time: int) -> None:
  if time < need:
    raise ValueError(f"pretrain.{kind}.{key} needs windows of at least {need} "
                     f"frames, but they have {time}; lower it or raise "
                     "data.window.")


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
  logits = normalize(pred) @ normalize(target).T / temperature
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
  z = normalize(jnp.concatenate([z1, z2], 0))
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
