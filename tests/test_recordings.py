"""The generic `recordings` builder, from files the tests write in tmp_path."""

import math

import numpy as np
import pytest

from imujax.datasets import resample
from imujax.datasets.recordings import recordings_dataset_builder as rb
import mvnx_fixtures

SPEC = """
name = "lab"
files = "**/*.csv"
subject_regex = "(?P<subject>P\\\\d+)_"
min_duration_s = 1.0
channels = [
  {column = "ax", name = "wrist_acc_x", unit = "g"},
  {column = "gx", name = "wrist_gyr_x", unit = "deg/s"},
]
[time]
column = "t"
unit = "ms"
[labels]
column = "activity"
class_names = ["still", "walk"]
map = {still = 0, sit = 0, walk = 1}
unlabelled = ["", "NONE"]
"""


def _csv(path, t_ms, ax, gx, labels, extra_lines=(), newline_at_end=True):
  lines = ["t,ax,gx,activity"]
  lines += [f"{t:.1f},{float(a)!r},{float(g)!r},{lab}"
            for t, a, g, lab in zip(t_ms, ax, gx, labels)]
  lines += list(extra_lines)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + ("\n" if newline_at_end else ""))


def _build(tmp_path, spec_text=SPEC, config="50hz"):
  spec = tmp_path / "data" / "imujax_spec.toml"
  spec.parent.mkdir(parents=True, exist_ok=True)
  spec.write_text(spec_text)
  builder = rb.Builder(spec=str(spec), config=config,
                       data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]
  examples = {ex["recording"]: ex for ex in (source[i] for i in
                                             range(len(source)))}
  return builder, examples


def _rec(examples, name):
  return next(v for k, v in examples.items() if
              (k.decode() if isinstance(k, bytes) else k) == name)


def test_csv_values_labels_and_metadata(tmp_path):
  t = np.arange(200) * 10.0  # 100 Hz in ms.
  ax = np.round(np.sin(t / 300.0), 6)
  gx = np.round(t / 100.0, 6)
  labels = ["still"] * 100 + ["walk"] * 50 + ["sit"] * 25 + [""] * 25
  _csv(tmp_path / "data" / "P01_a.csv", t, ax, gx, labels)
  _csv(tmp_path / "data" / "sub" / "P02_b.csv", t, ax, gx, labels)
  builder, ex = _build(tmp_path)
  assert len(ex) == 2
  e = _rec(ex, "P01_a")
  assert e["subject"] in ("P01", b"P01")
  grid = np.arange(100) / 50.0  # 1.99 s at 50 Hz -> 100 frames.
  np.testing.assert_allclose(e["signals"][:, 0],
                             np.interp(grid, t / 1000, ax) * 9.80665, rtol=1e-5)
  np.testing.assert_allclose(e["signals"][:, 1],
                             np.interp(grid, t / 1000, gx) * math.pi / 180,
                             rtol=1e-5, atol=1e-7)
  # Previous-sample hold of: still (0) to 0.99 s, walk (1), sit -> 0, "" -> -1.
  expected = np.where(grid < 1.0, 0, np.where(grid < 1.5, 1,
                                              np.where(grid < 1.75, 0, -1)))
  np.testing.assert_array_equal(e["labels"], expected)
  meta = builder.info.metadata
  assert meta["channel_names"] == ["wrist_acc_x", "wrist_gyr_x"]
  assert meta["class_names"] == ["still", "walk"]
  assert meta["sample_rate_hz"] == 50.0
  assert meta["repairs"]["malformed_rows_dropped"] == 0
  assert _rec(ex, "sub__P02_b")["subject"] in ("P02", b"P02")
  assert builder.builder_config.name == "lab_50hz"


