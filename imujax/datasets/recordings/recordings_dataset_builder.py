"""recordings: a lab's own IMU files (CSV, Parquet, NPZ or MVNX) + a TOML spec.

The spec (see README.md beside this file) names the files, the channel columns
with their placement and unit, the time column (+ unit) or the sampling rate,
the label column or a separate segment file per recording, the label map, and
the regex that finds the subject in a file path. Every file becomes one
example on the config's uniform grid (`imujax.datasets.resample`).

  builder = Builder(spec="/data/mylab/imujax_spec.toml", config="50hz",
                    data_dir="/tmp/tfds")      # manual_dir=... overrides folder
  builder.download_and_prepare()
  builder.as_data_source()["train"]

Configs are `<spec name>_<rate>_<fingerprint[:12]>` with rate `30hz`, `50hz`
(default), `60hz` or `native` (the spec's `rate_hz`, else the first file's
median rate). The fingerprint (`Builder.fingerprint`, also
`info.metadata["fingerprint"]`) hashes the resolved spec, every input file's
relative path, size and mtime (label files included), the rate and the
builder's version: editing, adding or removing a file or changing the spec
gives a new config, hence a fresh build (logged with the reason), and two specs
that share a name never share a build.

Bad input (each a test in tests/test_recordings.py or tests/test_bad_data_*):

* a row whose numbers do not parse (`1.012.598.156`): dropped and bridged by
  interpolation, counted in `malformed_rows_dropped`, up to
  `csv.max_malformed_rows` per file (default 10); more is an error naming the
  file and first line;
* a last line without its newline (file cut off): dropped, counted in
  `truncated_rows_dropped`;
* a finite value beyond float32 (1e39, or one that overflows once converted
  to SI units): treated as missing, counted in `values_beyond_float32`, then
  like NaN (short runs interpolated, long runs an error);
* a row with the wrong number of fields, an unknown label, a missing label
  file, a subject regex that does not match, a duplicated header column, a
  file that is not text in `csv.encoding`, an NPZ that is not a zip of
  numeric arrays: an error naming file (and line) and the fix;
* a label file whose segments cover less than `labels.min_coverage` of the
  recording (default 0.1; e.g. seconds against ms data), start > end, or
  non-finite times: an error naming the file (and line);
* NaN/Inf runs, duplicated or decreasing timestamps, gaps: the
  `resample_to_grid` rules with the spec's `max_nonfinite_run` and
  `max_gap_s` (short runs and duplicates repaired and counted, the rest an
  error naming file and line);
* a recording shorter than `min_duration_s` (default 2.56 s, one typical
  window): kept and counted in `recordings_shorter_than_min_duration`; one
  with fewer than 2 samples cannot be put on a grid: skipped and counted in
  `recordings_skipped_too_few_samples` (an error when no file is left);
* an MVNX file cut off mid-frame: an error, or with `mvnx.allow_truncated =
  true` its complete frames, counted in `truncated_file_tail_dropped`;
* a path that is not a regular file (FIFO, device, dangling symlink) or is
  larger than `max_file_mb` (default 1024): an error before anything is read;
* spec paths (`files`, `labels.file`) must stay inside the data folder.

All bad files of a build are reported together, in one error.
"""

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import pathlib
import re
import stat

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import mvnx
from imujax.datasets import resample
from imujax.datasets.recordings import schema

# The spec's schema lives in schema.py; these names stay importable from here.
Spec = schema.Spec
SpecError = schema.SpecError
load_spec = schema.load_spec
UNITS, TIME_UNITS, FORMATS = schema.UNITS, schema.TIME_UNITS, schema.FORMATS
_plain = schema.plain

RATES = common.rates(None)  # Native: the spec's, else the files' rate.
PYARROW_PIN = "pyarrow==26.0.1"
REPAIR_KEYS = ("malformed_rows_dropped", "truncated_rows_dropped",
               "values_beyond_float32",
               "recordings_shorter_than_min_duration",
               "recordings_skipped_too_few_samples",
               "label_segments_outside_recording",
               "truncated_file_tail_dropped") + resample.REPAIR_KEYS
# Bumped whenever the same files would give different examples; part of the
# fingerprint, so a new reader never reuses an old reader's build.
READER_VERSION = 2
F32_MAX = float(np.finfo(np.float32).max)
# More errors than this in one build are summarised by their count.
_MAX_LISTED_ERRORS = 20


class BuildError(ValueError):
  """Several files of one build are bad; `errors` holds each one's error."""

  def __init__(self, message: str, errors: list[Exception]):
    super().__init__(message)
    self.errors = errors


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


