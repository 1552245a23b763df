"""The generic `recordings` builder, from files the tests write in tmp_path."""

import logging
import math
import os

import numpy as np
import pytest

from imujax.datasets import resample
from imujax.datasets.recordings import recordings_dataset_builder as rb
from imujax.datasets.recordings import readers
from tests import dataset_fixtures
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
  return dataset_fixtures.build_recordings(tmp_path, spec_text, config=config)


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
  # <name>_<rate>_<fingerprint>: the build is keyed on spec and files.
  assert builder.builder_config.name == f"lab_50hz_{builder.fingerprint[:12]}"
  assert meta["fingerprint"] == builder.fingerprint


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
    readers.read_recording(data / "Ann.mvnx", strict)
  table, _ = readers.read_recording(
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
      readers.read_parquet(tmp_path / "data" / "P01_a.parquet", spec)
    return
  t = np.arange(100) * 10.0
  pq.write_table(pa.table({"t": t, "ax": np.ones(100), "gx": np.zeros(100),
                           "activity": ["walk"] * 100}),
                 str(tmp_path / "data" / "P01_a.parquet"))
  table, _ = readers.read_recording(tmp_path / "data" / "P01_a.parquet", spec)
  np.testing.assert_allclose(table.values[:, 0], 9.80665)
  assert (table.labels == 1).all()


def _lab(tmp_path, folder="data", n=200, value=1.0):
  t = np.arange(n) * 10.0
  _csv(tmp_path / folder / "P01_a.csv", t, np.full(n, value), np.zeros(n),
       ["walk"] * n)


def _touch_later(path):
  """Moves mtime forward: a rewrite within one clock tick keeps mtime."""
  st = path.stat()
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_build_is_keyed_on_files_and_spec(tmp_path, caplog):
  _lab(tmp_path)
  builder, ex = _build(tmp_path)
  first = builder.fingerprint
  assert len(first) == 64 and len(ex) == 1
  np.testing.assert_allclose(_rec(ex, "P01_a")["signals"][:, 0], 9.80665,
                             rtol=1e-6)
  # Same spec and files: the prepared build is reused.
  again, _ = _build(tmp_path)
  assert again.fingerprint == first and again.data_dir == builder.data_dir
  # An edited file: a new build with the new values, and the log says why.
  _lab(tmp_path, value=2.0)
  _touch_later(tmp_path / "data" / "P01_a.csv")
  caplog.set_level(logging.INFO)
  edited, ex = _build(tmp_path)
  assert edited.fingerprint != first
  np.testing.assert_allclose(_rec(ex, "P01_a")["signals"][:, 0],
                             2 * 9.80665, rtol=1e-6)
  assert "is stale (1 file(s) modified: P01_a.csv)" in caplog.text
  # An added file is in the new build.
  _csv(tmp_path / "data" / "P02_b.csv", np.arange(200) * 10.0,
       np.ones(200), np.zeros(200), ["still"] * 200)
  added, ex = _build(tmp_path)
  assert len(ex) == 2 and added.fingerprint != edited.fingerprint
  # A changed spec (the label map) too.
  remapped, ex = _build(tmp_path, SPEC.replace("walk = 1", "walk = 0"))
  assert remapped.fingerprint != added.fingerprint
  assert (_rec(ex, "P01_a")["labels"] == 0).all()
  assert "spec changed (label_map)" in caplog.text


def test_specs_sharing_a_name_never_share_a_build(tmp_path):
  tfds_dir = str(tmp_path / "tfds")
  built = {}
  for lab, value in (("a", 1.0), ("b", 3.0)):
    _lab(tmp_path / lab, value=value)
    spec = tmp_path / lab / "data" / "imujax_spec.toml"
    spec.write_text(SPEC.replace('name = "lab"\n', ""))  # Name: "data".
    builder = rb.Builder(spec=str(spec), config="50hz", data_dir=tfds_dir,
                         file_format="array_record")
    builder.download_and_prepare()
    source = builder.as_data_source()["train"]
    built[lab] = (builder.fingerprint, float(source[0]["signals"][0, 0]))
  assert built["a"][0] != built["b"][0]
  assert built["a"][1] == pytest.approx(9.80665)
  assert built["b"][1] == pytest.approx(3 * 9.80665)


def test_fingerprint_is_exposed_and_manual_dir_is_keyed(tmp_path):
  from imujax.data import input_pipeline
  _lab(tmp_path, folder="elsewhere")
  spec = tmp_path / "spec" / "imujax_spec.toml"
  spec.parent.mkdir()
  spec.write_text(SPEC)
  data = input_pipeline.load("recordings/50hz", str(tmp_path / "tfds"),
                             str(tmp_path / "elsewhere"), spec=str(spec))
  assert len(data.recordings) == 1
  builder = rb.Builder(spec=str(spec), config="50hz",
                       manual_dir=str(tmp_path / "elsewhere"),
                       data_dir=str(tmp_path / "tfds"))
  assert data.fingerprint == builder.fingerprint
  assert builder.is_prepared()
  assert builder.info.metadata["fingerprint"] == builder.fingerprint
  # A manual_dir given only to download_and_prepare cannot be keyed.
  import tensorflow_datasets as tfds
  with pytest.raises(ValueError, match="pass it to the builder"):
    rb.Builder(spec=str(spec), config="50hz", manual_dir=str(
        tmp_path / "elsewhere"), data_dir=str(tmp_path / "t2")
               ).download_and_prepare(
                   download_config=tfds.download.DownloadConfig(
                       manual_dir=str(tmp_path)))


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('unit = "ms"', 'unit = "ms"\nunits = "s"'),
     r"unknown key time.'units'; valid keys here: column, unit, rate_hz"),
    (lambda s: s.replace('[labels]', '[labels]\nmissing = "error"'),
     r"unknown key labels.'missing'; valid keys here: column, file,"),
    (lambda s: s + '[csv]\nseparator = ";"\n',
     r"unknown key csv.'separator'; valid keys here: delimiter, encoding"),
    (lambda s: s.replace('column = "t"', 'column = 2'),
     r"time.column must be a string, got an integer 2 \(quote it: "
     r"column = \"2\"\)"),
    (lambda s: s + '[csv]\ndelimiter = 5\n', r"csv.delimiter must be a string"),
    (lambda s: s + '[csv]\ndelimiter = ";;"\n',
     r"csv.delimiter must be one character"),
    (lambda s: s + '[csv]\nmax_malformed_rows = "ten"\n',
     r"csv.max_malformed_rows must be an integer"),
    (lambda s: s + '[csv]\nencoding = "klingon"\n',
     r"csv.encoding 'klingon' is not a Python codec"),
    (lambda s: s.replace("walk = 1", 'walk = "1"'),
     r"labels.map.walk must be an integer class id"),
    (lambda s: s.replace('name = "wrist_gyr_x"', 'name = "wrist_acc_x"'),
     r"channels\[1\].name 'wrist_acc_x' is used by an earlier channel"),
    (lambda s: s.replace('unit = "g"}', 'unit = "g", scale = 2}'),
     r"unknown key channels\[0\].'scale'; valid keys here: column, name, unit"),
    (lambda s: "max_gap = 2\n" + s, r"unknown key 'max_gap'; valid keys here:"
     r" .*max_gap_s"),
])
def test_spec_is_validated_strictly(tmp_path, edit, message):
  (tmp_path / "data").mkdir()
  with pytest.raises(rb.SpecError, match=message):
    rb.load_spec(_spec(tmp_path, edit(SPEC)))


