"""imujax: recurrent networks for body-worn sensor time series, in JAX.

Pre-train a causal recurrent encoder (self-supervised or supervised), fine-tune
it for per-frame targets with few labels, and run the very same parameters one
frame at a time online. The public surface for other research code:

  import imujax
  cfg = imujax.ModelConfig(in_dim=6, cell="gru", hidden=64, layers=2,
                           num_classes=7)
  params = imujax.init(jax.random.key(0), cfg)       # {"encoder", "classifier"}
  logits = imujax.classify_sequence(params, cfg, x)  # x: <float32>[B, T, 6]
  h, state = imujax.encode(params["encoder"], cfg, x)

and the registries `imujax.cells` (recurrences by name) and
`imujax.objectives` (pretext and fine-tune losses by name). Submodules load
on first use, so `import imujax` (and the config files) stay light.

Layers, bottom up (each imports only those below it): cells, models, metrics
→ objectives → datasets, data → training → online → experiments, bench →
main. `imujax/README.md` says where to add a dataset, cell, objective, metric
or launcher.
"""

import importlib

__version__ = "0.2.0"

# Public names -> the module that owns them.
_EXPORTS = {
    "cells": "imujax.cells",
    "models": "imujax.models",
    "objectives": "imujax.objectives",
    "metrics": "imujax.metrics",
    "ModelConfig": "imujax.models",
    "init": "imujax.models",
    "encode": "imujax.models",
    "encoder_step": "imujax.models",
    "initial_state": "imujax.models",
    "classify_sequence": "imujax.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'imujax' has no attribute {name!r}")
  module = importlib.import_module(_EXPORTS[name])
  return module if module.__name__.endswith("." + name) else getattr(
      module, name)


def __dir__():
  return sorted(set(globals()) | set(__all__))