def _check_regular(path, spec: Spec) -> os.stat_result:
  """Raises unless `path` is a regular file within the size cap.

  Only stat() is called, which never blocks: a FIFO, a device such as
  /dev/zero or a dangling symlink is refused before any byte is read.
  """
  if os.path.islink(path) and not os.path.exists(path):
    raise ValueError(f"{path}: a symlink to {os.readlink(path)!r}, which does "
                     "not exist; restore the target or delete the link.")
  try:
    st = os.stat(path)
  except OSError as e:
    raise ValueError(f"{path}: cannot be read ({e.strerror}).") from None
  if not stat.S_ISREG(st.st_mode):
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
            "a FIFO" if stat.S_ISFIFO(st.st_mode) else
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode) else "special")
    raise ValueError(f"{path}: {kind}, not a regular file; imujax reads only "
                     "regular files. Replace it with the data file or move "
                     "it out of the data folder.")
  if st.st_size > spec.max_file_mb * 2**20:
    raise ValueError(
        f"{path}: {st.st_size / 2**20:.0f} MiB, more than max_file_mb = "
        f"{_plain(spec.max_file_mb)}; split the recording, or raise "
        f"max_file_mb in {spec.path}.")
  return st


def read_bytes(path, spec: Spec) -> bytes:
  """The bytes of a regular file of at most `max_file_mb`; never blocks."""
  _check_regular(path, spec)
  limit = int(spec.max_file_mb * 2**20)
  # O_NONBLOCK: should the path turn into a FIFO after the check, open()
  # returns at once instead of waiting for a writer; fstat then refuses it.
  fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
  try:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
      raise ValueError(f"{path}: not a regular file; imujax reads only "
                       "regular files.")
    with os.fdopen(fd, "rb", closefd=False) as f:
      data = f.read(limit + 1)
  finally:
    os.close(fd)
  if len(data) > limit:
    raise ValueError(f"{path}: grew beyond max_file_mb = "
                     f"{_plain(spec.max_file_mb)} while read; raise "
                     f"max_file_mb in {spec.path}.")
  return data


def read_text(path, spec: Spec) -> str:
  """A text file decoded with `csv.encoding`; errors name the line and fix."""
  data = read_bytes(path, spec)
  try:
    text = data.decode(spec.encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:64]:
      fix = ('it looks like UTF-16: set csv.encoding = "utf-16" in '
             f"{spec.path}, or re-save the file as UTF-8")
    else:
      fix = ("re-save the file as UTF-8, or set csv.encoding (e.g. "
             f'"latin-1") in {spec.path}')
    raise ValueError(
        f"{path}:{line}: byte {data[e.start]:#04x} is not valid "
        f"{spec.encoding}; {fix}.") from None
  text = text.lstrip("\ufeff")
  if "\x00" in text:
    line = text[:text.index("\x00")].count("\n") + 1
    raise ValueError(
        f"{path}:{line}: NUL character: a binary file, or UTF-16 text read "
        f"as {spec.encoding}. Set csv.encoding = \"utf-16\" in {spec.path} "
        "if it is UTF-16 text, else remove the file from the data folder.")
  return text


def to_si(values: np.ndarray, scale, path, lines, repairs: dict) -> np.ndarray:
  """values * scale, with values beyond float32 set NaN and counted.

  Examples are stored as float32: a finite value that does not fit (1e39, or
  1e38 g once in m/s^2) would silently become +inf. It is treated as missing
  instead, counted in `values_beyond_float32`, and then follows the NaN rules
  (short runs interpolated and counted, long runs an error).
  """
  values = np.asarray(values, np.float64)
  with np.errstate(over="ignore", invalid="ignore"):
    out = values * np.asarray(scale, np.float64)
  over = np.isfinite(values) & ~(np.abs(out) <= F32_MAX)
  n = int(over.sum())
  repairs["values_beyond_float32"] = repairs.get("values_beyond_float32",
                                                 0) + n
  if n:
    row = int(np.flatnonzero(over.any(axis=1))[0])
    where = (f"{path}:{int(lines[row])}" if lines is not None
             else f"{path}: row {row}")
    logging.warning("%s: %d value(s) beyond float32 (first: %s) treated as "
                    "missing.", where, n, _plain(values[over][0]))
    out[over] = np.nan
  return out


def _label_id(spec: Spec, value, where: str) -> int:
  """Maps one label value (string or int) to a class id, or -1."""
  if isinstance(value, (bool, np.bool_)):
    value = int(value)
  if isinstance(value, bytes):  # A bytes column of an NPZ or Parquet file.
    value = value.decode("utf-8", "replace")
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
      f"{where}: unknown label {text[:80]!r}; the spec {spec.path} maps "
      f"{sorted(spec.label_map)}. Add it to labels.map (or labels.class_names),"
      " or list it in labels.unlabelled to mark its frames -1.")


def _wanted_columns(spec: Spec) -> list[str]:
  wanted = [c for c, _, _ in spec.channels]
  if spec.time_column:
    wanted.append(spec.time_column)
  if spec.label_column:
    wanted.append(spec.label_column)
  return wanted


