"""sp_sw_har builder: fixtures in the upstream CSV layout, then the real data."""

import numpy as np
import pytest

from imujax.data import info as data
from imujax.datasets.sp_sw_har import sp_sw_har_dataset_builder as sp
from tests import dataset_fixtures as fx


def _build(name, raw_dir, tmp_path):
  return data.prepare(f"sp_sw_har/{name}", data_dir=str(tmp_path / "tfds"),
                      manual_dir=str(raw_dir))


def _by_recording(builder):
  source = builder.as_data_source()["train"]
  return {source[i]["recording"].decode(): source[i]
          for i in range(len(source))}


def _expected_labels(frame_s, times_ms, start_ms):
  """Label of the last sample at or before each frame, worked out directly."""
  sample_s = times_ms / 1000.0
  out = []
  for t in frame_s:
    last = sample_s[sample_s <= t + 1e-9].max()
    out.append(sp.CLASS_NAMES.index(fx.sp_sw_label_at(last - start_ms / 1000)))
  return np.array(out)


def test_watch_values_and_labels_land_on_the_right_frames(tmp_path):
  written = fx.write_sp_sw_har(tmp_path / "raw")
  builder = _build("watch_50hz", tmp_path / "raw", tmp_path)
  examples = _by_recording(builder)
  assert sorted(examples) == sorted(written)
  ex = examples["s02_01"]
  assert ex["subject"].decode() == "s02"
  t_ms = written["s02_01"]["sw"]
  t0 = t_ms[0] / 1000.0
  n = int(np.floor((t_ms[-1] - t_ms[0]) / 1000.0 * 50 + 1e-9)) + 1
  frame_s = t0 + np.arange(n) / 50.0
  assert ex["signals"].shape == (n, 6)
  # Frame k is at t0 + k/50 s; the ramp makes every value exact.
  np.testing.assert_allclose(ex["signals"], fx.sp_sw_ramp(frame_s, "sw"),
                             atol=2e-4)
  # Sample 20 repeats sample 19's timestamp: the later one is kept.
  np.testing.assert_array_equal(
      ex["labels"], _expected_labels(frame_s, t_ms, t_ms[0] - 37))
  meta = builder.info.metadata
  assert meta["channel_names"][:2] == ["wrist_acc_x", "wrist_acc_y"]
  assert meta["sample_rate_hz"] == 50.0
  assert meta["repairs"]["duplicate_timestamps_dropped"] == 6  # 1 per file.
  assert meta["repairs"]["malformed_rows_dropped"] == 0


def test_both_devices_share_one_grid_over_their_overlap(tmp_path):
  written = fx.write_sp_sw_har(tmp_path / "raw", subjects=("s01", "s02"),
                               executions=1)
  builder = _build("both_30hz", tmp_path / "raw", tmp_path)
  ex = _by_recording(builder)["s01_01"]
  sp_ms, sw_ms = written["s01_01"]["sp"], written["s01_01"]["sw"]
  start = max(sp_ms[0], sw_ms[0]) / 1000.0
  end = min(sp_ms[-1], sw_ms[-1]) / 1000.0
  frame_s = start + np.arange(int(np.floor((end - start) * 30 + 1e-9)) + 1) / 30
  assert ex["signals"].shape == (len(frame_s), 12)
  np.testing.assert_allclose(ex["signals"][:, :6], fx.sp_sw_ramp(frame_s, "sp"),
                             atol=2e-4)
  np.testing.assert_allclose(ex["signals"][:, 6:], fx.sp_sw_ramp(frame_s, "sw"),
                             atol=2e-4)
  phone = _expected_labels(frame_s, sp_ms, sp_ms[0])
  watch = _expected_labels(frame_s, sw_ms, sp_ms[0])
  np.testing.assert_array_equal(ex["labels_phone"], phone)
  np.testing.assert_array_equal(ex["labels_watch"], watch)
  # Each device's samples change label at their own times: the frames between
  # get -1 in the primary track, and there are a few of them.
  np.testing.assert_array_equal(ex["labels"],
                                np.where(phone == watch, phone, -1))
  assert 0 < (ex["labels"] == -1).sum() < 10
  repairs = builder.info.metadata["repairs"]
  assert repairs["label_disagreement_frames_unlabelled"] == sum(
      (e["labels"] == -1).sum() for e in _by_recording(builder).values())
  meta = builder.info.metadata
  assert meta["channel_names"][0] == "thigh_acc_x"
  assert meta["channel_names"][6] == "wrist_acc_x"
  assert set(meta["label_tracks"]) == {"labels", "labels_phone", "labels_watch"}


