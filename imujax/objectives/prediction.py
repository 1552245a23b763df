"""Motion prediction: the input channels h ms ahead (target "prediction").

At every frame t a per-frame linear head predicts, for each horizon h of
`finetune.prediction.horizons_ms` (converted to frames at the data's rate,
rounded, >= 1), the normalised inputs x[t + h] (or x[t + h] − x[t] with
`residual`). The loss is the mean squared error over the frames where t and
t + h are both valid. It needs no labels (the label budget still picks the
training recordings).

Metrics (`score`), in normalised units (each channel in sds of its training
distribution, pooled over channels): RMSE per horizon of the model and of
two baselines computed on the same frames in the same evaluation — the last
value x[t], and constant velocity x[t] + h·(x[t] − x[t−1])
(`metrics.prediction_errors`).
"""

import jax.numpy as jnp
import numpy as np

from imujax import metrics
from imujax import models
from imujax import objectives
from imujax.objectives import losses


def horizons(opts) -> tuple[int, ...]:
  """The horizons in frames, from opts["horizons_ms"] and the data's rate."""
  rate = opts["sample_rate_hz"]
  return tuple(max(1, int(round(float(ms) * rate / 1000.)))
               for ms in opts["horizons_ms"].split(","))


def _init_heads(key, cfg: models.ModelConfig, opts) -> dict:
  return {"predictor": losses.linear_init(key, cfg.hidden,
                                          len(horizons(opts)) * cfg.in_dim)}


def ahead(x, valid, horizon: int):
  """(x[t + horizon] <float32>[B, T, C], both-valid mask <bool>[B, T])."""
  b, time, c = x.shape
  k = min(horizon, time)
  future = jnp.concatenate([x[:, k:], jnp.zeros((b, k, c), x.dtype)], 1)
  ok = jnp.concatenate([valid[:, k:], jnp.zeros((b, k), bool)], 1)
  return future, ok & valid


def prediction_loss_core(pred, x, valid, steps, residual: bool):
  """Mean over horizons of the masked MSE, and the MSE per horizon.

  Args:
    pred: <float32>[B, T, H, C], the head's output per horizon.
    x: <float32>[B, T, C] normalised inputs; valid: <bool>[B, T].
    steps: the H horizons in frames.
    residual: whether pred is x[t + h] − x[t] (else x[t + h]).
  """
  loss, per = 0., {}
  for i, step in enumerate(steps):
    future, mask = ahead(x, valid, step)
    target = future - x if residual else future
    per[f"mse_{step}"] = losses.masked_mse(pred[:, :, i], target, mask)
    loss += per[f"mse_{step}"] / len(steps)
  return loss, per


def prediction_loss(params, batch, rng, stats, *, cfg: models.ModelConfig,
                    opts, dropout: bool = True):
  """Mean over horizons of the masked MSE of the h-ahead prediction."""
  del stats  # Predicts normalised inputs.
  x, valid = batch["signals"], batch["valid"]
  steps = horizons(opts)
  if max(steps) >= x.shape[1]:
    raise ValueError(
        f"finetune.prediction.horizons_ms={opts['horizons_ms']!r} reaches "
        f"{max(steps)} frames ahead, but the windows have {x.shape[1]}; "
        "raise data.window or shorten the horizons.")
  h = losses.encode(params, cfg, x, rng, dropout)
  pred = losses.linear(params["predictor"], h).reshape(
      *h.shape[:2], len(steps), x.shape[-1])
  return prediction_loss_core(pred, x, valid, steps, opts["residual"])


def predict(params, batch, stats, *, cfg: models.ModelConfig, opts):
  """<float32>[B, T, H·C]: predicted x[t + h] per horizon, normalised."""
  del stats
  x = batch["signals"]
  h, _ = models.encode(params["encoder"], cfg, x)
  n = len(horizons(opts))
  pred = losses.linear(params["predictor"], h).reshape(*h.shape[:2], n, -1)
  if opts["residual"]:
    pred = pred + x[:, :, None]
  return pred.reshape(*h.shape[:2], -1)


def score(outputs, recordings, stats, opts) -> dict:
  """RMSE per horizon of the model, last value and constant velocity.

  Returns:
    {"rmse_<ms>ms", "rmse_last_<ms>ms", "rmse_velocity_<ms>ms"} per horizon
    (normalised units), "rmse" / "rmse_last" / "rmse_velocity" of the first
    horizon, and "horizon_frames".
  """
  del stats
  steps = horizons(opts)
  out = {}
  for i, (ms, step) in enumerate(zip(opts["horizons_ms"].split(","),
                                     steps)):
    errors = []
    for pred, rec in zip(outputs, recordings):
      n = int(rec["valid"].sum())  # Valid frames are a prefix.
      c = rec["signals"].shape[-1]
      errors.append(metrics.prediction_errors(
          rec["signals"][:n], pred[:n].reshape(n, len(steps), c)[:, i],
          step))
    rmse = metrics.prediction_rmse(errors)
    tag = f"{float(ms):g}ms"
    out.update({f"rmse_{tag}": rmse["model"],
                f"rmse_last_{tag}": rmse["last"],
                f"rmse_velocity_{tag}": rmse["velocity"]})
    if i == 0:
      out.update({"rmse": rmse["model"], "rmse_last": rmse["last"],
                  "rmse_velocity": rmse["velocity"]})
  return {**out, "horizon_frames": list(steps)}


OBJECTIVE = objectives.Objective("prediction", _init_heads, prediction_loss,
                                 predict=predict, score=score)