def test_bad_rows_are_repaired_and_counted(tmp_path):
  t = np.arange(300) * 10.0
  ax = np.ones(300)
  ax[50:53] = np.nan  # A short NaN run: interpolated.
  labels = ["walk"] * 300
  lines = ["t,ax,gx,activity"]
  for i in range(300):
    lines.append(f"{t[i]:.1f},{float(ax[i])!r},0.5,walk")
  lines[100] = "990.0,1.012.598.156.929.010,0.5,walk"  # Locale damage.
  lines.insert(200, lines[199])  # Duplicated timestamp.
  text = "\n".join(lines) + "\n" + "3000.0,1.0,0."  # Cut-off last row.
  (tmp_path / "data").mkdir(parents=True)
  (tmp_path / "data" / "P01_x.csv").write_text(text)
  # Shorter than min_duration_s (1 s) but kept.
  _csv(tmp_path / "data" / "P03_short.csv", np.arange(20) * 10.0,
       np.zeros(20), np.zeros(20), ["walk"] * 20)
  builder, ex = _build(tmp_path)
  rep = builder.info.metadata["repairs"]
  assert rep["malformed_rows_dropped"] == 1
  assert rep["truncated_rows_dropped"] == 1
  assert rep["duplicate_timestamps_dropped"] == 1
  assert rep["nonfinite_samples_interpolated"] == 3
  assert rep["recordings_shorter_than_min_duration"] == 1
  e = _rec(ex, "P01_x")
  np.testing.assert_allclose(e["signals"][:, 0], 9.80665, rtol=1e-6)
  assert len(_rec(ex, "P03_short")["labels"]) == 10


@pytest.mark.parametrize("damage, message", [
    (lambda ls: ls[:5] + ["50.0,1.0,2.0"] + ls[6:], r"P01_x.csv:6: 3 fields"),
    (lambda ls: ls[:5] + ["50.0,1.0,2.0,jump"] + ls[6:],
     r"P01_x.csv:6: unknown label 'jump'"),
    (lambda ls: ls[:5] + ["10.0,1.0,2.0,walk"] + ls[6:],
     r"P01_x.csv:6: timestamp .* earlier"),
    (lambda ls: ls[:5] + [f"{(j - 1) * 10}.0,nan,2.0,walk"
                          for j in range(5, 17)] + ls[17:],
     r"P01_x.csv:.*consecutive non-finite"),
    (lambda ls: ["t,ax,gyro_x,activity"] + ls[1:],
     r"P01_x.csv:1: columns \['gx'\] are not in the header"),
])
def test_bad_input_errors_name_file_and_line(tmp_path, damage, message):
  lines = ["t,ax,gx,activity"] + [f"{i * 10}.0,1.0,2.0,walk"
                                  for i in range(100)]
  (tmp_path / "data").mkdir(parents=True)
  (tmp_path / "data" / "P01_x.csv").write_text("\n".join(damage(lines)) + "\n")
  with pytest.raises((ValueError, resample.ResampleError), match=message):
    _build(tmp_path)


def test_too_many_malformed_rows_is_an_error(tmp_path):
  lines = ["t,ax,gx,activity"] + [f"{i * 10}.0,1.0,2.0,walk"
                                  for i in range(100)]
  for i in range(5, 17):
    lines[i] = f"{(i - 1) * 10}.0,1.012.598,2.0,walk"
  (tmp_path / "data").mkdir(parents=True)
  (tmp_path / "data" / "P01_x.csv").write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=r"P01_x.csv:6: 12 rows whose numbers"):
    _build(tmp_path)


LABEL_FILE_SPEC = """
name = "seg"
files = "*.npz"
subject_regex = "^(\\\\w+?)-"
channels = [
  {column = "imu:0", name = "chest_acc_x", unit = "m/s^2"},
  {column = "imu:1", name = "chest_acc_y", unit = "m/s^2"},
]
[time]
rate_hz = 100.0
[labels]
file = "{stem}.labels.csv"
class_names = ["rest", "lift"]
"""


