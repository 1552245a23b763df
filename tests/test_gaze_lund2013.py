"""gaze_lund2013: pixels -> degrees by hand, a generated fixture in the
upstream .mat layout (written with scipy.io.savemat), bad files, then the
real data in ../shared when it is there."""

import math

import numpy as np
import pytest
from scipy import io as sio

from imujax.data import info as data
from imujax.datasets.gaze_lund2013 import agreement
from imujax.datasets.gaze_lund2013 import gaze_lund2013_dataset_builder as gl
from imujax.datasets.gaze_lund2013 import reader
from imujax.objectives import modality

DIM, RES, DIST = (0.38, 0.30), (1024, 768), 0.67
ORIGINAL = "originally uploaded data"


def write_mat(path, pos, geometry=True, samp_freq=500, drop=()):
  """One file as upstream: struct ETdata with pos and the geometry."""
  etdata = {"pos": np.asarray(pos, np.float64), "sampFreq": samp_freq}
  if geometry:
    etdata.update(screenDim=np.array([DIM]), viewDist=DIST,
                  screenRes=np.array([RES], np.uint16))
  for field in drop:
    etdata.pop(field)
  path.parent.mkdir(parents=True, exist_ok=True)
  sio.savemat(str(path), {"ETdata": etdata})
  return path


def pos_rows(x, y, labels, timestamps=None, padding=0):
  n = len(x)
  t = np.full(n, np.nan) if timestamps is None else np.asarray(timestamps)
  rows = np.stack([t, np.full(n, 20.0), np.full(n, 21.0), x, y, labels], 1)
  return np.concatenate([rows, np.zeros((padding, 6))])


def deg(px, axis):
  """Independent of the reader: angle of the pixel's offset from the centre."""
  size, res = DIM[axis], RES[axis]
  return math.degrees(math.atan((px - res / 2) * size / res / DIST))


# UH21_img_Rome, 500 Hz: sample 4 is track loss (x = y = 0), the clock skips
# one slot after sample 7 (4000 us), timestamps jitter by a few us.
ROME_X = [100.0, 200.0, 300.0, 400.0, 0.0, 512.0, 600.0, 700.0, 800.0, 1024.0]
ROME_Y = [50.0, 60.0, 70.0, 384.0, 0.0, 384.0, 500.0, 600.0, 700.0, 768.0]
ROME_T = 1e9 + np.array([0, 2003, 3998, 6001, 8000, 10002, 12000, 13999,
                         18001, 20000], np.float64)
ROME_RA = [1, 1, 2, 2, 5, 3, 1, 4, 4, 6]
ROME_MN = [1, 2, 2, 2, 5, 3, 3, 4, 1, 1]
ROME_MN_FIXED = [1, 1, 2, 2, 5, 3, 1, 4, 1, 1]  # fix_by_Zemblys2018.
# TL48_video_Jump: the timestamps show 200 Hz although sampFreq says 500.
JUMP_X = [500.0, 510.0, 0.0, 530.0, 540.0, 550.0]
JUMP_Y = [300.0, 310.0, 0.0, 330.0, 340.0, 350.0]
JUMP_LABELS = [1, 1, 5, 2, 2, 4]


