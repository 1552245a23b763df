"""ipol_gait builder: fixtures in the upstream GaitData layout, then real data."""

import json

import numpy as np
import pytest

from imujax.data import info as data
from imujax.datasets.ipol_gait import ipol_gait_dataset_builder as ig
from tests import dataset_fixtures as fx


def _build(name, raw_dir, tmp_path):
  return data.prepare(f"ipol_gait/{name}", data_dir=str(tmp_path / "tfds"),
                      manual_dir=str(raw_dir))


def _by_recording(builder):
  source = builder.as_data_source()["train"]
  return {source[i]["recording"].decode(): source[i]
          for i in range(len(source))}


def _expected_labels(counter):
  """Labels worked out by hand from fx.ipol_meta at integer counters."""
  meta = fx.ipol_meta(1, 1)
  inside = lambda c, ivs: any(a <= c <= b for a, b in ivs)
  labels, steps = [], []
  for c in counter:
    if inside(c, [meta["UTurnBoundaries"]]):
      labels.append(2)
    else:
      labels.append(1 if inside(c, [meta["TrialBoundaries"]]) else 0)
    left, right = (inside(c, meta["LeftFootEvents"]),
                   inside(c, meta["RightFootEvents"]))
    steps.append(-1 if left and right else 1 if left else 2 if right else 0)
  return np.array(labels), np.array(steps)


@pytest.mark.parametrize("config,step", [("native", 1), ("50hz", 2)])
def test_values_and_labels_on_the_packet_counter_grid(tmp_path, config, step):
  fx.write_ipol_gait(tmp_path / "raw")
  builder = _build(config, tmp_path / "raw", tmp_path)
  examples = _by_recording(builder)
  assert sorted(examples) == ["s01_01", "s01_02", "s02_01", "s03_01"]
  ex = examples["s01_02"]
  assert ex["subject"].decode() == "s01"
  # Sensors cover counters 0..499, 1..500, 2..501: the shared span is 2..499.
  counter = np.arange(2, 500, step)
  assert ex["signals"].shape == (len(counter), 18)
  for i, sensor in enumerate(("lb", "lf", "rf")):
    # Lost packets (lb 50-52, lf 300) are interpolated: the ramp stays exact.
    np.testing.assert_allclose(ex["signals"][:, 6 * i:6 * i + 6],
                               fx.ipol_ramp(counter, sensor)[:, :6], rtol=1e-5)
  labels, steps = _expected_labels(counter)
  np.testing.assert_array_equal(ex["labels"], labels)
  np.testing.assert_array_equal(ex["labels_footstep"], steps)
  assert (steps == -1).sum() > 0  # Frames 100-110 and 290 overlap.
  meta = builder.info.metadata
  assert meta["channel_names"][0] == "lower_back_acc_x"
  assert meta["channel_names"][-1] == "right_foot_gyr_z"
  assert meta["sample_rate_hz"] == 100.0 / step
  assert meta["label_tracks"]["labels_footstep"] == list(ig.FOOTSTEP_CLASSES)
  assert meta["repairs"]["gaps_interpolated"] == 2 * 4  # Two gaps per trial.
  assert (meta["repairs"]["footstep_overlap_frames_unlabelled"]
          == 4 * (steps == -1).sum())


def test_default_config_is_50hz():
  assert ig.Builder.BUILDER_CONFIGS[0].name == "50hz"
  assert {c.name for c in ig.Builder.BUILDER_CONFIGS} == {
      "30hz", "50hz", "60hz", "native"}


def _trial(tmp_path):
  fx.write_ipol_gait(tmp_path, trials=((1, 1),))
  return tmp_path / "GaitData"


def test_missing_json_is_an_error_naming_it(tmp_path):
  d = _trial(tmp_path)
  (d / "1-1.json").unlink()
  with pytest.raises(FileNotFoundError, match=r"1-1\.json is missing"):
    ig.read_annotations(d / "1-1.json")


def test_broken_json_names_the_line(tmp_path):
  d = _trial(tmp_path)
  (d / "1-1.json").write_text('{"Subject": 1,\n "Trial": }')
  with pytest.raises(ValueError, match=r"1-1\.json:2: not valid JSON"):
    ig.read_annotations(d / "1-1.json")