def read_csv(path: epath.Path, spec: Spec) -> Table:
  """Parses a CSV with a header row naming the spec's columns."""
  text = read_text(path, spec)
  rows = text.splitlines()
  if not rows:
    raise ValueError(f"{path}: empty file; delete it or restore it.")
  try:
    header = next(csv.reader([rows[0]], delimiter=spec.delimiter), [])
  except csv.Error as e:
    raise ValueError(f"{path}:1: the header does not parse ({e}).") from None
  header = [h.strip() for h in header]
  wanted = _wanted_columns(spec)
  missing = [c for c in wanted if c not in header]
  if missing:
    raise ValueError(
        f"{path}:1: columns {missing} are not in the header "
        f"{[h[:40] for h in header[:50]]}; fix the spec's column names "
        f"({spec.path}), or csv.delimiter if the header is one field.")
  repeated = sorted({c for c in wanted if header.count(c) > 1})
  if repeated:
    raise ValueError(
        f"{path}:1: the header names {repeated} more than once; which one the "
        "spec means is ambiguous. Rename the duplicated columns.")
  col = {h: i for i, h in enumerate(header)}
  ch_idx = [col[c] for c, _, _ in spec.channels]
  scale = np.array([s for _, _, s in spec.channels])
  repairs = {"malformed_rows_dropped": 0, "truncated_rows_dropped": 0}
  end = len(rows)
  if len(rows) > 1 and not text.endswith(("\n", "\r")):
    # A cut-off last row may still parse (a shortened number): never trust it.
    end -= 1
    repairs["truncated_rows_dropped"] = 1
  ts, values, labels, lines, malformed = [], [], [], [], []
  reader = csv.reader(rows[1:end], delimiter=spec.delimiter)
  lineno = 1
  while True:
    try:
      fields = next(reader)
    except StopIteration:
      break
    except csv.Error as e:
      raise ValueError(f"{path}:{lineno + 1}: the row does not parse ({e}); "
                       "fix or delete it.") from None
    lineno = reader.line_num + 1
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
                    len(malformed), malformed[:20])
  repairs["malformed_rows_dropped"] = len(malformed)
  lines = np.asarray(lines, np.int64)
  values = to_si(np.asarray(values, np.float64).reshape(-1, len(ch_idx)),
                 scale, path, lines, repairs)
  if spec.time_column:
    t = np.asarray(ts, np.float64) * spec.time_unit
  else:
    t = (lines - 2) / spec.rate_hz  # Row position keeps dropped rows' slots.
  return Table(t, values, np.asarray(labels, np.int32)
               if spec.label_column else None, lines, repairs)


def _numeric(path, name: str, a: np.ndarray, spec: Spec) -> np.ndarray:
  if a.dtype.kind not in "biuf":
    raise ValueError(
        f"{path}: column {name!r} has dtype {a.dtype} (not numbers); store "
        f"it as a float array, or fix the column names in {spec.path}.")
  return a


def _columns_from_arrays(path, spec: Spec, get) -> Table:
  """Builds a Table from a `get(column) -> 1-D array` accessor."""
  cols = [_numeric(path, c, get(c), spec) for c, _, _ in spec.channels]
  n = len(cols[0])
  if any(len(c) != n for c in cols):
    raise ValueError(f"{path}: channel columns differ in length "
                     f"{[len(c) for c in cols]}; fix the file.")
  repairs = {}
  values = to_si(np.stack(cols, axis=1).astype(np.float64),
                 [s for _, _, s in spec.channels], path, None, repairs)
  if spec.time_column:
    t = _numeric(path, spec.time_column, get(spec.time_column), spec)
    t = np.asarray(t, np.float64) * spec.time_unit
  else:
    t = np.arange(n) / spec.rate_hz
  labels = None
  if spec.label_column:
    raw = get(spec.label_column)
    if raw.dtype.kind not in "biuUSO":
      raise ValueError(
          f"{path}: label column {spec.label_column!r} has dtype {raw.dtype};"
          " labels are integers (class ids) or strings (class names).")
    labels = np.array([_label_id(spec, v.item() if hasattr(v, "item") else v,
                                 f"{path}: row {i}")
                       for i, v in enumerate(raw)], np.int32)
  return Table(t, values, labels, np.arange(n), repairs)


def _npz_column(data, path, spec, column: str):
  """'key' (1-D array) or 'key:j' (column j of a 2-D array)."""
  key, _, j = column.partition(":")
  if key not in data.files:
    raise ValueError(f"{path}: no array {key!r} (has {sorted(data.files)}); "
                     f"fix the column names in {spec.path}.")
  member = f"{key}.npy" if f"{key}.npy" in data.zip.namelist() else key
  info = data.zip.getinfo(member)
  if info.file_size > spec.max_file_mb * 2**20:
    raise ValueError(
        f"{path}: array {key!r} unpacks to {info.file_size / 2**20:.0f} MiB, "
        f"more than max_file_mb = {_plain(spec.max_file_mb)}; raise "
        f"max_file_mb in {spec.path} if that is right.")
  try:
    a = data[key]
  except ValueError as e:
    if "allow_pickle" in str(e) or "Object arrays" in str(e):
      raise ValueError(f"{path}: array {key!r} holds Python objects, which "
                       "imujax never unpickles; save it as a numeric array "
                       "(np.asarray(x, np.float32)).") from None
    raise ValueError(f"{path}: array {key!r} is damaged ({e}); re-save the "
                     "file with numpy.savez.") from None
  except Exception as e:  # zlib.error, BadZipFile, EOFError: a broken member.
    raise ValueError(f"{path}: array {key!r} is damaged ({type(e).__name__}: "
                     f"{e}); re-save the file with numpy.savez.") from None
  if not isinstance(a, np.ndarray):  # A zip member that is no .npy array.
    raise ValueError(f"{path}: member {member!r} is not a numpy array; "
                     "re-save the file with numpy.savez.")
  if j:
    if not j.isdigit():
      raise ValueError(f"{path}: column {column!r}: after ':' comes a column "
                       f"index (e.g. '{key}:0'); fix it in {spec.path}.")
    if a.ndim != 2 or int(j) >= a.shape[1]:
      raise ValueError(
          f"{path}: column {column!r}: array {key!r} has shape "
          f"{tuple(int(s) for s in a.shape)}; '{key}:j' needs a 2-D array "
          f"with more than {j} columns. Fix it in {spec.path}.")
    return a[:, int(j)]
  if a.ndim != 1:
    raise ValueError(f"{path}: array {key!r} has shape "
                     f"{tuple(int(s) for s in a.shape)}; name one column as "
                     f"'{key}:<index>' in {spec.path}.")
  return a