def write_lund(root, article=False):
  """A small annotated_data/ folder; returns it."""
  base = root / "annotated_data"
  d = base / ORIGINAL
  write_mat(d / "images/UH21_img_Rome_labelled_RA.mat",
            pos_rows(ROME_X, ROME_Y, ROME_RA, ROME_T))
  # MN's copy carries two trailing rows of zero padding, as some do upstream.
  write_mat(d / "images/UH21_img_Rome_labelled_MN.mat",
            pos_rows(ROME_X, ROME_Y, ROME_MN, ROME_T, padding=2))
  write_mat(d / "dots/UH21_trial1_labelled_RA.mat",
            pos_rows([10.0, 20.0, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0],
                     [1, 6, 2, 3]))
  write_mat(d / "videos/TL48_video_Jump_labelled_MN.mat",
            pos_rows(JUMP_X, JUMP_Y, JUMP_LABELS,
                     5e8 + 5000.0 * np.arange(6)))
  # No timestamps: its rate is TL48's other recording's, 200 Hz.
  write_mat(d / "dots/TL48_trial1_labelled_MN.mat",
            pos_rows([512.0, 512.0, 512.0], [384.0, 384.0, 384.0], [4, 4, 4]))
  write_mat(base / "fix_by_Zemblys2018/UH21_img_Rome_labelled_FIX_MN.mat",
            pos_rows(ROME_X, ROME_Y, ROME_MN_FIXED, ROME_T))
  if article:
    write_mat(base / "data used in the article/img/"
              "UH21_img_Rome_labelled_RA.mat",
              pos_rows(ROME_X, ROME_Y, ROME_RA, ROME_T))
  return base


def _build(config, manual_dir, tmp_path):
  return data.prepare(f"gaze_lund2013/{config}",
                      data_dir=str(tmp_path / "tfds"),
                      manual_dir=str(manual_dir))


def _by_recording(builder):
  source = builder.as_data_source()["train"]
  return {source[i]["recording"].decode(): source[i]
          for i in range(len(source))}


def test_pixels_to_degrees_against_hand_computed_values():
  # Right edge: offset 512 px * 0.38 m / 1024 px = 0.19 m at 0.67 m:
  # atan(0.19 / 0.67) = 15.8324 deg. Centre: 0. Top edge: -atan(0.15 / 0.67).
  x = reader.pixels_to_degrees([1024.0, 512.0, 768.0], 1024, 0.38, 0.67)
  np.testing.assert_allclose(x, [15.832386620422204, 0.0, 8.070232177918085],
                             atol=1e-12)
  y = reader.pixels_to_degrees([0.0], 768, 0.30, 0.67)
  np.testing.assert_allclose(y, [-12.619322293430772], atol=1e-12)


def test_configs():
  configs = {c.name: c for c in gl.Builder.BUILDER_CONFIGS}
  assert gl.Builder.BUILDER_CONFIGS[0].name == "500hz"
  assert {n: (c.rate_hz, c.rater, c.fallback, c.subset, c.native_only)
          for n, c in configs.items()} == {
              "500hz": (500.0, "RA", True, "original", False),
              "500hz_ra": (500.0, "RA", False, "original", False),
              "500hz_mn": (500.0, "MN", False, "original", False),
              "500hz_native": (500.0, "RA", True, "original", True),
              "250hz": (250.0, "RA", True, "original", False),
              "article_500hz": (500.0, "RA", True, "article", False),
              "article_500hz_mn": (500.0, "MN", False, "article", False),
              "500hz_velocity": (500.0, "RA", True, "original", False)}
  assert [n for n, c in configs.items() if c.velocity] == ["500hz_velocity"]


def test_derive_velocity_by_hand():
  xy = np.array([[1.0, 2.0], [1.5, 1.0], [np.nan, np.nan], [3.0, 0.0],
                 [3.0, 0.5]], np.float32)
  out = gl.derive_velocity(xy, 500.0)
  nan = np.nan
  np.testing.assert_allclose(out, [[nan, nan, 0.0],
                                   [250.0, -500.0, 0.0],  # 0.5 deg in 2 ms.
                                   [nan, nan, 1.0],
                                   [nan, nan, 0.0],       # After the gap.
                                   [0.0, 250.0, 0.0]], atol=1e-4)
  # Causal: frame t depends on frames t-1 and t only.
  changed = xy.copy()
  changed[4] = [9.0, 9.0]
  np.testing.assert_array_equal(gl.derive_velocity(changed, 500.0)[:4],
                                out[:4])


