"""First contact with a dataset: TFDS's download line, and the info output."""

import numpy as np

from imujax.data import info as data
from tests import dataset_fixtures as fx


def test_a_manual_dir_build_says_no_download(tmp_path, capsys):
  fx.write_sp_sw_har(tmp_path / "raw", subjects=("s01", "s02"), executions=1)
  builder = data.prepare("sp_sw_har/watch_50hz", str(tmp_path / "tfds"),
                         str(tmp_path / "raw"))
  out = capsys.readouterr().out
  assert "Downloading" not in out and "Unknown size" not in out
  assert (f"Preparing sp_sw_har/watch_50hz/" in out
          and f"from {tmp_path / 'raw'} (no download)" in out)
  assert "downloaded and prepared" not in out
  s = data.summarize(builder)
  # sp_sw_har records at 100 Hz; this config resamples to 50 Hz.
  assert s["resampling"] == {100.0: 2}
  assert "2 recordings 100 Hz -> 50 Hz" in data.format_summary(s)
  # A split without some classes lists them (here: one emptied by hand).
  part = data.summarize(builder, subjects_kept={"s01"})
  assert len(part["resampling"]) == 1 and part["recordings"] == 1
  first = next(iter(part["class_frames"]["labels"]))
  part["class_frames"]["labels"][first] = 0
  text = data.format_summary(part, split=True)
  assert f"labels absent: {first} (eval.f1_classes" in text
  assert "channels" not in text


def test_a_shipped_file_build_says_no_download(tmp_path, capsys):
  builder = data.prepare("seglearn_watch", str(tmp_path / "tfds"))
  out = capsys.readouterr().out
  assert "from the seglearn package's data file (no download)" in out
  assert "Unknown size" not in out
  s = data.summarize(builder)
  assert s["resampling"] == {}  # The builder records no native rate.
  text = data.format_summary(s)
  assert "resampling (native -> this config's rate): not recorded" in text
  assert "labels absent: none" in text
  assert np.isfinite(s["duration_s"])
