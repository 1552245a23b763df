"""Channels from sibling files: `channels[i].file` beside the data file.

Some devices write one file per sensor (UCI HAPT: `acc_exp01_user01.txt`
and `gyro_exp01_user01.txt`). The data file named by `files` gives the
recording its rows (time, labels); each sibling file adds its channels row
by row: data row k of the sibling is sample k of the recording. A row
dropped in one file (malformed, cut off) is missing (NaN) in the other's
channels and follows the NaN rules; differing row counts are an error naming
both files.
"""

import dataclasses
import os

import numpy as np

from imujax.datasets.recordings import paths
from imujax.datasets.recordings import schema

Spec = schema.Spec


def own_spec(spec: Spec) -> Spec:
  """The spec of the data file itself: only its own channels."""
  if not spec.channel_files:
    return spec
  return dataclasses.replace(spec, channels=tuple(
      ch for ch, f in zip(spec.channels, spec.channel_files) if not f))


def sibling_spec(spec: Spec, pattern: str) -> Spec:
  """The spec of one sibling file: its channels; no time, no labels."""
  return dataclasses.replace(
      spec, channels=tuple(ch for ch, f in zip(spec.channels,
                                               spec.channel_files)
                           if f == pattern),
      channel_files=(), time_column=None, rate_hz=1.0, label_column=None,
      label_file=None, label_from_name=None, label_from_header=None,
      segments=None)


def _aligned(values: np.ndarray, rows: np.ndarray, num_rows: int,
             want: np.ndarray) -> np.ndarray:
  """<float64>[len(want), C]: the values of data rows `want`, NaN if dropped."""
  full = np.full((num_rows, values.shape[1]), np.nan)
  full[rows] = values
  return full[want]


def merge(path, spec: Spec, table, read_file):
  """Adds the sibling files' channels to `table` (read with `own_spec`).

  Args:
    path: the data file.
    spec: the whole spec.
    table: the data file's `readers.Table`.
    read_file: `(path, spec) -> (Table, names)` for any format.

  Returns:
    `table`, its values now every channel in the spec's order.
  """
  columns = {"": table.values}
  for pattern, sibling in paths.sibling_paths(spec, path).items():
    key = f"channels[{spec.channel_files.index(pattern)}].file"
    if not os.path.lexists(sibling):
      raise FileNotFoundError(
          f"{sibling}: channel file for {path} is missing ({key} = "
          f"{pattern!r}). Add it, or fix {key} (and key_regex) in "
          f"{spec.path}.")
    if not (spec.format or sibling.suffix.lower() in schema.FORMATS):
      raise ValueError(f"{sibling}: unknown extension {sibling.suffix!r} "
                       f"({key}); use one of {sorted(schema.FORMATS)}, or "
                       "set format.")
    other, _ = read_file(sibling, sibling_spec(spec, pattern))
    if other.num_rows != table.num_rows:
      raise ValueError(
          f"{sibling}: {other.num_rows} data rows, but {path} has "
          f"{table.num_rows}; sibling files ({key}) hold one row per sample "
          "of the data file. Restore the shorter file.")
    for k, v in other.repairs.items():
      table.repairs[k] = table.repairs.get(k, 0) + int(v)
    columns[pattern] = _aligned(other.values, other.rows, other.num_rows,
                                table.rows)
  taken = dict.fromkeys(columns, 0)
  out = []
  for f in spec.channel_files:
    out.append(columns[f][:, taken[f]])
    taken[f] += 1
  table.values = np.stack(out, axis=1) if out else table.values
  return table
