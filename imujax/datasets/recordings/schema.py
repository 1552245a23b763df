"""The TOML spec of the `recordings` builder: schema, defaults, validation.

See README.md beside this file for every key. `load_spec` checks the whole
spec strictly (unknown keys in any table, types, ranges, paths that would
leave the data folder) and reports every problem in one SpecError.
"""

import codecs
import dataclasses
import math
import os
import pathlib
import re
import tomllib

from etils import epath
import numpy as np

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

# Every spec key, per table: unknown keys are errors that list these.
TOP_KEYS = ("name", "folder", "files", "format", "subject_regex", "channels",
            "time", "labels", "csv", "mvnx", "min_duration_s", "max_gap_s",
            "max_nonfinite_run", "max_file_mb")
TABLE_KEYS = {
    "time": ("column", "unit", "rate_hz"),
    "labels": ("column", "file", "class_names", "map", "unlabelled",
               "missing_file", "min_coverage"),
    "csv": ("delimiter", "encoding", "max_malformed_rows"),
    "mvnx": ("sensors", "quantities", "allow_truncated"),
}
CHANNEL_KEYS = ("column", "name", "unit")
# Placeholders `labels.file` may use; nothing else in it is evaluated.
LABEL_FILE_FIELDS = ("stem", "name")


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
  encoding: str = "utf-8"
  min_label_coverage: float = 0.1
  max_gap_s: float = 1.0
  max_nonfinite_run: int = 10
  max_file_mb: float = 1024.0


def plain(value) -> str:
  """A number as users write it (`1.5`, not `np.float64(1.5)`)."""
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    return f"{float(value):g}"
  return repr(value)


def _kind(value) -> str:
  return {bool: "a boolean", int: "an integer", float: "a number",
          str: "a string", list: "a list", dict: "a table"}.get(
              type(value), type(value).__name__)


class _SpecChecker:
  """Reads typed values out of the TOML tables, collecting every problem."""

  def __init__(self, where: str):
    self.where = where
    self.errors: list[str] = []

  def fail(self, message: str) -> None:
    self.errors.append(message)

  def known(self, table: dict, valid, label: str) -> None:
    for key in table:
      if key not in valid:
        self.fail(f"unknown key {label}{key!r}; valid keys here: "
                  f"{', '.join(valid)}.")

  def get(self, table: dict, key: str, label: str, want: str, default=None):
    """`want`: str | int | number | bool | table | str_list."""
    if key not in table:
      return default
    value = table[key]
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": (isinstance(value, (int, float))
                   and not isinstance(value, bool) and math.isfinite(value)),
        "bool": isinstance(value, bool),
        "table": isinstance(value, dict),
        "str_list": (isinstance(value, list)
                     and all(isinstance(v, str) for v in value)),
    }[want]
    if not ok:
      hint = {"str": f' (quote it: {key} = "{value}")'
                     if isinstance(value, (int, float)) else "",
              "str_list": ' (e.g. ["a", "b"])'}.get(want, "")
      what = {"str": "a string", "int": "an integer", "number": "a number",
              "bool": "true or false", "table": "a table",
              "str_list": "a list of strings"}[want]
      self.fail(f"{label}{key} must be {what}, got {_kind(value)} "
                f"{value!r}{hint}.")
      return default
    return value


def _check_relative(pattern: str, key: str, c: _SpecChecker) -> None:
  """Spec paths stay inside the data folder: relative, no '..'."""
  if pathlib.PurePosixPath(pattern).is_absolute() or re.match(
      r"^[A-Za-z]:[\\/]", pattern) or pattern.startswith("~"):
    c.fail(f"{key} = {pattern!r} is absolute; it must be relative to the "
           "data folder. Set folder (or manual_dir) to the folder and "
           f"{key} to the pattern inside it.")
  elif ".." in re.split(r"[\\/]", pattern):
    c.fail(f"{key} = {pattern!r} leaves the data folder ('..'); point folder "
           "(or manual_dir) at a folder that holds the files instead.")


def _check_label_file(pattern: str, c: _SpecChecker) -> None:
  _check_relative(pattern, "labels.file", c)
  fields = re.findall(r"\{([^{}]*)\}", pattern)
  unknown = [f for f in fields if f not in LABEL_FILE_FIELDS]
  if unknown:
    c.fail(f"labels.file = {pattern!r}: unknown placeholder(s) "
           f"{', '.join('{' + f + '}' for f in unknown)}; only "
           f"{', '.join('{' + f + '}' for f in LABEL_FILE_FIELDS)} are "
           "substituted.")
  elif re.search(r"[{}]", re.sub(r"\{(?:stem|name)\}", "", pattern)):
    c.fail(f"labels.file = {pattern!r}: unmatched brace; only "
           "{stem} and {name} may appear in braces.")


