"""insole_pin2gpi: the derived stance / swing rule on hand-made loads, a
generated data.mat in the upstream layout (scipy.io.savemat), bad files, then
the real recording in ../shared when it is there."""

import numpy as np
import pytest
from scipy import io as sio

from imujax.data import info as data
from imujax.datasets.insole_pin2gpi import insole_pin2gpi_dataset_builder as ins

# One foot's mean cell load, frame by frame, and the phase the rule must give
# (stance from load >= 0.15 until load < 0.10): 0.12 keeps the stance it is
# in and does not start one.
LOADS = [0.0, 0.12, 0.2, 0.12, 0.10, 0.09, 0.12, 0.14, 0.15, 0.5, 0.05, 0.0]
PHASE = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0]
EVENTS = [0, 0, 1, 0, 0, 2, 0, 0, 1, 0, 2, 0]


def _cells(loads, spread=0.0):
  """<float>[T, 16] whose row means are `loads` (cells differ by `spread`)."""
  offsets = spread * (np.arange(16) - 7.5) / 7.5
  return np.clip(np.asarray(loads)[:, None] + offsets[None, :], 0.0, 1.0)


def test_stance_and_events_on_a_hand_made_load():
  np.testing.assert_array_equal(ins.stance(_cells(LOADS)), PHASE)
  np.testing.assert_array_equal(ins.gait_events(PHASE), EVENTS)
  # Starting loaded is stance from frame 0, with no event there.
  assert ins.stance(_cells([0.3, 0.3, 0.0])).tolist() == [1, 1, 0]
  assert ins.gait_events([1, 1, 0]).tolist() == [0, 0, 2]
  # The load is the mean of the cells: one full cell is 1/16 < 0.15.
  one_cell = np.zeros((2, 16))
  one_cell[:, 3] = 1.0
  assert ins.stance(one_cell).tolist() == [0, 0]
  with pytest.raises(ValueError, match="0 <= off <= on"):
    ins.stance(one_cell, on=0.1, off=0.2)


def gait(frames: int, period: int, stance: int, shift: int = 0):
  """A walking foot at 100 Hz: load 0.6 in stance, 0.01 in swing."""
  phase = ((np.arange(frames) + shift) % period) < stance
  return np.where(phase, 0.6, 0.01), phase.astype(np.int32)


def write_data_mat(folder, left, right):
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / "data.mat"
  sio.savemat(str(path), {"data": {"LeftFoot": left, "RightFoot": right}})
  return path


def _build(config, manual_dir, tmp_path):
  return data.prepare(f"insole_pin2gpi/{config}",
                      data_dir=str(tmp_path / "tfds"),
                      manual_dir=str(manual_dir))


def _example(builder):
  source = builder.as_data_source()["train"]
  assert len(source) == 1
  return source[0]


@pytest.mark.parametrize("config,step", [("100hz", 1), ("50hz", 2)])
def test_fixture_builds_with_exact_signals_and_derived_labels(
    tmp_path, config, step):
  left_load, left_phase = gait(400, 110, 70)
  right_load, right_phase = gait(400, 110, 70, shift=55)
  left, right = _cells(left_load, 0.005), _cells(right_load, 0.005)
  write_data_mat(tmp_path / "raw", left, right)
  builder = _build(config, tmp_path / "raw", tmp_path)
  ex = _example(builder)
  assert ex["subject"].decode() == "s01"
  assert ex["recording"].decode() == "s01_free_living"
  # 50 Hz frames fall on every other 100 Hz sample: values pass exactly.
  expected = np.concatenate([left, right], axis=1)[::step].astype(np.float32)
  np.testing.assert_array_equal(ex["signals"], expected)
  np.testing.assert_array_equal(ex["labels"], left_phase[::step])
  np.testing.assert_array_equal(ex["labels_right"], right_phase[::step])
  np.testing.assert_array_equal(ex["labels_left_events"],
                                ins.gait_events(left_phase[::step]))
  # Left: stance at 0, swing from 70, stance from 110, ...: 3 heel strikes
  # (110, 220, 330) and 4 toe offs (70, 180, 290, 400 is past the end: 3).
  events = ex["labels_left_events"]
  assert (events == 1).sum() == 3 and (events == 2).sum() == 4 - 1
  meta = builder.info.metadata
  assert meta["channel_names"][0] == "left_pressure_00"
  assert meta["channel_names"][31] == "right_pressure_15"
  assert meta["units"] == {"pressure": "normalised"}
  assert meta["sample_rate_hz"] == 100.0 / step
  assert meta["labels_derived"] is True
  assert meta["label_tracks"]["labels_right_events"] == [
      "none", "heel_strike", "toe_off"]
  assert meta["class_names"] == ["swing", "stance"]


