"""Streaming gap policy for a missing or late modality: feed it as the mean.

A multimodal source (insoles + IMU, eye tracker + IMU) may lose one
modality for a while, or start one late. The resampler waits for every
channel's finite sample (a short NaN run is interpolated, a long one held at
the last value, a channel never seen blocks the stream), so an absent
modality would stop or distort the output. With this policy, a sample in
which EVERY channel of one modality is non-finite has those channels set to
the run's normaliser mean, i.e. 0 after normalisation: exactly the input a
model trained with `model.modality_dropout` saw for a dropped modality.
Each such (sample, modality) is counted in `counts[modality]`. A sample in
which only some channels of a modality are missing is an ordinary gap (the
resampler's). With a single modality nothing is replaced (that would be
no input at all).

  gaps = ModalityGaps(model.channel_names, checkpoint.mean)
  streamer = Streamer(model, names, modality_gaps=gaps)
  ... streamer.push(t, x)     # x: NaN for the absent modality's channels
  gaps.counts                 # {"gaze": 0, "pressure": 120}
"""

from typing import Sequence

import numpy as np

from imujax.objectives import modality


class ModalityGaps:
  """Replaces an absent modality's channels with the normaliser mean."""

  def __init__(self, channel_names: Sequence[str], mean):
    kinds = modality.of(channel_names)
    mean = np.asarray(mean, np.float64)
    if mean.shape != (len(kinds),):
      raise ValueError(f"ModalityGaps: mean has shape {mean.shape}, want "
                       f"({len(kinds)},), one value per channel of "
                       f"{list(channel_names)} (the run's normaliser mean).")
    self.mean = mean
    self.groups = {k: np.array([i for i, m in enumerate(kinds) if m == k])
                   for k in dict.fromkeys(kinds)}
    self.counts = dict.fromkeys(self.groups, 0)

  def __call__(self, x) -> np.ndarray:
    """<float64>[C]: sample x (the run's channel order), filled."""
    x = np.array(x, np.float64)
    if len(self.groups) < 2:
      return x
    for kind, idx in self.groups.items():
      if not np.isfinite(x[idx]).any():
        x[idx] = self.mean[idx]
        self.counts[kind] += 1
    return x
