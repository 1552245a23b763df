"""recordings: a lab's own IMU files (CSV, Parquet, NPZ or MVNX) + a TOML spec.

The spec (see README.md beside this file) names the files, the channel columns
with their placement and unit, the time column (+ unit) or the sampling rate,
the label column or a separate segment file per recording, the label map, and
the regex that finds the subject in a file path. Every file becomes one
example on the config's uniform grid (`imujax.datasets.resample`).

  builder = Builder(spec="/data/mylab/imujax_spec.toml", config="50hz",
                    data_dir="/tmp/tfds")
  builder.download_and_prepare()      # files: the spec's folder, or manual_dir
  builder.as_data_source()["train"]

Configs are `<spec name>_<rate>` with rate `30hz`, `50hz` (default), `60hz` or
`native` (the spec's `rate_hz`, else the first file's median rate), so two
specs prepared in one data_dir do not overwrite each other.

Bad input (each a test in tests/test_recordings.py):

* a row whose numbers do not parse (`1.012.598.156`): dropped and bridged by
  interpolation, counted in `malformed_rows_dropped`, up to `max_malformed_rows`
  per file (default 10); more is an error naming the file and first line;
* a last line without its newline (file cut off): dropped, counted in
  `truncated_rows_dropped`;
* a row with the wrong number of fields, an unknown label, a missing label
  file, a subject regex that does not match: an error naming file (and line)
  and the fix;
* NaN/Inf runs, duplicated or decreasing timestamps, gaps: the
  `resample_to_grid` rules (short runs and duplicates repaired and counted,
  the rest an error naming file and line);
* a recording shorter than `min_duration_s` (default 2.56 s, one typical
  window): kept and counted in `recordings_shorter_than_min_duration`; one
  with fewer than 2 samples cannot be put on a grid: skipped and counted in
  `recordings_skipped_too_few_samples`;
* an MVNX file cut off mid-frame: an error, or with `allow_truncated_mvnx =
  true` its complete frames, counted in `truncated_file_tail_dropped`.
"""

import csv
import dataclasses
import io
import math
import pathlib
import re
import tomllib
from typing import Any

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import mvnx
from imujax.datasets import common
from imujax.datasets import resample

RATES = common.rates(None)  # Native: the spec's, else the files' rate.
PYARROW_PIN = "pyarrow==26.0.1"
# Unit -> factor to SI (m/s^2, rad/s, s, ...).
UNITS = {
    "m/s^2": 1.0, "m/s2": 1.0, "g": 9.80665, "mg": 9.80665e-3,
    "rad/s": 1.0, "deg/s": math.pi / 180, "dps": math.pi / 180,
    "rad": 1.0, "deg": math.pi / 180, "uT": 1.0, "T": 1e6, "a.u.": 1.0,
    "m": 1.0, "m/s": 1.0, "": 1.0,
}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
FORMATS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".npz": "npz",
           ".mvnx": "mvnx"}
REPAIR_KEYS = ("malformed_rows_dropped", "truncated_rows_dropped",
               "recordings_shorter_than_min_duration",
               "recordings_skipped_too_few_samples",
               "truncated_file_tail_dropped") + resample.REPAIR_KEYS