def test_short_nan_runs_are_interpolated_and_counted(tmp_path):
  left_load, _ = gait(100, 50, 30)
  left = _cells(left_load)
  left[10:12, 4] = np.nan
  write_data_mat(tmp_path / "raw", left, _cells(left_load))
  builder = _build("100hz", tmp_path / "raw", tmp_path)
  assert builder.info.metadata["repairs"][
      "nonfinite_samples_interpolated"] == 2
  assert np.isfinite(_example(builder)["signals"]).all()


def test_wrong_number_of_cells_is_an_error_naming_file_and_field(tmp_path):
  ok = _cells(gait(50, 25, 15)[0])
  path = write_data_mat(tmp_path, ok, ok[:, :15])
  with pytest.raises(ValueError, match=r"data\.mat: data\.RightFoot has shape "
                     r"\(50, 15\); expected \[N, 16\]"):
    ins.read_insoles(path)


def test_other_bad_files_are_errors(tmp_path):
  ok = _cells(gait(50, 25, 15)[0])
  path = write_data_mat(tmp_path, ok, ok[:40])
  with pytest.raises(ValueError, match=r"data\.LeftFoot has 50 rows but "
                     r"data\.RightFoot 40"):
    ins.read_insoles(path)
  over = ok.copy()
  over[7, 2] = 12.5
  path = write_data_mat(tmp_path, over, ok)
  with pytest.raises(ValueError, match=r"data\.LeftFoot row 8, cell 3 is "
                     r"12\.5, outside \[0, 1\]; normalise"):
    ins.read_insoles(path)
  sio.savemat(str(path), {"data": {"LeftFoot": ok}})
  with pytest.raises(ValueError, match=r"data\.mat: data\.RightFoot is "
                     "missing"):
    ins.read_insoles(path)
  sio.savemat(str(path), {"LeftFoot": ok, "RightFoot": ok})
  with pytest.raises(ValueError, match=r"no 1x1 struct `data`"):
    ins.read_insoles(path)
  path.write_text("not a mat file")
  with pytest.raises(ValueError, match="not a readable MATLAB v5 file"):
    ins.read_insoles(path)


def test_missing_folder_or_file_is_an_immediate_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"nowhere: manual_dir does not "
                     "exist"):
    _build("100hz", tmp_path / "nowhere", tmp_path)
  (tmp_path / "raw").mkdir()
  (tmp_path / "raw/other.mat").write_text("")
  with pytest.raises(FileNotFoundError, match=r"raw: no data\.mat in it or "
                     "below it"):
    _build("100hz", tmp_path / "raw", tmp_path)
  with pytest.raises(FileNotFoundError, match="insole_pin2gpi cannot be downloaded by "
                     "the builder; pass manual_dir"):
    data.prepare("insole_pin2gpi/100hz", data_dir=str(tmp_path / "tfds"))


def test_real_recording(shared_data, tmp_path):
  raw = shared_data / "insole_pin2gpi"
  if not (raw / "data.mat").exists():
    pytest.skip(f"{raw}/data.mat is absent from the shared folder.")
  feet = ins.read_insoles(raw / "data.mat")
  assert feet["LeftFoot"].shape == feet["RightFoot"].shape == (13_262, 16)
  s = data.summarize(_build("100hz", raw, tmp_path))
  assert (s["recordings"], s["subjects"], s["frames"]) == (1, 1, 13_262)
  frames = s["class_frames"]
  assert frames["labels"] == {"swing": 4_959, "stance": 8_303}
  assert frames["labels_right"] == {"swing": 4_689, "stance": 8_573}
  assert frames["labels_left_events"]["heel_strike"] == 115
  assert frames["labels_left_events"]["toe_off"] == 114
  assert frames["labels_right_events"]["heel_strike"] == 114
  assert frames["labels_right_events"]["toe_off"] == 115
  assert set(s["repairs"].values()) == {0}
