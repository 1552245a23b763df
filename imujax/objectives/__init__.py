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
supervised pre-training on another dataset), the self-supervised
"masked_reconstruction", "forecast", "autoencoder", "cpc", "simclr",
"transform_prediction", "corpus_supervised" (supervised: the labels of a
pooled corpus's members, a head each; `pretrain.corpus` only), and the
fine-tune target kinds (`finetune.target`) "regression" (float `targets_*`
tracks), "events" (instants of an integer track) and "prediction" (the
inputs `h` ms ahead), whose batches also hold
  tracks:  <int32>[batch, time, E], -1 where unknown or padding;
  targets: <float32>[batch, time, R], NaN where no value or padding,
in the order of `finetune.tracks`. Options and their defaults:
`options.DEFAULTS` (pretext) and `options.TARGET_DEFAULTS` (target kinds).
Adding an objective: a new file defining `OBJECTIVE`, one line in `_BUILT_IN`
(and its options, if any, in `options.DEFAULTS`); or `register(...)` from
your own code.

This module and `options` import no JAX (config files read the options);
an objective's module is imported when it is first asked for.
"""

import importlib
from typing import Any, Callable, NamedTuple

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
  # (scored by its own loss on fixed validation windows), or a target kind.
  uses_labels: bool = False
  # A fine-tune target kind (`finetune.target`) sets the three below; the
  # evaluator then scores it with its own metrics over whole recordings.
  # (params, batch, stats, *, cfg, opts) -> <float32>[batch, time, D]:
  # per-frame outputs of the causal model, dropout off.
  predict: Callable[..., Any] | None = None
  # (outputs, recordings, stats, opts) -> dict of metrics, with outputs[i]
  # <float32>[T_i, D] and recordings[i] the batch arrays of recording i cut
  # to its T_i frames (NumPy; stats as NumPy too).
  score: Callable[..., dict] | None = None
  # (training recordings, opts) -> {name: <float32> array}: statistics of
  # the targets, fitted on the labelled training recordings, added to the
  # loss's `stats` (passed as data, never closed over).
  fit_stats: Callable[..., dict] | None = None


# Built-in objectives: name -> module of this package that defines OBJECTIVE.
_BUILT_IN = {
    "classification": "classification",
    "masked_reconstruction": "masked_reconstruction",
    "forecast": "forecast",
    "autoencoder": "autoencoder",
    "cpc": "cpc",
    "simclr": "simclr",
    "transform_prediction": "transform_prediction",
    "regression": "regression",
    "events": "events",
    "prediction": "prediction",
    "corpus_supervised": "corpus_supervised",
}
# Built-in fine-tune target kinds besides classification (`finetune.target`):
# supervised by the extra per-frame tracks (or, prediction, by the inputs
# ahead), never pretext objectives.
TARGET_KINDS = ("regression", "events", "prediction")
# Supervised on a pooled corpus's labels (one head per member): only with
# pretrain.corpus (imujax/data/CORPUS.md), never self-supervised.
CORPUS_SUPERVISED = ("corpus_supervised",)
_REGISTERED: dict[str, Objective] = {}


def names() -> tuple[str, ...]:
  """Every objective's name: built in, then registered."""
  return (*_BUILT_IN, *(n for n in _REGISTERED if n not in _BUILT_IN))


def self_supervised() -> tuple[str, ...]:
  """Names of the objectives that need no labels (pretext objectives)."""
  return tuple(n for n in names() if n != "classification"
               and n not in TARGET_KINDS and n not in CORPUS_SUPERVISED
               and (n in _BUILT_IN or not (_REGISTERED[n].uses_labels
                                           or _REGISTERED[n].score)))


def targets() -> tuple[str, ...]:
  """What `finetune.target` may name: classification and the target kinds."""
  return ("classification", *TARGET_KINDS,
          *(n for n, o in _REGISTERED.items() if o.score is not None))


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
