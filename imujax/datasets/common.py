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


def target_features(targets: dict, source: str) -> dict:
  """float32 [T] features of a builder's regression targets {name: unit}.

  Raises:
    ValueError: a target not named `targets_<name>` or without a unit,
      naming `source` (the builder's file) and the field.
  """
  for name, unit in targets.items():
    if not name.startswith("targets_"):
      raise ValueError(f"{source}: regression target {name!r} must be named "
                       "targets_<name> (input_pipeline.TARGET_PREFIX).")
    if not isinstance(unit, str) or not unit.strip():
      raise ValueError(
          f"{source}: regression target {name!r} declares no unit "
          f"({unit!r}); give every targets_* field its physical unit ('m/s',"
          " 's', ...) in the builder's TARGETS: metrics are reported in it.")
  return {name: tfds.features.Tensor(shape=(None,), dtype=np.float32)
          for name in targets}


def manual_dir_given(dl_manager):
  """TFDS's manual folder: the user's, or TFDS's default when none was given.

  TFDS substitutes `<data_dir>/downloads/manual` when no manual_dir is
  passed, so this cannot tell "none given" from a folder the user named;
  builders ask `RemembersManualDir.given_manual_dir` for that.
  """
  given = getattr(dl_manager, "_manual_dir", None)
  return epath.Path(given).expanduser() if given else None


class PrepareMessage:
  """Builder mixin: one accurate line when a build reads only local files.

  TFDS announces every build with "Downloading and preparing dataset
  Unknown size (download: Unknown size, ...)" and ends it with "...
  downloaded and prepared to ...", from its builder hooks
  `_log_download_bytes` and `_log_download_done`, whatever the source. A
  build from a manual_dir, or from a file shipped with a package
  (`LOCAL_SOURCE`), says instead where it reads from and that nothing is
  downloaded; a build that downloads keeps TFDS's lines. (Overriding the
  hooks, not patching TFDS: should TFDS rename them, its lines come back.)
  """
  LOCAL_SOURCE = None  # What a builder that never downloads reads.

  def local_source(self) -> Optional[str]:
    given = getattr(self, "given_manual_dir", None)
    return str(given) if given else self.LOCAL_SOURCE

  def _log_download_bytes(self) -> None:
    if self.local_source() is None:
      return super()._log_download_bytes()
    print(f"Preparing {self.info.full_name} from {self.local_source()} (no "
          f"download) into {self.data_dir} ...", flush=True)

  def _log_download_done(self) -> None:
    if self.local_source() is None:
      return super()._log_download_done()
    print(f"Prepared {self.info.full_name} in {self.data_dir}; later runs "
          "reuse it.", flush=True)


class RemembersManualDir(PrepareMessage):
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
