"""mobilised builder: a generated data.mat fixture, then the shared example.

The fixture is written with scipy.io.savemat in the nesting of the real
files (data.TimeMeasure1.Test5.Trial1.{SU.LowerBack, Standards.<system>},
bouts as a 1 x n struct array, sides as a cell array, an empty bout list as
[]), so the builder reads it through the same path as the TVS files. Every
expected track below is written out by hand from the times in the fixture.
"""

import math
import pathlib

import numpy as np
import pytest
import scipy.io

from imujax.data import info as data
from imujax.datasets.mobilised import matfile
from imujax.datasets.mobilised import mobilised_dataset_builder as mb

G = 9.80665
N = 400  # Samples of the labelled fixture trial, 4 s at 100 Hz.
NAN = math.nan


def _cells(texts):
  cell = np.empty((1, len(texts)), dtype=object)
  cell[0, :] = list(texts)
  return cell


def _bouts(bouts):
  """A 1 x n MATLAB struct array (as in the real files); [] when empty."""
  if not bouts:
    return np.zeros((0, 0), np.uint8)
  array = np.empty((1, len(bouts)), dtype=[(k, object) for k in bouts[0]])
  for i, bout in enumerate(bouts):
    for key, value in bout.items():
      array[0, i][key] = value
  return array


def _bout(start, end, ics, sides, fcs, strides, lengths, speed):
  return {
      "Start": float(start), "End": float(end),
      "Duration": float(end - start), "WalkingSpeed": float(speed),
      "NumberStrides": float(len(lengths)),
      "InitialContact_Event": np.array([ics], float),
      "InitialContact_LeftRight": _cells(sides),
      "FinalContact_Event": np.array([fcs], float),
      "FinalContact_LeftRight": _cells(["Left"] * len(fcs)),
      "Stride_InitialContacts": np.array(strides, float).reshape(-1, 2),
      "Stride_Length": np.array([lengths], float),
      "Stride_Speed": np.array([lengths], float),
      "Turn_Start": np.zeros((0, 0), np.uint8),
  }


# INDIP style: strides in samples of Fs (bout A), or in seconds (bout B).
BOUT_A = _bout(0.51, 1.50, [0.51, 0.80, 1.11, NAN, 1.40, 1.50],
               ["Left", "Right", "Left", "Right", "Left", "Right"],
               [0.70, 1.00, NAN], [[51, 111], [80, 140], [111, 150]],
               [1.0, 1.2, NAN], 1.1)
# 2.40 s twice with different sides: one contact, side unknown.
BOUT_B = _bout(2.01, 3.01, [2.01, 2.40, 2.40, 2.71, 3.01],
               ["Left", "Right", "Left", "Right", "Left"], [2.20, 2.55],
               [[2.01, 2.71], [2.40, 3.01]], [0.8, 0.6], 0.9)
# Stereophotogrammetry and MicroWB disagree with INDIP's
# ContinuousWalkingPeriod: the builder must read neither.
OTHER = _bout(0.05, 3.5, [0.05, 3.5], ["Left", "Right"], [], [], [], 5.0)


def _signals(n, seed):
  k = np.arange(n)[:, None] / n
  acc = np.array([[0.02, -0.1, 0.99]]) + 0.05 * np.sin(k * (3 + seed))
  gyr = np.array([[10.0, -20.0, 5.0]]) * np.cos(k * (2 + seed))
  return acc, gyr