def test_500hz_velocity_adds_derived_channels(tmp_path):
  manual = write_lund(tmp_path)
  plain = _by_recording(_build("500hz", manual, tmp_path))
  builder = _build("500hz_velocity", manual, tmp_path)
  meta = builder.info.metadata
  assert meta["channel_names"] == ["gaze_x_deg", "gaze_y_deg", "gazevel_x",
                                   "gazevel_y", "track_lost"]
  assert meta["units"] == {"gaze": "deg", "gaze_velocity": "deg/s",
                           "track_lost": "1"}
  modality.describe_all(meta["channel_names"], meta["units"])
  assert modality.of(meta["channel_names"]) == (
      "gaze", "gaze", "gaze_velocity", "gaze_velocity", "other")
  for name, ex in _by_recording(builder).items():
    xy = plain[name]["signals"]
    np.testing.assert_array_equal(ex["signals"][:, :2], xy)
    np.testing.assert_array_equal(ex["labels"], plain[name]["labels"])
    np.testing.assert_allclose(ex["signals"][:, 2:],
                               gl.derive_velocity(xy, 500.0), atol=1e-4)
  rome = _by_recording(builder)["UH21_img_Rome"]["signals"]
  # Rome: track loss at 4 and the skipped slot 8 (see the 500hz test).
  assert rome[:, 4].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]


def test_500hz_exact_signals_labels_raters_and_repairs(tmp_path):
  builder = _build("500hz", write_lund(tmp_path), tmp_path)
  ex = _by_recording(builder)
  assert sorted(ex) == ["TL48_dots_trial1", "TL48_video_Jump",
                        "UH21_dots_trial1", "UH21_img_Rome"]
  assert {e["subject"].decode() for e in ex.values()} == {"UH21", "TL48"}
  rome = ex["UH21_img_Rome"]
  # 10 samples + the one the clock skipped (slot 8), which is a NaN gap.
  slots = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10]
  expected = np.full((11, 2), np.nan, np.float32)
  expected[slots] = [[deg(x, 0), deg(y, 1)] for x, y in zip(ROME_X, ROME_Y)]
  expected[4] = np.nan  # Track loss.
  np.testing.assert_allclose(rome["signals"], expected, atol=1e-5)
  assert np.isnan(rome["signals"][[4, 8]]).all()
  assert rome["signals"][5].tolist() == [0.0, 0.0]  # The screen centre.
  ra = np.array(ROME_RA) - 1
  ra[ra == 5] = -1  # Code 6, undefined.
  exp_ra = np.full(11, -1)
  exp_ra[slots] = ra
  exp_mn = np.full(11, -1)
  exp_mn[slots] = np.array(ROME_MN_FIXED) - 1
  np.testing.assert_array_equal(rome["labels"], exp_ra)  # RA's by default.
  np.testing.assert_array_equal(rome["labels_ra"], exp_ra)
  np.testing.assert_array_equal(rome["labels_mn"], exp_mn)
  # MN only: `labels` falls back to MN; RA's track is all -1.
  jump = ex["TL48_video_Jump"]
  np.testing.assert_array_equal(jump["labels"], jump["labels_mn"])
  assert (jump["labels_ra"] == -1).all()
  dots = ex["UH21_dots_trial1"]
  np.testing.assert_array_equal(dots["labels"], [0, -1, 1, 2])
  meta = builder.info.metadata
  assert meta["channel_names"] == ["gaze_x_deg", "gaze_y_deg"]
  assert meta["units"] == {"gaze": "deg"} and meta["sample_rate_hz"] == 500.0
  assert meta["class_names"] == ["fixation", "saccade", "pso",
                                 "smooth_pursuit", "blink"]
  assert meta["stimulus_types"]["UH21_dots_trial1"] == "dots"
  assert meta["stimulus_types"]["TL48_video_Jump"] == "videos"
  assert meta["label_raters"] == {"TL48_dots_trial1": "MN",
                                  "TL48_video_Jump": "MN",
                                  "UH21_dots_trial1": "RA",
                                  "UH21_img_Rome": "RA"}
  assert meta["native_rates_hz"]["TL48_dots_trial1"] == 200.0
  repairs = meta["repairs"]
  assert repairs["padding_rows_dropped"] == 2
  assert repairs["labels_corrected_zemblys2018"] == 2
  assert repairs["recordings_rate_corrected"] == 2  # Both TL48 recordings.
  assert repairs["missing_samples_inserted"] == 1
  assert repairs["track_loss_samples"] == 2  # Rome 4, Jump 2.


