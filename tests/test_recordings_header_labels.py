"""recordings spec: labels from a CSV preamble line (`labels.from_header`),
and each recording's native rate in the build and in `python -m imujax.data`.
All from small files the tests write in tmp_path."""

import pytest

from imujax.data import info
from imujax.datasets.recordings import recordings_dataset_builder as rb
from tests import dataset_fixtures

SPEC = """
name = "lab"
files = "*.csv"
subject_regex = "(?P<subject>P\\\\d+)_"
min_duration_s = 1.0
channels = [{column = "ax", name = "wrist_acc_x", unit = "m/s^2"}]
[time]
column = "t"
unit = "ms"
[labels]
from_header = "activity: (?P<label>[a-z]+)"
class_names = ["still", "walk"]
map = {still = 0, sitting = 0, walking = 1}
"""


def _write(folder, name, preamble, n=100, step_ms=20.0):
  folder.mkdir(parents=True, exist_ok=True)
  rows = "".join(f"{i * step_ms:.1f},{i % 7}\n" for i in range(n))
  (folder / name).write_text("".join(p + "\n" for p in preamble)
                             + "t,ax\n" + rows)


def _build(tmp_path, spec_text=SPEC, config="50hz"):
  return dataset_fixtures.build_recordings(tmp_path, spec_text, config=config)


def test_label_from_a_comment_line_before_the_header(tmp_path):
  spec = SPEC.replace("[labels]", '[csv]\ncomment = "#"\n[labels]')
  data = tmp_path / "data"
  _write(data, "P01_a.csv", ["# device: X", "# activity: walking"])
  _write(data, "P02_a.csv", ["#activity: sitting"])
  _, ex = _build(tmp_path, spec)
  assert {k: set(v["labels"].tolist()) for k, v in ex.items()} == {
      "P01_a": {1}, "P02_a": {0}}


def test_label_from_skipped_rows(tmp_path):
  spec = SPEC.replace("[labels]", "[csv]\nskip_rows = 2\n[labels]")
  _write(tmp_path / "data", "P01_a.csv", ["Device X", "activity: still"])
  _, ex = _build(tmp_path, spec)
  assert set(ex["P01_a"]["labels"].tolist()) == {0}


def test_no_matching_preamble_line_names_the_file(tmp_path):
  spec = SPEC.replace("[labels]", '[csv]\ncomment = "#"\n[labels]')
  data = tmp_path / "data"
  _write(data, "P01_a.csv", ["# activity: walking"])
  # The label line is after the header: not preamble.
  _write(data, "P02_b.csv", ["# exported 2024"])
  text = (data / "P02_b.csv").read_text().replace(
      "t,ax\n", "t,ax\n# activity: walking\n")
  (data / "P02_b.csv").write_text(text)
  with pytest.raises(ValueError, match=r"P02_b.csv: labels.from_header "
                     r"'activity: \(\?P<label>\[a-z\]\+\)' matches none of "
                     r"the 1 line\(s\) before the header"):
    _build(tmp_path, spec)


def test_skip_rows_and_comment_together(tmp_path):
  # skip_rows lines are preamble whatever they hold; comment lines after
  # them too, up to the header.
  spec = SPEC.replace("[labels]", '[csv]\nskip_rows = 1\ncomment = "%"\n'
                      "[labels]")
  data = tmp_path / "data"
  _write(data, "P01_a.csv", ["activity: walking", "% note"])
  _write(data, "P02_a.csv", ["Device X", "% activity: still"])
  _, ex = _build(tmp_path, spec)
  assert set(ex["P01_a"]["labels"].tolist()) == {1}
  assert set(ex["P02_a"]["labels"].tolist()) == {0}


