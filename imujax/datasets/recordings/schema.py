"""The TOML spec of the `recordings` builder: schema, defaults, validation.

See README.md beside this file for every key. `load_spec` checks the whole
spec strictly (unknown keys in any table, types, ranges, paths that would
leave the data folder) and reports every problem in one SpecError.
"""

import codecs
import dataclasses
import math
import os
import re
import tomllib

from etils import epath

from imujax.datasets.recordings import channel_modality
from imujax.datasets.recordings import checker

plain = checker.plain

# Unit -> factor to SI (m/s^2, rad/s, s, ...).
UNITS = {
    "m/s^2": 1.0, "m/s2": 1.0, "g": 9.80665, "mg": 9.80665e-3,
    "rad/s": 1.0, "deg/s": math.pi / 180, "dps": math.pi / 180,
    "rad": 1.0, "deg": math.pi / 180, "uT": 1.0, "T": 1e6, "a.u.": 1.0,
    "m": 1.0, "m/s": 1.0, "": 1.0,
    # Other modalities (objectives/modality.py): pressure to Pa, field to uT;
    # the rest are kept as they are.
    "mT": 1e3, "nT": 1e-3, "Pa": 1.0, "kPa": 1e3, "N/cm^2": 1e4,
    "N": 1.0, "N/kg": 1.0, "BW": 1.0, "px": 1.0, "normalised": 1.0, "1": 1.0,
}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
FORMATS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".npz": "npz",
           ".mvnx": "mvnx"}

# Every spec key, per table: unknown keys are errors that list these.
TOP_KEYS = ("name", "folder", "files", "format", "subject_regex", "key_regex",
            "channels", "time", "labels", "csv", "mvnx", "min_duration_s",
            "max_gap_s", "max_nonfinite_run", "max_file_mb")
TABLE_KEYS = {
    "time": ("column", "unit", "rate_hz"),
    "labels": ("column", "file", "from_name", "from_header", "segments",
               "segment_columns", "segment_unit", "segment_first",
               "segment_end", "class_names", "map", "unlabelled",
               "missing_file", "min_coverage"),
    "csv": ("delimiter", "encoding", "comment", "skip_rows", "columns",
            "max_malformed_rows"),
    "mvnx": ("sensors", "quantities", "allow_truncated"),
}
CHANNEL_KEYS = ("column", "name", "unit", "file", "modality", "placement")
# Placeholders `labels.file` may use without key_regex.
LABEL_FILE_FIELDS = checker.FILE_FIELDS
# `labels.segment_columns` names with a meaning of their own ("_": ignored).
SEGMENT_FIELDS = ("start", "end", "label", "_")
# The ways of labelling a recording; at most one per spec.
LABEL_SOURCES = ("column", "file", "from_name", "from_header", "segments")


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
  # Added in reader 3; left out of the fingerprint while at these defaults.
  comment: str | None = None
  skip_rows: int = 0
  csv_columns: tuple[str, ...] = ()  # Names of a header-less file's columns.
  key_regex: str | None = None
  channel_files: tuple[str, ...] = ()  # Per channel: "" = the data file.
  label_from_name: str | None = None
  label_from_header: str | None = None  # Added in builder 1.2.0.
  segments: str | None = None
  segment_columns: tuple[str, ...] = ()
  segment_unit: str = "samples"  # Or a key of TIME_UNITS.
  segment_first: int = 0
  segment_end_inclusive: bool = False
  # Per channel: its declared unit ("" = SI); metadata only, so never part
  # of the fingerprint (the factor in `channels` is).
  channel_units: tuple[str, ...] = ()


def _read_toml(path: epath.Path) -> dict:
  if not path.exists():
    raise SpecError(f"{path}: spec file not found. Write one as shown in "
                    "imujax/datasets/recordings/README.md.")
  try:
    return tomllib.loads(path.read_text())
  except UnicodeDecodeError:
    raise SpecError(f"{path}: not UTF-8 text; save the spec as "
                    "UTF-8.") from None
  except tomllib.TOMLDecodeError as e:
    raise SpecError(f"{path}: not valid TOML ({e}).") from None