class SpecError(ValueError):
  """The spec file is wrong; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class Spec:
  """A parsed spec file; see README.md for every key."""
  path: str
  name: str
  folder: str
  files: str
  format: str | None
  subject_regex: str
  channels: tuple[tuple[str, str, float], ...]  # (column, name, SI factor)
  time_column: str | None
  time_unit: float
  rate_hz: float | None
  label_column: str | None
  label_file: str | None
  class_names: tuple[str, ...]
  label_map: dict[str, int]
  unlabelled: frozenset[str]
  missing_label_file: str
  delimiter: str
  max_malformed_rows: int
  min_duration_s: float
  mvnx_sensors: tuple[str, ...] | None
  mvnx_quantities: tuple[str, ...]
  allow_truncated_mvnx: bool


def _get(table: dict, key: str, kind, default, where: str):
  value = table.get(key, default)
  if value is not None and not isinstance(value, kind):
    raise SpecError(f"{where}: key {key!r} must be {kind}, got {value!r}.")
  return value


def load_spec(path) -> Spec:
  """Reads and validates a TOML spec; errors name the file and key."""
  path = epath.Path(path)
  if not path.exists():
    raise SpecError(f"{path}: spec file not found. Write one as shown in "
                    "imujax/datasets/recordings/README.md.")
  try:
    raw = tomllib.loads(path.read_text())
  except tomllib.TOMLDecodeError as e:
    raise SpecError(f"{path}: not valid TOML ({e}).") from None
  w = str(path)
  known = {"name", "folder", "files", "format", "subject_regex", "channels",
           "time", "labels", "csv", "mvnx", "min_duration_s"}
  unknown = set(raw) - known
  if unknown:
    raise SpecError(f"{w}: unknown keys {sorted(unknown)}; known: "
                    f"{sorted(known)}.")
  name = _get(raw, "name", str, path.parent.name, w)
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
    raise SpecError(f"{w}: name {name!r} must be lower_snake_case (it becomes "
                    "the TFDS config name).")
  fmt = _get(raw, "format", str, None, w)
  if fmt is not None and fmt not in set(FORMATS.values()):
    raise SpecError(f"{w}: format {fmt!r} must be one of "
                    f"{sorted(set(FORMATS.values()))}.")
  channels = []
  for i, ch in enumerate(_get(raw, "channels", list, [], w)):
    where = f"{w}: channels[{i}]"
    if not isinstance(ch, dict) or "column" not in ch or "name" not in ch:
      raise SpecError(f"{where}: each channel needs column and name, e.g. "
                      '{column = "ax", name = "wrist_acc_x", unit = "g"}.')
    unit = ch.get("unit", "")
    if unit not in UNITS:
      raise SpecError(f"{where}: unit {unit!r} unknown; use one of "
                      f"{sorted(UNITS)}.")
    channels.append((str(ch["column"]), str(ch["name"]), UNITS[unit]))
  time = _get(raw, "time", dict, {}, w)
  time_unit = time.get("unit", "s")
  if time_unit not in TIME_UNITS:
    raise SpecError(f"{w}: time.unit {time_unit!r} must be one of "
                    f"{sorted(TIME_UNITS)}.")
  rate = time.get("rate_hz")
  if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
    raise SpecError(f"{w}: time.rate_hz must be a positive number.")
  labels = _get(raw, "labels", dict, {}, w)
  class_names = tuple(labels.get("class_names", ()))
  label_map = dict(labels.get("map", {}))
  if not label_map:
    label_map = {c: i for i, c in enumerate(class_names)}
  if class_names and any(not 0 <= v < len(class_names)
                         for v in label_map.values()):
    raise SpecError(f"{w}: labels.map values must index labels.class_names "
                    f"(0..{len(class_names) - 1}).")
  if (labels.get("column") or labels.get("file")) and not class_names:
    raise SpecError(f"{w}: labels.class_names is required with labels "
                    "(the ordered class list; ids are positions in it).")
  missing = labels.get("missing_file", "error")
  if missing not in ("error", "unlabelled"):
    raise SpecError(f"{w}: labels.missing_file must be 'error' or "
                    "'unlabelled'.")
  csv_opts = _get(raw, "csv", dict, {}, w)
  mv = _get(raw, "mvnx", dict, {}, w)
  quantities = tuple(mv.get("quantities", ("acc", "gyr")))
  if set(quantities) - {"acc", "gyr", "quat"}:
    raise SpecError(f"{w}: mvnx.quantities must be drawn from acc, gyr, quat.")
  spec = Spec(
      path=str(path), name=name,
      folder=str(path.parent / _get(raw, "folder", str, ".", w)),
      files=_get(raw, "files", str, "**/*", w), format=fmt,
      subject_regex=_get(raw, "subject_regex", str, r"(?P<subject>[^/_]+)", w),
      channels=tuple(channels), time_column=time.get("column"),
      time_unit=TIME_UNITS[time_unit],
      rate_hz=None if rate is None else float(rate),
      label_column=labels.get("column"), label_file=labels.get("file"),
      class_names=class_names, label_map=label_map,
      unlabelled=frozenset(labels.get("unlabelled", [""])),
      missing_label_file=missing,
      delimiter=csv_opts.get("delimiter", ","),
      max_malformed_rows=int(csv_opts.get("max_malformed_rows", 10)),
      min_duration_s=float(_get(raw, "min_duration_s", (int, float), 2.56, w)),
      mvnx_sensors=tuple(mv["sensors"]) if "sensors" in mv else None,
      mvnx_quantities=quantities,
      allow_truncated_mvnx=bool(mv.get("allow_truncated", False)))
  try:
    re.compile(spec.subject_regex)
  except re.error as e:
    raise SpecError(f"{w}: subject_regex does not compile ({e}).") from None
  if fmt != "mvnx" and not channels:
    raise SpecError(f"{w}: list the channels, e.g. channels = [{{column = "
                    '"ax", name = "wrist_acc_x", unit = "g"}].')
  if fmt != "mvnx" and spec.time_column is None and spec.rate_hz is None:
    raise SpecError(f"{w}: give time.column (+ time.unit) or time.rate_hz.")
  return spec


class Table:
  """One file's columns as parsed.

  Attributes:
    timestamps_s: <float64>[T] seconds.
    values: <float64>[T, C] in SI units.
    labels: <int32>[T] or None.
    lines: <int64>[T] file line of each row (row index for binary formats).
    repairs: repair name -> count.
  """

  def __init__(self, timestamps_s, values, labels, lines, repairs):
    self.timestamps_s, self.values, self.labels = timestamps_s, values, labels
    self.lines, self.repairs = lines, repairs


def _label_id(spec: Spec, value, where: str) -> int:
  """Maps one label value (string or int) to a class id, or -1."""
  if isinstance(value, (int, np.integer)):
    if not -1 <= int(value) < len(spec.class_names):
      raise ValueError(f"{where}: label {int(value)} is outside 0.."
                       f"{len(spec.class_names) - 1} (labels.class_names).")
    return int(value)
  text = str(value).strip()
  if text in spec.unlabelled:
    return -1
  if text in spec.label_map:
    return spec.label_map[text]
  raise ValueError(
      f"{where}: unknown label {text!r}; the spec {spec.path} maps "
      f"{sorted(spec.label_map)}. Add it to labels.map (or labels.class_names),"
      " or list it in labels.unlabelled to mark its frames -1.")


def read_csv(path: epath.Path, spec: Spec) -> Table:
  """Parses a CSV with a header row naming the spec's columns."""
  text = path.read_text()
  rows = text.splitlines()
  if not rows:
    raise ValueError(f"{path}: empty file; delete it or restore it.")
  header = next(csv.reader([rows[0].lstrip("\ufeff")],
                           delimiter=spec.delimiter))
  header = [h.strip() for h in header]
  wanted = [c for c, _, _ in spec.channels]
  if spec.time_column:
    wanted.append(spec.time_column)
  if spec.label_column:
    wanted.append(spec.label_column)
  missing = [c for c in wanted if c not in header]
  if missing:
    raise ValueError(f"{path}:1: columns {missing} are not in the header "
                     f"{header}; fix the spec's column names ({spec.path}).")
  col = {h: i for i, h in enumerate(header)}
  ch_idx = [col[c] for c, _, _ in spec.channels]
  scale = np.array([s for _, _, s in spec.channels])
  repairs = {"malformed_rows_dropped": 0, "truncated_rows_dropped": 0}
  end = len(rows)
  if len(rows) > 1 and not text.endswith("\n"):
    # A cut-off last row may still parse (a shortened number): never trust it.
    end -= 1
    repairs["truncated_rows_dropped"] = 1
  ts, values, labels, lines, malformed = [], [], [], [], []
  for lineno, fields in enumerate(
      csv.reader(rows[1:end], delimiter=spec.delimiter), start=2):
    if not fields:
      continue
    if len(fields) != len(header):
      raise ValueError(
          f"{path}:{lineno}: {len(fields)} fields, the header has "
          f"{len(header)} ({spec.delimiter!r}-separated). The row is damaged: "
          "fix or delete it.")
    try:
      row = [float(fields[i]) for i in ch_idx]
      t = float(fields[col[spec.time_column]]) if spec.time_column else None
    except ValueError:
      malformed.append(lineno)
      continue
    if spec.label_column:
      labels.append(_label_id(spec, fields[col[spec.label_column]],
                              f"{path}:{lineno}"))
    ts.append(t)
    values.append(row)
    lines.append(lineno)
  if len(malformed) > spec.max_malformed_rows:
    raise ValueError(
        f"{path}:{malformed[0]}: {len(malformed)} rows whose numbers do not "
        f"parse (first: {rows[malformed[0] - 1][:80]!r}); at most "
        f"{spec.max_malformed_rows} are dropped (csv.max_malformed_rows). "
        "Numbers need '.' decimals and no thousands separators: re-export the "
        "file.")
  if malformed:
    logging.warning("%s: dropped %d malformed row(s) at line(s) %s", path,
                    len(malformed), malformed)
  repairs["malformed_rows_dropped"] = len(malformed)
  values = np.asarray(values, np.float64).reshape(-1, len(ch_idx)) * scale
  lines = np.asarray(lines, np.int64)
  if spec.time_column:
    t = np.asarray(ts, np.float64) * spec.time_unit
  else:
    t = (lines - 2) / spec.rate_hz  # Row position keeps dropped rows' slots.
  return Table(t, values, np.asarray(labels, np.int32)
               if spec.label_column else None, lines, repairs)


