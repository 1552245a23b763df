"""seglearn_watch: real Apple Watch exercise recordings shipped inside `seglearn`.

The PyPI package `seglearn` (BSD-3-Clause) ships `seglearn/data/watch_dataset.npy`:
140 recordings of 7 shoulder-physiotherapy exercises by 10 subjects, Apple Watch
accelerometer (in g) and gyroscope (rad/s) at 50 Hz. Each recording is one
exercise, so every frame of a recording carries that recording's label.

Nothing is downloaded and seglearn is never imported: the file is located with
`importlib.util.find_spec`. The file is a pickle, so it is only ever read from
the installed package, never from a user-supplied path.
"""

import importlib.util
import os

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common

SAMPLE_RATE_HZ = 50.0
STANDARD_GRAVITY = 9.80665  # m/s^2 per g.
CHANNEL_NAMES = ("wrist_acc_x", "wrist_acc_y", "wrist_acc_z",
                 "wrist_gyr_x", "wrist_gyr_y", "wrist_gyr_z")
# Full names of the upstream abbreviations, in upstream order.
CLASS_NAMES = ("pendulum", "abduction", "forward_elevation",
               "internal_rotation", "external_rotation", "trapezius",
               "upright_row")
_UPSTREAM_CLASS_CODES = ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")
_UPSTREAM_CHANNELS = ("ax", "ay", "az", "wx", "wy", "wz")


def installed_file() -> epath.Path:
  """Path of `watch_dataset.npy` inside the installed seglearn package."""
  spec = importlib.util.find_spec("seglearn")
  if spec is None or spec.origin is None:
    raise FileNotFoundError(
        "The seglearn_watch dataset is read from the PyPI package 'seglearn', "
        "which is not installed. Run: pip install -r requirements.txt")
  path = epath.Path(os.path.dirname(spec.origin)) / "data" / "watch_dataset.npy"
  if not path.exists():
    raise FileNotFoundError(f"{path} is missing from the seglearn install; "
                            "reinstall it: pip install --force-reinstall seglearn==1.2.5")
  return path


def read_recordings(path: epath.Path):
  """Yields (key, example) for each recording of the upstream file.

  Validates what the rest of imujax relies on (6 channels, finite values, a
  known label, a subject id) and names the recording when it is violated.
  """
  with path.open("rb") as f:
    # The pickle is trusted only because it comes from the installed package.
    data = np.load(f, allow_pickle=True).item()
  if tuple(data["X_labels"]) != _UPSTREAM_CHANNELS:
    raise ValueError(f"{path}: expected channels {_UPSTREAM_CHANNELS}, found "
                     f"{data['X_labels']}; this seglearn version is unsupported.")
  if tuple(data["y_labels"]) != _UPSTREAM_CLASS_CODES:
    raise ValueError(f"{path}: expected classes {_UPSTREAM_CLASS_CODES}, found "
                     f"{data['y_labels']}; this seglearn version is unsupported.")
  per_subject = {}
  for i, (x, y, subject) in enumerate(zip(data["X"], data["y"], data["subject"])):
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != len(CHANNEL_NAMES):
      raise ValueError(f"{path}: recording {i} has shape {x.shape}, expected "
                       f"[time, {len(CHANNEL_NAMES)}].")
    if not np.isfinite(x).all():
      raise ValueError(f"{path}: recording {i} contains NaN or Inf.")
    if not 0 <= int(y) < len(CLASS_NAMES):
      raise ValueError(f"{path}: recording {i} has unknown label {y}.")
    signals = x.copy()
    signals[:, :3] *= STANDARD_GRAVITY  # g -> m/s^2 (SI, like every builder).
    subject_id = f"s{int(subject):02d}"
    # Keys from subject and per-subject order: deterministic across builds.
    n = per_subject.get(subject_id, 0)
    per_subject[subject_id] = n + 1
    recording_id = f"{subject_id}_r{n:02d}"
    yield recording_id, {
        "signals": signals.astype(np.float32),
        "labels": np.full((x.shape[0],), int(y), np.int32),
        "subject": subject_id,
        "recording": recording_id,
    }


class Builder(common.PrepareMessage, tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for the seglearn watch recordings."""

  LOCAL_SOURCE = "the seglearn package's data file"

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 140 recordings, SI units."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.example_features(len(CHANNEL_NAMES)),
        metadata=tfds.core.MetadataDict(
            channel_names=list(CHANNEL_NAMES),
            class_names=list(CLASS_NAMES),
            label_tracks={"labels": list(CLASS_NAMES)},
            sample_rate_hz=SAMPLE_RATE_HZ,
            units={"acc": "m/s^2", "gyr": "rad/s"},
            repairs={},  # The file is already uniform and complete.
        ),
        homepage="https://github.com/dmbee/seglearn",
        license="BSD-3-Clause",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The data ships with the installed seglearn package.
    # One split: imujax draws subject-disjoint train/val/test from the seed.
    return {"train": self._generate_examples(installed_file())}

  def _generate_examples(self, path):
    yield from read_recordings(path)
