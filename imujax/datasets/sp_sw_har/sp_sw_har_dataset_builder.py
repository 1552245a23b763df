"""sp_sw_har: smartphone + smartwatch IMU during a Timed-Up-and-Go sequence.

Matey-Sanz, Casteleyn & Granell, Data in Brief 2023 (CC BY 4.0). 23 subjects
each executed seated -> stand up -> walk -> turn -> walk back -> turn -> sit
down several times, with a phone in the trouser pocket and a watch on the wrist.
Both devices logged accelerometer (m/s^2) and gyroscope (rad/s) at about 100 Hz
with irregular unix-millisecond timestamps, and every sample carries one of five
labels. One example per execution (`s01_01`, ...), resampled to the config's
rate with `imujax.datasets.resample` (see its docstring for the repair rules).

Configs `<devices>_<rate>`: devices `phone` (channels `thigh_*`), `watch`
(`wrist_*`) or `both` (12 channels, phone first, on one grid over the interval
both devices recorded); rate 30/50/60 Hz or `native` = 100 Hz, the nominal
rate of both devices (their effective rates, ~102-104 Hz with jitter, differ
per recording, and a builder has one rate).
"""

import dataclasses
import re

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import resample

CLASS_NAMES = ("SEATED", "STANDING_UP", "WALKING", "TURNING", "SITTING_DOWN")
HEADER = "x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label"
# Device -> (file suffix, body placement used in channel names).
DEVICES = {"phone": ("sp", "thigh"), "watch": ("sw", "wrist")}
NATIVE_RATE_HZ = 100.0
# The first rate is the default.
RATES = common.rates(NATIVE_RATE_HZ)
# Zenodo's whole-record archive: one URL that does not depend on file names.
URL = "https://zenodo.org/api/records/8398688/files-archive"
# Rows with unparsable numbers are dropped (and counted) up to this many per
# file; more means the file is damaged rather than a row.
MAX_MALFORMED_ROWS = 10
_LABEL_IDS = {name: i for i, name in enumerate(CLASS_NAMES)}
_FILE_RE = re.compile(r"(s\d+)_(\d+)_(sp|sw)\.csv")
_SENSORS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")


def channel_names(devices: tuple[str, ...]) -> list[str]:
  return [f"{DEVICES[d][1]}_{s}" for d in devices for s in _SENSORS]


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  devices: tuple[str, ...] = ("watch",)
  rate_hz: float = 50.0


def _configs() -> list[Config]:
  # Default (first): the watch at 50 Hz.
  order = [("watch", ("watch",)), ("phone", ("phone",)),
           ("both", ("phone", "watch"))]
  return [
      Config(name=f"{name}_{rate}", devices=devices, rate_hz=hz,
             description=f"{'+'.join(devices)} at {hz:g} Hz")
      for name, devices in order for rate, hz in RATES.items()
  ]


@dataclasses.dataclass
class Table:
  """One CSV file, parsed.

  Attributes:
    timestamps_s: <float64>[T] seconds.
    values: <float64>[T, 6] acc (m/s^2) then gyro (rad/s).
    labels: <int32>[T] index into CLASS_NAMES.
    lines: <int64>[T] file line (1-based) of each row, for messages.
    repairs: repair name -> count.
  """
  timestamps_s: np.ndarray
  values: np.ndarray
  labels: np.ndarray
  lines: np.ndarray
  repairs: dict[str, int]


