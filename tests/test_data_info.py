"""The `python -m imujax.data` info command and its summary function."""

import subprocess
import sys

import numpy as np

from imujax.data import info as data
from tests import dataset_fixtures as fx
from tests.conftest import subprocess_env


def test_summary_counts_classes_short_recordings_and_repairs(tmp_path):
  written = fx.write_sp_sw_har(tmp_path / "raw", subjects=("s01", "s02"),
                               executions=1)
  # A locale-damaged row, and a recording of 1 s: shorter than a 2 s window.
  path = tmp_path / "raw/DATA/s01/s01_01_sw.csv"
  rows = path.read_text().splitlines()
  rows[30] = "1.012.598.156.929.010," + rows[30].split(",", 1)[1]
  path.write_text("\n".join(rows) + "\n")
  short = written["s02_01"]["sw"][:100]
  fx.write_sp_sw_csv(tmp_path / "raw/DATA/s02/s02_01_sw.csv",
                     fx.sp_sw_lines(short, "sw", int(short[0]) - 37))
  builder = data.prepare("sp_sw_har/watch_50hz", str(tmp_path / "tfds"),
                         str(tmp_path / "raw"))
  s = data.summarize(builder, window_s=2.0)
  assert (s["recordings"], s["subjects"], s["short_recordings"]) == (2, 2, 1)
  source = builder.as_data_source()["train"]
  frames = sum(len(source[i]["labels"]) for i in range(len(source)))
  assert s["frames"] == frames
  assert s["duration_s"] == frames / 50.0
  all_labels = np.concatenate([source[i]["labels"] for i in range(2)])
  assert s["class_frames"]["labels"]["SEATED"] == (all_labels == 0).sum()
  assert sum(s["class_frames"]["labels"].values()) == frames
  assert s["repairs"]["malformed_rows_dropped"] == 1
  text = data.format_summary(s)
  assert "2 recordings, 2 subjects" in text
  assert "malformed_rows_dropped 1" in text
  assert "recordings shorter than 2 s: 1 (kept; the input pipeline pads them)" \
      in text
  assert "wrist_acc_x" in text


def test_summary_of_a_builder_without_tracks_or_repairs(tmp_path):
  builder = data.prepare("seglearn_watch", str(tmp_path / "tfds"))
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"]) == (140, 10)
  assert s["repairs"] == {}
  assert "repairs: none" in data.format_summary(s)


def test_command_line(tmp_path):
  fx.write_ipol_gait(tmp_path / "raw", trials=((1, 1), (2, 1)))
  out = subprocess.run(
      [sys.executable, "-m", "imujax.data", "--dataset=ipol_gait/native",
       f"--manual_dir={tmp_path / 'raw'}", f"--data_dir={tmp_path / 'tfds'}",
       "--time_build"],
      capture_output=True, text=True, env=subprocess_env(), check=True,
      timeout=120).stdout
  assert "built ipol_gait/native from raw files in" in out
  assert "2 recordings, 2 subjects" in out
  assert "labels_footstep: no_swing" in out
  assert "gaps_interpolated 4" in out
