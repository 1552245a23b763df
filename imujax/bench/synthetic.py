"""A random-weight classifier run (no training, no workdir) for benchmarks.

Latency and capacity do not depend on what the weights learnt, only on the
model's shape, so the streaming and live benchmarks build their models here.
"""

import dataclasses
from typing import Sequence


def random_checkpoint(channel_names: Sequence[str], class_names: Sequence[str],
                      rate_hz: float, cell: str = "lstm", hidden: int = 64,
                      layers: int = 2, seed: int = 0, std: float = 1.0):
  """An `online.model.Checkpoint` of a random-weight classifier of `cell`;
  its normaliser has mean 0 and standard deviation `std` per channel."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from imujax import models  # pylint: disable=g-import-not-at-top
  from imujax.online import model as model_lib  # pylint: disable=g-import-not-at-top
  from imujax.training import run_record  # pylint: disable=g-import-not-at-top

  c = len(channel_names)
  cfg = models.ModelConfig(in_dim=c, cell=cell, hidden=hidden, layers=layers,
                           num_classes=len(class_names))
  params = jax.tree.map(np.asarray, models.init(jax.random.key(seed), cfg))
  record = run_record.RunRecord(
      phase="finetune", objective="classification", dataset="synthetic",
      config={}, model_config=dataclasses.asdict(cfg), splits={},
      labeled_recordings=[], channel_names=list(channel_names),
      class_names=list(class_names), sample_rate_hz=float(rate_hz),
      normalizer={"mean": [0.] * c, "std": [float(std)] * c}, source={})
  return model_lib.Checkpoint(record, params, 0)
