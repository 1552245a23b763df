"""Labels of a recording: class names to ids, and segment label files.

A label value maps through the spec (`labels.map`, `unlabelled`) to a class
id or -1; a label file (per recording, `labels.file`) holds segments
[start, end, label] in the spec's time unit, which must cover at least
`labels.min_coverage` of the recording's frames. A whole recording's label
may also come from its file name (`labels.from_name`) or a line of its CSV
preamble (`labels.from_header`).
"""

import math
import re

from etils import epath
import numpy as np

from imujax.datasets.recordings import paths
from imujax.datasets.recordings import schema

Spec = schema.Spec
SpecError = schema.SpecError
_plain = schema.plain


def label_id(spec: Spec, value, where: str) -> int:
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


def read_label_file(path: epath.Path, spec: Spec, t: np.ndarray,
                    repairs: dict | None = None) -> np.ndarray:
  """Segment file `start,end,label` (data clock and unit) -> <int32>[T].

  Raises ValueError naming the file (and line) for start > end, non-finite
  times, overlapping segments, and when the segments cover less than
  `labels.min_coverage` of the recording's samples: a label file in seconds
  for data in ms (or the reverse, or epoch against relative times) would
  otherwise leave every frame silently -1.
  """
  rows = paths.read_text(path, spec).splitlines()
  first = 0
  while first < len(rows) and (not rows[first].strip() or paths.is_comment(
      rows[first], spec.comment)):
    first += 1
  header = ([h.strip() for h in rows[first].split(",")]
            if first < len(rows) else [])
  if header[:3] != ["start", "end", "label"] or any(header[3:]):
    raise ValueError(
        f"{path}:{first + 1}: expected the header 'start,end,label', found "
        f"{rows[first][:80] if first < len(rows) else 'an empty file'!r}.")
  out = np.full(t.shape, -1, np.int32)
  covered = np.zeros(t.shape, bool)
  unit = spec.time_unit if spec.time_column else 1.0
  unit_name = next((k for k, v in schema.TIME_UNITS.items() if v == unit), "s")
  first_t = last_t = None
  outside = 0
  for lineno, fields in paths.csv_rows(rows, path, "fix it.", start=first + 1,
                                       comment=spec.comment):
    fields = paths.drop_trailing_empty(fields, 3)
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
    label = label_id(spec, fields[2], f"{path}:{lineno}")
    first_t = start if first_t is None else min(first_t, start)
    last_t = end if last_t is None else max(last_t, end)
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
  clock = ("time.unit" if spec.time_column
           else "seconds from the first sample, with time.rate_hz")
  span = ("it has no segments" if first_t is None else
          f"its segments span {_plain(first_t / unit)}..{_plain(last_t / unit)}"
          f" {unit_name}")
  check_coverage(
      covered, str(path), spec,
      f"{span} but the recording spans {_plain(t[0] / unit) if len(t) else 0}"
      f"..{_plain(t[-1] / unit) if len(t) else 0} {unit_name}. Label times "
      f"must be on the data's clock and in its unit ({clock})")
  return out


def check_coverage(covered: np.ndarray, where: str, spec: Spec,
                   hint: str) -> None:
  """Raises when labels cover less than `labels.min_coverage` of a recording.

  A label file in seconds for data in ms (or the reverse, epoch against
  relative times, a wrong key or index base) would otherwise leave every
  frame silently -1.
  """
  if len(covered) < 2 or covered.mean() >= spec.min_label_coverage:
    return
  raise ValueError(
      f"{where}: labels {covered.sum()} of {len(covered)} samples "
      f"({100 * covered.mean():.1f}%, less than labels.min_coverage = "
      f"{_plain(spec.min_label_coverage)}); {hint}. Fix the labels, or lower "
      f"labels.min_coverage in {spec.path} if they really label so little.")


def from_name(spec: Spec, data_path, num_samples: int) -> np.ndarray:
  """<int32>[T]: the label `labels.from_name` captures from the file name."""
  data_path = epath.Path(data_path)
  m = re.search(spec.label_from_name, data_path.name)
  if not m:
    raise ValueError(
        f"{data_path}: labels.from_name {spec.label_from_name!r} does not "
        f"match the file name {data_path.name!r}; rename the file or fix "
        f"labels.from_name in {spec.path}.")
  value = m.group("label") if "label" in m.re.groupindex else m.group(1)
  label = label_id(spec, value or "", f"{data_path} (labels.from_name)")
  return np.full(num_samples, label, np.int32)


def from_header(spec: Spec, data_path, preamble: list[str] | None,
                num_samples: int) -> np.ndarray:
  """<int32>[T]: the label `labels.from_header` captures from the first
  preamble line it matches (`preamble`: the lines before the header)."""
  pattern = spec.label_from_header
  if preamble is None:
    raise ValueError(f"{data_path}: labels.from_header reads a CSV file's "
                     "preamble; this file is not CSV. Label it another way.")
  for lineno, line in enumerate(preamble, 1):
    m = re.search(pattern, line)
    if m:
      value = m.group("label") if "label" in m.re.groupindex else m.group(1)
      label = label_id(spec, value or "",
                       f"{data_path}:{lineno} (labels.from_header)")
      return np.full(num_samples, label, np.int32)
  seen = [ln for ln in preamble if ln.strip()][:3]
  raise ValueError(
      f"{data_path}: labels.from_header {pattern!r} matches none of the "
      f"{len(preamble)} line(s) before the header (first: "
      f"{[ln[:60] for ln in seen]}); add the label line, or fix "
      f"labels.from_header (or csv.skip_rows, csv.comment) in {spec.path}.")
