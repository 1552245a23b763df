"""Readers: one file of a spec's format into a `Table` in SI units.

CSV (with the spec's encoding, delimiter and malformed-row policy), NPZ,
Parquet and MVNX recordings, and label files (per-frame columns or segment
tables). Every error names the file (and line) and the fix; every repair is
counted.
"""

import csv
import io
import os

from absl import logging
from etils import epath
import numpy as np

from imujax.datasets import mvnx
from imujax.datasets.recordings import schema

Spec = schema.Spec
SpecError = schema.SpecError
_plain = schema.plain

from imujax.datasets.recordings import label_files
from imujax.datasets.recordings import paths
from imujax.datasets.recordings import segment_table
from imujax.datasets.recordings import siblings

F32_MAX = float(np.finfo(np.float32).max)
PYARROW_PIN = "pyarrow==26.0.1"


class Table:
  """One file's columns as parsed.

  Attributes:
    timestamps_s: <float64>[T] seconds.
    values: <float64>[T, C] in SI units.
    labels: <int32>[T] or None.
    lines: <int64>[T] file line of each row (row index for binary formats).
    repairs: repair name -> count.
    rows: <int64>[T] position of each row among the file's data rows,
      counted from 0 with dropped (malformed or cut-off) rows included: the
      sample index that segment tables and sibling files refer to.
    num_rows: data rows in the file, dropped ones included.
    preamble: a text file's lines before its header (None for binary files).
  """
  preamble = None

  def __init__(self, timestamps_s, values, labels, lines, repairs, rows=None,
               num_rows=None):
    self.timestamps_s, self.values, self.labels = timestamps_s, values, labels
    self.lines, self.repairs = lines, repairs
    self.rows = (np.arange(len(timestamps_s)) if rows is None
                 else np.asarray(rows, np.int64))
    self.num_rows = len(self.rows) if num_rows is None else num_rows


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


def _wanted_columns(spec: Spec) -> list[str]:
  wanted = [c for c, _, _ in spec.channels]
  if spec.time_column:
    wanted.append(spec.time_column)
  if spec.label_column:
    wanted.append(spec.label_column)
  return wanted


def _header(lines: list[str], path, spec: Spec) -> tuple[list[str], int]:
  """(column names, index of the first data line) of a text file."""
  first = paths.first_row(lines, spec)
  if spec.csv_columns:
    return list(spec.csv_columns), first
  if first >= len(lines):
    raise ValueError(
        f"{path}: no header line" + (f" after csv.skip_rows = "
                                     f"{spec.skip_rows} line(s)"
                                     if spec.skip_rows else "") +
        "; delete or restore the file, or name the columns of header-less "
        f"files with csv.columns in {spec.path}.")
  try:
    header = next(csv.reader([lines[first]], delimiter=spec.delimiter), [])
  except csv.Error as e:
    raise ValueError(f"{path}:{first + 1}: the header does not parse "
                     f"({e}).") from None
  header = [h.strip() for h in header]
  if len(header) > 1 and not header[-1]:
    header.pop()  # A trailing delimiter.
  return header, first + 1


def _check_header(header, path, line: int, spec: Spec) -> None:
  wanted = _wanted_columns(spec)
  missing = [c for c in wanted if c not in header]
  if missing:
    skip = ("" if spec.skip_rows else ", csv.skip_rows if preamble lines "
            "come before it")
    raise ValueError(
        f"{path}:{line}: columns {missing} are not in the header "
        f"{[h[:40] for h in header[:50]]}; fix the spec's column names "
        f"({spec.path}), or csv.delimiter if the header is one field{skip}.")
  repeated = sorted({c for c in wanted if header.count(c) > 1})
  if repeated:
    raise ValueError(
        f"{path}:{line}: the header names {repeated} more than once; which "
        "one the spec means is ambiguous. Rename the duplicated columns.")