def read_npz(path: epath.Path, spec: Spec) -> Table:
  raw = read_bytes(path, spec)
  if raw.startswith(b"\x93NUMPY"):
    raise ValueError(f"{path}: a single .npy array, not an .npz archive; save "
                     "it with numpy.savez(path, name=array) and name the "
                     f"columns in {spec.path}.")
  if not raw.startswith(b"PK"):
    raise ValueError(f"{path}: not an NPZ (zip) archive"
                     f"{' (empty file)' if not raw else ''}; re-save it with "
                     "numpy.savez, or remove it from the data folder.")
  try:
    data = np.load(io.BytesIO(raw), allow_pickle=False)
  except Exception as e:  # BadZipFile, EOFError, ...: a damaged archive.
    raise ValueError(f"{path}: damaged NPZ archive ({type(e).__name__}: {e}); "
                     "re-save it with numpy.savez.") from None
  with data:
    return _columns_from_arrays(path, spec,
                                lambda c: _npz_column(data, path, spec, c))


def read_parquet(path: epath.Path, spec: Spec) -> Table:
  try:
    import pyarrow as pa  # Optional: only Parquet users need it.
    import pyarrow.parquet as pq
  except ImportError:
    raise ImportError(f"{path}: reading Parquet needs pyarrow; run: pip "
                      f"install {PYARROW_PIN}") from None
  raw = read_bytes(path, spec)
  try:
    table = pq.read_table(pa.BufferReader(raw))
  except Exception as e:  # ArrowInvalid, OSError: not (valid) Parquet.
    raise ValueError(f"{path}: not a readable Parquet file ({e}); re-export "
                     "it.") from None
  names = table.column_names
  repeated = sorted({c for c in _wanted_columns(spec) if names.count(c) > 1})
  if repeated:
    raise ValueError(f"{path}: columns {repeated} appear more than once; "
                     "rename the duplicates.")

  def get(c):
    if c not in names:
      raise ValueError(f"{path}: no column {c!r} (has {names}); fix the "
                       f"column names in {spec.path}.")
    a = table.column(c).to_numpy(zero_copy_only=False)
    if a.dtype.kind == "O" and c != spec.label_column:
      raise ValueError(f"{path}: column {c!r} holds text, not numbers; "
                       "re-export it as a float column.")
    return a
  return _columns_from_arrays(path, spec, get)


def mvnx_channel_names(sensors, spec: Spec) -> list[str]:
  axes = {"acc": "xyz", "gyr": "xyz", "quat": "wxyz"}
  return [f"{mvnx.sensor_placement(s)}_{q}_{a}" for s in sensors
          for q in spec.mvnx_quantities for a in axes[q]]


def read_mvnx_file(path: epath.Path, spec: Spec) -> tuple[Table, list[str]]:
  _check_regular(path, spec)
  try:
    rec = mvnx.read(path, mvnx.IMU_FIELDS,
                    allow_truncated=spec.allow_truncated_mvnx)
  except mvnx.MvnxError as e:
    if "allow_truncated" in str(e):  # Name the spec key, not the argument.
      raise mvnx.MvnxError(f"{e} (spec key mvnx.allow_truncated = true in "
                           f"{spec.path})") from None
    raise
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
  repairs = dict(rec.repairs)
  values = to_si(values, 1.0, path, None, repairs)
  table = Table(rec.timestamps_s, values, None, np.arange(len(rec.index)),
                repairs)
  return table, mvnx_channel_names(sensors, spec)


