"""The AnDy builder, from MVNX + annotation files the tests write in tmp_path."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from imujax.datasets import mvnx
from imujax.datasets.andy import andy_dataset_builder as ab
import mvnx_fixtures

REC = "Participant_909_Setup_A_Seq_3_Trial_4"


def _segments(path, rows):
  """Writes the 3-annotator segment file: start, end, duration, 3 labels."""
  lines = ["start,end,duration,annotator1,annotator2,annotator3"]
  start = 0.0
  for end, a, b, c in rows:
    lines.append(f"{start},{end},{end - start},{a},{b},{c}")
    start = end
  path.write_text("\n".join(lines) + "\n")


def _write_recording(root, name, n=240, details=True, seed=0):
  frames = mvnx_fixtures.random_frames(n, version=3, seed=seed)
  mvnx_fixtures.write_mvnx(root / f"{name}.xsens.mvnx", frames, version=3,
                           rate=240.0)
  lab = root / "labels"
  lab.mkdir(exist_ok=True)
  # 1 s at 240 Hz: frames at k/240 s.
  _segments(lab / f"Segments_{name}_general_posture_3A.csv",
            [(0.25, "standing", "St", "walking"),       # 2 of 3: standing
             (0.5, "walking", "Wa", "Wa"),               # unanimous
             (0.75, "kneeling", "standing", "walking"),  # tie -> -1
             (0.9, "NONE", "crouching", "NONE")])        # single vote
  _segments(lab / f"Segments_{name}_detailed_posture_3A.csv",
            [(0.5, "standing_upright", "St_U", "standing_bent_forward"),
             (2.0, "St_BF", "standing_bent_forward", "Kn_U")])
  if details:
    _segments(lab / f"Segments_{name}_details_3A.csv",
              [(2.0, "upright", "U", "BS")])
  _segments(lab / f"Segments_{name}_current_action_3A.csv",
            [(0.5, "Re", "reaching", "idle"),
             (2.0, "fine_manipulation_no_task", "Id", "screwing")])
  return frames


def _build(tmp_path, config="sensors_native", tfds_dir="tfds"):
  builder = ab.Builder(config=config, data_dir=str(tmp_path / tfds_dir),
                       file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / "raw")))
  source = builder.as_data_source()["train"]
  return builder, [source[i] for i in range(len(source))]


def test_values_and_majority_vote(tmp_path):
  raw = tmp_path / "raw"
  raw.mkdir()
  frames = _write_recording(raw, REC)
  _write_recording(raw, "Participant_541_Setup_B_Seq_1_Trial_1", details=False,
                   seed=1)
  builder, examples = _build(tmp_path)
  assert len(examples) == 2
  ex = next(e for e in examples if e["recording"] in (REC, REC.encode()))
  assert ex["subject"] in ("909", b"909")
  t = np.arange(240) / 240.0
  g = ab.GENERAL_POSTURE.index
  expected = np.select(
      [t <= 0.25, t <= 0.5, t <= 0.75, t <= 0.9],
      [g("standing"), g("walking"), -1, g("crouching")], -1)
  np.testing.assert_array_equal(ex["labels"], expected)
  d = ab.DETAILED_POSTURE.index
  np.testing.assert_array_equal(
      ex["labels_detailed_posture"],
      np.where(t <= 0.5, d("standing_upright"), d("standing_bent_forward")))
  assert (ex["labels_details"] == ab.DETAILS.index("upright")).all()
  a = ab.CURRENT_ACTION.index
  np.testing.assert_array_equal(
      ex["labels_current_action"],
      np.where(t <= 0.5, a("reaching"), a("idle")))
  # Signals: free acceleration derived from sensorAcceleration, then gyr.
  acc = frames["sensorAcceleration"].reshape(240, 17, 3)
  quat = frames["sensorOrientation"].reshape(240, 17, 4)
  free = mvnx.quat_rotate(quat, acc)
  free[..., 2] -= mvnx.STANDARD_GRAVITY
  gyr = frames["sensorAngularVelocity"].reshape(240, 17, 3)
  sig = ex["signals"].reshape(240, 17, 6)
  np.testing.assert_allclose(sig[..., :3], free, atol=1e-5)
  np.testing.assert_allclose(sig[..., 3:], gyr, atol=1e-6)
  meta = builder.info.metadata
  assert meta["channel_names"][:4] == ["pelvis_acc_x", "pelvis_acc_y",
                                       "pelvis_acc_z", "pelvis_gyr_x"]
  assert len(meta["channel_names"]) == 102
  assert meta["sample_rate_hz"] == 240.0
  rep = meta["repairs"]
  per_rec = int(((t > 0.5) & (t <= 0.75)).sum())
  assert rep["vote_ties_unlabelled"] == 2 * per_rec
  assert rep["frames_after_last_segment_unlabelled"] == 2 * int((t > 0.9).sum())
  assert rep["details_derived"] == 1
  other = next(e for e in examples if e is not ex)
  np.testing.assert_array_equal(
      other["labels_details"],
      np.where(t <= 0.5, ab.DETAILS.index("upright"),
               ab.DETAILS.index("bent_forward")))


def test_resampled_config(tmp_path):
  raw = tmp_path / "raw"
  raw.mkdir()
  _write_recording(raw, REC)
  builder, (ex,) = _build(tmp_path, "sensors_50hz")
  assert ex["signals"].shape == (50, 102)
  t = np.arange(50) / 50.0
  g = ab.GENERAL_POSTURE.index
  # Previous-sample hold of the 240 Hz labels.
  np.testing.assert_array_equal(ex["labels"][t <= 0.24], g("standing"))
  assert builder.info.metadata["sample_rate_hz"] == 50.0


def test_unknown_label_and_missing_file_name_the_file(tmp_path):
  raw = tmp_path / "raw"
  raw.mkdir()
  _write_recording(raw, REC)
  bad = raw / "labels" / f"Segments_{REC}_current_action_3A.csv"
  bad.write_text(bad.read_text().replace("screwing", "juggling"))
  with pytest.raises(ValueError, match=r"current_action_3A.csv:3: unknown "
                     r"current_action label 'juggling'"):
    _build(tmp_path)
  bad.unlink()
  with pytest.raises(FileNotFoundError, match=r"current_action_3A.csv is "
                     "missing"):
    _build(tmp_path, tfds_dir="again")


def test_recording_names_match_the_real_file_list(shared_data):
  names = []
  for split in ("andy_train.txt", "andy_test.txt"):
    names += (shared_data / "andy_filelist" / split).read_text().split()
  assert len(names) == 195
  for name in names:
    m = ab.RECORDING_RE.fullmatch(name.removesuffix(".pt"))
    assert m, name