def _columns_from_arrays(path, spec: Spec, get) -> Table:
  """Builds a Table from a `get(column) -> 1-D array` accessor."""
  cols = []
  for c, _, s in spec.channels:
    cols.append(np.asarray(get(c), np.float64) * s)
  n = len(cols[0])
  if any(len(c) != n for c in cols):
    raise ValueError(f"{path}: channel columns differ in length "
                     f"{[len(c) for c in cols]}; fix the file.")
  values = np.stack(cols, axis=1)
  if spec.time_column:
    t = np.asarray(get(spec.time_column), np.float64) * spec.time_unit
  else:
    t = np.arange(n) / spec.rate_hz
  labels = None
  if spec.label_column:
    raw = get(spec.label_column)
    labels = np.array([_label_id(spec, v.item() if hasattr(v, "item") else v,
                                 f"{path}: row {i}")
                       for i, v in enumerate(raw)], np.int32)
  return Table(t, values, labels, np.arange(n), {})


def _npz_column(data, path, spec, column: str):
  """'key' (1-D array) or 'key:j' (column j of a 2-D array)."""
  key, _, j = column.partition(":")
  if key not in data:
    raise ValueError(f"{path}: no array {key!r} (has {sorted(data.files)}); "
                     f"fix the column names in {spec.path}.")
  a = data[key]
  if j:
    return a[:, int(j)]
  if a.ndim != 1:
    raise ValueError(f"{path}: array {key!r} has shape {a.shape}; name one "
                     f"column as '{key}:<index>' in {spec.path}.")
  return a