def _key_fields(raw: dict, c: checker.SpecChecker) -> tuple[str | None, tuple]:
  """key_regex and the placeholders file patterns may use with it."""
  key_regex = c.get(raw, "key_regex", "", "str")
  compiled = c.regex(key_regex, "key_regex")
  groups = tuple(compiled.groupindex) if compiled else ()
  if compiled and not groups:
    c.fail(f"key_regex = {key_regex!r} has no named group; name what it "
           'captures, e.g. "acc_(?P<key>exp\\\\d+_user\\\\d+)\\\\.txt$".')
  clash = [g for g in groups if g in checker.FILE_FIELDS]
  if clash:
    c.fail(f"key_regex: group name(s) {clash} are reserved for the file's "
           "own {stem} and {name}; rename the group(s).")
  return key_regex, checker.FILE_FIELDS + groups


def _channels(raw: dict, fmt, fields, c: checker.SpecChecker):
  """(channels, channel_files): (column, name, SI factor) and file pattern."""
  channels, files, names, units = [], [], set(), []
  raw_channels = raw.get("channels", [])
  if not isinstance(raw_channels, list):
    c.fail(f"channels must be a list of tables, got "
           f"{checker.kind(raw_channels)}.")
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
    pattern = c.get(ch, "file", label, "str", "")
    if unit not in UNITS:
      c.fail(f"{label}unit {unit!r} unknown; use one of {sorted(UNITS)}.")
      unit = ""
    if ch_name is not None:
      channel_modality.check(label, ch_name, unit,
                             c.get(ch, "modality", label, "str"),
                             c.get(ch, "placement", label, "str"), c.fail)
    if ch_name in names:
      c.fail(f"{label}name {ch_name!r} is used by an earlier channel; "
             "channel names must be unique.")
    names.add(ch_name)
    if pattern:
      checker.check_file_pattern(pattern, f"{label}file", fields, c,
                                 need_field=True)
      if fmt == "mvnx":
        c.fail(f"{label}file: MVNX files hold all their channels; drop file.")
    if column is not None and ch_name is not None:
      channels.append((column, ch_name, UNITS[unit]))
      files.append(pattern)
      units.append(unit)
  if channels and all(files):
    c.fail("every channel has a file; at least one must come from the data "
           "file itself (no file key), which gives the recording its rows.")
  if fmt != "mvnx" and not channels and not any(
      e.startswith("channels") for e in c.errors):
    c.fail('list the channels, e.g. channels = [{column = "ax", name = '
           '"wrist_acc_x", unit = "g"}].')
  return (tuple(channels), tuple(files) if any(files) else (),
          tuple(units) if any(units) else ())


def _time(table: dict, fmt, c: checker.SpecChecker) -> dict:
  column = c.get(table, "column", "time.", "str")
  unit = c.get(table, "unit", "time.", "str", "s")
  if unit not in TIME_UNITS:
    c.fail(f"time.unit {unit!r} must be one of {sorted(TIME_UNITS)}.")
    unit = "s"
  rate = c.get(table, "rate_hz", "time.", "number")
  if rate is not None and not rate > 0:
    c.fail(f"time.rate_hz must be a positive number, got {plain(rate)}.")
    rate = None
  if fmt != "mvnx" and column is None and rate is None:
    c.fail("give time.column (+ time.unit) or time.rate_hz.")
  return {"time_column": column, "time_unit": TIME_UNITS[unit],
          "rate_hz": None if rate is None else float(rate)}