def read_label_file(path: epath.Path, spec: Spec, t: np.ndarray,
                    repairs: dict | None = None) -> np.ndarray:
  """Segment file `start,end,label` (data clock and unit) -> <int32>[T].

  Raises ValueError naming the file (and line) for start > end, non-finite
  times, overlapping segments, and when the segments cover less than
  `labels.min_coverage` of the recording's samples: a label file in seconds
  for data in ms (or the reverse, or epoch against relative times) would
  otherwise leave every frame silently -1.
  """
  rows = read_text(path, spec).splitlines()
  header = [h.strip() for h in rows[0].split(",")] if rows else []
  if header[:3] != ["start", "end", "label"]:
    raise ValueError(f"{path}:1: expected the header 'start,end,label', found "
                     f"{rows[0][:80] if rows else 'an empty file'!r}.")
  out = np.full(t.shape, -1, np.int32)
  covered = np.zeros(t.shape, bool)
  unit = spec.time_unit if spec.time_column else 1.0
  unit_name = next((k for k, v in TIME_UNITS.items() if v == unit), "s")
  first = last = None
  outside = 0
  reader = csv.reader(rows[1:])
  lineno = 1
  while True:
    try:
      fields = next(reader)
    except StopIteration:
      break
    except csv.Error as e:
      raise ValueError(f"{path}:{lineno + 1}: the row does not parse ({e}); "
                       "fix it.") from None
    lineno = reader.line_num + 1
    if not fields:
      continue
    if len(fields) != 3:
      raise ValueError(f"{path}:{lineno}: {len(fields)} fields, expected 3 "
                       "(start,end,label); fix the row.")
    try:
      start, end = float(fields[0]), float(fields[1])
    except ValueError:
      raise ValueError(f"{path}:{lineno}: start/end {fields[:2]} are not "
                       "numbers; fix the row.") from None
    if not (math.isfinite(start) and math.isfinite(end)):
      raise ValueError(f"{path}:{lineno}: start/end {fields[:2]} are not "
                       "finite; fix the row.")
    if start > end:
      raise ValueError(f"{path}:{lineno}: start {_plain(start)} is after end "
                       f"{_plain(end)}; swap them or fix the row.")
    start, end = start * unit, end * unit
    label = _label_id(spec, fields[2], f"{path}:{lineno}")
    first = start if first is None else min(first, start)
    last = end if last is None else max(last, end)
    inside = (t >= start) & (t < end)
    if len(t) and (end <= t[0] or start > t[-1]):
      outside += 1
    if (inside & covered).any():
      raise ValueError(f"{path}:{lineno}: segment [{fields[0]}, {fields[1]}) "
                       "overlaps an earlier one; fix the segments.")
    covered |= inside
    out[inside] = label
  if repairs is not None and outside:
    repairs["label_segments_outside_recording"] = (
        repairs.get("label_segments_outside_recording", 0) + outside)
  if len(t) >= 2 and covered.mean() < spec.min_label_coverage:
    clock = ("time.unit" if spec.time_column
             else "seconds from the first sample, with time.rate_hz")
    span = ("it has no segments" if first is None else
            f"its segments span {_plain(first / unit)}..{_plain(last / unit)}"
            f" {unit_name}")
    raise ValueError(
        f"{path}: labels {covered.sum()} of {len(t)} samples "
        f"({100 * covered.mean():.1f}%, less than labels.min_coverage = "
        f"{_plain(spec.min_label_coverage)}); {span} but the "
        f"recording spans {_plain(t[0] / unit)}..{_plain(t[-1] / unit)} "
        f"{unit_name}. Label times must be on the data's clock and in its "
        f"unit ({clock}); fix the file, or lower "
        f"labels.min_coverage in {spec.path} if it really labels so little.")
  return out


def label_path(spec: Spec, data_path) -> epath.Path:
  """The segment file of a data file: `labels.file` with {stem}, {name}.

  A plain substitution (never `str.format`, which would evaluate attribute
  lookups such as `{stem.__class__}` written in the spec).
  """
  data_path = epath.Path(data_path)
  fields = {"stem": data_path.stem, "name": data_path.name}
  name = re.sub(r"\{(stem|name)\}", lambda m: fields[m.group(1)],
                spec.label_file)
  if ".." in re.split(r"[\\/]", name):
    raise ValueError(f"{data_path}: labels.file gives {name!r}, outside the "
                     "data folder; rename the file.")
  return data_path.parent / name


def _add(total: dict, repairs: dict) -> None:
  for k, v in repairs.items():
    total[k] = total.get(k, 0) + int(v)


def _too_many(errors: list, what: str) -> str:
  listed = "\n".join(f"  - {e}" for e in errors[:_MAX_LISTED_ERRORS])
  more = len(errors) - _MAX_LISTED_ERRORS
  return (f"{len(errors)} {what}; fix them all, then rebuild:\n{listed}" +
          (f"\n  ... and {more} more" if more > 0 else ""))


