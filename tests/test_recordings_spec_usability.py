"""A new user's own files through the spec alone: labels with spaces,
trailing delimiters, comment and preamble lines, labels from file names,
strict validation of the new keys, and error messages that only suggest
real spec keys."""

import ast
import pathlib
import re

import numpy as np
import pytest

from imujax.datasets.recordings import paths
from imujax.datasets.recordings import readers
from imujax.datasets.recordings import recordings_dataset_builder as rb
from imujax.datasets.recordings import schema
from tests import dataset_fixtures

SPEC = """
name = "lab"
files = "*.csv"
subject_regex = "(?P<subject>P\\\\d+)_"
min_duration_s = 0.5
channels = [{column = "ax", name = "wrist_acc_x", unit = "m/s^2"}]
[time]
rate_hz = 50
[labels]
column = "activity"
class_names = ["still", "walk"]
"""


def _spec(tmp_path, text=SPEC):
  path = tmp_path / "data" / "imujax_spec.toml"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return schema.load_spec(path)


def _build(tmp_path, text=SPEC):
  return dataset_fixtures.build_recordings(tmp_path, text)


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


# 1. Labels with spaces, trailing delimiters, comments, preambles ------------

def test_label_spaces_and_trailing_delimiters(tmp_path):
  rows = ["ax,activity,"]  # Header and rows end with a delimiter.
  rows += [f"{i / 10},  walk ," for i in range(30)]
  rows += [f"{i / 10}, still," for i in range(30)]
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "P01_a.csv").write_text("\n".join(rows) + "\n")
  rows = [f"{i / 10},walk," for i in range(60)]  # Header without one.
  (tmp_path / "data" / "P02_a.csv").write_text(
      "ax,activity\n" + "\n".join(rows) + "\n")
  _, ex = _build(tmp_path)
  assert (ex["P01_a"]["labels"] == [1] * 30 + [0] * 30).all()
  assert (ex["P02_a"]["labels"] == 1).all()
  np.testing.assert_allclose(ex["P01_a"]["signals"][:31, 0],
                             np.r_[np.arange(30) / 10, 0], atol=1e-6)


def test_label_file_spaces_comments_and_trailing_delimiters(tmp_path):
  text = SPEC.replace('column = "activity"', 'file = "{stem}.labels.csv"')
  text += '[csv]\ncomment = "%"\n'
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "P01_a.csv").write_text(
      "ax\n" + "".join(f"{i}\n" for i in range(100)))
  (tmp_path / "data" / "P01_a.labels.csv").write_text(
      "% exported by LabelTool 2.1\nstart,end,label,\n"
      "0, 1, walk ,\n% a note\n1,2,  still\n")
  _, ex = _build(tmp_path, text)
  assert (ex["P01_a"]["labels"] == [1] * 50 + [0] * 50).all()


def test_comment_and_preamble_lines_keep_line_numbers(tmp_path):
  text = SPEC + '[csv]\ncomment = "%"\nskip_rows = 2\n'
  lines = ["Device: ACME wrist v2", "Exported 2024-01-01", "% units: m/s^2",
           "ax,activity", "% started"]
  lines += [f"{i},walk" for i in range(60)]
  lines[30] = "% a comment between rows"
  (tmp_path / "data").mkdir()
  path = tmp_path / "data" / "P01_a.csv"
  path.write_text("\n".join(lines) + "\n")
  _, ex = _build(tmp_path, text)
  # 59 data rows: the comment on line 31 takes no sample slot.
  grid = ex["P01_a"]["signals"][:, 0]
  assert len(grid) == 59 and grid[25] == 26 and grid[26] == 27
  lines[40] = "3,4,walk"  # Line 41 of the file.
  path.write_text("\n".join(lines) + "\n")
  spec = _spec(tmp_path, text)
  with pytest.raises(ValueError, match=r"P01_a.csv:41: 3 fields, the header "
                     r"has 2"):
    readers.read_recording(path, spec)
  lines[40] = '"3,walk'  # An unclosed quote runs to the end of the file.
  lines[50] = "1,run"
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=r"P01_a.csv:41: "):
    readers.read_recording(path, spec)
  # Without skip_rows the preamble is the header: the error says which key.
  with pytest.raises(ValueError, match=r"P01_a.csv:1: columns .* csv.skip_rows"
                     " if preamble lines"):
    readers.read_recording(path, _spec(tmp_path, SPEC))