def load_spec(path) -> Spec:
  """Reads and validates a TOML spec; errors name the file and key.

  Every problem of the spec is reported in one SpecError. Types are strict:
  a column is a string (`column = "2"`, never `column = 2`, so a header named
  2 and an index cannot be confused), numbers are TOML numbers.
  """
  path = epath.Path(path)
  if not path.exists():
    raise SpecError(f"{path}: spec file not found. Write one as shown in "
                    "imujax/datasets/recordings/README.md.")
  try:
    raw = tomllib.loads(path.read_text())
  except UnicodeDecodeError:
    raise SpecError(f"{path}: not UTF-8 text; save the spec as "
                    "UTF-8.") from None
  except tomllib.TOMLDecodeError as e:
    raise SpecError(f"{path}: not valid TOML ({e}).") from None
  w = str(path)
  c = _SpecChecker(w)
  c.known(raw, TOP_KEYS, "")
  name = c.get(raw, "name", "", "str", path.parent.name)
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
    c.fail(f"name {name!r} must be lower_snake_case (it becomes the TFDS "
           "config name); set name = \"my_lab\".")
  fmt = c.get(raw, "format", "", "str")
  if fmt is not None and fmt not in set(FORMATS.values()):
    c.fail(f"format {fmt!r} must be one of {sorted(set(FORMATS.values()))}.")
  files = c.get(raw, "files", "", "str", "**/*")
  _check_relative(files, "files", c)
  tables = {t: c.get(raw, t, "", "table", {}) for t in TABLE_KEYS}
  for t, keys in TABLE_KEYS.items():
    c.known(tables[t], keys, f"{t}.")

  channels, names = [], set()
  raw_channels = raw.get("channels", [])
  if not isinstance(raw_channels, list):
    c.fail(f"channels must be a list of tables, got {_kind(raw_channels)}.")
    raw_channels = []
  for i, ch in enumerate(raw_channels):
    label = f"channels[{i}]."
    if not isinstance(ch, dict) or "column" not in ch or "name" not in ch:
      c.fail(f"channels[{i}]: each channel needs column and name, e.g. "
             '{column = "ax", name = "wrist_acc_x", unit = "g"}.')
      continue
    c.known(ch, CHANNEL_KEYS, label)
    column = c.get(ch, "column", label, "str")
    ch_name = c.get(ch, "name", label, "str")
    unit = c.get(ch, "unit", label, "str", "")
    if unit not in UNITS:
      c.fail(f"{label}unit {unit!r} unknown; use one of {sorted(UNITS)}.")
      unit = ""
    if ch_name in names:
      c.fail(f"{label}name {ch_name!r} is used by an earlier channel; "
             "channel names must be unique.")
    names.add(ch_name)
    if column is not None and ch_name is not None:
      channels.append((column, ch_name, UNITS[unit]))

  time = tables["time"]
  time_column = c.get(time, "column", "time.", "str")
  time_unit = c.get(time, "unit", "time.", "str", "s")
  if time_unit not in TIME_UNITS:
    c.fail(f"time.unit {time_unit!r} must be one of {sorted(TIME_UNITS)}.")
    time_unit = "s"
  rate = c.get(time, "rate_hz", "time.", "number")
  if rate is not None and not rate > 0:
    c.fail(f"time.rate_hz must be a positive number, got {plain(rate)}.")
    rate = None

  labels = tables["labels"]
  class_names = tuple(c.get(labels, "class_names", "labels.", "str_list", []))
  if len(set(class_names)) != len(class_names):
    dup = sorted({n for n in class_names if class_names.count(n) > 1})
    c.fail(f"labels.class_names lists {dup} more than once.")
  label_map = c.get(labels, "map", "labels.", "table", {})
  for k, v in label_map.items():
    if isinstance(v, bool) or not isinstance(v, int):
      c.fail(f"labels.map.{k} must be an integer class id (a position in "
             f"labels.class_names), got {_kind(v)} {v!r}.")
    elif class_names and not 0 <= v < len(class_names):
      c.fail(f"labels.map.{k} = {v}: map values must index "
             f"labels.class_names (0..{len(class_names) - 1}).")
  label_map = {k: v for k, v in label_map.items()
               if isinstance(v, int) and not isinstance(v, bool)}
  if not label_map:
    label_map = {n: i for i, n in enumerate(class_names)}
  label_column = c.get(labels, "column", "labels.", "str")
  label_file = c.get(labels, "file", "labels.", "str")
  if label_column and label_file:
    c.fail("give one of labels.column (labels in the data file) and "
           "labels.file (a segment file per recording), not both.")
  if label_file:
    _check_label_file(label_file, c)
  if (label_column or label_file) and not class_names:
    c.fail("labels.class_names is required with labels (the ordered class "
           "list; ids are positions in it).")
  missing = c.get(labels, "missing_file", "labels.", "str", "error")
  if missing not in ("error", "unlabelled"):
    c.fail(f"labels.missing_file {missing!r} must be 'error' or "
           "'unlabelled'.")
  coverage = c.get(labels, "min_coverage", "labels.", "number", 0.1)
  if not 0 <= coverage <= 1:
    c.fail(f"labels.min_coverage must be in [0, 1], got {plain(coverage)}.")
  unlabelled = c.get(labels, "unlabelled", "labels.", "str_list", [""])

  csv_opts = tables["csv"]
  delimiter = c.get(csv_opts, "delimiter", "csv.", "str", ",")
  if len(delimiter) != 1 or delimiter in "\r\n\"":
    c.fail(f"csv.delimiter must be one character other than a quote or "
           f"newline, e.g. \",\" or \";\" or \"\\t\", got {delimiter!r}.")
    delimiter = ","
  encoding = c.get(csv_opts, "encoding", "csv.", "str", "utf-8")
  try:
    codecs.lookup(encoding)
  except LookupError:
    c.fail(f"csv.encoding {encoding!r} is not a Python codec; use e.g. "
           "\"utf-8\", \"utf-16\" or \"latin-1\".")
    encoding = "utf-8"
  max_malformed = c.get(csv_opts, "max_malformed_rows", "csv.", "int", 10)
  if max_malformed < 0:
    c.fail(f"csv.max_malformed_rows must be >= 0, got {max_malformed}.")

  mv = tables["mvnx"]
  quantities = tuple(c.get(mv, "quantities", "mvnx.", "str_list",
                           ["acc", "gyr"]))
  if set(quantities) - {"acc", "gyr", "quat"}:
    c.fail("mvnx.quantities must be drawn from acc, gyr, quat.")
  sensors = c.get(mv, "sensors", "mvnx.", "str_list")
  allow_truncated = c.get(mv, "allow_truncated", "mvnx.", "bool", False)

  def positive(key, want, default, low=0.0):
    value = c.get(raw, key, "", want, default)
    if not value > low:
      c.fail(f"{key} must be > {plain(low)}, got {plain(value)}.")
      return default
    return value
  min_duration = c.get(raw, "min_duration_s", "", "number", 2.56)
  max_gap = positive("max_gap_s", "number", 1.0)
  max_run = c.get(raw, "max_nonfinite_run", "", "int", 10)
  if max_run < 0:
    c.fail(f"max_nonfinite_run must be >= 0, got {max_run}.")
  max_mb = positive("max_file_mb", "number", 1024.0)
  subject_regex = c.get(raw, "subject_regex", "", "str", r"(?P<subject>[^/_]+)")
  try:
    re.compile(subject_regex)
  except re.error as e:
    c.fail(f"subject_regex does not compile ({e}).")
  folder = c.get(raw, "folder", "", "str", ".")
  if fmt != "mvnx" and not channels and not any(
      e.startswith("channels") for e in c.errors):
    c.fail('list the channels, e.g. channels = [{column = "ax", name = '
           '"wrist_acc_x", unit = "g"}].')
  if fmt != "mvnx" and time_column is None and rate is None:
    c.fail("give time.column (+ time.unit) or time.rate_hz.")
  if c.errors:
    if len(c.errors) == 1:
      raise SpecError(f"{w}: {c.errors[0]}")
    raise SpecError(f"{w}: {len(c.errors)} problems:\n" +
                    "\n".join(f"  - {e}" for e in c.errors))
  return Spec(
      path=str(path), name=name,
      folder=os.path.normpath(str(path.parent / os.path.expanduser(folder))),
      files=files, format=fmt, subject_regex=subject_regex,
      channels=tuple(channels), time_column=time_column,
      time_unit=TIME_UNITS[time_unit],
      rate_hz=None if rate is None else float(rate),
      label_column=label_column, label_file=label_file,
      class_names=class_names, label_map=label_map,
      unlabelled=frozenset(unlabelled), missing_label_file=missing,
      delimiter=delimiter, max_malformed_rows=max_malformed,
      min_duration_s=float(min_duration),
      mvnx_sensors=None if sensors is None else tuple(sensors),
      mvnx_quantities=quantities, allow_truncated_mvnx=allow_truncated,
      encoding=encoding, min_label_coverage=float(coverage),
      max_gap_s=float(max_gap), max_nonfinite_run=max_run,
      max_file_mb=float(max_mb))