def _class_map(labels: dict, c: checker.SpecChecker) -> dict:
  class_names = tuple(c.get(labels, "class_names", "labels.", "str_list", []))
  c.unique(class_names, "labels.class_names")
  label_map = c.get(labels, "map", "labels.", "table", {})
  for k, v in label_map.items():
    if isinstance(v, bool) or not isinstance(v, int):
      c.fail(f"labels.map.{k} must be an integer class id (a position in "
             f"labels.class_names), got {checker.kind(v)} {v!r}.")
    elif class_names and not 0 <= v < len(class_names):
      c.fail(f"labels.map.{k} = {v}: map values must index "
             f"labels.class_names (0..{len(class_names) - 1}).")
  label_map = {k: v for k, v in label_map.items()
               if isinstance(v, int) and not isinstance(v, bool)}
  if not label_map:
    label_map = {n: i for i, n in enumerate(class_names)}
  unlabelled = c.get(labels, "unlabelled", "labels.", "str_list", [""])
  return {"class_names": class_names, "label_map": label_map,
          "unlabelled": frozenset(u.strip() for u in unlabelled)}


def _from_name(pattern: str | None, c: checker.SpecChecker,
               key: str = "from_name", example: str = "^(?P<label>walk|run)_"
               ) -> None:
  compiled = c.regex(pattern, f"labels.{key}")
  if compiled and "label" not in compiled.groupindex and compiled.groups != 1:
    c.fail(f"labels.{key} = {pattern!r} has {compiled.groups} groups; "
           f'give exactly one (or one named label), e.g. "{example}".')


def _segments(labels: dict, fields, c: checker.SpecChecker) -> dict:
  """labels.segments and how its rows map to recordings and samples."""
  table = c.get(labels, "segments", "labels.", "str")
  columns = tuple(c.get(labels, "segment_columns", "labels.", "str_list", []))
  unit = c.get(labels, "segment_unit", "labels.", "str", "samples")
  first = c.get(labels, "segment_first", "labels.", "int")
  end = c.get(labels, "segment_end", "labels.", "str")
  others = [k for k in ("segment_columns", "segment_unit", "segment_first",
                        "segment_end") if k in labels]
  if table is None:
    if others:
      c.fail(f"labels.{others[0]} needs labels.segments (the segment table).")
    return {}
  checker.check_relative(table, "labels.segments", c)
  example = ('segment_columns = ["exp", "user", "label", "start", "end"] '
             '(names of key_regex groups match rows to recordings)')
  for need in ("start", "end", "label"):
    if columns.count(need) != 1:
      c.fail(f"labels.segment_columns must name {need!r} once; e.g. "
             f"{example}.")
  keys = [n for n in columns if n not in SEGMENT_FIELDS]
  unknown = [n for n in keys if n not in fields]
  if unknown:
    c.fail(f"labels.segment_columns: {unknown} are neither start, end, label"
           f", _ (ignored) nor a recording key ({', '.join(fields)}; the "
           "named groups of key_regex are keys).")
  c.unique(keys, "labels.segment_columns")
  if columns and not keys:
    c.fail("labels.segment_columns names no recording key, so every "
           f"recording would get every row; e.g. {example}.")
  if unit != "samples" and unit not in TIME_UNITS:
    c.fail(f"labels.segment_unit {unit!r} must be 'samples' or one of "
           f"{sorted(TIME_UNITS)}.")
  if unit == "samples" and first not in (0, 1):
    c.fail("labels.segment_first must be 0 or 1 with samples: the number of "
           "a file's first data row (1 for MATLAB-style indices).")
  if end not in ("inclusive", "exclusive"):
    c.fail("labels.segment_end must be 'inclusive' (the end sample or time "
           "is labelled) or 'exclusive' (labels stop before it).")
  return {"segments": table, "segment_columns": columns,
          "segment_unit": unit, "segment_first": first or 0,
          "segment_end_inclusive": end == "inclusive"}