def read_csv(path: epath.Path) -> Table:
  """Parses one `sXX_YY_{sp,sw}.csv`, validating every row.

  Errors name `path:line`. Repairs (counted): a last line without its newline is
  dropped (`truncated_rows_dropped`: a cut-off row may still parse, e.g. a
  shortened timestamp); a row whose numbers do not parse, such as a
  locale-damaged `1.012.598.156` is dropped (`malformed_rows_dropped`) and
  bridged by interpolation, up to MAX_MALFORMED_ROWS per file.
  """
  text = path.read_text()
  rows = text.splitlines()
  if not rows or rows[0].strip().lstrip("\ufeff") != HEADER:
    found = rows[0][:80] if rows else "an empty file"
    raise ValueError(f"{path}:1: expected the header {HEADER!r}, found "
                     f"{found!r}. Point manual_dir at the upstream DATA folder "
                     "(or its parent) with the files unchanged.")
  repairs = {"truncated_rows_dropped": 0, "malformed_rows_dropped": 0}
  end = len(rows)
  if len(rows) > 1 and not text.endswith("\n"):
    end -= 1
    repairs["truncated_rows_dropped"] = 1
  ts, values, labels, lines, malformed = [], [], [], [], []
  for lineno in range(2, end + 1):
    fields = rows[lineno - 1].split(",")
    if len(fields) != 8:
      raise ValueError(
          f"{path}:{lineno}: {len(fields)} comma-separated fields, expected 8 "
          f"({HEADER}). The file is damaged: restore it from the archive.")
    label = _LABEL_IDS.get(fields[7].strip())
    if label is None:
      raise ValueError(
          f"{path}:{lineno}: unknown label {fields[7]!r}; expected one of "
          f"{', '.join(CLASS_NAMES)}. Fix the label in the file.")
    try:
      row = [float(v) for v in fields[:6]]
      t = float(fields[6])
    except ValueError:
      malformed.append(lineno)
      continue
    ts.append(t)
    values.append(row)
    labels.append(label)
    lines.append(lineno)
  if len(malformed) > MAX_MALFORMED_ROWS:
    raise ValueError(
        f"{path}:{malformed[0]}: {len(malformed)} rows with numbers that do "
        f"not parse (first: {rows[malformed[0] - 1][:60]!r}); at most "
        f"{MAX_MALFORMED_ROWS} are dropped. Numbers must use '.' as the "
        "decimal point and no thousands separators: restore the file.")
  if malformed:
    logging.warning("%s: dropped %d malformed row(s) at line(s) %s", path,
                    len(malformed), malformed)
  repairs["malformed_rows_dropped"] = len(malformed)
  return Table(np.asarray(ts, np.float64) / 1000.0,  # unix ms -> s.
               np.asarray(values, np.float64).reshape(-1, 6),
               np.asarray(labels, np.int32), np.asarray(lines, np.int64),
               repairs)


def find_data_dir(root: epath.Path) -> epath.Path | None:
  """The folder holding `subjects_info.csv` and `sXX/`, at or below `root`."""
  # Archives nest it a few folders deep; epath has no recursive glob.
  for depth in range(4):
    found = sorted(root.glob("*/" * depth + "subjects_info.csv"))
    if found:
      return found[0].parent
  return None


def list_executions(data_dir: epath.Path, suffixes) -> dict[str, dict]:
  """Execution id -> {suffix: path} for the `sXX_YY_{sp,sw}.csv` files."""
  executions = {}
  for path in sorted(data_dir.glob("s*/s*_*_s?.csv")):
    m = _FILE_RE.fullmatch(path.name)
    if m and m.group(3) in suffixes:
      executions.setdefault(f"{m.group(1)}_{m.group(2)}", {})[m.group(3)] = path
  if not executions:
    raise FileNotFoundError(
        f"{data_dir}: no sXX/sXX_YY_{{sp,sw}}.csv files. Point manual_dir at "
        "the upstream DATA folder (or its parent).")
  for execution, paths in executions.items():
    for suffix in suffixes:
      if suffix not in paths:
        other = next(iter(paths.values()))
        raise FileNotFoundError(
            f"{other.parent / f'{execution}_{suffix}.csv'} is missing but "
            f"{other.name} exists. Restore it from the archive, or use a "
            "single-device config.")
  return executions


def _resample(table: Table, rate_hz, path, span_s=None):
  return resample.resample_to_grid(
      table.timestamps_s, table.values, {"labels": table.labels}, rate_hz,
      source=str(path), first_line=table.lines, span_s=span_s)


def _add(total: dict[str, int], repairs: dict[str, int]) -> None:
  for k, v in repairs.items():
    total[k] = total.get(k, 0) + int(v)


