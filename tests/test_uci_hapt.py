"""uci_hapt builder: a small fixture in the upstream RawData layout, then the
real data.

The fixture's values are ramps in the sample index written with 10 significant
digits, as the real files are, so every expected value is computed from the
same text the builder reads.
"""

import pathlib
import shutil
import zipfile

import numpy as np
import pytest

from imujax.data import info as data
from imujax.datasets.uci_hapt import uci_hapt_dataset_builder as uh

# (experiment, user, samples).
EXPERIMENTS = ((1, 1, 300), (2, 1, 250), (3, 2, 280))
# labels.txt rows: experiment user activity start end (1-based, inclusive).
# Experiment 1 has unlabelled samples before, between and after its segments;
# experiment 2 is one segment from its first sample to its last.
SEGMENTS = ((1, 1, 5, 11, 100), (1, 1, 7, 101, 140), (1, 1, 4, 151, 290),
            (2, 1, 1, 1, 250),
            (3, 2, 2, 30, 120), (3, 2, 3, 121, 200))
G = 9.80665


def _ramp(n: int, exp: int, sensor: str) -> list[str]:
  rows = np.arange(n)[:, None]
  cols = np.arange(3)[None, :]
  if sensor == "acc":  # g: gravity-sized values on each axis.
    x = 0.001 * rows + 0.1 * cols - 0.3 + 0.01 * exp
  else:  # rad/s.
    x = -0.002 * rows + 0.05 * cols + 0.01 * exp
  return [" ".join(f"{v:.10g}" for v in row) for row in x]


def write_hapt(root: pathlib.Path, experiments=EXPERIMENTS,
               segments=SEGMENTS) -> dict:
  """Writes root/RawData like upstream; returns {recording: (acc, gyro)}.

  acc and gyro are <float64>[T, 3] parsed back from the written text.
  """
  raw = root / "RawData"
  raw.mkdir(parents=True)
  written = {}
  for exp, user, n in experiments:
    parsed = []
    for sensor in ("acc", "gyro"):
      lines = _ramp(n, exp, sensor)
      (raw / f"{sensor}_exp{exp:02d}_user{user:02d}.txt").write_text(
          "\n".join(lines) + "\n")
      parsed.append(np.array([[float(v) for v in l.split()] for l in lines]))
    written[f"s{user:02d}_exp{exp:02d}"] = tuple(parsed)
  (raw / "labels.txt").write_text(
      "".join(" ".join(map(str, s)) + "\n" for s in segments))
  return written


def _build(name, manual_dir, tmp_path):
  return data.prepare(f"uci_hapt/{name}", data_dir=str(tmp_path / "tfds"),
                      manual_dir=str(manual_dir))


def _by_recording(builder):
  source = builder.as_data_source()["train"]
  return {source[i]["recording"].decode(): source[i]
          for i in range(len(source))}


def _no_download(monkeypatch):
  def fail(self, dl_manager):
    raise AssertionError("the builder tried to download")
  monkeypatch.setattr(uh.Builder, "_download", fail)


# Per-sample labels of experiment 1 at 50 Hz, written out by hand: samples
# 1..10 unlabelled, 11..100 STANDING (4), 101..140 STAND_TO_SIT (6), 141..150
# unlabelled, 151..290 SITTING (3), 291..300 unlabelled. Row r is sample r + 1.
EXP1_LABELS = np.array([-1] * 10 + [4] * 90 + [6] * 40 + [-1] * 10 +
                       [3] * 140 + [-1] * 10, np.int32)