def test_bad_interval_is_an_error(tmp_path):
  d = _trial(tmp_path)
  meta = fx.ipol_meta(1, 1)
  meta["UTurnBoundaries"] = [260, 220]
  (d / "1-1.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"interval \[260, 220\] is not"):
    ig.read_annotations(d / "1-1.json")


def test_missing_sensor_file_is_an_error(tmp_path):
  d = _trial(tmp_path)
  (d / "1-1_rf.txt").unlink()
  with pytest.raises(FileNotFoundError, match=r"1-1_rf\.txt is missing"):
    ig.list_trials(d)


def test_wrong_column_count_names_the_line(tmp_path):
  d = _trial(tmp_path)
  lines = fx.ipol_lines(np.arange(100), "lb")
  lines[7] = "\t".join(lines[7].split("\t")[:8])
  fx.write_ipol_txt(d / "1-1_lb.txt", lines)
  with pytest.raises(ValueError, match=r"1-1_lb\.txt:10: 8 tab-separated "
                     "fields, expected 10"):
    ig.read_sensor(d / "1-1_lb.txt")


def test_wrong_rate_header_is_an_error(tmp_path):
  d = _trial(tmp_path)
  fx.write_ipol_txt(d / "1-1_lb.txt", fx.ipol_lines(np.arange(10), "lb"),
                    first_line="Acquisition frequency: 60 Hz")
  with pytest.raises(ValueError, match=r"1-1_lb\.txt:1: expected "
                     "'Acquisition frequency: 100 Hz'"):
    ig.read_sensor(d / "1-1_lb.txt")


def test_malformed_and_truncated_rows_are_counted(tmp_path):
  d = _trial(tmp_path)
  lines = fx.ipol_lines(np.arange(100), "lb")
  lines[20] = lines[20].replace(".", ",", 2)  # A comma-decimal locale.
  lines[-1] = lines[-1][:12]
  fx.write_ipol_txt(d / "1-1_lb.txt", lines, newline_at_end=False)
  table = ig.read_sensor(d / "1-1_lb.txt")
  assert table.repairs == {"truncated_rows_dropped": 1,
                           "malformed_rows_dropped": 1}
  assert 20 not in table.counter and len(table.counter) == 98


def test_nan_and_out_of_order_counters(tmp_path):
  d = _trial(tmp_path)
  meta = fx.ipol_meta(1, 1)
  paths = {s: d / f"1-1_{s}.txt" for s in ("lb", "lf", "rf")}
  lines = fx.ipol_lines(np.arange(2, 502), "rf")
  lines[30] = lines[30].replace(lines[30].split("\t")[4], "nan")
  fx.write_ipol_txt(paths["rf"], lines)
  repairs = {}
  ig.make_example(paths, meta, 100.0, repairs)
  assert repairs["nonfinite_samples_interpolated"] == 1
  lines[40], lines[41] = lines[41], lines[40]
  fx.write_ipol_txt(paths["rf"], lines)
  with pytest.raises(ValueError, match=r"1-1_rf\.txt:44: timestamp .* earlier"):
    ig.make_example(paths, meta, 100.0, {})


def test_real_data_50hz(shared_data, tmp_path):
  builder = _build("50hz", shared_data / "ipol_gait", tmp_path)
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"]) == (110, 19)
  assert 50.0 < s["duration_s"] / 60 < 60.0  # Upstream: ~53 min at 100 Hz.
  assert all(v > 0 for v in s["class_frames"]["labels"].values())
  steps = s["class_frames"]["labels_footstep"]
  # Left and right swings balance; overlaps are rare.
  assert abs(steps["left_swing"] - steps["right_swing"]) < 0.02 * steps[
      "left_swing"]
  assert steps["unlabelled"] < 0.005 * sum(steps.values())


def test_manual_dir_without_the_data_is_an_error(tmp_path):
  (tmp_path / "raw").mkdir()
  (tmp_path / "raw/notes.txt").write_text("not the dataset")
  with pytest.raises(FileNotFoundError, match=r"raw: no GaitData/\*_lb\.txt"):
    _build("50hz", tmp_path / "raw", tmp_path)


# ------------------------------------- contact events, stance, stride time
def test_contact_events_stance_and_stride_time_on_the_fixture(tmp_path):
  fx.write_ipol_gait(tmp_path / "raw")
  builder = _build("native", tmp_path / "raw", tmp_path)
  ex = _by_recording(builder)["s01_01"]
  counter = np.arange(2, 500)  # Frame i is counter i + 2 (shared span).
  at = lambda name: (counter[np.flatnonzero(ex[name] > 0)]).tolist()
  # fx.ipol_meta: left swings [120, 160], [250, 290]; right [100, 110],
  # [180, 215], [290, 330]. Toe-off (final) at start, heel-strike at end.
  assert at("labels_final_contact_left") == [120, 250]
  assert at("labels_initial_contact_left") == [160, 290]
  assert at("labels_final_contact_right") == [100, 180, 290]
  assert at("labels_initial_contact_right") == [110, 215, 330]
  assert at("labels_initial_contact") == [110, 160, 215, 290, 330]
  side = ex["labels_initial_contact_side"][ex["labels_initial_contact"] > 0]
  assert side.tolist() == [2, 1, 2, 1, 2]
  assert ex["labels_final_contact"].sum() == 5  # One per annotated step.
  swing = (((counter >= 120) & (counter <= 160))
           | ((counter >= 250) & (counter <= 290)))
  np.testing.assert_array_equal(ex["labels_left_foot"], swing)
  # Strides: left 160 -> 290 (right toe-off at 180 in between: 1.30 s);
  # right 110 -> 215 (1.05 s) and 215 -> 330 (1.15 s).
  left, right = ex["targets_stride_time_left"], ex["targets_stride_time_right"]
  np.testing.assert_allclose(left[(counter >= 160) & (counter < 290)], 1.3,
                             rtol=1e-6)
  assert np.isnan(left[(counter < 160) | (counter >= 290)]).all()
  np.testing.assert_allclose(right[(counter >= 110) & (counter < 215)], 1.05,
                             rtol=1e-6)
  np.testing.assert_allclose(right[counter == 300], 1.15, rtol=1e-6)
  both = ex["targets_stride_time"]
  np.testing.assert_allclose(both[counter == 200], (1.3 + 1.05) / 2,
                             rtol=1e-6)
  np.testing.assert_allclose(both[counter == 120], 1.05, rtol=1e-6)
  assert np.isnan(both[counter >= 330]).all()
  meta = builder.info.metadata
  assert meta["regression_targets"]["targets_stride_time"] == "s"
  assert meta["label_tracks"]["labels_left_foot"] == ["stance", "swing"]
  assert str(builder.info.version) == "1.1.0"


def test_tracks_are_selectable_by_the_target_kinds(tmp_path):
  from imujax.data import input_pipeline as ip
  fx.write_ipol_gait(tmp_path / "raw")
  d = ip.load("ipol_gait/50hz", data_dir=str(tmp_path / "tfds"),
              manual_dir=str(tmp_path / "raw"))
  assert d.target_units["stride_time"] == "s"
  sel = ip.select_tracks(d, tracks=("initial_contact_left",
                                    "labels_final_contact_right"),
                         targets=("stride_time",))
  rec = sel.recordings[0]
  assert list(rec.tracks) == ["initial_contact_left", "final_contact_right"]
  assert np.isfinite(rec.targets["stride_time"]).any()
  foot = ip.select_tracks(d, labels_from="left_foot")
  assert foot.class_names == ["stance", "swing"]
  from imujax.objectives import regression
  opts = {"tracks": ("stride_time",), "units": ("s",)}
  stats = regression.fit_target_stats(sel.recordings, opts)
  assert 0.9 < stats["target_mean"][0] < 1.4
  with pytest.raises(ValueError, match=r"finetune.tracks: target "
                     "'stride_time' declares no unit"):
    regression.fit_target_stats(sel.recordings, {**opts, "units": ("",)})


def test_contact_outside_the_recording_names_file_and_field(tmp_path):
  d = _trial(tmp_path)
  meta = fx.ipol_meta(1, 1)
  meta["RightFootEvents"][2] = [290, 900]  # The files end at counter 501.
  (d / "1-1.json").write_text(json.dumps(meta))
  paths = {s: d / f"1-1_{s}.txt" for s in ("lb", "lf", "rf")}
  paths["json"] = d / "1-1.json"
  with pytest.raises(ValueError, match=r"1-1\.json: RightFootEvents\[2\] = "
                     r"\[290, 900\].*initial contact at counter 900 is "
                     "outside the recording"):
    ig.make_example(paths, ig.read_annotations(paths["json"]), 100.0, {})


def test_overlapping_swings_of_one_foot_name_both(tmp_path):
  d = _trial(tmp_path)
  meta = fx.ipol_meta(1, 1)
  meta["LeftFootEvents"].append([150, 170])
  (d / "1-1.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=r"1-1\.json: LeftFootEvents\[2\] "
                     r"\[150, 170\] overlaps LeftFootEvents\[0\] \[120, 160\]"):
    ig.read_annotations(d / "1-1.json")


def test_real_contacts_match_the_annotated_steps(shared_data, tmp_path):
  raw = shared_data / "ipol_gait"
  if not (raw / "GaitData" / "1-1.json").exists():
    pytest.skip(f"{raw}/GaitData/1-1.json is absent: this test counts the "
                "contact events of that known trial.")
  meta = json.loads((raw / "GaitData" / "1-1.json").read_text())
  builder = _build("50hz", raw, tmp_path)
  ex = _by_recording(builder)["s01_01"]
  for foot, key in ig.FEET.items():
    steps = len(meta[key])  # 17 left, 18 right on trial 1-1.
    assert ex[f"labels_initial_contact_{foot}"].sum() == steps
    assert ex[f"labels_final_contact_{foot}"].sum() == steps
  assert ex["labels_initial_contact"].sum() == 35
  stride = ex["targets_stride_time"]
  assert 0.9 < np.nanmedian(stride) < 1.4  # Healthy adults: ~1.1 s.
  repairs = builder.info.metadata["repairs"]
  assert repairs["contact_events_outside_shared_span_dropped"] == 4