def read_csv(path: epath.Path, spec: Spec) -> Table:
  """Parses a delimited text file: a header row naming the spec's columns
  (after `csv.skip_rows` preamble lines), or none with `csv.columns`."""
  text = paths.read_text(path, spec)
  lines = text.splitlines()
  if not lines:
    raise ValueError(f"{path}: empty file; delete it or restore it.")
  header, start = _header(lines, path, spec)
  if not spec.csv_columns:
    _check_header(header, path, start, spec)
  col = {h: i for i, h in enumerate(header)}
  ch_idx = [col[c] for c, _, _ in spec.channels]
  scale = np.array([s for _, _, s in spec.channels])
  repairs = {"malformed_rows_dropped": 0, "truncated_rows_dropped": 0}
  end = len(lines)
  if end > start and not text.endswith(("\n", "\r")) and not paths.is_comment(
      lines[-1], spec.comment):
    # A cut-off last row may still parse (a shortened number): never trust it.
    end -= 1
    repairs["truncated_rows_dropped"] = 1
  what = ("csv.columns names" if spec.csv_columns else "the header has")
  ts, values, labels, lines_kept, rows, malformed = [], [], [], [], [], []
  position = -1
  for position, (lineno, fields) in enumerate(paths.csv_rows(
      lines[:end], path, "fix or delete it.", spec.delimiter, start=start,
      comment=spec.comment)):
    fields = paths.drop_trailing_empty(fields, len(header))
    if len(fields) != len(header):
      raise ValueError(
          f"{path}:{lineno}: {len(fields)} fields, {what} {len(header)} "
          f"({spec.delimiter!r}-separated). The row is damaged: fix or "
          "delete it.")
    try:
      row = [float(fields[i]) for i in ch_idx]
      t = float(fields[col[spec.time_column]]) if spec.time_column else None
    except ValueError:
      malformed.append(lineno)
      continue
    if spec.label_column:
      labels.append(label_files.label_id(
          spec, fields[col[spec.label_column]], f"{path}:{lineno}"))
    ts.append(t)
    values.append(row)
    lines_kept.append(lineno)
    rows.append(position)
  if len(malformed) > spec.max_malformed_rows:
    raise ValueError(
        f"{path}:{malformed[0]}: {len(malformed)} rows whose numbers do not "
        f"parse (first: {lines[malformed[0] - 1][:80]!r}); at most "
        f"{spec.max_malformed_rows} are dropped (csv.max_malformed_rows). "
        "Numbers need '.' decimals and no thousands separators: re-export the "
        "file.")
  if malformed:
    logging.warning("%s: dropped %d malformed row(s) at line(s) %s", path,
                    len(malformed), malformed[:20])
  repairs["malformed_rows_dropped"] = len(malformed)
  lines_kept = np.asarray(lines_kept, np.int64)
  rows = np.asarray(rows, np.int64)
  values = to_si(np.asarray(values, np.float64).reshape(-1, len(ch_idx)),
                 scale, path, lines_kept, repairs)
  if spec.time_column:
    t = np.asarray(ts, np.float64) * spec.time_unit
  else:
    t = rows / spec.rate_hz  # Row positions keep dropped rows' slots.
  table = Table(t, values, np.asarray(labels, np.int32)
                if spec.label_column else None, lines_kept, repairs, rows,
                position + 1 + repairs["truncated_rows_dropped"])
  table.preamble = lines[:paths.first_row(lines, spec)]
  return table


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
    labels = np.array([label_files.label_id(spec, v.item() if hasattr(v, "item") else v,
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
  raw = paths.read_bytes(path, spec)
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
  raw = paths.read_bytes(path, spec)
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
  paths.check_regular(path, spec)
  try:
    rec = mvnx.read(path, mvnx.IMU_FIELDS,
                    allow_truncated=spec.allow_truncated_mvnx)
  except mvnx.MvnxError as e:
    if "allow_truncated" in str(e):  # Name the spec key, not the argument.
      raise mvnx.MvnxError(str(e).replace(
          "pass allow_truncated=True",
          f"set mvnx.allow_truncated = true in {spec.path}")) from None
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


def read_file(path: epath.Path, spec: Spec) -> tuple[Table, list[str]]:
  """Reads one file of any supported format (no sibling or label files)."""
  fmt = spec.format or schema.FORMATS[path.suffix.lower()]
  if fmt == "csv":
    return read_csv(path, spec), [n for _, n, _ in spec.channels]
  if fmt == "npz":
    return read_npz(path, spec), [n for _, n, _ in spec.channels]
  if fmt == "parquet":
    return read_parquet(path, spec), [n for _, n, _ in spec.channels]
  return read_mvnx_file(path, spec)


def _label_file(path, spec: Spec, table: Table):
  labels = paths.label_path(spec, path)
  if os.path.lexists(labels):
    return label_files.read_label_file(labels, spec, table.timestamps_s,
                                       table.repairs)
  return None


def read_recording(path: epath.Path, spec: Spec,
                   segments=None) -> tuple[Table, list[str]]:
  """Reads one data file with its sibling channel files and its labels.

  Args:
    path: the data file.
    spec: the spec.
    segments: the parsed `labels.segments` table (`segment_table.read`);
      read from the spec's folder when None.
  """
  path = epath.Path(path)
  table, names = read_file(path, siblings.own_spec(spec))
  if spec.channel_files:
    table = siblings.merge(path, spec, table, read_file)
    names = [n for _, n, _ in spec.channels]
  if spec.label_from_name:
    table.labels = label_files.from_name(spec, path, len(table.timestamps_s))
  elif spec.label_from_header:
    table.labels = label_files.from_header(spec, path, table.preamble,
                                           len(table.timestamps_s))
  elif spec.label_file or spec.segments:
    if spec.label_file:
      labels = _label_file(path, spec, table)
      what = (f"{paths.label_path(spec, path)}: label file for {path} is "
              "missing. Add it")
    else:
      if segments is None:
        segments = segment_table.read(epath.Path(spec.folder) / spec.segments,
                                      spec)
      labels = segment_table.labels_for(segments, spec, path,
                                        table.timestamps_s, table.rows,
                                        table.repairs)
      keys = dict(zip(segments.key_names,
                      segment_table.recording_key(segments, spec, path)))
      what = (f"{segments.path}: no row for {path.name} (keys {keys}). Add "
              "its segments")
    if labels is not None:
      table.labels = labels
    elif spec.missing_label_file == "unlabelled":
      table.labels = np.full(table.timestamps_s.shape, -1, np.int32)
      table.repairs["label_files_missing_unlabelled"] = 1
    else:
      raise FileNotFoundError(
          f"{what}, or set labels.missing_file = 'unlabelled' in {spec.path} "
          "to keep the recording with every frame -1.")
  return table, names