def list_files(folder, spec: Spec) -> list[epath.Path]:
  """The data files of the spec under `folder`, sorted.

  Raises:
    FileNotFoundError: the folder is missing, or no file matches.
    ValueError: a matching path is a dangling symlink or not a regular file
      (all such paths in one message).
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(
        f"{folder}: the data folder does not exist (the spec's folder, or "
        f"manual_dir; spec {spec.path}). Point it at the folder holding the "
        "recordings.")
  files, bad = [], []
  # pathlib: epath refuses recursive '**' patterns (costly on cloud storage).
  for p in sorted(folder.glob(spec.files)):
    suffix = p.suffix.lower()
    if not ((spec.format or FORMATS.get(suffix)) and suffix in FORMATS):
      continue
    if p.is_symlink() and not p.exists():
      bad.append(f"{p}: a symlink to {os.readlink(p)!r}, which does not "
                 "exist; restore the target or delete the link.")
    elif p.is_dir():
      continue
    elif not p.is_file():
      bad.append(f"{p}: not a regular file (a FIFO, device or socket); "
                 "imujax reads only regular files. Move it out of the data "
                 "folder.")
    else:
      files.append(epath.Path(p))
  if bad:
    raise ValueError(_too_many(bad, f"bad paths in {folder}"))
  if spec.label_file:
    label_names = {label_path(spec, p).name for p in files}
    files = [p for p in files if p.name not in label_names]
  if not files:
    raise FileNotFoundError(
        f"{folder}: no data files match files={spec.files!r} ({spec.path}). "
        "Point manual_dir (or the spec's folder) at the data.")
  return files


def subject_of(path: epath.Path, folder: epath.Path, spec: Spec) -> str:
  rel = pathlib.Path(path).relative_to(folder).as_posix()
  m = re.search(spec.subject_regex, rel)
  if not m:
    raise ValueError(f"{path}: subject_regex {spec.subject_regex!r} does not "
                     f"match {rel!r}; fix the regex in {spec.path}.")
  subject = m.groupdict().get("subject") or m.group(1 if m.groups() else 0)
  if not subject:
    raise ValueError(f"{path}: subject_regex {spec.subject_regex!r} matches "
                     f"an empty subject in {rel!r}; fix the regex in "
                     f"{spec.path}.")
  return subject


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
    labels = label_path(spec, path)
    if os.path.lexists(labels):
      table.labels = read_label_file(labels, spec, table.timestamps_s,
                                     table.repairs)
    elif spec.missing_label_file == "unlabelled":
      table.labels = np.full(table.timestamps_s.shape, -1, np.int32)
      table.repairs["label_files_missing_unlabelled"] = 1
    else:
      raise FileNotFoundError(
          f"{labels}: label file for {path} is missing. Add it, or set "
          f"labels.missing_file = 'unlabelled' in {spec.path} to keep the "
          "recording with every frame -1.")
  return table, names


def _resample_error(e: resample.ResampleError, spec: Spec, overflow: int):
  """The resampler's error with plain numbers and the spec keys to set."""
  message = re.sub(r"np\.(?:float|int)\d*\(([^()]*)\)", r"\1", str(e))
  notes = []
  if "max_gap_s" in message or "max_nonfinite_run" in message:
    notes.append(f"max_gap_s and max_nonfinite_run are keys of {spec.path}")
  if overflow:
    notes.append(f"{overflow} value(s) beyond float32 in this file count as "
                 "non-finite")
  if notes:
    message += f" ({'; '.join(notes)}.)"
  return resample.ResampleError(message, e.index)


def make_example(path, spec: Spec, rate_hz, repairs: dict) -> dict | None:
  """One file -> example (signals, labels) on the grid; None if skipped."""
  table, _ = read_recording(path, spec)
  if len(table.timestamps_s) < 2:
    _add(repairs, table.repairs)
    logging.warning("%s: %d sample(s), fewer than 2: skipped.", path,
                    len(table.timestamps_s))
    _add(repairs, {"recordings_skipped_too_few_samples": 1})
    return None
  labels = None if table.labels is None else {"labels": table.labels}
  binary = spec.format in ("npz", "parquet", "mvnx") or path.suffix.lower() in (
      ".npz", ".parquet", ".mvnx")
  try:
    out = resample.resample_to_grid(
        table.timestamps_s, table.values, labels, rate_hz, source=str(path),
        max_nonfinite_run=spec.max_nonfinite_run, max_gap_s=spec.max_gap_s,
        first_line=None if binary else table.lines)
  except resample.ResampleError as e:
    raise _resample_error(e, spec, table.repairs.get(
        "values_beyond_float32", 0)) from None
  # Counted only once the file is accepted: a failed build counts nothing.
  _add(repairs, table.repairs)
  _add(repairs, out.repairs)
  duration = out.timestamps_s[-1] - out.timestamps_s[0]
  if duration < spec.min_duration_s:
    logging.warning("%s: %.2f s long, shorter than min_duration_s=%g: kept.",
                    path, duration, spec.min_duration_s)
    _add(repairs, {"recordings_shorter_than_min_duration": 1})
  n = out.signals.shape[0]
  return {"signals": out.signals,
          "labels": out.labels.get("labels", np.full(n, -1, np.int32))}


def _spec_record(spec: Spec) -> dict:
  """The resolved spec as JSON values, without where it lives.

  The spec's own path and the absolute folder are left out so that the same
  files and spec give the same fingerprint on another machine (copied with
  their mtimes, e.g. `rsync -a`).
  """
  out = {}
  for field in dataclasses.fields(Spec):
    if field.name in ("path", "folder"):
      continue
    value = getattr(spec, field.name)
    if isinstance(value, frozenset):
      value = sorted(value)
    elif isinstance(value, tuple):
      value = json.loads(json.dumps(value))
    out[field.name] = value
  return out


