"""Objectives: what a phase trains the encoder for, one file each, by name.

An objective is its heads and its loss, registered under a name:

  objective = objectives.get("simclr")
  opts = {**options.validate("simclr", config.pretrain.simclr),
          **losses.data_options(channel_names)}
  params = {"encoder": models.init_encoder(k1, cfg),
            **objective.init_heads(k2, cfg, opts)}
  loss, metrics = objective.loss(params, batch, rng, stats, cfg=cfg,
                                 opts=opts)

`batch` is a dict of host arrays:
  signals: <float32>[batch, time, channels], normalised;
  labels:  <int32>[batch, time], -1 where a frame has no label;
  valid:   <bool>[batch, time], False on padding (a suffix of the window).
`stats` is the data the loss needs besides the batch, as arrays (never
closed over, so members with different normalisers share one program):
{"mean", "std"} <float32>[channels], the training normaliser
(`losses.stats_of`). `cfg` (the model shape) and `opts` (options, plus the
static `channel_names`) are bound with `functools.partial` before jit.
`dropout=False` turns dropout off (evaluation); the rng still draws masks
and augmentations. Every loss returns (scalar loss, dict of scalar metrics).

Built in: "classification" (per-frame labels: the fine-tune target, and
supervised pre-training on another dataset) and the self-supervised
"masked_reconstruction", "forecast", "autoencoder", "cpc", "simclr",
"transform_prediction". Options and their defaults: `options.DEFAULTS`.
Adding an objective: a new file defining `OBJECTIVE`, one line in `_BUILT_IN`
(and its options, if any, in `options.DEFAULTS`); or `register(...)` from
your own code.

This module and `options` import no JAX (config files read the options);
an objective's module is imported when it is first asked for.
"""

import importlib
from typing import Callable, NamedTuple

from imujax.objectives import options


class Objective(NamedTuple):
  """A training objective: its heads and its loss."""
  name: str
  # (key, cfg, opts) -> {head name: params}; never "encoder".
  init_heads: Callable[..., dict]
  # (params, batch, rng, stats, *, cfg, opts, dropout=True) -> (loss, metrics).
  loss: Callable[..., tuple]
  # True: trains a per-frame classifier on the labels (the model gets
  # `num_classes` outputs; scored by macro-F1). False: self-supervised
  # (scored by its own loss on fixed validation windows).
  uses_labels: bool = False


# Built-in objectives: name -> module of this package that defines OBJECTIVE.
_BUILT_IN = {
    "classification": "classification",
    "masked_reconstruction": "masked_reconstruction",
    "forecast": "forecast",
    "autoencoder": "autoencoder",
    "cpc": "cpc",
    "simclr": "simclr",
    "transform_prediction": "transform_prediction",
}
_REGISTERED: dict[str, Objective] = {}


def names() -> tuple[str, ...]:
  """Every objective's name: built in, then registered."""
  return (*_BUILT_IN, *(n for n in _REGISTERED if n not in _BUILT_IN))


def self_supervised() -> tuple[str, ...]:
  """Names of the objectives that need no labels (pretext objectives)."""
  return tuple(n for n in names() if n != "classification"
               and (n in _BUILT_IN or not _REGISTERED[n].uses_labels))


def register(objective: Objective, defaults: dict | None = None) -> None:
  """Adds `objective` (and its option defaults, plain Python values).

  After this, `configlib.base()` has `pretrain.<name>` with the defaults and
  `pretrain.objective=<name>` trains it, like a built-in one.
  """
  if objective.name in _BUILT_IN:
    raise ValueError(f"Objective {objective.name!r} is built in; register "
                     "yours under another name.")
  _REGISTERED[objective.name] = objective
  options.DEFAULTS[objective.name] = dict(defaults or {})


def get(name: str) -> Objective:
  """The objective called `name`; an error listing the choices otherwise."""
  if name in _REGISTERED:
    return _REGISTERED[name]
  if name not in _BUILT_IN:
    raise ValueError(f"Unknown objective {name!r} (config key "
                     f"pretrain.objective); choose one of {list(names())}.")
  module = importlib.import_module(f"imujax.objectives.{_BUILT_IN[name]}")
  return module.OBJECTIVE
