r"""The pure streaming step: a model's params driven one frame at a time.

Owns `init_state`, `step` and `scan_steps`, the streaming twin of
`models.classify_sequence` (and of the reconstruction head) for any params
dict `models.init(key, cfg)` returns. The model's shape is the
`models.ModelConfig` passed in, never guessed from the params: for a workdir
it is `run_record.read(workdir).model`, for an exported artifact the config
stored in it. `cfg` is a static argument under jit, and the cell is
`cells.get(cfg.cell)` (inside `models`), so a cell added with `cells.register`
streams with no change here.

  state = init_state(cfg, batch)
  state, out = step(params, cfg, state, x_t)   x_t: <float32>[batch, C]
  out["logits"], out["probs"]: <float32>[batch, K] (cfg.num_classes > 0);
  out["reconstruction"]: <float32>[batch, C] (cfg.reconstruct)

and, when the params hold a fine-tune target kind's head
(imujax/objectives/{regression,events,prediction}.py):

  out["regression"]: <float32>[batch, R] standardised targets ("regressor";
    `regression.to_physical` with the run record's normalizer
    target_mean / target_std gives physical units, as the exported
    artifact's step does: `export.Artifact.step_outputs`);
  out["event_probs"]: <float32>[batch, E] ("event_detector"; decode them
    with `metrics.decode_events`);
  out["prediction"]: <float32>[batch, H * C] ("predictor": the head's raw
    output, x[t + h] − x[t] with the prediction.residual option).
"""

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from imujax import models


def init_state(cfg: models.ModelConfig, batch: int) -> list:
  """The cell's initial carries of `batch` streams, one pytree per layer.

  Every leaf is its own buffer (the cells guarantee it), so a jitted step
  may donate the state.
  """
  return models.initial_state(cfg, batch)


def step(params: models.Params, cfg: models.ModelConfig, state: list,
         x_t: jax.Array) -> tuple[list, dict]:
  """One normalised frame per stream through the encoder and heads.

  Args:
    params: `models.init(key, cfg)` layout.
    cfg: the model's shape (static under jit).
    state: per-layer carries from `init_state` or the previous `step`.
    x_t: <float32>[batch, cfg.in_dim], normalised.

  Returns:
    (state, outputs): see the module docstring for the outputs.
  """
  state, h = models.encoder_step(params["encoder"], cfg, state, x_t)
  out = {}
  if cfg.num_classes:
    logits = models.classify(params, h)
    out["logits"] = logits
    out["probs"] = jax.nn.softmax(logits, axis=-1)
  if cfg.reconstruct:
    out["reconstruction"] = models.reconstruct(params, h)
  # Target heads, by their params' names: the run's shape does not list
  # them (its cfg.num_classes is 0 for these kinds).
  if "regressor" in params:
    out["regression"] = models.linear(params["regressor"], h)
  if "event_detector" in params:
    out["event_probs"] = jax.nn.sigmoid(
        models.linear(params["event_detector"], h))
  if "predictor" in params:
    out["prediction"] = models.linear(params["predictor"], h)
  return state, out


@functools.partial(jax.jit, static_argnums=1)
def scan_steps(params: models.Params, cfg: models.ModelConfig, xs: jax.Array,
               state: Optional[list] = None) -> tuple[list, dict]:
  """`step` over xs <float32>[batch, time, C]; outputs [batch, time, ...]."""
  if state is None:
    state = init_state(cfg, xs.shape[0])
  state, out = jax.lax.scan(lambda s, x: step(params, cfg, s, x), state,
                            jnp.swapaxes(xs, 0, 1))
  return state, jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), out)