def input_manifest(folder, spec: Spec, files, rate: str) -> dict:
  """What a build depends on: spec, each input's path, size and mtime."""
  folder = pathlib.Path(folder)
  entries = {}
  for p in files:
    paths = [pathlib.Path(p)]
    if spec.label_file:
      paths.append(pathlib.Path(label_path(spec, p)))
    for q in paths:
      rel = q.relative_to(folder).as_posix()
      try:
        st = os.stat(q)
        entries[rel] = [st.st_size, st.st_mtime_ns]
      except FileNotFoundError:
        entries[rel] = None  # A missing label file is an input too.
  return {"builder": f"{Builder.VERSION}+r{READER_VERSION}", "rate": rate,
          "spec": _spec_record(spec), "files": entries}


def fingerprint(manifest: dict) -> str:
  """sha256 hex of a manifest from `input_manifest`."""
  text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def manifest_diff(old: dict, new: dict) -> str:
  """What changed between two manifests, in words (for the rebuild log)."""
  parts = []
  if old.get("builder") != new.get("builder"):
    parts.append(f"builder {old.get('builder')} -> {new.get('builder')}")
  spec_old, spec_new = old.get("spec", {}), new.get("spec", {})
  changed = sorted(k for k in set(spec_old) | set(spec_new)
                   if spec_old.get(k) != spec_new.get(k))
  if changed:
    parts.append(f"spec changed ({', '.join(changed)})")
  f_old, f_new = old.get("files", {}), new.get("files", {})
  for what, names in (
      ("added", sorted(set(f_new) - set(f_old))),
      ("removed", sorted(set(f_old) - set(f_new))),
      ("modified", sorted(k for k in set(f_old) & set(f_new)
                          if f_old[k] != f_new[k]))):
    if names:
      parts.append(f"{len(names)} file(s) {what}: {', '.join(names[:5])}" +
                   (", ..." if len(names) > 5 else ""))
  return "; ".join(parts) or "no difference found"


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float | None = 50.0
  spec_path: str = ""
  fingerprint: str = ""


_ANY_RATE = re.compile(r"^(\d+(?:\.\d+)?)hz$")


def _rate_of(config) -> str:
  """The rate part of a config name: a named rate, `native` or any `<N>hz`.

  A lab's device may sample at 20 Hz: `recordings/20hz` keeps it there
  rather than resampling it to one of the named rates.
  """
  name = (config.name if isinstance(config, tfds.core.BuilderConfig)
          else (config or "50hz"))
  rates = [part for part in name.split("_")
           if part in RATES or _ANY_RATE.match(part)]
  if not rates:
    raise ValueError(f"config {name!r}: the rate must be `native` or "
                     "`<N>hz`, e.g. config='20hz' (data.name="
                     "'recordings/20hz').")
  return rates[-1]


