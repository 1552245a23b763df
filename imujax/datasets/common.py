"""What every imujax builder shares: rates, the example features, manual_dir.

See CONVENTIONS.md for the example format these functions encode.
"""

from typing import Callable, Iterable, Optional

import numpy as np
import tensorflow_datasets as tfds

# Resampling rates every builder offers as configs; "native" is per dataset.
# The first is the default.
RATES_HZ = {"50hz": 50.0, "30hz": 30.0, "60hz": 60.0}


def rates(native_hz: Optional[float]) -> dict[str, Optional[float]]:
  """Config suffix -> rate in Hz, with this dataset's native rate."""
  return {**RATES_HZ, "native": native_hz}


def example_features(num_channels: int,
                     label_features: Iterable[str] = ("labels",)
                     ) -> tfds.features.FeaturesDict:
  """signals [T, C] float32, one int32 [T] per label track, subject, recording."""
  features = {name: tfds.features.Tensor(shape=(None,), dtype=np.int32)
              for name in label_features}
  features["signals"] = tfds.features.Tensor(shape=(None, num_channels),
                                             dtype=np.float32)
  features["subject"] = tfds.features.Text()
  features["recording"] = tfds.features.Text()
  return tfds.features.FeaturesDict(features)


def manual_data_dir(dl_manager, find: Callable, expected: str):
  """The data folder inside the user's manual_dir, or None to download.

  Args:
    dl_manager: the builder's download manager.
    find: maps a folder to the data folder in or below it, or None.
    expected: what `find` looks for, for the error message.

  Raises:
    FileNotFoundError: manual_dir is given but holds no such data.
  """
  try:
    manual_dir = dl_manager.manual_dir
  except AssertionError:  # No manual_dir, or an empty one: download.
    return None
  if manual_dir is None:
    return None
  data_dir = find(manual_dir)
  if data_dir is None:
    raise FileNotFoundError(
        f"{manual_dir}: no {expected} in it or below it. Point manual_dir at "
        "the upstream folder, or leave it unset to download.")
  return data_dir