def test_csv_rows_counts_skipped_and_quoted_lines():
  lines = ["h", "# c", "", "1,2", '"a', 'b",3', "  # c2", "4,5,"]
  rows = list(paths.csv_rows(lines, "f.csv", "fix it.", start=1,
                             comment="#"))
  assert rows == [(4, ["1", "2"]), (5, ["a\nb", "3"]), (8, ["4", "5", ""])]
  assert paths.drop_trailing_empty(["4", "5", ""], 2) == ["4", "5"]
  assert paths.drop_trailing_empty(["4", "5", ""], 3) == ["4", "5", ""]


# 2. Labels from file names ------------------------------------------------

FROM_NAME = SPEC.replace('column = "activity"',
                         'from_name = "^(?P<label>still|walk)_"').replace(
                             '"(?P<subject>P\\\\d+)_"', '"_(?P<subject>P\\\\d+)"')


def test_labels_from_file_names(tmp_path):
  (tmp_path / "data").mkdir()
  for name in ("walk_P01", "still_P01", "walk_P02"):
    (tmp_path / "data" / f"{name}.csv").write_text(
        "ax\n" + "".join(f"{i}\n" for i in range(40)))
  builder, ex = _build(tmp_path, FROM_NAME)
  assert {k: int(v["labels"][0]) for k, v in ex.items()} == {
      "walk_P01": 1, "still_P01": 0, "walk_P02": 1}
  assert all((v["labels"] == v["labels"][0]).all() for v in ex.values())
  (tmp_path / "data" / "run_P03.csv").write_text("ax\n1\n2\n")
  with pytest.raises(ValueError, match=r"run_P03.csv: labels.from_name "
                     r"'\^\(\?P<label>still\|walk\)_' does not match the file "
                     r"name 'run_P03.csv'; rename the file or fix"):
    _build(tmp_path, FROM_NAME)


# Strict validation of the new keys ----------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda s: s + '[csv]\nskip_rows = "2"\n', r"csv.skip_rows must be an int"),
    (lambda s: s + '[csv]\nskip_rows = -1\n', r"csv.skip_rows must be >= 0"),
    (lambda s: s + '[csv]\ncomment = " "\n', r"csv.comment must be a non-"),
    (lambda s: s + '[csv]\ncomments = "#"\n',
     r"unknown key csv.'comments'; valid keys here: delimiter, encoding, "
     r"comment, skip_rows, columns"),
    (lambda s: s + '[csv]\ncolumns = ["x", "y"]\n',
     r"columns \['ax', 'activity'\] are not in csv.columns"),
    (lambda s: s.replace('column = "activity"', 'column = "activity"\n'
                         'from_name = "(walk)"'),
     r"give one of labels.column, .* not labels.column and labels.from_name"),
    (lambda s: s.replace('column = "activity"', 'from_name = "(a)(b)"'),
     r"labels.from_name = '\(a\)\(b\)' has 2 groups"),
    (lambda s: s.replace('column = "activity"', 'from_name = "(a"'),
     r"labels.from_name = '\(a' does not compile"),
    (lambda s: "key_regex = 'P(\\d+)'\n" + s, r"key_regex = .* has no named "),
    (lambda s: s.replace('unit = "m/s^2"}', 'unit = "m/s^2"},\n {column = '
                         '"gx", name = "wrist_gyr_x", file = "gyro.csv"}'),
     r"channels\[1\].file = 'gyro.csv' has no placeholder"),
    (lambda s: s.replace('unit = "m/s^2"}', 'unit = "m/s^2"},\n {column = '
                         '"gx", name = "wrist_gyr_x", file = "g_{exp}.csv"}'),
     r"channels\[1\].file = 'g_\{exp\}.csv': unknown placeholder\(s\) "
     r"\{exp\}; only \{stem\}, \{name\} are"),
    (lambda s: s.replace('column = "activity"', 'segments = "l.txt"'),
     r"labels.segment_columns must name 'start' once.*\n.*'end'.*\n.*'label'"
     r".*\n.*labels.segment_first must be 0 or 1.*\n.*labels.segment_end "
     r"must be 'inclusive'"),
    (lambda s: s.replace('column = "activity"', 'segments = "l.txt"\n'
                         'segment_columns = ["start", "end", "label"]\n'
                         'segment_unit = "ms"\nsegment_end = "inclusive"'),
     r"segment_columns names no recording key"),
    (lambda s: s.replace('column = "activity"', 'segments = "l.txt"\n'
                         'segment_columns = ["rec", "start", "end", "label"]\n'
                         'segment_unit = "frames"\nsegment_end = "incl"'),
     r"\['rec'\] are neither start, end, label, _ \(ignored\) nor a recording "
     r"key \(stem, name;.*\n.*segment_unit 'frames' must be 'samples'.*\n.*"
     r"segment_end must be"),
    (lambda s: s.replace('[labels]', '[labels]\nsegment_end = "inclusive"'),
     r"labels.segment_end needs labels.segments"),
    (lambda s: s.replace('[labels]', '[labels]\nsegments = "../l.txt"'),
     r"labels.segments = '../l.txt' leaves the data folder"),
])
def test_new_keys_are_validated_strictly(tmp_path, edit, message):
  with pytest.raises(schema.SpecError, match=message):
    _spec(tmp_path, edit(SPEC))