def test_200hz_recording_is_upsampled_with_gaps_kept(tmp_path):
  builder = _build("500hz", write_lund(tmp_path), tmp_path)
  jump = _by_recording(builder)["TL48_video_Jump"]
  # Samples at k / 200 s span 25 ms: frames j / 500 s, j = 0..12.
  t_src, t_grid = np.arange(6) / 200, np.arange(13) / 500
  x = np.array([deg(v, 0) for v in JUMP_X])
  x[2] = np.nan
  ok = np.isfinite(x)
  expected = np.interp(t_grid, t_src[ok], x[ok])
  # Frames whose interpolation uses the lost sample 2 (t = 10 ms) are NaN:
  # those strictly between samples 1 and 3 (5 ms < t < 15 ms).
  touches = (t_grid > 0.005 + 1e-9) & (t_grid < 0.015 - 1e-9)
  expected[touches] = np.nan
  np.testing.assert_allclose(jump["signals"][:, 0], expected, atol=1e-5)
  assert np.isnan(jump["signals"][:, 0]).sum() == 5  # 6, 8, ..., 14 ms.
  held = np.floor(t_grid * 200 + 1e-9).astype(int)
  np.testing.assert_array_equal(jump["labels"],
                                (np.array(JUMP_LABELS) - 1)[held])


@pytest.mark.parametrize("config,recordings,track", [
    ("500hz_ra", ["UH21_dots_trial1", "UH21_img_Rome"], "labels_ra"),
    ("500hz_mn", ["TL48_dots_trial1", "TL48_video_Jump", "UH21_img_Rome"],
     "labels_mn"),
])
def test_rater_configs_keep_that_raters_recordings(tmp_path, config,
                                                    recordings, track):
  ex = _by_recording(_build(config, write_lund(tmp_path), tmp_path))
  assert sorted(ex) == recordings
  for e in ex.values():
    np.testing.assert_array_equal(e["labels"], e[track])


def test_500hz_native_leaves_out_the_200hz_recordings(tmp_path):
  builder = _build("500hz_native", write_lund(tmp_path), tmp_path)
  assert sorted(_by_recording(builder)) == ["UH21_dots_trial1",
                                            "UH21_img_Rome"]
  assert builder.info.metadata["repairs"]["recordings_left_out_rate"] == 2


def test_250hz_and_the_article_subset(tmp_path):
  root = write_lund(tmp_path, article=True)
  rome = _by_recording(_build("250hz", root, tmp_path))["UH21_img_Rome"]
  assert rome["signals"].shape == (6, 2)  # Slots 0, 2, ..., 10.
  # Frame 2 is slot 4 (track loss) and frame 4 slot 8 (the skipped one).
  assert np.isnan(rome["signals"][[2, 4], 0]).all()
  np.testing.assert_allclose(rome["signals"][3, 0], deg(ROME_X[6], 0),
                             atol=1e-5)
  article = _by_recording(_build("article_500hz", root, tmp_path))
  assert sorted(article) == ["UH21_img_Rome"]