def test_every_spec_problem_is_reported_at_once(tmp_path):
  (tmp_path / "data").mkdir()
  text = SPEC.replace('unit = "ms"', 'unit = "ms"\nunits = "s"') + (
      '[csv]\ndelimiter = 5\n')
  with pytest.raises(rb.SpecError, match=r"2 problems:\n  - unknown key "
                     r"time.'units'.*\n  - csv.delimiter must be"):
    rb.load_spec(_spec(tmp_path, text))


def test_limits_named_in_errors_are_spec_keys(tmp_path):
  t = np.r_[np.arange(100), np.arange(250, 350)] * 10.0  # A 1.5 s gap.
  _csv(tmp_path / "data" / "P01_a.csv", t, np.ones(200), np.zeros(200),
       ["walk"] * 200)
  with pytest.raises(resample.ResampleError,
                     match=r"max_gap_s=1.0 s.*max_gap_s and max_nonfinite_run "
                     "are keys of"):
    _build(tmp_path)
  builder, ex = _build(tmp_path, "max_gap_s = 2.0\n" + SPEC)
  assert builder.info.metadata["repairs"]["gaps_interpolated"] == 1


def test_any_rate_is_a_config_name(tmp_path):
  """A 20 Hz device stays at 20 Hz (`recordings/20hz`), not resampled 2.5x."""
  t = np.arange(200) * 10.0  # 100 Hz in ms, 1.99 s.
  ax = np.round(np.sin(t / 300.0), 6)
  _csv(tmp_path / "data" / "P01_a.csv", t, ax, ax, ["still"] * 200)
  builder, ex = _build(tmp_path, config="20hz")
  e = _rec(ex, "P01_a")
  grid = np.arange(40) / 20.0
  np.testing.assert_allclose(e["signals"][:, 0],
                             np.interp(grid, t / 1000, ax) * 9.80665,
                             rtol=1e-5)
  assert builder.info.metadata["sample_rate_hz"] == 20.0
  with pytest.raises(ValueError, match="<N>hz"):
    rb.Builder(spec=str(tmp_path / "data" / "imujax_spec.toml"),
               config="fast", data_dir=str(tmp_path / "tfds"))