def read_npz(path: epath.Path, spec: Spec) -> Table:
  with path.open("rb") as f:
    data = np.load(io.BytesIO(f.read()), allow_pickle=False)
  return _columns_from_arrays(path, spec,
                              lambda c: _npz_column(data, path, spec, c))


def read_parquet(path: epath.Path, spec: Spec) -> Table:
  try:
    import pyarrow.parquet as pq  # Optional: only Parquet users need it.
  except ImportError:
    raise ImportError(f"{path}: reading Parquet needs pyarrow; run: pip "
                      f"install {PYARROW_PIN}") from None
  table = pq.read_table(str(path))

  def get(c):
    if c not in table.column_names:
      raise ValueError(f"{path}: no column {c!r} (has {table.column_names}); "
                       f"fix the column names in {spec.path}.")
    return table.column(c).to_numpy(zero_copy_only=False)
  return _columns_from_arrays(path, spec, get)


def mvnx_channel_names(sensors, spec: Spec) -> list[str]:
  axes = {"acc": "xyz", "gyr": "xyz", "quat": "wxyz"}
  return [f"{mvnx.sensor_placement(s)}_{q}_{a}" for s in sensors
          for q in spec.mvnx_quantities for a in axes[q]]


def read_mvnx_file(path: epath.Path, spec: Spec) -> tuple[Table, list[str]]:
  rec = mvnx.read(path, mvnx.IMU_FIELDS,
                  allow_truncated=spec.allow_truncated_mvnx)
  imu = mvnx.imu_channels(rec)
  sensors = spec.mvnx_sensors or rec.sensor_labels
  unknown = [s for s in sensors if s not in rec.sensor_labels]
  if unknown:
    raise ValueError(f"{path}: sensors {unknown} are not in the file "
                     f"({rec.sensor_labels}); fix mvnx.sensors in {spec.path}.")
  idx = [rec.sensor_labels.index(s) for s in sensors]
  parts = {"acc": imu.acc, "gyr": imu.gyr, "quat": imu.quat}
  values = np.concatenate(
      [np.concatenate([parts[q][:, i] for q in spec.mvnx_quantities], axis=1)
       for i in idx], axis=1).astype(np.float64)
  table = Table(rec.timestamps_s, values, None, np.arange(len(rec.index)),
                dict(rec.repairs))
  return table, mvnx_channel_names(sensors, spec)