def test_npz_with_segment_label_file(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  imu = np.stack([np.arange(300) / 100.0, -np.arange(300) / 50.0], axis=1)
  np.savez(data / "ann-1.npz", imu=imu)
  (data / "ann-1.labels.csv").write_text(
      "start,end,label\n0.0,1.0,rest\n1.0,2.5,lift\n")
  builder, ex = _build(tmp_path, LABEL_FILE_SPEC, config="native")
  e = _rec(ex, "ann-1")
  assert e["subject"] in ("ann", b"ann")
  assert builder.info.metadata["sample_rate_hz"] == 100.0
  np.testing.assert_allclose(e["signals"], imu, rtol=1e-6, atol=1e-6)
  expected = np.r_[np.zeros(100), np.ones(150), -np.ones(50)]
  np.testing.assert_array_equal(e["labels"], expected)


def test_missing_label_file_is_an_error_or_unlabelled(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  np.savez(data / "ann-1.npz", imu=np.zeros((300, 2)))
  with pytest.raises(FileNotFoundError, match=r"ann-1.labels.csv: label file"):
    _build(tmp_path, LABEL_FILE_SPEC)
  spec = LABEL_FILE_SPEC.replace('[labels]', '[labels]\nmissing_file = '
                                 '"unlabelled"')
  (tmp_path / "b" / "data").mkdir(parents=True)
  np.savez(tmp_path / "b" / "data" / "ann-1.npz", imu=np.zeros((300, 2)))
  builder, ex = _build(tmp_path / "b", spec)
  assert (_rec(ex, "ann-1")["labels"] == -1).all()
  assert builder.info.metadata["repairs"]["label_files_missing_unlabelled"] == 1


MVNX_SPEC = """
name = "suit"
files = "*.mvnx"
format = "mvnx"
subject_regex = "^(?P<subject>[A-Za-z]+)"
[mvnx]
sensors = ["Pelvis", "RightHand"]
quantities = ["acc", "gyr"]
allow_truncated = %s
[labels]
file = "{stem}.csv"
class_names = ["a", "b"]
"""


def test_mvnx_files_and_truncation_policy(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  frames = mvnx_fixtures.random_frames(120, version=4, seed=3)
  mvnx_fixtures.write_mvnx(data / "Ann.mvnx", frames, version=4, rate=60.0)
  (data / "Ann.csv").write_text("start,end,label\n0,1,a\n1,5,b\n")
  builder, ex = _build(tmp_path, MVNX_SPEC % "false", config="native")
  e = _rec(ex, "Ann")
  names = builder.info.metadata["channel_names"]
  assert names[:3] == ["pelvis_acc_x", "pelvis_acc_y", "pelvis_acc_z"]
  assert names[-1] == "right_hand_gyr_z" and len(names) == 12
  free = frames["sensorFreeAcceleration"].reshape(120, -1, 3)
  hand = mvnx_fixtures.SENSORS_UPPER.index("RightHand")
  np.testing.assert_allclose(e["signals"][:, 6:9], free[:, hand], atol=2e-6)
  seg = frames["angularVelocity"].reshape(120, -1, 3)
  np.testing.assert_allclose(
      e["signals"][:, 9:12], seg[:, mvnx_fixtures.SEGMENTS.index("RightHand")],
      atol=2e-6)
  np.testing.assert_array_equal(e["labels"], np.r_[np.zeros(60), np.ones(60)])
  # Cut the file mid-frame: an error by default, a counted repair if allowed.
  text = (data / "Ann.mvnx").read_text()
  (data / "Ann.mvnx").write_text(text[:len(text) // 2])
  strict = rb.load_spec(_spec(tmp_path, MVNX_SPEC % "false"))
  with pytest.raises(ValueError, match=r"Ann.mvnx:\d+: the file ends before"):
    rb.read_recording(data / "Ann.mvnx", strict)
  table, _ = rb.read_recording(
      data / "Ann.mvnx", rb.load_spec(_spec(tmp_path, MVNX_SPEC % "true")))
  assert table.repairs["truncated_file_tail_dropped"] == 1
  assert 50 < len(table.timestamps_s) < 62


def _spec(tmp_path, text):
  path = tmp_path / "data" / "imujax_spec.toml"
  path.write_text(text)
  return path


def test_spec_errors_name_the_key(tmp_path):
  (tmp_path / "data").mkdir()
  with pytest.raises(rb.SpecError, match="unit 'furlong' unknown"):
    rb.load_spec(_spec(tmp_path, SPEC.replace('"deg/s"', '"furlong"')))
  with pytest.raises(rb.SpecError, match="time.column"):
    rb.load_spec(_spec(tmp_path, SPEC.replace('column = "t"', '')))


def test_parquet_values_or_what_to_install(tmp_path):
  (tmp_path / "data").mkdir()
  spec = rb.load_spec(_spec(tmp_path, SPEC.replace("*.csv", "*.parquet")))
  try:
    import pyarrow as pa
    import pyarrow.parquet as pq
  except ImportError:
    (tmp_path / "data" / "P01_a.parquet").write_bytes(b"PAR1")
    with pytest.raises(ImportError, match=r"pip install pyarrow=="):
      rb.read_parquet(tmp_path / "data" / "P01_a.parquet", spec)
    return
  t = np.arange(100) * 10.0
  pq.write_table(pa.table({"t": t, "ax": np.ones(100), "gx": np.zeros(100),
                           "activity": ["walk"] * 100}),
                 str(tmp_path / "data" / "P01_a.parquet"))
  table, _ = rb.read_recording(tmp_path / "data" / "P01_a.parquet", spec)
  np.testing.assert_allclose(table.values[:, 0], 9.80665)
  assert (table.labels == 1).all()
