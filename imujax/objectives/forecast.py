"""Forecasting: from h_t predict the frames t+1..t+horizon."""


from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options

def _init_forecast(key, cfg, opts):
  opts = options.validate("forecast", opts)
  return {"forecaster": losses.linear_init(
      key, cfg.hidden, opts["horizon"] * cfg.in_dim)}


def forecast_loss(params, batch, rng, stats, *, cfg: models.ModelConfig, opts: dict,
                  dropout: bool = True):
  """MSE of h_t's forecasts of frames t+1..t+horizon (valid targets only).

  GPT-style: every frame is a training position, and the causal encoder never
  sees the frames it forecasts. With `residual` the head predicts the change
  from x[t], which removes the (strong) persistence baseline from the target.
  """
  opts = options.validate("forecast", opts)
  x, valid = batch["signals"], batch["valid"]
  b, time, c = x.shape
  k = opts["horizon"]
  losses.check_time("forecast", "horizon", k + 1, time)
  h = losses.encode(params, cfg, x, rng, dropout)
  pred = losses.linear(params["forecaster"], h).reshape(b, time, k, c)
  targets, mask = losses.forecast_targets(x, valid, k, opts["residual"])
  metrics = {"mse_h1": losses.masked_mse(pred[:, :, 0], targets[:, :, 0],
                                  mask[:, :, 0])}
  if k > 1:
    metrics[f"mse_h{k}"] = losses.masked_mse(pred[:, :, -1], targets[:, :, -1],
                                      mask[:, :, -1])
  return losses.masked_mse(pred, targets, mask), metrics


OBJECTIVE = objectives.Objective('forecast', _init_forecast, forecast_loss)