def read_label_file(path: epath.Path, spec: Spec, t: np.ndarray) -> np.ndarray:
  """Segment file `start,end,label` (data clock and unit) -> <int32>[T]."""
  rows = path.read_text().splitlines()
  header = [h.strip() for h in rows[0].split(",")] if rows else []
  if header[:3] != ["start", "end", "label"]:
    raise ValueError(f"{path}:1: expected the header 'start,end,label', found "
                     f"{rows[0][:80] if rows else 'an empty file'!r}.")
  out = np.full(t.shape, -1, np.int32)
  covered = np.zeros(t.shape, bool)
  unit = spec.time_unit if spec.time_column else 1.0
  for lineno, fields in enumerate(csv.reader(rows[1:]), start=2):
    if not fields:
      continue
    if len(fields) != 3:
      raise ValueError(f"{path}:{lineno}: {len(fields)} fields, expected 3 "
                       "(start,end,label); fix the row.")
    try:
      start, end = float(fields[0]) * unit, float(fields[1]) * unit
    except ValueError:
      raise ValueError(f"{path}:{lineno}: start/end {fields[:2]} are not "
                       "numbers; fix the row.") from None
    label = _label_id(spec, fields[2], f"{path}:{lineno}")
    inside = (t >= start) & (t < end)
    if (inside & covered).any():
      raise ValueError(f"{path}:{lineno}: segment [{fields[0]}, {fields[1]}) "
                       "overlaps an earlier one; fix the segments.")
    covered |= inside
    out[inside] = label
  return out


def _label_path(spec: Spec, data_path: epath.Path) -> epath.Path:
  name = spec.label_file.format(stem=data_path.stem, name=data_path.name)
  return data_path.parent / name


def _add(total: dict, repairs: dict) -> None:
  for k, v in repairs.items():
    total[k] = total.get(k, 0) + int(v)


def list_files(folder: epath.Path, spec: Spec) -> list[epath.Path]:
  label_names = set()
  files = []
  # pathlib: epath refuses recursive '**' patterns (costly on cloud storage).
  for p in sorted(epath.Path(q) for q in pathlib.Path(folder).glob(spec.files)):
    fmt = spec.format or FORMATS.get(p.suffix.lower())
    if p.is_file() and fmt and p.suffix.lower() in FORMATS:
      files.append(p)
  if spec.label_file:
    label_names = {_label_path(spec, p).name for p in files}
    files = [p for p in files if p.name not in label_names]
  if not files:
    raise FileNotFoundError(
        f"{folder}: no data files match files={spec.files!r} ({spec.path}). "
        "Point manual_dir (or the spec's folder) at the data.")
  return files


def subject_of(path: epath.Path, folder: epath.Path, spec: Spec) -> str:
  rel = path.relative_to(folder).as_posix()
  m = re.search(spec.subject_regex, rel)
  if not m:
    raise ValueError(f"{path}: subject_regex {spec.subject_regex!r} does not "
                     f"match {rel!r}; fix the regex in {spec.path}.")
  return m.groupdict().get("subject") or m.group(1 if m.groups() else 0)


def read_recording(path: epath.Path, spec: Spec) -> tuple[Table, list[str]]:
  """Reads one data file (+ its label file) in any supported format."""
  fmt = spec.format or FORMATS[path.suffix.lower()]
  names = [n for _, n, _ in spec.channels]
  if fmt == "csv":
    table = read_csv(path, spec)
  elif fmt == "npz":
    table = read_npz(path, spec)
  elif fmt == "parquet":
    table = read_parquet(path, spec)
  else:
    table, names = read_mvnx_file(path, spec)
  if spec.label_file:
    label_path = _label_path(spec, path)
    if label_path.exists():
      table.labels = read_label_file(label_path, spec, table.timestamps_s)
    elif spec.missing_label_file == "unlabelled":
      table.labels = np.full(table.timestamps_s.shape, -1, np.int32)
      table.repairs["label_files_missing_unlabelled"] = 1
    else:
      raise FileNotFoundError(
          f"{label_path}: label file for {path} is missing. Add it, or set "
          f"labels.missing_file = 'unlabelled' in {spec.path} to keep the "
          "recording with every frame -1.")
  return table, names