def test_key_regex_must_match_every_data_file(tmp_path):
  text = ("key_regex = '^(?P<who>P\\d+)_'\n" + SPEC.replace(
      'unit = "m/s^2"}', 'unit = "m/s^2"},\n {column = "gx", name = '
      '"wrist_gyr_x", file = "{who}_gyro.txt"}'))
  (tmp_path / "data").mkdir()
  for name in ("P01_a.csv", "x1.csv", "x2.csv"):
    (tmp_path / "data" / name).write_text("ax,activity\n1,walk\n2,walk\n")
  with pytest.raises(ValueError, match=r"2 files in .* that key_regex does "
                     r"not match(.|\n)*x1.csv: (.|\n)*x2.csv: key_regex "
                     r"'\^\(\?P<who>P\\\\d\+\)_' does not match the file name"):
    _build(tmp_path, text)


# 4. Every option an error suggests is a spec key --------------------------

MODULES = sorted((pathlib.Path(rb.__file__).parent).glob("*.py"))
# Names in messages that are builder or CLI arguments, not spec keys.
NOT_SPEC_KEYS = {"manual_dir", "config", "data.name", "spec"}


def _message_texts(path: pathlib.Path):
  """The string constants of a module (f-string parts included)."""
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
      yield node.value


def _spec_keys() -> set:
  keys = set(schema.TOP_KEYS)
  for table, names in schema.TABLE_KEYS.items():
    keys |= {f"{table}.{n}" for n in names}
  keys |= {f"channels[].{n}" for n in schema.CHANNEL_KEYS}
  return keys


def test_every_key_an_error_suggests_is_a_spec_key():
  keys, named = _spec_keys(), set()
  for path in MODULES:
    for text in _message_texts(path):
      for m in re.finditer(r"\b(time|labels|csv|mvnx|channels\[\w*\])\."
                           r"([a-z_]+)\b", text):
        if m.group(2) in ("csv", "txt"):  # A file name: "{stem}.labels.csv".
          continue
        named.add((path.name, re.sub(r"\[\w*\]", "[]", m.group(0))))
      # "set X", "raise X", "lower X": X must be a key.
      for m in re.finditer(r"\b(?:set|raise|lower) ([a-z_][a-z_.]*[a-z])\b",
                           text):
        if "_" in m.group(1) or "." in m.group(1):
          named.add((path.name, m.group(1)))
  unknown = sorted(f"{f}: {k}" for f, k in named
                   if k not in keys and k not in NOT_SPEC_KEYS)
  assert not unknown, unknown
  assert ("schema.py", "labels.segment_first") in named


def test_truncated_mvnx_error_names_the_spec_key(tmp_path):
  import mvnx_fixtures
  data = tmp_path / "data"
  data.mkdir()
  frames = mvnx_fixtures.random_frames(60, version=4, seed=3)
  mvnx_fixtures.write_mvnx(data / "Ann.mvnx", frames, version=4, rate=60.0)
  text = (data / "Ann.mvnx").read_text()
  (data / "Ann.mvnx").write_text(text[:len(text) // 2])
  spec = _spec(tmp_path, 'name = "m"\nformat = "mvnx"\nfiles = "*.mvnx"\n')
  with pytest.raises(ValueError) as e:
    readers.read_recording(data / "Ann.mvnx", spec)
  assert "set mvnx.allow_truncated = true in" in str(e.value)
  assert "allow_truncated=True" not in str(e.value)