def test_inter_rater_agreement(tmp_path):
  root = write_lund(tmp_path)
  result = agreement.rater_agreement(tmp_path)
  # Only UH21_img_Rome is coded twice; RA's sample 9 is undefined.
  ra = np.array(ROME_RA[:9]) - 1
  mn = np.array(ROME_MN_FIXED[:9]) - 1
  assert result["recordings"] == 1 and result["samples"] == 9
  assert result["kappa"] == pytest.approx(agreement.cohen_kappa(ra, mn))
  # RA 0 0 1 1 4 2 0 3 3 vs MN 0 0 1 1 4 2 0 3 0: 8 of 9 agree.
  # p_o = 8/9; marginals RA (3,2,1,2,1)/9, MN (4,2,1,1,1)/9:
  # p_e = (12 + 4 + 1 + 2 + 1) / 81 = 20/81.
  assert result["kappa"] == pytest.approx((8 / 9 - 20 / 81) / (1 - 20 / 81))
  # Saccade (1): identical -> 1. Pursuit (3): RA 2 samples, MN 1, agree 8/9,
  # p_e = (2*1 + 7*8) / 81 = 58/81.
  assert result["kappa_per_class"]["saccade"] == pytest.approx(1.0)
  assert result["kappa_per_class"]["smooth_pursuit"] == pytest.approx(
      (8 / 9 - 58 / 81) / (1 - 58 / 81))
  assert np.isnan(agreement.cohen_kappa([1, 1], [1, 1]))
  assert root.exists()


def _rome(tmp_path, name="UH21_img_Rome_labelled_RA.mat", **kwargs):
  pos = kwargs.pop("pos", pos_rows(ROME_X, ROME_Y, ROME_RA, ROME_T))
  return write_mat(tmp_path / name, pos, **kwargs)


@pytest.mark.parametrize("field", ["screenDim", "screenRes", "viewDist"])
def test_file_without_screen_geometry_is_an_error(tmp_path, field):
  path = _rome(tmp_path, drop=(field,))
  with pytest.raises(reader.GazeFileError, match=(
      rf"UH21_img_Rome_labelled_RA\.mat: ETdata\.{field} is missing; it is "
      r"the screen geometry")):
    reader.read_gaze_file(path)


@pytest.mark.parametrize("code", [0, 7, 2.5])
def test_label_code_outside_1_to_6_is_an_error(tmp_path, code):
  labels = list(ROME_RA)
  labels[2] = code
  path = _rome(tmp_path, pos=pos_rows(ROME_X, ROME_Y, labels, ROME_T))
  with pytest.raises(reader.GazeFileError, match=(
      r"RA\.mat: ETdata\.pos row 3, column 6 \(label\) is .*; labels must be "
      r"integers 1\.\.6")):
    reader.read_gaze_file(path)


def test_other_bad_files_are_errors_naming_file_and_field(tmp_path):
  with pytest.raises(reader.GazeFileError, match=r"ETdata\.pos has shape "
                     r"\(10, 5\)"):
    reader.read_gaze_file(_rome(tmp_path, pos=pos_rows(
        ROME_X, ROME_Y, ROME_RA, ROME_T)[:, :5]))
  geometry = dict(screenDim=np.array([[380.0, 300.0]]))
  path = tmp_path / "UH21_img_Rome_labelled_MN.mat"
  sio.savemat(str(path), {"ETdata": {
      "pos": pos_rows(ROME_X, ROME_Y, ROME_RA, ROME_T), "sampFreq": 500,
      "screenRes": np.array([RES]), "viewDist": DIST, **geometry}})
  with pytest.raises(reader.GazeFileError, match=r"ETdata\.screenDim is "
                     r"\[380\.0, 300\.0\]; it must be in metres"):
    reader.read_gaze_file(path)
  with pytest.raises(reader.GazeFileError, match="not an upstream Lund 2013 "
                     "file name"):
    reader.read_gaze_file(_rome(tmp_path, name="rome.mat"))
  t = ROME_T.copy()
  t[5:] += 20e6  # 20 s without samples.
  with pytest.raises(reader.GazeFileError, match=r"row 6, column 1 "
                     r"\(timestamp\): 20\.0 s since the previous row"):
    gaze = reader.read_gaze_file(
        _rome(tmp_path, pos=pos_rows(ROME_X, ROME_Y, ROME_RA, t)))
    reader.sample_slots(gaze, 500.0)
  t = ROME_T.copy()
  t[3] = t[2]
  with pytest.raises(reader.GazeFileError, match=r"row 4, column 1 "
                     r"\(timestamp\).*timestamps must increase"):
    reader.rate_from_timestamps(reader.read_gaze_file(
        _rome(tmp_path, pos=pos_rows(ROME_X, ROME_Y, ROME_RA, t))))


