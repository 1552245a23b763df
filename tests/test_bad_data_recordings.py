"""Bad input to the `recordings` builder: each case counted, or an error
naming the file (and line) or spec key and the fix; nothing silent, no hang,
no path outside the data folder."""

import contextlib
import os
import signal
import zipfile

import numpy as np
import pytest

from imujax.datasets import resample
from imujax.datasets.recordings import recordings_dataset_builder as rb
from imujax.datasets.recordings import readers
from imujax.datasets.recordings import paths

SPEC = """
name = "lab"
files = "*.csv"
subject_regex = "(?P<subject>P\\\\d+)_"
min_duration_s = 1.0
channels = [
  {column = "ax", name = "wrist_acc_x", unit = "m/s^2"},
  {column = "gx", name = "wrist_gyr_x", unit = "rad/s"},
]
[time]
column = "t"
unit = "ms"
[labels]
column = "activity"
class_names = ["still", "walk"]
"""

NPZ_SPEC = """
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


@contextlib.contextmanager
def _no_hang(seconds=20):
  """Fails (instead of hanging the suite) if the body blocks."""
  def alarm(*_):
    raise TimeoutError(f"blocked for more than {seconds} s")
  old = signal.signal(signal.SIGALRM, alarm)
  signal.alarm(seconds)
  try:
    yield
  finally:
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _lines(n=200, value="1.0"):
  return ["t,ax,gx,activity"] + [f"{i * 10}.0,{value},0.5,walk"
                                 for i in range(n)]


def _write(tmp_path, name, lines, folder="data"):
  path = tmp_path / folder / name
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + "\n")
  return path


def _build(tmp_path, spec_text=SPEC, config="50hz"):
  spec = tmp_path / "data" / "imujax_spec.toml"
  spec.parent.mkdir(parents=True, exist_ok=True)
  spec.write_text(spec_text)
  with _no_hang():
    builder = rb.Builder(spec=str(spec), config=config,
                         data_dir=str(tmp_path / "tfds"),
                         file_format="array_record")
    builder.download_and_prepare()
  source = builder.as_data_source()["train"]
  return builder, [source[i] for i in range(len(source))]


# 2. Finite values beyond float32 ------------------------------------------

def test_csv_value_beyond_float32_is_counted_not_inf(tmp_path):
  lines = _lines()
  lines[50] = "490.0,1e39,0.5,walk"
  _write(tmp_path, "P01_a.csv", lines)
  builder, examples = _build(tmp_path)
  repairs = builder.info.metadata["repairs"]
  assert repairs["values_beyond_float32"] == 1
  assert repairs["nonfinite_samples_interpolated"] == 1
  assert np.isfinite(examples[0]["signals"]).all()


def test_value_overflowing_once_in_si_units_is_counted(tmp_path):
  lines = _lines()
  lines[50] = "490.0,1e38,0.5,walk"  # Fits float32 in g, not in m/s^2.
  _write(tmp_path, "P01_a.csv", lines)
  builder, examples = _build(tmp_path, SPEC.replace('"m/s^2"}', '"g"}'))
  assert builder.info.metadata["repairs"]["values_beyond_float32"] == 1
  assert np.isfinite(examples[0]["signals"]).all()


def test_npz_values_beyond_float32_long_run_is_an_error(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  imu = np.zeros((300, 2))
  imu[100:150, 0] = 1e39
  np.savez(data / "ann-1.npz", imu=imu)
  (data / "ann-1.labels.csv").write_text("start,end,label\n0,3,rest\n")
  with pytest.raises(resample.ResampleError,
                     match=r"ann-1.npz: sample 100: 50 consecutive non-finite"
                     r".*50 value\(s\) beyond float32"):
    _build(tmp_path, NPZ_SPEC)


# 3. Label files that label (almost) nothing ---------------------------------

@pytest.mark.parametrize("segments, message", [
    ("start,end,label\n0,3000,rest\n",  # ms segments, data in s.
     r"ann-1.labels.csv: labels 300 of 300"),
    ("start,end,label\n0,0.002,rest\n",  # s segments as if data were ms.
     r"ann-1.labels.csv: labels 1 of 300 samples \(0.3%, less than "
     r"labels.min_coverage = 0.1\); its segments span 0..0.002 s but the "
     r"recording spans 0..2.99 s"),
    ("start,end,label\n1700000000,1700000003,rest\n",  # Epoch times.
     r"ann-1.labels.csv: labels 0 of 300"),
    ("start,end,label\n", r"ann-1.labels.csv: labels 0 of 300 samples .*it has "
     "no segments but"),
    ("start,end,label\n2.0,1.0,rest\n",
     r"ann-1.labels.csv:2: start 2 is after end 1"),
    ("start,end,label\nnan,1.0,rest\n",
     r"ann-1.labels.csv:2: start/end \['nan', '1.0'\] are not finite"),
])
def test_label_file_covering_too_little_is_an_error(tmp_path, segments,
                                                     message):
  data = tmp_path / "data"
  data.mkdir()
  np.savez(data / "ann-1.npz", imu=np.zeros((300, 2)))
  (data / "ann-1.labels.csv").write_text(segments)
  if "300 of 300" in message:  # Full coverage is fine: the control case.
    _, examples = _build(tmp_path, NPZ_SPEC)
    assert (examples[0]["labels"] == 0).all()
    return
  with pytest.raises(ValueError, match=message):
    _build(tmp_path, NPZ_SPEC)


def test_min_coverage_is_a_spec_key(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  np.savez(data / "ann-1.npz", imu=np.zeros((300, 2)))
  (data / "ann-1.labels.csv").write_text("start,end,label\n0,0.2,rest\n"
                                         "5,6,lift\n")
  spec = NPZ_SPEC.replace("[labels]", "[labels]\nmin_coverage = 0.05")
  builder, examples = _build(tmp_path, spec)
  assert (examples[0]["labels"] == 0).sum() == 10
  assert builder.info.metadata["repairs"][
      "label_segments_outside_recording"] == 1


# 4. Duplicates and dangling symlinks ----------------------------------------

def test_duplicate_header_column_is_an_error(tmp_path):
  lines = _lines()
  lines[0] = "t,ax,ax,gx,activity"
  lines[1:] = [line.replace(",1.0,", ",1.0,2.0,") for line in lines[1:]]
  _write(tmp_path, "P01_a.csv", lines)
  with pytest.raises(ValueError, match=r"P01_a.csv:1: the header names "
                     r"\['ax'\] more than once"):
    _build(tmp_path)


def test_dangling_symlink_is_an_error(tmp_path):
  _write(tmp_path, "P01_a.csv", _lines())
  os.symlink(tmp_path / "gone.csv", tmp_path / "data" / "P02_a.csv")
  with pytest.raises(ValueError, match=r"P02_a.csv: a symlink to .*gone.csv"
                     ".*which does not exist"):
    _build(tmp_path)


# 5. Only regular files, with a size cap ---------------------------------------

@pytest.mark.parametrize("make", [
    lambda p: os.symlink("/dev/zero", p),  # Was read without end.
    os.mkfifo,
])
def test_device_or_fifo_as_data_file_is_refused(tmp_path, make):
  _write(tmp_path, "P01_a.csv", _lines())
  make(tmp_path / "data" / "P02_a.csv")
  with pytest.raises(ValueError, match=r"P02_a.csv: not a regular file"):
    _build(tmp_path)


def test_fifo_as_label_file_does_not_hang(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  np.savez(data / "ann-1.npz", imu=np.zeros((300, 2)))
  os.mkfifo(data / "ann-1.labels.csv")
  with pytest.raises(ValueError, match=r"ann-1.labels.csv: a FIFO, not a "
                     "regular file"):
    _build(tmp_path, NPZ_SPEC)


def test_file_larger_than_max_file_mb_is_refused(tmp_path):
  _write(tmp_path, "P01_a.csv", _lines(2000))
  with pytest.raises(ValueError, match=r"P01_a.csv: 0 MiB, more than "
                     r"max_file_mb = 0.01; split the recording, or raise "
                     "max_file_mb"):
    _build(tmp_path, "max_file_mb = 0.01\n" + SPEC)


# 6. Spec paths stay inside the data folder ------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace('column = "activity"',
                         'file = "../../../etc/passwd"'),
     r"labels.file = '../../../etc/passwd' leaves the data folder"),
    (lambda s: s.replace('"*.csv"', '"../x/*.csv"'),
     r"files = '../x/\*.csv' leaves the data folder"),
    (lambda s: s.replace('"*.csv"', '"/etc/*.csv"'),
     r"files = '/etc/\*.csv' is absolute; it must be relative"),
    (lambda s: s.replace('column = "activity"',
                         'file = "{stem.__class__.__mro__}.csv"'),
     r"unknown placeholder\(s\) \{stem.__class__.__mro__\}; only \{stem\}, "
     r"\{name\}"),
])
def test_spec_paths_stay_inside_the_data_folder(tmp_path, edit, message):
  _write(tmp_path, "P01_a.csv", _lines())
  with pytest.raises(rb.SpecError, match=message):
    _build(tmp_path, edit(SPEC))


def test_label_file_pattern_is_substituted_not_formatted(tmp_path):
  spec = rb.load_spec(_spec_file(tmp_path, NPZ_SPEC.replace(
      "{stem}.labels.csv", "labels/{name}-{stem}.csv")))
  path = paths.label_path(spec, tmp_path / "data" / "ann-1.npz")
  assert path == tmp_path / "data" / "labels" / "ann-1.npz-ann-1.csv"


def _spec_file(tmp_path, text):
  path = tmp_path / "data" / "imujax_spec.toml"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  return path


# 7. Every bad file of a build in one error --------------------------------

def test_all_bad_files_are_reported_at_once(tmp_path):
  _write(tmp_path, "P01_a.csv", _lines())
  bad_label = _lines()
  bad_label[10] = "90.0,1.0,0.5,jump"
  _write(tmp_path, "P02_a.csv", bad_label)
  short_row = _lines()
  short_row[20] = "190.0,1.0"
  _write(tmp_path, "P03_a.csv", short_row)
  with pytest.raises(rb.BuildError) as e:
    _build(tmp_path)
  text = str(e.value)
  assert "2 of 3 files in" in text
  assert "P02_a.csv:11: unknown label 'jump'" in text
  assert "P03_a.csv:21: 2 fields" in text
  assert len(e.value.errors) == 2


# 8. Errors that used to name nothing ------------------------------------------

def test_latin1_csv_names_the_file_line_and_encoding_key(tmp_path):
  lines = _lines()
  lines[5] = "40.0,1.0,0.5,walk"
  path = tmp_path / "data" / "P01_a.csv"
  path.parent.mkdir(parents=True)
  text = "\n".join(lines).replace("activity", "activité") + "\n"
  path.write_bytes(text.encode("latin-1"))
  with pytest.raises(ValueError, match=r"P01_a.csv:1: byte 0xe9 is not valid "
                     r"utf-8; re-save the file as UTF-8, or set csv.encoding"):
    _build(tmp_path, SPEC.replace('"activity"', '"activité"'))
  builder, examples = _build(
      tmp_path, SPEC.replace('"activity"', '"activité"') +
      '[csv]\nencoding = "latin-1"\n')
  assert len(examples) == 1


def test_utf16_csv_says_so_and_reads_with_the_key(tmp_path):
  path = tmp_path / "data" / "P01_a.csv"
  path.parent.mkdir(parents=True)
  path.write_bytes(("\n".join(_lines()) + "\n").encode("utf-16"))
  with pytest.raises(ValueError, match=r"P01_a.csv:1: .*looks like UTF-16: "
                     r"set csv.encoding = \"utf-16\""):
    _build(tmp_path)
  _, examples = _build(tmp_path, SPEC + '[csv]\nencoding = "utf-16"\n')
  assert len(examples) == 1


def _npz_bytes(tmp_path, **arrays):
  np.savez(tmp_path / "x.npz", **arrays)
  return (tmp_path / "x.npz").read_bytes()


def _zip_bytes(tmp_path, **members):
  with zipfile.ZipFile(tmp_path / "x.zip", "w") as z:
    for name, data in members.items():
      z.writestr(name, data)
  return (tmp_path / "x.zip").read_bytes()


@pytest.mark.parametrize("content, message", [
    (lambda p: b"", r"ann-1.npz: not an NPZ \(zip\) archive \(empty file\)"),
    (lambda p: b"hello", r"ann-1.npz: not an NPZ \(zip\) archive"),
    (lambda p: b"\x80\x04pickle", r"ann-1.npz: not an NPZ \(zip\) archive"),
    (lambda p: _npz_bytes(p, imu=np.zeros((300, 2)))[:200],
     r"ann-1.npz: damaged NPZ archive"),
    (lambda p: _npz_bytes(p, imu=np.array([[object()] * 2] * 3)),
     r"ann-1.npz: array 'imu' holds Python objects, which imujax never "
     "unpickles"),
    (lambda p: _npz_bytes(p, imu=np.array([["a", "b"]] * 300)),
     r"ann-1.npz: column 'imu:0' has dtype <U1 \(not numbers\)"),
    (lambda p: _npz_bytes(p, imu=np.zeros(300)),
     r"ann-1.npz: column 'imu:0': array 'imu' has shape \(300,\)"),
    (lambda p: _zip_bytes(p, imu=b"hello"),
     r"ann-1.npz: member 'imu' is not a numpy array"),
    (lambda p: _npz_bytes(p, other=np.zeros(3)),
     r"ann-1.npz: no array 'imu' \(has \['other'\]\)"),
])
def test_bad_npz_names_the_file(tmp_path, content, message):
  data = tmp_path / "data"
  data.mkdir()
  (data / "ann-1.npz").write_bytes(content(tmp_path))
  (data / "ann-1.labels.csv").write_text("start,end,label\n0,3,rest\n")
  with pytest.raises(ValueError, match=message):
    _build(tmp_path, NPZ_SPEC)


def test_npz_with_a_corrupted_member_names_the_file(tmp_path):
  raw = bytearray(_npz_bytes(tmp_path, imu=np.arange(600.0).reshape(300, 2)))
  with zipfile.ZipFile(tmp_path / "x.npz") as z:
    offset = z.getinfo("imu.npy").header_offset + 200
  raw[offset:offset + 50] = b"\xff" * 50
  path = tmp_path / "data" / "ann-1.npz"
  path.parent.mkdir()
  path.write_bytes(bytes(raw))
  spec = rb.load_spec(_spec_file(tmp_path, NPZ_SPEC))
  with pytest.raises(ValueError, match=r"ann-1.npz: array 'imu' is damaged"):
    readers.read_npz(path, spec)


def test_header_only_folder_names_the_folder(tmp_path):
  _write(tmp_path, "P01_a.csv", _lines(0))
  with pytest.raises(ValueError, match=r"data: none of the 1 file\(s\) "
                     r"matching files='\*.csv' has 2 or more samples"):
    _build(tmp_path)


def test_numbers_in_messages_are_plain(tmp_path):
  lines = _lines()
  lines[30] = "100.0,1.0,0.5,walk"  # Clock jumps back.
  _write(tmp_path, "P01_a.csv", lines)
  with pytest.raises(ValueError) as e:
    _build(tmp_path)
  assert "P01_a.csv:31: timestamp 0.1 s is earlier than the previous " \
      "sample's 0.28 s" in str(e.value)
  assert "np.float" not in str(e.value)


def test_parquet_text_column_and_damage_name_the_file(tmp_path):
  pa = pytest.importorskip("pyarrow")
  pq = pytest.importorskip("pyarrow.parquet")
  path = tmp_path / "data" / "P01_a.parquet"
  path.parent.mkdir(parents=True)
  pq.write_table(pa.table({"t": np.arange(100) * 10.0, "ax": ["1.0"] * 100,
                           "gx": np.zeros(100), "activity": ["walk"] * 100}),
                 str(path))
  spec = rb.load_spec(_spec_file(tmp_path, SPEC.replace("*.csv",
                                                        "*.parquet")))
  with pytest.raises(ValueError, match=r"P01_a.parquet: column 'ax' holds "
                     "text, not numbers"):
    readers.read_parquet(path, spec)
  path.write_bytes(path.read_bytes()[:100])
  with pytest.raises(ValueError, match=r"P01_a.parquet: not a readable "
                     "Parquet file"):
    readers.read_parquet(path, spec)