def test_50hz_keeps_every_sample_with_exact_labels_and_units(
    tmp_path, monkeypatch):
  _no_download(monkeypatch)
  written = write_hapt(tmp_path / "raw")
  builder = _build("50hz", tmp_path / "raw", tmp_path)
  examples = _by_recording(builder)
  assert sorted(examples) == ["s01_exp01", "s01_exp02", "s02_exp03"]
  assert {e["subject"].decode() for e in examples.values()} == {"s01", "s02"}
  ex = examples["s01_exp01"]
  assert EXP1_LABELS.shape == (300,)
  np.testing.assert_array_equal(ex["labels"], EXP1_LABELS)
  # Boundaries are inclusive at both ends.
  assert ex["labels"][9] == -1 and ex["labels"][10] == 4   # samples 10, 11
  assert ex["labels"][99] == 4 and ex["labels"][100] == 6  # samples 100, 101
  assert ex["labels"][139] == 6 and ex["labels"][140] == -1
  # One segment over the whole file: no unlabelled sample at either end.
  np.testing.assert_array_equal(examples["s01_exp02"]["labels"],
                                np.zeros(250, np.int32))
  labels3 = examples["s02_exp03"]["labels"]
  assert (labels3[:29] == -1).all() and (labels3[200:] == -1).all()
  assert (labels3[29:120] == 1).all() and (labels3[120:200] == 2).all()
  for recording, (acc, gyro) in written.items():
    signals = examples[recording]["signals"]
    assert signals.dtype == np.float32 and signals.shape == (len(acc), 6)
    # g -> m/s^2 in float64, then one rounding to float32: exact.
    np.testing.assert_array_equal(signals[:, :3], (acc * G).astype(np.float32))
    np.testing.assert_array_equal(signals[:, 3:], gyro.astype(np.float32))
  meta = builder.info.metadata
  assert meta["channel_names"] == ["waist_acc_x", "waist_acc_y", "waist_acc_z",
                                   "waist_gyr_x", "waist_gyr_y", "waist_gyr_z"]
  assert meta["class_names"][4] == "STANDING"
  assert meta["class_names"][11] == "LIE_TO_STAND"
  assert meta["sample_rate_hz"] == 50.0
  assert meta["units"] == {"acc": "m/s^2", "gyr": "rad/s"}
  assert set(meta["repairs"].values()) == {0}
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"], s["frames"]) == (3, 2, 830)
  assert s["class_frames"]["labels"]["unlabelled"] == 30 + 29 + 80


def test_30hz_from_rawdata_itself_resamples_signals_and_holds_labels(
    tmp_path, monkeypatch):
  _no_download(monkeypatch)
  written = write_hapt(tmp_path / "raw", experiments=EXPERIMENTS[:1],
                       segments=SEGMENTS[:3])
  builder = _build("30hz", tmp_path / "raw/RawData", tmp_path)
  ex = _by_recording(builder)["s01_exp01"]
  # 300 samples span 299 / 50 s; frame k is at k / 30 s.
  n = int(np.floor(299 / 50 * 30)) + 1
  assert ex["signals"].shape == (n, 6)
  position = np.arange(n) * 50 / 30  # In samples.
  # Labels are held from the last sample at or before each frame.
  np.testing.assert_array_equal(
      ex["labels"], EXP1_LABELS[np.floor(position + 1e-9).astype(int)])
  acc = written["s01_exp01"][0]
  expected = np.stack([np.interp(position, np.arange(300), acc[:, c])
                       for c in range(3)], axis=1) * G
  np.testing.assert_allclose(ex["signals"][:, :3], expected, rtol=1e-6)
  assert builder.info.metadata["sample_rate_hz"] == 30.0


def test_config_names_and_rates():
  names = {c.name: c for c in uh.Builder.BUILDER_CONFIGS}
  assert uh.Builder.BUILDER_CONFIGS[0].name == "50hz"
  assert {n: c.rate_hz for n, c in names.items()} == {
      "50hz": 50.0, "30hz": 30.0, "60hz": 60.0, "native": 50.0}


def test_missing_manual_dir_is_an_error_not_a_download(tmp_path, monkeypatch):
  _no_download(monkeypatch)
  with pytest.raises(FileNotFoundError,
                     match=r"manual_dir .*nowhere does not exist"):
    _build("50hz", tmp_path / "nowhere", tmp_path)


def test_manual_dir_without_the_files_is_an_error(tmp_path, monkeypatch):
  _no_download(monkeypatch)
  (tmp_path / "raw").mkdir()
  (tmp_path / "raw/notes.txt").write_text("not the dataset")
  with pytest.raises(FileNotFoundError, match=r"manual_dir .*raw: no "
                     r"RawData/labels\.txt or RawData/acc_expXX_userYY\.txt"):
    _build("50hz", tmp_path / "raw", tmp_path)