def _labels(labels: dict, fields, c: checker.SpecChecker) -> dict:
  out = _class_map(labels, c)
  out["label_column"] = c.get(labels, "column", "labels.", "str")
  out["label_file"] = c.get(labels, "file", "labels.", "str")
  out["label_from_name"] = c.get(labels, "from_name", "labels.", "str")
  out["label_from_header"] = c.get(labels, "from_header", "labels.", "str")
  given = [k for k in LABEL_SOURCES if labels.get(k) is not None]
  if len(given) > 1:
    c.fail(f"give one of labels.{', labels.'.join(LABEL_SOURCES)}, not "
           f"{' and '.join('labels.' + k for k in given)}.")
  if out["label_file"]:
    checker.check_file_pattern(out["label_file"], "labels.file", fields, c)
  _from_name(out["label_from_name"], c)
  _from_name(out["label_from_header"], c, "from_header",
             "activity: (?P<label>[a-z_]+)")
  out.update(_segments(labels, fields, c))
  if given and not out["class_names"]:
    c.fail("labels.class_names is required with labels (the ordered class "
           "list; ids are positions in it).")
  missing = c.get(labels, "missing_file", "labels.", "str", "error")
  if missing not in ("error", "unlabelled"):
    c.fail(f"labels.missing_file {missing!r} must be 'error' or "
           "'unlabelled'.")
  coverage = c.get(labels, "min_coverage", "labels.", "number", 0.1)
  if not 0 <= coverage <= 1:
    c.fail(f"labels.min_coverage must be in [0, 1], got {plain(coverage)}.")
  out.update(missing_label_file=missing, min_label_coverage=float(coverage))
  return out


def _csv(table: dict, c: checker.SpecChecker) -> dict:
  delimiter = c.get(table, "delimiter", "csv.", "str", ",")
  if len(delimiter) != 1 or delimiter in "\r\n\"":
    c.fail(f"csv.delimiter must be one character other than a quote or "
           f"newline, e.g. \",\" or \";\" or \"\\t\", got {delimiter!r}.")
    delimiter = ","
  encoding = c.get(table, "encoding", "csv.", "str", "utf-8")
  try:
    codecs.lookup(encoding)
  except LookupError:
    c.fail(f"csv.encoding {encoding!r} is not a Python codec; use e.g. "
           "\"utf-8\", \"utf-16\" or \"latin-1\".")
    encoding = "utf-8"
  max_malformed = c.get(table, "max_malformed_rows", "csv.", "int", 10)
  if max_malformed < 0:
    c.fail(f"csv.max_malformed_rows must be >= 0, got {max_malformed}.")
  comment = c.get(table, "comment", "csv.", "str")
  if comment is not None and (not comment.strip() or "\n" in comment
                              or comment == delimiter):
    c.fail(f"csv.comment must be a non-blank marker other than the delimiter"
           f", e.g. \"#\" or \"%\", got {comment!r}.")
    comment = None
  skip_rows = c.get(table, "skip_rows", "csv.", "int", 0)
  if skip_rows < 0:
    c.fail(f"csv.skip_rows must be >= 0, got {skip_rows}.")
    skip_rows = 0
  columns = tuple(c.get(table, "columns", "csv.", "str_list", []))
  c.unique(columns, "csv.columns")
  if "columns" in table and not columns:
    c.fail("csv.columns is empty; name every column of the header-less "
           'files in order, e.g. columns = ["x", "y", "z"].')
  return {"delimiter": delimiter, "encoding": encoding,
          "max_malformed_rows": max_malformed, "comment": comment,
          "skip_rows": skip_rows, "csv_columns": columns}


def _columns_named(out: dict, c: checker.SpecChecker) -> None:
  """With csv.columns, every column the spec reads must be one of them."""
  if not out["csv_columns"]:
    return
  used = [col for col, _, _ in out["channels"]] + [
      out[k] for k in ("time_column", "label_column") if out[k]]
  missing = [col for col in dict.fromkeys(used)
             if col not in out["csv_columns"]]
  if missing:
    c.fail(f"columns {missing} are not in csv.columns "
           f"{list(out['csv_columns'])}; name them there or fix the column.")