def make_example(paths: dict[str, epath.Path], devices, rate_hz,
                 repairs: dict[str, int]) -> dict:
  """Reads and resamples one execution; adds its repairs to `repairs`.

  Returns:
    The example: signals <float32>[T, 6 * len(devices)], labels <int32>[T]
    and, with two devices, `labels_phone` / `labels_watch`, where `labels` is
    -1 on the frames whose two device labels disagree.
  """
  suffixes = [DEVICES[d][0] for d in devices]
  tables = {s: read_csv(paths[s]) for s in suffixes}
  for table in tables.values():
    _add(repairs, table.repairs)
  if len(devices) == 1:
    out = _resample(tables[suffixes[0]], rate_hz, paths[suffixes[0]])
    _add(repairs, out.repairs)
    return {"signals": out.signals, "labels": out.labels["labels"]}
  # One grid over the interval every device covers: no extrapolated frames.
  start = max(t.timestamps_s[0] for t in tables.values())
  end = min(t.timestamps_s[-1] for t in tables.values())
  if end <= start:
    raise ValueError(f"{paths[suffixes[0]]} and {paths[suffixes[1]]} do not "
                     "overlap in time; use a single-device config.")
  outs = [_resample(tables[s], rate_hz, paths[s], (start, end))
          for s in suffixes]
  for out in outs:
    _add(repairs, out.repairs)
  example = {"signals": np.concatenate([o.signals for o in outs], axis=1)}
  per_device = [o.labels["labels"] for o in outs]
  for device, track in zip(devices, per_device):
    example[f"labels_{device}"] = track
  agree = per_device[0] == per_device[1]
  example["labels"] = np.where(agree, per_device[0], -1).astype(np.int32)
  _add(repairs, {"label_disagreement_frames_unlabelled": int((~agree).sum())})
  return example


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for sp_sw_har."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 223 executions, 23 subjects."}
  BUILDER_CONFIGS = _configs()
  # What a named manual_dir must hold (common.check_builder_manual_dir).
  MANUAL_FIND = staticmethod(find_data_dir)
  MANUAL_EXPECTED = "DATA/subjects_info.csv"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional. Either let the builder download the Zenodo record
  (doi:10.5281/zenodo.8398688), or point manual_dir at a copy of the upstream
  repository's DATA folder (github.com/GeoTecINIT/sp-sw-har-dataset), or at its
  parent: the folder holding subjects_info.csv and s01/s01_01_sp.csv, ...
  """

  def _info(self) -> tfds.core.DatasetInfo:
    devices = self.builder_config.devices
    tracks = {"labels": list(CLASS_NAMES)}
    if len(devices) > 1:
      tracks.update({f"labels_{d}": list(CLASS_NAMES) for d in devices})
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.example_features(6 * len(devices), tracks),
        metadata=tfds.core.MetadataDict(
            channel_names=channel_names(devices),
            class_names=list(CLASS_NAMES),
            label_tracks=tracks,
            sample_rate_hz=float(self.builder_config.rate_hz),
            units={"acc": "m/s^2", "gyr": "rad/s"},
            devices={d: DEVICES[d][1] for d in devices},
            repairs={},
        ),
        homepage="https://github.com/GeoTecINIT/sp-sw-har-dataset",
        license="CC-BY-4.0",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    data_dir = common.manual_data_dir(self, find_data_dir,
                                      "DATA/subjects_info.csv")
    if data_dir is None:
      data_dir = self._download(dl_manager)
    # Filled while examples are generated; written with the dataset info.
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    return {"train": self._generate_examples(data_dir, repairs)}

  def _download(self, dl_manager) -> epath.Path:
    root = dl_manager.download_and_extract(tfds.download.Resource(
        url=URL, extract_method=tfds.download.ExtractMethod.ZIP))
    data_dir = find_data_dir(root)
    if data_dir is None:  # The record archive holds the release zip.
      inner_zips = [z for depth in range(3)
                    for z in sorted(root.glob("*/" * depth + "*.zip"))]
      for inner in inner_zips:
        data_dir = data_dir or find_data_dir(dl_manager.extract(inner))
    if data_dir is None:
      raise FileNotFoundError(
          f"{root}: the download holds no DATA/subjects_info.csv. Download "
          "the dataset by hand and pass manual_dir (see the dataset README).")
    return data_dir

  def _generate_examples(self, data_dir, repairs):
    devices = self.builder_config.devices
    suffixes = [DEVICES[d][0] for d in devices]
    for execution, paths in list_executions(data_dir, suffixes).items():
      example = make_example(paths, devices, self.builder_config.rate_hz,
                             repairs)
      example["subject"] = execution.split("_")[0]
      example["recording"] = execution
      yield execution, example