def make_example(path, spec: Spec, rate_hz, repairs: dict) -> dict | None:
  """One file -> example (signals, labels) on the grid; None if skipped."""
  table, _ = read_recording(path, spec)
  _add(repairs, table.repairs)
  if len(table.timestamps_s) < 2:
    logging.warning("%s: %d sample(s), fewer than 2: skipped.", path,
                    len(table.timestamps_s))
    _add(repairs, {"recordings_skipped_too_few_samples": 1})
    return None
  labels = None if table.labels is None else {"labels": table.labels}
  binary = spec.format in ("npz", "parquet", "mvnx") or path.suffix.lower() in (
      ".npz", ".parquet", ".mvnx")
  out = resample.resample_to_grid(
      table.timestamps_s, table.values, labels, rate_hz, source=str(path),
      first_line=None if binary else table.lines)
  _add(repairs, out.repairs)
  duration = out.timestamps_s[-1] - out.timestamps_s[0]
  if duration < spec.min_duration_s:
    logging.warning("%s: %.2f s long, shorter than min_duration_s=%g: kept.",
                    path, duration, spec.min_duration_s)
    _add(repairs, {"recordings_shorter_than_min_duration": 1})
  n = out.signals.shape[0]
  return {"signals": out.signals,
          "labels": out.labels.get("labels", np.full(n, -1, np.int32))}


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float | None = 50.0
  spec_path: str = ""


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for a lab's own recordings described by a spec file."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  # Placeholders so that TFDS can list the builder; a real config is made from
  # the spec (`Builder(spec=..., config="50hz")`).
  BUILDER_CONFIGS = [Config(name=r, rate_hz=hz) for r, hz in RATES.items()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Nothing is downloaded. Pass spec=<your spec.toml>; the files are read from
  manual_dir when given, else from the spec's `folder` (default: the spec's own
  folder). See imujax/datasets/recordings/README.md.
  """

  def __init__(self, *, spec=None, config=None, **kwargs):
    self._spec = None
    if spec is not None:
      self._spec = load_spec(spec)
      rate = (config.name if isinstance(config, tfds.core.BuilderConfig)
              else (config or "50hz")).rsplit("_", 1)[-1]
      if rate not in RATES:
        raise ValueError(f"config {config!r}: the rate must be one of "
                         f"{sorted(RATES)} (e.g. config='50hz').")
      hz = RATES[rate] if rate != "native" else self._spec.rate_hz
      config = Config(name=f"{self._spec.name}_{rate}", rate_hz=hz,
                      spec_path=self._spec.path,
                      description=f"{self._spec.path} at {rate}")
    super().__init__(config=config, **kwargs)
    self._original_state["spec"] = spec

  def _info(self) -> tfds.core.DatasetInfo:
    spec = self._spec
    if spec is None:
      raise ValueError("The recordings builder needs its spec: "
                       "Builder(spec='/path/spec.toml', config='50hz') or "
                       "tfds.builder('recordings/50hz', spec=...).")
    names = self._channel_names()
    return self.dataset_info_from_configs(
        description=__doc__, features=common.example_features(len(names)),
        metadata=tfds.core.MetadataDict(
            channel_names=names, class_names=list(spec.class_names),
            label_tracks={"labels": list(spec.class_names)},
            sample_rate_hz=float(self.builder_config.rate_hz or 0.0),
            units={"acc": "m/s^2", "gyr": "rad/s", "quat": "1"},
            spec=spec.path, repairs={}))

  def _channel_names(self) -> list[str]:
    spec = self._spec
    if spec.format != "mvnx":
      return [n for _, n, _ in spec.channels]
    sensors = spec.mvnx_sensors
    if sensors is None:
      # Without mvnx.sensors the names come from the first file in the spec's
      # folder (read whole, which is fast: see imujax.datasets.mvnx).
      first = list_files(epath.Path(spec.folder), spec)[0]
      sensors = mvnx.read(first, ("sensorOrientation",)).sensor_labels
    return mvnx_channel_names(sensors, spec)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      folder = dl_manager.manual_dir
    except AssertionError:  # No manual_dir given: the spec's folder.
      folder = None
    folder = epath.Path(folder or self._spec.folder)
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    repairs.update(dict.fromkeys(REPAIR_KEYS, 0))
    return {"train": self._generate_examples(folder, repairs)}

  def _generate_examples(self, folder, repairs):
    spec = self._spec
    rate = self.builder_config.rate_hz
    if rate is None:  # native, with no rate in the spec: the first file's.
      table, _ = read_recording(list_files(folder, spec)[0], spec)
      rate = resample.native_rate_hz(table.timestamps_s)
      self.info.metadata["sample_rate_hz"] = rate
    for path in list_files(folder, spec):
      example = make_example(path, spec, rate, repairs)
      if example is None:
        continue
      subject = subject_of(path, folder, spec)
      recording = path.relative_to(folder).as_posix().rsplit(".", 1)[0]
      recording = recording.replace("/", "__")
      example["subject"], example["recording"] = subject, recording
      yield recording, example