def _trial(n, indip_bouts, seed=0, sensor_extra=None, drop=()):
  acc, gyr = _signals(n, seed)
  lower_back = {"Acc": acc, "Gyr": gyr, "Mag": np.zeros((n, 3)),
                "Timestamp": 1.6e9 + np.arange(n)[:, None] / 100,
                "Fs": {"Acc": 100.0, "Gyr": 100.0, "Mag": 100.0}}
  lower_back.update(sensor_extra or {})
  for key in drop:
    del lower_back[key]
  standards = {"Stereophoto": {"MicroWB": _bouts([OTHER]),
                               "ContinuousWalkingPeriod": _bouts([OTHER]),
                               "Fs": 100.0}}
  if indip_bouts is not None:
    standards["INDIP"] = {"ContinuousWalkingPeriod": _bouts(indip_bouts),
                          "MicroWB": _bouts([OTHER]), "Fs": 100.0}
  return {"StartDateTime": "2020-12-10T13:57:44.733+01:00",
          "TimeZone": "Europe/Berlin", "SU": {"LowerBack": lower_back},
          "Standards": standards}


def write_mat(path: pathlib.Path, tests: dict) -> pathlib.Path:
  """tests: {'Test5': {'Trial1': trial struct}} -> path (data.mat)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(path, {"data": {"TimeMeasure1": tests}})
  return path


def write_tvs(root: pathlib.Path) -> pathlib.Path:
  """Two participants in the TVS layout; a Free-living file to be skipped."""
  write_mat(root / "HA/001/Laboratory/data.mat", {
      "Test5": {"Trial1": _trial(N, [BOUT_B, BOUT_A]),  # Out of order.
                "Trial2": _trial(150, [], seed=1)}})
  write_mat(root / "MS/001/Laboratory/data.mat", {
      "Test11": {"Trial1": _trial(120, None, seed=2)}})
  (root / "HA/001/Free-living").mkdir()
  (root / "HA/001/Free-living/data.mat").write_text("not read")
  return root


def _runs(n, *runs, fill=0.0, dtype=np.float32):
  """[n] array: `fill`, with value v on frames first..last of each run."""
  out = np.full(n, fill, dtype)
  for first, last, value in runs:
    out[first:last + 1] = value
  return out


def _ones_at(n, frames, values=None):
  out = np.zeros(n, np.int32)
  out[list(frames)] = 1 if values is None else values
  return out


def _by_recording(builder):
  source = builder.as_data_source()["train"]
  return {source[i]["recording"].decode(): source[i]
          for i in range(len(source))}


def _build(config, manual_dir, tmp_path):
  return data.prepare(f"mobilised/{config}", data_dir=str(tmp_path / "tfds"),
                      manual_dir=str(manual_dir))


def test_100hz_tracks_targets_and_units_exactly(tmp_path):
  builder = _build("100hz", write_tvs(tmp_path / "tvs"), tmp_path)
  examples = _by_recording(builder)
  assert sorted(examples) == ["HA_001_TimeMeasure1_Test5_Trial1",
                              "HA_001_TimeMeasure1_Test5_Trial2",
                              "MS_001_TimeMeasure1_Test11_Trial1"]
  ex = examples["HA_001_TimeMeasure1_Test5_Trial1"]
  assert ex["subject"].decode() == "HA_001"
  # Bout A: samples round(t * 100) - 1 = 50..149; bout B: 200..300.
  np.testing.assert_array_equal(
      ex["labels"], _runs(N, (50, 149, 1), (200, 300, 1), dtype=np.int32))
  # The NaN contact is dropped, the double one at 2.40 s counted once.
  ics = (50, 79, 110, 139, 149, 200, 239, 270, 300)
  np.testing.assert_array_equal(ex["labels_initial_contact"], _ones_at(N, ics))
  np.testing.assert_array_equal(ex["labels_initial_contact_side"], _ones_at(
      N, ics, [1, 2, 1, 1, 2, 1, -1, 2, 1]))
  np.testing.assert_array_equal(ex["labels_final_contact"],
                                _ones_at(N, (69, 99, 219, 254)))
  np.testing.assert_array_equal(ex["targets_walking_speed"], _runs(
      N, (50, 149, 1.1), (200, 300, 0.9), fill=NAN))
  # Strides [start IC, end IC): A 50..109 1.0, 79..138 1.2 (the third has no
  # length); B 200..269 0.8, 239..299 0.6; the mean where two overlap.
  np.testing.assert_array_equal(ex["targets_stride_length"], _runs(
      N, (50, 78, 1.0), (79, 109, (1.0 + 1.2) / 2), (110, 138, 1.2),
      (200, 238, 0.8), (239, 269, (0.8 + 0.6) / 2), (270, 299, 0.6),
      fill=NAN))
  acc, gyr = _signals(N, 0)
  signals = ex["signals"]
  assert signals.dtype == np.float32 and signals.shape == (N, 6)
  np.testing.assert_array_equal(signals[:, :3], (acc * G).astype(np.float32))
  np.testing.assert_array_equal(signals[:, 3:],
                                (gyr * math.pi / 180).astype(np.float32))
  # An empty bout list ([]) and a trial without INDIP: nothing is labelled.
  for name, n in (("HA_001_TimeMeasure1_Test5_Trial2", 150),
                  ("MS_001_TimeMeasure1_Test11_Trial1", 120)):
    for track in mb.LABEL_TRACKS:
      np.testing.assert_array_equal(examples[name][track], np.full(n, -1))
    for target in mb.TARGETS:
      assert np.isnan(examples[name][target]).all()
  meta = builder.info.metadata
  assert meta["channel_names"][0] == "lowerback_acc_x"
  assert meta["channel_names"][5] == "lowerback_gyr_z"
  assert meta["units"]["acc"] == "m/s^2" and meta["units"]["gyr"] == "rad/s"
  assert meta["regression_targets"] == {"targets_walking_speed": "m/s",
                                        "targets_stride_length": "m"}
  assert meta["cohorts"] == {"HA_001": "HA", "MS_001": "MS"}
  assert meta["reference"]["system"] == "INDIP"
  repairs = meta["repairs"]
  assert repairs["recordings_without_reference"] == 2
  assert repairs["nan_reference_events_dropped"] == 2
  assert repairs["reference_events_merged"] == 1
  assert repairs["initial_contacts_without_side"] == 1
  assert repairs["strides_without_value_skipped"] == 1
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"], s["frames"]) == (3, 2, N + 270)


def test_50hz_maps_every_reference_time_to_the_nearest_frame(tmp_path):
  root = write_tvs(tmp_path / "tvs")
  builder = _build("50hz", root, tmp_path)
  ex = _by_recording(builder)["HA_001_TimeMeasure1_Test5_Trial1"]
  n = 200  # 399 / 100 s at 50 Hz, + 1.
  # Sample s -> frame ceil(s / 2 - 1/2): 50 -> 25, 79 -> 39 (a tie goes to
  # the earlier frame), 149 -> 74, 300 -> 150.
  np.testing.assert_array_equal(
      ex["labels"], _runs(n, (25, 74, 1), (100, 150, 1), dtype=np.int32))
  np.testing.assert_array_equal(
      ex["labels_initial_contact"],
      _ones_at(n, (25, 39, 55, 69, 74, 100, 119, 135, 150)))
  np.testing.assert_array_equal(ex["targets_stride_length"], _runs(
      n, (25, 38, 1.0), (39, 54, (1.0 + 1.2) / 2), (55, 68, 1.2),
      (100, 118, 0.8), (119, 134, (0.8 + 0.6) / 2), (135, 149, 0.6),
      fill=NAN))
  np.testing.assert_array_equal(ex["targets_walking_speed"], _runs(
      n, (25, 74, 1.1), (100, 150, 0.9), fill=NAN))
  # Grid points fall on every other sample: those samples, unchanged.
  acc, _ = _signals(N, 0)
  np.testing.assert_array_equal(ex["signals"][:, :3],
                                (acc[::2] * G).astype(np.float32))
  assert builder.info.metadata["sample_rate_hz"] == 50.0


def test_config_names_and_rates():
  assert [(c.name, c.rate_hz) for c in mb.Builder.BUILDER_CONFIGS] == [
      ("100hz", 100.0), ("50hz", 50.0)]


def _examples(path):
  participant = mb.Participant("HA", "001", path)
  repairs = dict.fromkeys((*mb.resample.REPAIR_KEYS, *mb.REPAIR_KEYS), 0)
  return list(mb.make_examples(participant, mb.Builder.BUILDER_CONFIGS[0],
                               repairs))


def _error(tmp_path, trial, match):
  path = write_mat(tmp_path / "bad/data.mat", {"Test5": {"Trial1": trial}})
  with pytest.raises(ValueError, match=match) as e:
    _examples(path)
  assert str(path) in str(e.value)
  return str(e.value)


def test_event_outside_the_recording_is_an_error_naming_the_field(tmp_path):
  late = dict(BOUT_A, InitialContact_Event=np.array(
      [[0.51, 0.80, 1.11, 5.2, 1.40, 1.50]]))
  message = _error(
      tmp_path, _trial(N, [late]), r"Standards\.INDIP\.ContinuousWalkingPeriod"
      r"\(1\)\.InitialContact_Event\(4\) = 5\.200 s is outside the recording")
  assert "400 samples at 100 Hz" in message


def test_bout_end_outside_the_recording_is_an_error(tmp_path):
  _error(tmp_path, _trial(120, [BOUT_A]),
         r"ContinuousWalkingPeriod\(1\)\.End = 1\.500 s is outside")


def test_overlapping_bouts_are_an_error_naming_both(tmp_path):
  shifted = dict(BOUT_B, Start=1.50)
  _error(tmp_path, _trial(N, [BOUT_A, shifted]),
         r"ContinuousWalkingPeriod\(2\) \(1\.5\.\.3\.01 s\) overlaps "
         r"data\.TimeMeasure1\.Test5\.Trial1\.Standards\.INDIP\."
         r"ContinuousWalkingPeriod\(1\)")


def test_missing_sensor_fields_are_errors_naming_them(tmp_path):
  _error(tmp_path, _trial(N, [BOUT_A], drop=("Gyr",)),
         r"data\.TimeMeasure1\.Test5\.Trial1\.SU\.LowerBack\.Gyr is missing")
  trial = _trial(N, [BOUT_A])
  del trial["SU"]
  _error(tmp_path, trial, r"Test5\.Trial1\.SU is missing")


def test_units_field_is_honoured_and_an_unknown_unit_is_an_error(tmp_path):
  message = _error(tmp_path, _trial(N, [BOUT_A], sensor_extra={
      "Units": {"Acc": "mg", "Gyr": "deg/s"}}),
                   r"SU\.LowerBack\.Units\.Acc is 'mg'")
  assert "m/s^2" in message
  # Values in m/s^2 without a Units field are not taken for g.
  acc, _ = _signals(N, 0)
  _error(tmp_path, _trial(N, [BOUT_A], sensor_extra={"Acc": acc * G}),
         r"SU\.LowerBack\.Acc has a median magnitude of 10\.1, but a "
         r"worn sensor reads about 1 g")
  path = write_mat(tmp_path / "si/data.mat", {"Test5": {"Trial1": _trial(
      N, [BOUT_A], sensor_extra={"Acc": acc * G, "Gyr": acc,
                                 "Units": {"Acc": "m/s^2", "Gyr": "rad/s"}})}})
  (_, ex), = _examples(path)
  np.testing.assert_array_equal(ex["signals"],
                                np.concatenate([acc * G, acc], 1).astype(
                                    np.float32))


def test_strides_matching_no_initial_contact_are_an_error(tmp_path):
  bad = dict(BOUT_A, Stride_InitialContacts=np.array(
      [[52, 111], [80, 140], [111, 150]], float))
  _error(tmp_path, _trial(N, [bad]),
         r"Stride_InitialContacts starts at \[52\.0, 80\.0, 111\.0\]")


def test_a_file_that_is_not_a_mat_file_is_an_error(tmp_path):
  path = tmp_path / "x/data.mat"
  path.parent.mkdir()
  path.write_bytes(b"\x00" * 200)
  with pytest.raises(ValueError, match=r"not a readable MAT file"):
    matfile.load(path, "INDIP", "ContinuousWalkingPeriod")


def test_wrong_or_missing_manual_dir_is_an_immediate_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
    _build("100hz", tmp_path / "nope", tmp_path)
  empty = tmp_path / "no_mat"
  (empty / "HA/001").mkdir(parents=True)
  (empty / "HA/001/readme.txt").write_text("x")
  with pytest.raises(FileNotFoundError, match=f"{empty}: no Mobilise-D"):
    _build("100hz", empty, tmp_path)
  # A cohort folder is not the folder above the cohorts.
  root = write_tvs(tmp_path / "tvs")
  assert mb.find_data_dir(root / "HA") is None
  assert mb.find_data_dir(root.parent) == root
  # The same participant in both layouts.
  write_mat(root / "MS/001/data.mat", {"Test5": {"Trial1": _trial(N, [])}})
  with pytest.raises(ValueError, match="both participant 001 of cohort MS"):
    mb.list_participants(root, "Laboratory")
  with pytest.raises(FileNotFoundError, match="pass manual_dir"):
    data.prepare("mobilised/100hz", data_dir=str(tmp_path / "tfds2"))


# The shared example: 3 participants (HA/001, HA/002, MS/001), 9 trials.
def _reference(path):
  """{recording: (walking frames, initial contacts)} from INDIP CWP.

  Read with scipy's record arrays, independently of the builder's reader.
  """
  root = scipy.io.loadmat(path)["data"][0, 0]["TimeMeasure1"][0, 0]
  out = {}
  for test in root.dtype.names:
    for trial in root[test][0, 0].dtype.names:
      t = root[test][0, 0][trial][0, 0]
      bouts = t["Standards"][0, 0]["INDIP"][0, 0]["ContinuousWalkingPeriod"]
      frames, ics = 0, set()
      if bouts.dtype.names:
        for b in bouts.ravel():
          frames += (round(b["End"].item() * 100) -
                     round(b["Start"].item() * 100) + 1)
          ics |= {round(v * 100) for v in b["InitialContact_Event"].ravel()
                  if np.isfinite(v)}
      out[f"TimeMeasure1_{test}_{trial}"] = (frames, len(ics),
                                             t["SU"][0, 0]["LowerBack"][0, 0])
  return out


def test_shared_example_matches_the_reference_per_recording(
    shared_data, tmp_path):
  lab = shared_data / "mobilised_example/lab"
  if not lab.is_dir():
    pytest.skip(f"{lab} is absent (the Mobilise-D example data).")
  examples = _by_recording(_build("100hz", lab, tmp_path))
  assert len(examples) == 9
  checked = 0
  for cohort, participant in (("HA", "001"), ("HA", "002"), ("MS", "001")):
    reference = _reference(lab / cohort / participant / "data.mat")
    for name, (frames, ics, lower_back) in reference.items():
      ex = examples[f"{cohort}_{participant}_{name}"]
      labelled = (ex["labels"] >= 0).any()
      assert labelled == (frames > 0), name
      assert (ex["labels"] == 1).sum() == frames, name
      assert (ex["labels_initial_contact"] == 1).sum() == ics, name
      # Acc in g and Gyr in deg/s in the file; SI here.
      np.testing.assert_array_equal(
          ex["signals"][:, :3], (lower_back["Acc"] * G).astype(np.float32))
      np.testing.assert_array_equal(
          ex["signals"][:, 3:],
          (lower_back["Gyr"] * math.pi / 180).astype(np.float32))
      norm = np.median(np.linalg.norm(ex["signals"][:, :3], axis=1))
      assert 9.5 < norm < 9.7, (name, norm)
      checked += 1
  assert checked == 9
  # HA/002's Test5 trials: INDIP lists no bout, so nothing is labelled.
  assert (examples["HA_002_TimeMeasure1_Test5_Trial1"]["labels"] == -1).all()