def test_config_names_and_rates():
  names = {c.name: c for c in sp.Builder.BUILDER_CONFIGS}
  assert sp.Builder.BUILDER_CONFIGS[0].name == "watch_50hz"
  assert names["phone_native"].rate_hz == 100.0
  assert names["both_60hz"].devices == ("phone", "watch")
  assert len(names) == 12


def _write_one(tmp_path, lines, **kwargs):
  path = tmp_path / "s01_01_sw.csv"
  fx.write_sp_sw_csv(path, lines, **kwargs)
  return path


def _good_lines(seconds=2.0):
  t = fx.sp_sw_times_ms(seconds, 0, seed=1)
  return fx.sp_sw_lines(t, "sw", int(t[0]))


def test_locale_damaged_row_is_dropped_and_counted(tmp_path):
  lines = _good_lines()
  fields = lines[50].split(",")
  fields[0] = "1.012.598.156.929.010"  # As some locales write -1.0125...
  lines[50] = ",".join(fields)
  table = sp.read_csv(_write_one(tmp_path, lines))
  assert table.repairs["malformed_rows_dropped"] == 1
  assert 52 not in table.lines  # Line 52 holds data row 50.
  assert len(table.timestamps_s) == len(lines) - 1


def test_many_damaged_rows_are_an_error_naming_the_first_line(tmp_path):
  lines = _good_lines()
  for i in range(30, 30 + sp.MAX_MALFORMED_ROWS + 1):
    lines[i] = lines[i].replace(".", ",", 1).replace(",", ".", 1)
    lines[i] = "1.012.598," + lines[i].split(",", 1)[1]
  with pytest.raises(ValueError, match=r"s01_01_sw\.csv:32: 11 rows with "
                     "numbers that do not parse"):
    sp.read_csv(_write_one(tmp_path, lines))


def test_truncated_file_drops_the_cut_row(tmp_path):
  lines = _good_lines()
  lines[-1] = lines[-1][:25]  # Cut mid-row, no newline at the end.
  table = sp.read_csv(_write_one(tmp_path, lines, newline_at_end=False))
  assert table.repairs["truncated_rows_dropped"] == 1
  assert len(table.timestamps_s) == len(lines) - 1


def test_wrong_column_count_names_the_line(tmp_path):
  lines = _good_lines()
  lines[9] += ",extra"
  with pytest.raises(ValueError, match=r"s01_01_sw\.csv:11: 9 comma-separated"
                     " fields, expected 8"):
    sp.read_csv(_write_one(tmp_path, lines))


def test_unknown_label_names_the_line(tmp_path):
  lines = _good_lines()
  lines[4] = lines[4].rsplit(",", 1)[0] + ",JUMPING"
  with pytest.raises(ValueError, match=r"s01_01_sw\.csv:6: unknown label "
                     "'JUMPING'; expected one of SEATED"):
    sp.read_csv(_write_one(tmp_path, lines))


def test_wrong_header_is_an_error(tmp_path):
  with pytest.raises(ValueError,
                     match=r"s01_01_sw\.csv:1: expected the header"):
    sp.read_csv(_write_one(tmp_path, _good_lines(), header="a,b,c"))


def _execution(tmp_path, lines):
  path = _write_one(tmp_path, lines)
  repairs = {}
  example = sp.make_example({"sw": path}, ("watch",), 50.0, repairs)
  return example, repairs


