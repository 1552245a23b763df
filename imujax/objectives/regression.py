"""Per-frame regression of float targets (`finetune.target="regression"`).

The targets are the dataset's `targets_<name>` tracks named in
`finetune.tracks` (batch["targets"] <float32>[B, T, R], NaN = no value).
Each is standardised with the mean and sd of its values over the labelled
training recordings (`fit_target_stats`), which reach the loss as data in
`stats` ("target_mean", "target_std" <float32>[R]); a per-frame linear head
predicts the standardised values; frames without a value are masked out.
Metrics (`score`) are per target in its physical units: MAE, RMSE, R² and
Pearson r over every valid frame with a value (`metrics.regression_scores`).
"""

import jax.numpy as jnp
import numpy as np

from imujax import metrics
from imujax import models
from imujax import objectives
from imujax.objectives import losses


def _init_heads(key, cfg: models.ModelConfig, opts) -> dict:
  return {"regressor": losses.linear_init(key, cfg.hidden,
                                          len(opts["tracks"]))}


def fit_target_stats(recordings, opts) -> dict:
  """{"target_mean", "target_std"}: <float32>[R] over the labelled frames.

  Args:
    recordings: the labelled training recordings (`Recording.targets` as
      selected for the run, in the order of opts["tracks"]).
    opts: the options, with "tracks".

  Raises:
    ValueError: a target without a single value in the training recordings,
      or (with opts["units"]) without a unit, naming finetune.tracks.
  """
  mean, std = [], []
  units = opts.get("units")  # Given by the trainer: the dataset's metadata.
  for j, name in enumerate(opts["tracks"]):
    if units is not None and not str(units[j]).strip():
      raise ValueError(
          f"finetune.tracks: target {name!r} declares no unit (the dataset's "
          "metadata regression_targets lacks it); metrics are reported in "
          "it: add it to the builder's TARGETS and prepare the data again.")
    values = np.concatenate([r.targets[name] for r in recordings]).astype(
        np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
      raise ValueError(
          f"finetune.tracks: target {name!r} has no value (all NaN) in the "
          f"{len(recordings)} labelled training recordings; pick another "
          "target or raise data.labeled_subjects / labeled_recordings.")
    mean.append(values.mean())
    # A constant target would divide by zero; leave it unscaled.
    std.append(values.std() if values.std() > 1e-8 else 1.)
  return {"target_mean": np.asarray(mean, np.float32),
          "target_std": np.asarray(std, np.float32)}


def regression_loss_core(pred: jnp.ndarray, target: jnp.ndarray,
                         mask: jnp.ndarray, kind: str,
                         delta: float = 1.) -> jnp.ndarray:
  """Mean over masked entries of the squared (or Huber) error.

  Args:
    pred, target: <float32>[..., R] (target may hold NaN where masked).
    mask: <bool>[..., R].
    kind: "mse" (mean of e²/1) or "huber" (e²/2 up to |e| = delta, then
      linear: delta·(|e| − delta/2)).
    delta: Huber's switch point.

  Returns:
    A scalar; 0 when nothing is masked in.
  """
  # NaN targets are replaced before the difference: a NaN times a zero
  # weight would still be NaN (and so would its gradient).
  err = pred - jnp.where(mask, target, 0.)
  if kind == "huber":
    a = jnp.abs(err)
    per = jnp.where(a <= delta, 0.5 * err * err, delta * (a - 0.5 * delta))
  else:
    per = err * err
  return jnp.where(mask, per, 0.).sum() / jnp.maximum(mask.sum(), 1)


def standardised_targets(batch, stats):
  """(z <float32>[B, T, R], mask <bool>[B, T, R]) of the batch's targets."""
  y = batch["targets"]
  mask = batch["valid"][..., None] & jnp.isfinite(y)
  z = (jnp.where(mask, y, 0.) - stats["target_mean"]) / stats["target_std"]
  return z, mask


def regression_loss(params, batch, rng, stats, *, cfg: models.ModelConfig,
                    opts, dropout: bool = True):
  """Mean per-frame error on standardised targets, over frames with a value."""
  h = losses.encode(params, cfg, batch["signals"], rng, dropout)
  pred = losses.linear(params["regressor"], h)
  z, mask = standardised_targets(batch, stats)
  loss = regression_loss_core(pred, z, mask, opts["loss"],
                              opts["huber_delta"])
  mae = jnp.where(mask, jnp.abs(pred - z), 0.).sum() / jnp.maximum(
      mask.sum(), 1)
  return loss, {"mae_standardised": mae}


def to_physical(z, stats):
  """Standardised head outputs [..., R] in the targets' units."""
  return z * stats["target_std"] + stats["target_mean"]


def predict(params, batch, stats, *, cfg: models.ModelConfig, opts):
  """<float32>[B, T, R]: the causal per-frame predictions in target units."""
  del opts  # The head's width is fixed by the params.
  h, _ = models.encode(params["encoder"], cfg, batch["signals"])
  return to_physical(losses.linear(params["regressor"], h), stats)


def score(outputs, recordings, stats, opts) -> dict:
  """Per-target MAE, RMSE, R², r in physical units, pooled over frames.

  Args:
    outputs: per recording <float32>[T_i, R] (`predict`).
    recordings: per recording {"targets": [T_i, R], "valid": [T_i], ...}.
    stats, opts: the run's (opts: "tracks", "units").

  Returns:
    {"per_target": {name: scores + "unit"}, and "mae", "rmse", "r2",
    "pearson_r", "frames": the first target's scores at the top level (the
    headline; per_target has the others)}. Scores include "mae_train_mean"
    and "rmse_train_mean": those of predicting the labelled training frames'
    mean (stats["target_mean"]) at every frame, the floor a model must beat
    (R² compares with the test frames' own mean, which no model knows).
  """
  constant = np.asarray(stats["target_mean"], np.float64)
  names = opts["tracks"]
  units = dict(zip(names, opts.get("units") or [""] * len(names)))
  truth = np.concatenate([np.where(r["valid"][:, None], r["targets"], np.nan)
                          for r in recordings]) if recordings else np.zeros(
                              (0, len(names)))
  pred = (np.concatenate(outputs) if outputs
          else np.zeros((0, len(names))))
  per_target = {}
  for j, n in enumerate(names):
    floor = metrics.regression_scores(
        truth[:, j], np.full(len(truth), constant[j]))
    per_target[n] = {**metrics.regression_scores(truth[:, j], pred[:, j]),
                     "mae_train_mean": floor["mae"],
                     "rmse_train_mean": floor["rmse"], "unit": units[n]}
  head = per_target[names[0]]
  return {**{k: head[k] for k in ("mae", "rmse", "r2", "pearson_r",
                                  "mae_train_mean", "rmse_train_mean",
                                  "frames")},
          "per_target": per_target}


OBJECTIVE = objectives.Objective(
    "regression", _init_heads, regression_loss, predict=predict, score=score,
    fit_stats=fit_target_stats)