def _hz(rate: str, spec) -> float | None:
  if rate == "native":
    return spec.rate_hz
  if rate in RATES:
    return RATES[rate]
  return float(_ANY_RATE.match(rate).group(1))


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for a lab's own recordings described by a spec file."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "Configs keyed on a fingerprint of spec and files; values "
               "beyond float32 counted; label files must cover "
               "labels.min_coverage; strict spec.",
  }
  # Placeholders so that TFDS can list the builder; a real config is made from
  # the spec (`Builder(spec=..., config="50hz")`).
  BUILDER_CONFIGS = [Config(name=r, rate_hz=hz) for r, hz in RATES.items()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Nothing is downloaded. Pass spec=<your spec.toml>; the files are read from
  manual_dir (Builder(spec=..., manual_dir=...)) when given, else from the
  spec's `folder` (default: the spec's own folder). See
  imujax/datasets/recordings/README.md.
  """

  def __init__(self, *, spec=None, config=None, manual_dir=None, **kwargs):
    self._spec, self._fingerprint, self._folder = None, "", None
    if spec is not None:
      self._spec = load_spec(spec)
      rate = _rate_of(config)
      self._folder = pathlib.Path(
          os.path.expanduser(str(manual_dir)) if manual_dir
          else self._spec.folder).absolute()
      self._files = list_files(self._folder, self._spec)
      self._manifest = input_manifest(self._folder, self._spec, self._files,
                                      rate)
      self._fingerprint = fingerprint(self._manifest)
      hz = _hz(rate, self._spec)
      # The fingerprint in the name keys the build on its inputs: TFDS
      # reuses a prepared dataset only if nothing it was built from changed.
      config = Config(name=f"{self._spec.name}_{rate}_"
                      f"{self._fingerprint[:12]}", rate_hz=hz,
                      spec_path=self._spec.path,
                      fingerprint=self._fingerprint,
                      description=f"{self._spec.path} at {rate}")
    super().__init__(config=config, **kwargs)
    self._original_state["spec"] = spec
    self._original_state["manual_dir"] = manual_dir

  @property
  def fingerprint(self) -> str:
    """sha256 of the resolved spec, input files (paths, sizes, mtimes), rate
    and builder version; also `info.metadata["fingerprint"]`."""
    return self._fingerprint

  def download_and_prepare(self, *, download_dir=None, download_config=None,
                           **kwargs):
    manual = download_config and download_config.manual_dir
    if self._spec is not None and manual and (
        pathlib.Path(os.path.expanduser(str(manual))).absolute()
        != self._folder):
      raise ValueError(
          f"manual_dir {manual} differs from the folder this build is keyed "
          f"on ({self._folder}); pass it to the builder instead: "
          "Builder(spec=..., manual_dir=...), or tfds.builder("
          "'recordings/50hz', spec=..., manual_dir=...).")
    if self._spec is not None and not self.is_prepared():
      logging.info("recordings: building %s from %s: %s", self.info.full_name,
                   self._folder, self._rebuild_reason())
    return super().download_and_prepare(
        download_dir=download_dir, download_config=download_config, **kwargs)

  def _rebuild_reason(self) -> str:
    """Why no prepared build fits: compares with earlier builds' manifests."""
    root = pathlib.Path(self.data_dir_root) / self.name
    # `<name>_<rate>_*`, and `<name>_<rate>` of builder 1.0.0 (no fingerprint).
    prefix = self.builder_config.name[:-len(self._fingerprint[:12]) - 1]
    earlier = []
    for meta in root.glob(f"{prefix}*/*/metadata.json"):
      try:
        earlier.append((meta.stat().st_mtime, meta,
                        json.loads(meta.read_text())))
      except (OSError, ValueError):
        continue
    if not earlier:
      return "no earlier build of this spec name and rate"
    same = [e for e in earlier if e[2].get("spec") == self._spec.path]
    if not same:
      others = sorted({m.parent.parent.name for _, m, _ in earlier})
      return (f"earlier builds {others} come from another spec file "
              f"({earlier[0][2].get('spec')}); this spec gets its own build")
    _, meta, old = max(same, key=lambda e: e[0])
    if "fingerprint_inputs" not in old:
      return (f"the build at {meta.parent} predates builds keyed on their "
              "inputs and is not reused; delete it to free the space")
    diff = manifest_diff(old["fingerprint_inputs"], self._manifest)
    return (f"the build at {meta.parent} is stale ({diff}); it is kept, "
            "delete it to free the space")

  def _info(self) -> tfds.core.DatasetInfo:
    spec = self._spec
    if spec is None:
      raise ValueError("The recordings builder needs its spec: "
                       "Builder(spec='/path/spec.toml', config='50hz') or "
                       "tfds.builder('recordings/50hz', spec=...); "
                       "`python -m imujax.data` takes --spec.")
    names = self._channel_names()
    return self.dataset_info_from_configs(
        description=__doc__, features=common.example_features(len(names)),
        metadata=tfds.core.MetadataDict(
            channel_names=names, class_names=list(spec.class_names),
            label_tracks={"labels": list(spec.class_names)},
            sample_rate_hz=float(self.builder_config.rate_hz or 0.0),
            units={"acc": "m/s^2", "gyr": "rad/s", "quat": "1"},
            spec=spec.path, folder=str(self._folder),
            fingerprint=self._fingerprint,
            fingerprint_inputs=self._manifest, repairs={}))

  def _channel_names(self) -> list[str]:
    spec = self._spec
    if spec.format != "mvnx":
      return [n for _, n, _ in spec.channels]
    sensors = spec.mvnx_sensors
    if sensors is None:
      # Without mvnx.sensors the names come from the first file (read whole,
      # which is fast: see imujax.datasets.mvnx).
      _check_regular(self._files[0], spec)
      sensors = mvnx.read(self._files[0], ("sensorOrientation",)).sensor_labels
    return mvnx_channel_names(sensors, spec)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The folder was fixed (and fingerprinted) in __init__.
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    repairs.update(dict.fromkeys(REPAIR_KEYS, 0))
    return {"train": self._generate_examples(self._folder, repairs)}

  def _generate_examples(self, folder, repairs):
    spec = self._spec
    rate = self.builder_config.rate_hz
    files = self._files
    if rate is None:  # native, with no rate in the spec: the first file's.
      table, _ = read_recording(files[0], spec)
      rate = resample.native_rate_hz(table.timestamps_s)
      self.info.metadata["sample_rate_hz"] = rate
    errors, skipped, yielded = [], 0, 0
    for path in files:
      try:
        example = make_example(path, spec, rate, repairs)
        if example is None:
          skipped += 1
          continue
        subject = subject_of(path, folder, spec)
      except (ValueError, OSError) as e:
        # Keep going: the user gets every bad file in one error.
        errors.append(e)
        continue
      recording = pathlib.Path(path).relative_to(folder).as_posix()
      recording = recording.rsplit(".", 1)[0].replace("/", "__")
      example["subject"], example["recording"] = subject, recording
      yielded += 1
      if not errors:  # After an error nothing will be written: stop yielding.
        yield recording, example
    if len(errors) == 1:
      raise errors[0]
    if errors:
      raise BuildError(_too_many(errors, f"of {len(files)} files in {folder} "
                                 "are bad"), errors)
    if not yielded:
      raise ValueError(
          f"{folder}: none of the {len(files)} file(s) matching "
          f"files={spec.files!r} has 2 or more samples ({skipped} skipped: "
          "header only or a single row); add recordings or fix files in "
          f"{spec.path}.")