def test_missing_gyro_file_is_an_error_naming_it(tmp_path, monkeypatch):
  _no_download(monkeypatch)
  write_hapt(tmp_path / "raw")
  (tmp_path / "raw/RawData/gyro_exp03_user02.txt").unlink()
  with pytest.raises(FileNotFoundError, match=r"gyro_exp03_user02\.txt is "
                     r"missing but acc_exp03_user02\.txt exists"):
    _build("50hz", tmp_path / "raw", tmp_path)


def test_missing_labels_file_is_an_error_naming_it(tmp_path, monkeypatch):
  _no_download(monkeypatch)
  write_hapt(tmp_path / "raw")
  (tmp_path / "raw/RawData/labels.txt").unlink()
  with pytest.raises(FileNotFoundError,
                     match=r"RawData/labels\.txt is missing"):
    _build("50hz", tmp_path / "raw", tmp_path)


def _labels(tmp_path, rows):
  path = tmp_path / "labels.txt"
  path.write_text("".join(f"{r}\n" for r in rows))
  return path


def test_labels_errors_name_the_line(tmp_path):
  with pytest.raises(ValueError, match=r"labels\.txt:2: expected 5 integers"):
    uh.read_labels(_labels(tmp_path, ["1 1 5 11 100", "1 1 5 x 100"]))
  with pytest.raises(ValueError, match=r"labels\.txt:1: activity 13 is not"):
    uh.read_labels(_labels(tmp_path, ["1 1 13 11 100"]))
  with pytest.raises(ValueError, match=r"labels\.txt:1: segment 0\.\.100"):
    uh.read_labels(_labels(tmp_path, ["1 1 5 0 100"]))


def test_segment_past_the_end_or_overlapping_is_an_error(tmp_path):
  path = _labels(tmp_path, ["1 1 5 11 100", "1 1 7 90 140", "1 1 4 151 301"])
  segments = uh.read_labels(path)
  acc = tmp_path / "acc_exp01_user01.txt"
  with pytest.raises(ValueError, match=r"labels\.txt:3: segment ends at sample"
                     r" 301, but .*acc_exp01_user01\.txt has 300 samples"):
    uh.sample_labels(segments[2:], 300, path, acc)
  with pytest.raises(ValueError, match=r"labels\.txt:2: segment 90\.\.140 "
                     r"overlaps line 1 \(11\.\.100\)"):
    uh.sample_labels(segments[:2], 300, path, acc)
  # The last sample itself may be labelled.
  assert uh.sample_labels(segments[2:], 301, path, acc)[300] == 3


def test_labels_of_an_experiment_without_files_are_an_error(tmp_path):
  write_hapt(tmp_path / "raw")
  raw = tmp_path / "raw/RawData"
  experiments = uh.list_experiments(raw)
  segments = uh.read_labels(_labels(tmp_path, ["1 1 5 11 100",
                                               "4 2 5 11 100"]))
  with pytest.raises(FileNotFoundError, match=r"labels\.txt:2: experiment 4 "
                     r"\(user 2\) has no acc_exp04_user02\.txt"):
    uh.segments_by_experiment(segments, experiments, tmp_path / "labels.txt")
  segments = uh.read_labels(_labels(tmp_path, ["3 1 5 11 100"]))
  with pytest.raises(ValueError, match=r"labels\.txt:1: experiment 3 is user 1"
                     r" here but user 2 in acc_exp03_user02\.txt"):
    uh.segments_by_experiment(segments, experiments, tmp_path / "labels.txt")


def test_damaged_or_mismatched_signal_files_are_errors(tmp_path):
  write_hapt(tmp_path / "raw", experiments=EXPERIMENTS[:1], segments=())
  raw = tmp_path / "raw/RawData"
  exp = uh.list_experiments(raw)[1]
  gyro = raw / "gyro_exp01_user01.txt"
  lines = gyro.read_text().splitlines()
  gyro.write_text("\n".join(lines[:-5]) + "\n")
  with pytest.raises(ValueError, match=r"acc_exp01_user01\.txt has 300 "
                     r"samples but .*gyro_exp01_user01\.txt has 295"):
    uh.make_example(exp, [], 50.0, raw / "labels.txt", {})
  lines[7] = "0.1 0.2"
  gyro.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=r"gyro_exp01_user01\.txt: .*the file "
                     "is damaged"):
    uh.read_signal(gyro)


