"""One shared segment table for all recordings: `labels.segments`.

Each row names its recording by key fields (columns named in
`labels.segment_columns` after a key_regex group, or `stem` / `name`), and a
segment [start, end] with a label. start and end are sample numbers (data
rows of the data file, the first numbered `labels.segment_first`) or times
in `labels.segment_unit` on the data's clock; `labels.segment_end` says
whether the end is labelled. UCI HAPT's labels.txt is such a table:
`experiment user activity start end`, 1-based inclusive samples.
"""

import dataclasses
import math
import re

from etils import epath
import numpy as np

from imujax.datasets.recordings import label_files
from imujax.datasets.recordings import paths
from imujax.datasets.recordings import schema

Spec = schema.Spec
_plain = schema.plain


@dataclasses.dataclass(frozen=True)
class Segment:
  start: float
  end: float
  label: int
  line: int


@dataclasses.dataclass
class Table:
  """A parsed segment table.

  Attributes:
    path: the table file.
    key_names: the key columns, in `labels.segment_columns` order.
    segments: recording key values -> its segments, in file order.
    used: the keys some recording has claimed (for the unmatched count).
  """
  path: epath.Path
  key_names: tuple[str, ...]
  segments: dict[tuple, list[Segment]]
  used: set = dataclasses.field(default_factory=set)

  def unmatched_rows(self) -> int:
    """Rows whose keys name no recording of the build."""
    return sum(len(v) for k, v in self.segments.items() if k not in self.used)


def key_value(text: str):
  """A key as compared: an integer when it reads as one ("01" == "1")."""
  text = str(text).strip()
  return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


def _number(text: str, what: str, where: str, spec: Spec) -> float:
  try:
    value = float(text)
  except ValueError:
    raise ValueError(f"{where}: {what} {text.strip()[:40]!r} is not a number; "
                     "fix the row.") from None
  if not math.isfinite(value):
    raise ValueError(f"{where}: {what} {text.strip()!r} is not finite; fix "
                     "the row.")
  if spec.segment_unit == "samples" and (value != int(value)
                                         or value < spec.segment_first):
    raise ValueError(
        f"{where}: {what} {text.strip()!r} is not a sample number >= "
        f"{spec.segment_first} (labels.segment_first); fix the row, or set "
        "labels.segment_unit if the table holds times.")
  return value


def read(path, spec: Spec) -> Table:
  """Parses `labels.segments`; errors name path:line and the fix."""
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(
        f"{path}: the segment table labels.segments = {spec.segments!r} is "
        f"missing; add it, or fix labels.segments in {spec.path}.")
  lines = paths.read_text(path, spec).splitlines()
  names = spec.segment_columns
  col = {n: names.index(n) for n in ("start", "end", "label")}
  keys = tuple(n for n in names if n not in schema.SEGMENT_FIELDS)
  out = Table(path, keys, {})
  rows = paths.csv_rows(lines, path, "fix it.", spec.delimiter, start=0,
                        comment=spec.comment)
  for lineno, fields in rows:
    fields = [f.strip() for f in paths.drop_trailing_empty(fields,
                                                           len(names))]
    where = f"{path}:{lineno}"
    if fields == list(names):
      continue  # A header row naming exactly labels.segment_columns.
    if len(fields) != len(names):
      raise ValueError(
          f"{where}: {len(fields)} fields, labels.segment_columns names "
          f"{len(names)} ({', '.join(names)}; {spec.delimiter!r}-separated, "
          "csv.delimiter); fix the row or the spec.")
    start = _number(fields[col["start"]], "start", where, spec)
    end = _number(fields[col["end"]], "end", where, spec)
    if start > end:
      raise ValueError(f"{where}: start {_plain(start)} is after end "
                       f"{_plain(end)}; swap them or fix the row.")
    label = label_files.label_id(spec, fields[col["label"]], where)
    key = tuple(key_value(fields[names.index(k)]) for k in keys)
    out.segments.setdefault(key, []).append(Segment(start, end, label,
                                                    lineno))
  return out


def recording_key(table: Table, spec: Spec, data_path) -> tuple:
  """The key values of a data file, in the table's key-column order."""
  found = paths.file_keys(spec, data_path)
  return tuple(key_value(found[k]) for k in table.key_names)


def labels_for(table: Table, spec: Spec, data_path, t: np.ndarray,
               rows: np.ndarray, repairs: dict) -> np.ndarray | None:
  """<int32>[T] labels of one recording, or None when no row names it.

  Args:
    table: from `read`.
    spec: the spec.
    data_path: the data file.
    t: <float64>[T] its timestamps (s).
    rows: <int64>[T] its data-row positions (`readers.Table.rows`).
    repairs: counts segments outside the recording.
  """
  data_path = epath.Path(data_path)
  key = recording_key(table, spec, data_path)
  segments = table.segments.get(key)
  if segments is None:
    return None
  table.used.add(key)
  if spec.segment_unit == "samples":
    where, scale, offset = rows, 1.0, spec.segment_first
  else:
    where, scale, offset = t, schema.TIME_UNITS[spec.segment_unit], 0
  out = np.full(t.shape, -1, np.int32)
  covered = np.zeros(t.shape, bool)
  outside = 0
  for seg in sorted(segments, key=lambda s: s.start):
    start, end = (seg.start - offset) * scale, (seg.end - offset) * scale
    inside = (where >= start) & ((where <= end) if spec.segment_end_inclusive
                                 else (where < end))
    if len(where) and (end < where[0] or start > where[-1]):
      outside += 1
    if (inside & covered).any():
      raise ValueError(
          f"{table.path}:{seg.line}: segment {_plain(seg.start)}.."
          f"{_plain(seg.end)} overlaps another of {data_path.name} "
          "(labels.segment_end says whether end is included); fix the "
          "segments.")
    covered |= inside
    out[inside] = seg.label
  if outside:
    repairs["label_segments_outside_recording"] = (
        repairs.get("label_segments_outside_recording", 0) + outside)
  label_files.check_coverage(
      covered, f"{table.path} (rows for {data_path.name})", spec,
      f"keys {dict(zip(table.key_names, key))}; check labels.segment_unit, "
      "labels.segment_first and the key columns")
  return out
