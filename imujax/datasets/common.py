"""What every imujax builder shares: rates, the example features, manual_dir.

See CONVENTIONS.md for the example format these functions encode.
"""

from typing import Callable, Iterable, Optional

from etils import epath
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
  """Features: signals [T, C] float32, int32 [T] per track, subject, ..."""
  features = {name: tfds.features.Tensor(shape=(None,), dtype=np.int32)
              for name in label_features}
  features["signals"] = tfds.features.Tensor(shape=(None, num_channels),
                                             dtype=np.float32)
  features["subject"] = tfds.features.Text()
  features["recording"] = tfds.features.Text()
  return tfds.features.FeaturesDict(features)


def manual_dir_given(dl_manager):
  """TFDS's manual folder: the user's, or TFDS's default when none was given.

  TFDS substitutes `<data_dir>/downloads/manual` when no manual_dir is
  passed, so this cannot tell "none given" from a folder the user named;
  builders ask `RemembersManualDir.given_manual_dir` for that.
  """
  given = getattr(dl_manager, "_manual_dir", None)
  return epath.Path(given).expanduser() if given else None


class RemembersManualDir:
  """Builder mixin: the manual_dir the user passed, or None when none was.

  A named folder that is wrong must be an error, never a silent download;
  no folder at all means download (for builders that can). TFDS replaces a
  missing manual_dir by a default folder before the builder sees it, so the
  folder is remembered where it is passed.
  """
  given_manual_dir = None

  def download_and_prepare(self, *, download_config=None, **kwargs):
    given = download_config.manual_dir if download_config else None
    self.given_manual_dir = (epath.Path(given).expanduser() if given
                             else None)
    return super().download_and_prepare(download_config=download_config,
                                        **kwargs)


def check_manual_dir(manual_dir, find: Optional[Callable] = None,
                     expected: str = "the dataset's files"):
  """Raises FileNotFoundError unless `manual_dir` holds the expected files.

  Called before anything is prepared (and again by the builders), so that a
  mistyped or absent folder is an immediate error naming it, never a silent
  download.

  Args:
    manual_dir: the folder the user named.
    find: maps a folder to the data folder in or below it, or None.
    expected: what `find` looks for, for the message.

  Returns:
    The data folder `find` found (or `manual_dir` without `find`).
  """
  path = epath.Path(manual_dir).expanduser()
  if not path.is_dir():
    raise FileNotFoundError(
        f"{path}: manual_dir does not exist or is not a folder (from "
        "--manual_dir or data.manual_dir). Fix the path, or leave it unset "
        "for a builder that can download the dataset itself.")
  if not any(path.iterdir()):
    raise FileNotFoundError(
        f"{path}: manual_dir is empty; put {expected} in it (see the "
        "dataset's README), or leave it unset to download.")
  if find is None:
    return path
  found = find(path)
  if found is None:
    raise FileNotFoundError(
        f"{path}: no {expected} in it or below it. Point manual_dir at the "
        "upstream folder, or leave it unset to download.")
  return found


def check_builder_manual_dir(builder, manual_dir) -> None:
  """`check_manual_dir` with what `builder` expects, if it reads manual files.

  A builder declares its files with `MANUAL_FIND` (a staticmethod: folder ->
  data folder or None) and `MANUAL_EXPECTED` (words for the message). Nothing
  is checked for builders that read no manual files (seglearn_watch) or that
  check their folder themselves (recordings, when built with its spec).
  """
  if not manual_dir or getattr(builder, "MANUAL_FIND", None) is None:
    return
  check_manual_dir(manual_dir, builder.MANUAL_FIND, builder.MANUAL_EXPECTED)


def manual_data_dir(builder, find: Callable, expected: str):
  """The data folder inside the user's manual_dir, or None to download.

  Args:
    builder: a `RemembersManualDir` builder.
    find: maps a folder to the data folder in or below it, or None.
    expected: what `find` looks for, for the error message.

  Raises:
    FileNotFoundError: manual_dir is given but is missing, empty or holds no
      such data (never a silent download instead).
  """
  if builder.given_manual_dir is None:
    return None
  return check_manual_dir(builder.given_manual_dir, find, expected)