def test_activity_labels_file_is_checked_when_present(tmp_path):
  write_hapt(tmp_path / "raw", experiments=EXPERIMENTS[:1], segments=())
  names = tmp_path / "raw/activity_labels.txt"
  names.write_text("".join(f"{i} {n}          \n"
                           for i, n in enumerate(uh.CLASS_NAMES, start=1)))
  uh.check_activity_labels(tmp_path / "raw/RawData")
  names.write_text("1 WALKING\n2 RUNNING\n")
  with pytest.raises(ValueError, match=r"activity_labels\.txt:2: activity 2 "
                     "is 'RUNNING'"):
    uh.check_activity_labels(tmp_path / "raw/RawData")


class _FakeDownloads:
  """Stands in for TFDS's download manager: no network in tests."""

  def __init__(self, root=None, error=None):
    self.root, self.error = root, error

  def download_and_extract(self, url):
    assert url == uh.URL
    if self.error:
      raise self.error
    return self.root

  def extract(self, path):
    out = pathlib.Path(str(path) + "_extracted")
    with zipfile.ZipFile(path) as z:
      z.extractall(out)
    return out


def test_download_finds_rawdata_in_the_extracted_zip(tmp_path):
  write_hapt(tmp_path / "extracted", experiments=EXPERIMENTS[:1])
  builder = uh.Builder(data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  found = builder._download(_FakeDownloads(root=tmp_path / "extracted"))
  assert found == tmp_path / "extracted/RawData"


def test_download_opens_a_nested_release_zip(tmp_path):
  write_hapt(tmp_path / "release/HAPT Data Set", experiments=EXPERIMENTS[:1])
  (tmp_path / "record").mkdir()
  shutil.make_archive(str(tmp_path / "record/HAPT Data Set"), "zip",
                      tmp_path / "release")
  builder = uh.Builder(data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  found = builder._download(_FakeDownloads(root=tmp_path / "record"))
  assert found == (tmp_path /
                   "record/HAPT Data Set.zip_extracted/HAPT Data Set/RawData")
  assert (found / "labels.txt").exists()


def test_failed_download_says_where_to_get_the_files(tmp_path):
  builder = uh.Builder(data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  with pytest.raises(RuntimeError, match=r"Could not download .*"
                     r"ConnectionError: no network.*by hand from https://"
                     r"archive\.ics\.uci\.edu/dataset/341.*manual_dir"):
    builder._download(_FakeDownloads(error=ConnectionError("no network")))


def test_real_data_50hz(shared_data, tmp_path, monkeypatch):
  _no_download(monkeypatch)
  raw = shared_data / "uci_hapt"
  if not (raw / "RawData/labels.txt").exists():
    pytest.skip(f"{raw}/RawData is absent from the shared folder.")
  builder = _build("50hz", raw, tmp_path)
  s = data.summarize(builder)
  assert (s["recordings"], s["subjects"]) == (61, 30)
  assert s["frames"] == 1_122_772  # Every sample kept: 6.24 h.
  frames = s["class_frames"]["labels"]
  assert frames["unlabelled"] == 307_158
  assert sum(frames.values()) - frames["unlabelled"] == 815_614
  assert set(s["repairs"].values()) == {0}
  # labels.txt line 1: "1 1 5 250 1232" (STANDING), then line 2:
  # "1 1 7 1233 1392" (STAND_TO_SIT); samples 1..249 are unlabelled.
  labels = _by_recording(builder)["s01_exp01"]["labels"]
  assert len(labels) == 20_598
  assert (labels[:249] == -1).all()
  assert (labels[249:1232] == uh.CLASS_NAMES.index("STANDING")).all()
  assert labels[1232] == uh.CLASS_NAMES.index("STAND_TO_SIT")