def test_unknown_header_label_names_file_and_line(tmp_path):
  spec = SPEC.replace("[labels]", '[csv]\ncomment = "#"\n[labels]')
  _write(tmp_path / "data", "P01_a.csv", ["# x", "# activity: running"])
  with pytest.raises(ValueError, match=r"P01_a.csv:2 \(labels.from_header\):"
                     r" unknown label 'running'"):
    _build(tmp_path, spec)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s, r"labels.from_header reads a CSV file's preamble, the lines"
     r" before its header: set csv.skip_rows .* or csv.comment"),
    (lambda s: s.replace('from_header = "activity: (?P<label>[a-z]+)"',
                         'from_header = "(a)(b)"') + '[csv]\ncomment = "#"\n',
     r"labels.from_header = '\(a\)\(b\)' has 2 groups"),
    (lambda s: s.replace('from_header = "activity: (?P<label>[a-z]+)"',
                         'from_header = "(a"') + '[csv]\ncomment = "#"\n',
     r"labels.from_header = '\(a' does not compile"),
    (lambda s: s.replace("[labels]", '[labels]\ncolumn = "act"') +
     '[csv]\ncomment = "#"\n',
     r"not labels.column and labels.from_header"),
    (lambda s: 'format = "npz"\n' + s + "[csv]\nskip_rows = 1\n",
     r"labels.from_header reads a CSV file's preamble; npz files have none"),
    (lambda s: s.replace("[labels]", "[labels]\nfrom_headers = 'x'"),
     r"unknown key labels.'from_headers'; valid keys here: .*from_header"),
])
def test_from_header_is_validated_strictly(tmp_path, edit, message):
  spec = tmp_path / "spec.toml"
  spec.write_text(edit(SPEC))
  with pytest.raises(rb.SpecError, match=message):
    rb.load_spec(spec)


# Native rate per recording -------------------------------------------------

RATE_SPEC = SPEC.replace(
    'from_header = "activity: (?P<label>[a-z]+)"', 'column = "act"').replace(
        "channels", 'format = "csv"\nchannels')


def test_native_rates_are_kept_and_printed(tmp_path):
  data = tmp_path / "data"
  data.mkdir(parents=True)
  for name, step_ms, n in (("P01_a", 20.0, 150), ("P02_a", 20.0, 150),
                           ("P03_b", 50.0, 60)):
    (data / f"{name}.csv").write_text("t,ax,act\n" + "".join(
        f"{i * step_ms:.1f},{i % 5},walking\n" for i in range(n)))
  builder, ex = _build(tmp_path, RATE_SPEC)
  assert str(builder.info.version) == "1.2.0"
  assert dict(builder.info.metadata["native_rates_hz"]) == {
      "P01_a": 50.0, "P02_a": 50.0, "P03_b": 20.0}
  assert "native_rate_hz" not in ex["P01_a"]  # Metadata, not a feature.
  s = info.summarize(builder)
  assert s["resampling"] == {20.0: 1, 50.0: 2}
  text = info.format_summary(s)
  assert ("resampling (native -> this config's rate): 1 recordings 20 Hz -> "
          "50 Hz (upsampled 2.5x); 2 recordings 50 Hz -> 50 Hz (no "
          "resampling)") in text
  part = info.summarize(builder, subjects_kept={"P03"})
  assert part["resampling"] == {20.0: 1}
  # Reloaded from disk (as `python -m imujax.data` does on a second call).
  again = rb.Builder(spec=str(data / "imujax_spec.toml"), config="50hz",
                     data_dir=str(tmp_path / "tfds"))
  assert again.is_prepared()
  assert dict(again.info.metadata["native_rates_hz"])["P03_b"] == 20.0
  down = info.format_summary({**s, "sample_rate_hz": 10.0})
  assert "2 recordings 50 Hz -> 10 Hz (downsampled 5x)" in down


def test_rate_hz_files_record_the_spec_rate(tmp_path):
  spec = RATE_SPEC.replace('column = "t"\nunit = "ms"', "rate_hz = 25")
  data = tmp_path / "data"
  data.mkdir(parents=True)
  (data / "P01_a.csv").write_text("t,ax,act\n" + "".join(
      f"0,{i % 5},walking\n" for i in range(80)))
  builder, _ = _build(tmp_path, spec)
  assert dict(builder.info.metadata["native_rates_hz"]) == {"P01_a": 25.0}
  assert "1 recordings 25 Hz -> 50 Hz (upsampled 2x)" in info.format_summary(
      info.summarize(builder))