def load_spec(path) -> Spec:
  """Reads and validates a TOML spec; errors name the file and key.

  Every problem of the spec is reported in one SpecError. Types are strict:
  a column is a string (`column = "2"`, never `column = 2`, so a header named
  2 and an index cannot be confused), numbers are TOML numbers.
  """
  path = epath.Path(path)
  raw = _read_toml(path)
  w = str(path)
  c = checker.SpecChecker(w)
  c.known(raw, TOP_KEYS, "")
  name = c.get(raw, "name", "", "str", path.parent.name)
  if not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
    c.fail(f"name {name!r} must be lower_snake_case (it becomes the TFDS "
           "config name); set name = \"my_lab\".")
  fmt = c.get(raw, "format", "", "str")
  if fmt is not None and fmt not in set(FORMATS.values()):
    c.fail(f"format {fmt!r} must be one of {sorted(set(FORMATS.values()))}.")
  files = c.get(raw, "files", "", "str", "**/*")
  checker.check_relative(files, "files", c)
  tables = {t: c.get(raw, t, "", "table", {}) for t in TABLE_KEYS}
  for t, keys in TABLE_KEYS.items():
    c.known(tables[t], keys, f"{t}.")
  key_regex, fields = _key_fields(raw, c)
  out = dict(name=name, format=fmt, files=files, key_regex=key_regex)
  out["channels"], out["channel_files"], out["channel_units"] = _channels(
      raw, fmt, fields, c)
  out.update(_time(tables["time"], fmt, c))
  out.update(_labels(tables["labels"], fields, c))
  out.update(_csv(tables["csv"], c))
  _columns_named(out, c)
  if out["label_from_header"] and fmt not in (None, "csv"):
    c.fail(f"labels.from_header reads a CSV file's preamble; {fmt} files "
           "have none. Label them another way.")
  elif out["label_from_header"] and not (out["skip_rows"] or out["comment"]):
    c.fail("labels.from_header reads a CSV file's preamble, the lines before "
           "its header: set csv.skip_rows (how many) or csv.comment (their "
           'marker, e.g. "#").')

  mv = tables["mvnx"]
  quantities = tuple(c.get(mv, "quantities", "mvnx.", "str_list",
                           ["acc", "gyr"]))
  if set(quantities) - {"acc", "gyr", "quat"}:
    c.fail("mvnx.quantities must be drawn from acc, gyr, quat.")
  sensors = c.get(mv, "sensors", "mvnx.", "str_list")
  out.update(mvnx_quantities=quantities,
             mvnx_sensors=None if sensors is None else tuple(sensors),
             allow_truncated_mvnx=c.get(mv, "allow_truncated", "mvnx.",
                                        "bool", False))

  def positive(key, want, default, low=0.0):
    value = c.get(raw, key, "", want, default)
    if not value > low:
      c.fail(f"{key} must be > {plain(low)}, got {plain(value)}.")
      return default
    return value
  max_run = c.get(raw, "max_nonfinite_run", "", "int", 10)
  if max_run < 0:
    c.fail(f"max_nonfinite_run must be >= 0, got {max_run}.")
  out.update(
      min_duration_s=float(c.get(raw, "min_duration_s", "", "number", 2.56)),
      max_gap_s=float(positive("max_gap_s", "number", 1.0)),
      max_nonfinite_run=max_run,
      max_file_mb=float(positive("max_file_mb", "number", 1024.0)))
  out["subject_regex"] = c.get(raw, "subject_regex", "", "str",
                               r"(?P<subject>[^/_]+)")
  c.regex(out["subject_regex"], "subject_regex")
  folder = c.get(raw, "folder", "", "str", ".")
  if c.errors:
    if len(c.errors) == 1:
      raise SpecError(f"{w}: {c.errors[0]}")
    raise SpecError(f"{w}: {len(c.errors)} problems:\n" +
                    "\n".join(f"  - {e}" for e in c.errors))
  return Spec(
      path=str(path),
      folder=os.path.normpath(str(path.parent / os.path.expanduser(folder))),
      **out)