def _set_value(line, value):
  return ",".join([value, *line.split(",")[1:]])


def test_short_nan_run_is_interpolated_and_counted(tmp_path):
  lines = _good_lines()
  for i in (40, 41, 42):
    lines[i] = _set_value(lines[i], "NaN")
  lines[60] = _set_value(lines[60], "Infinity")
  example, repairs = _execution(tmp_path, lines)
  assert repairs["nonfinite_samples_interpolated"] == 4
  assert np.isfinite(example["signals"]).all()


def test_long_nan_run_is_an_error_naming_the_line(tmp_path):
  lines = _good_lines()
  for i in range(40, 60):
    lines[i] = _set_value(lines[i], "nan")
  with pytest.raises(ValueError, match=r"s01_01_sw\.csv:42: 20 consecutive "
                     "non-finite values in channel 0"):
    _execution(tmp_path, lines)


def test_out_of_order_timestamp_is_an_error_naming_the_line(tmp_path):
  lines = _good_lines()
  lines[70], lines[71] = lines[71], lines[70]
  with pytest.raises(ValueError, match=r"s01_01_sw\.csv:73: timestamp .* "
                     "earlier than the previous"):
    _execution(tmp_path, lines)


def test_duplicated_timestamps_are_counted(tmp_path):
  lines = _good_lines()
  lines[81] = ",".join(lines[81].split(",")[:6] + lines[80].split(",")[6:])
  _, repairs = _execution(tmp_path, lines)
  assert repairs["duplicate_timestamps_dropped"] == 2  # Fixture's + this one.


def test_missing_partner_file_is_an_error_for_both(tmp_path):
  fx.write_sp_sw_har(tmp_path / "raw", subjects=("s01",), executions=2)
  (tmp_path / "raw/DATA/s01/s01_02_sw.csv").unlink()
  with pytest.raises(FileNotFoundError, match=r"s01_02_sw\.csv is missing but "
                     r"s01_02_sp\.csv exists"):
    sp.list_executions(tmp_path / "raw/DATA", ("sp", "sw"))
  assert len(sp.list_executions(tmp_path / "raw/DATA", ("sp",))) == 2


def test_real_data_watch_50hz(shared_data, tmp_path):
  builder = _build("watch_50hz", shared_data / "sp_sw_har", tmp_path)
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"]) == (223, 23)
  # Upstream: ~41.9 min of watch samples.
  assert 41.0 < s["duration_s"] / 60 < 43.0
  assert all(v > 0 for v in s["class_frames"]["labels"].values())
  assert s["repairs"]["malformed_rows_dropped"] == 0
  assert s["repairs"]["duplicate_timestamps_dropped"] > 0


def test_manual_dir_without_the_data_is_an_error(tmp_path):
  (tmp_path / "raw").mkdir()
  (tmp_path / "raw/notes.txt").write_text("not the dataset")
  with pytest.raises(FileNotFoundError, match=r"raw: no DATA/subjects_info\.csv"
                     " in it or below it"):
    _build("watch_50hz", tmp_path / "raw", tmp_path)


def test_download_unpacks_the_release_zip_inside_the_record_archive(tmp_path):
  """Zenodo's record archive holds the GitHub release zip: both are opened."""
  import shutil
  import zipfile
  fx.write_sp_sw_har(tmp_path / "release/sp-sw-har-dataset-v1",
                     subjects=("s01",), executions=1)
  record = tmp_path / "record"
  record.mkdir()
  shutil.make_archive(str(record / "sp-sw-har-dataset-v1"), "zip",
                      tmp_path / "release")

  class FakeDownloads:
    def download_and_extract(self, resource):
      assert resource.url == sp.URL
      return record

    def extract(self, path):
      out = tmp_path / "extracted"
      with zipfile.ZipFile(path) as z:
        z.extractall(out)
      return out

  builder = sp.Builder(data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  found = builder._download(FakeDownloads())
  assert found == tmp_path / "extracted/sp-sw-har-dataset-v1/DATA"