def test_raters_with_different_samples_are_an_error(tmp_path):
  root = write_lund(tmp_path)
  x = list(ROME_X)
  x[1] += 1
  write_mat(root / ORIGINAL / "images/UH21_img_Rome_labelled_MN.mat",
            pos_rows(x, ROME_Y, ROME_MN, ROME_T))
  with pytest.raises(reader.GazeFileError, match=r"Rome_labelled_MN\.mat and "
                     r".*Rome_labelled_RA\.mat code the same recording but "
                     "hold different gaze samples"):
    _build("500hz", root, tmp_path)


def test_missing_folders_are_immediate_errors_naming_them(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"nowhere: manual_dir does not "
                     "exist"):
    _build("500hz", tmp_path / "nowhere", tmp_path)
  with pytest.raises(FileNotFoundError, match="gaze_lund2013 cannot be downloaded by "
                     "the builder; pass manual_dir"):
    data.prepare("gaze_lund2013/500hz", data_dir=str(tmp_path / "tfds"))
  root = write_lund(tmp_path / "a")
  with pytest.raises(FileNotFoundError, match=r"data used in the article is "
                     r"missing; the 'article' subset"):
    _build("article_500hz", root, tmp_path)


def test_real_data(shared_data, tmp_path):
  raw = shared_data / "gaze_lund2013"
  if not (raw / "annotated_data" / ORIGINAL).is_dir():
    pytest.skip(f"{raw}/annotated_data is absent from the shared folder.")
  recordings, repairs = reader.load_recordings(raw / "annotated_data")
  files = [f for r in recordings.values() for f in r.files.values()]
  assert (len(files), len(recordings)) == (96, 63)
  assert len({r.participant for r in recordings.values()}) == 30
  assert sum(len(f.labels) for f in files) == 486_631
  codes = np.concatenate([f.labels for f in files])
  # Per upstream code 1..5 and 6 (undefined), after the Zemblys fix moved 75
  # of MN's UH29_img_Europe samples from saccade to fixation.
  assert np.bincount(codes + 1).tolist() == [
      847, 226_222, 28_627, 16_255, 202_454, 12_226]
  assert repairs == {"padding_rows_dropped": 0,
                     "labels_corrected_zemblys2018": 75,
                     "recordings_rate_corrected": 8}
  builder = _build("500hz", raw, tmp_path)
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"], s["frames"]) == (63, 30, 448_149)
  rates = builder.info.metadata["native_rates_hz"]
  assert sorted(k for k, v in rates.items() if v != 500.0) == [
      "TL48_img_Europe", "TL48_img_Rome", "TL48_video_TrafikEhuset",
      "UH47_img_Europe", "UH47_video_BergoDalbana", "UL47_dots_trial1",
      "UL47_img_konijntjes", "UL47_video_BiljardKlipp"]
  assert s["class_frames"]["labels"] == {
      "fixation": 179_369, "saccade": 25_443, "pso": 14_992,
      "smooth_pursuit": 218_918, "blink": 8_786, "unlabelled": 641}
  assert s["repairs"]["nan_frames"] == 3_712
  result = agreement.rater_agreement(raw)
  assert (result["recordings"], result["samples"]) == (33, 103_067)
  assert result["kappa"] == pytest.approx(0.818, abs=5e-4)
