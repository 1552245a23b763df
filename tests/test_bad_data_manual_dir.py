"""A named manual_dir that is missing or lacks the files: an immediate error
naming it, for every builder that reads manual files; never a download."""

import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from imujax.data import info
from imujax.data import input_pipeline
from tests.conftest import subprocess_env

MANUAL_BUILDERS = ["sp_sw_har/watch_50hz", "ipol_gait/50hz",
                   "andy/sensors_50hz"]


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
  """Any download attempt fails the test at once (it used to retry ~3 min)."""
  def refuse(*args, **kwargs):
    raise AssertionError("a download was attempted")
  for name in ("download", "download_and_extract", "extract"):
    monkeypatch.setattr(tfds.download.DownloadManager, name, refuse)


@pytest.mark.parametrize("name", MANUAL_BUILDERS)
@pytest.mark.parametrize("kind", ["missing", "empty", "wrong files"])
def test_bad_manual_dir_is_an_error_naming_it(tmp_path, name, kind):
  folder = tmp_path / "raw"
  if kind != "missing":
    folder.mkdir()
  if kind == "wrong files":
    (folder / "notes.txt").write_text("not the dataset")
  message = {"missing": "does not exist", "empty": "is empty",
             "wrong files": "in it or below it"}[kind]
  with pytest.raises(FileNotFoundError, match=rf"raw: .*{message}"):
    input_pipeline.load(name, str(tmp_path / "tfds"), str(folder))
  assert not (tmp_path / "tfds").exists() or not any(
      (tmp_path / "tfds").rglob("*.array_record*"))


@pytest.mark.parametrize("name", MANUAL_BUILDERS)
def test_builder_itself_refuses_a_missing_manual_dir(tmp_path, name):
  # Straight through TFDS, without imujax's up-front check.
  builder = tfds.builder(name, data_dir=str(tmp_path / "tfds"),
                         file_format="array_record")
  config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match=r"nowhere: manual_dir does not "
                     "exist"):
    builder.download_and_prepare(download_config=config)


def test_recordings_missing_folder_is_an_error_naming_it(tmp_path):
  spec = tmp_path / "spec.toml"
  spec.write_text('files = "*.csv"\nchannels = [{column = "a", name = '
                  '"wrist_acc_x"}]\n[time]\nrate_hz = 50.0\n')
  with pytest.raises(FileNotFoundError, match=r"nowhere: the data folder "
                     "does not exist"):
    input_pipeline.load("recordings/50hz", str(tmp_path / "tfds"),
                        str(tmp_path / "nowhere"), spec=str(spec))


def test_command_line_missing_manual_dir_and_spec_flag(tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "imujax.data", "--dataset=sp_sw_har/phone_50hz",
       f"--manual_dir={tmp_path / 'nowhere'}",
       f"--data_dir={tmp_path / 'tfds'}"],
      capture_output=True, text=True, env=subprocess_env(), timeout=120)
  assert out.returncode == 2
  assert f"error: {tmp_path / 'nowhere'}: manual_dir does not exist" in \
      out.stderr
  assert "Traceback" not in out.stderr
  # --spec builds a lab's own files.
  data = tmp_path / "lab"
  data.mkdir()
  for subject in ("P01", "P02"):
    (data / f"{subject}_a.csv").write_text(
        "t,ax\n" + "".join(f"{i * 0.02:.2f},1.0\n" for i in range(100)))
  spec = data / "imujax_spec.toml"
  spec.write_text('files = "*.csv"\nsubject_regex = "(P\\\\d+)"\n'
                  'channels = [{column = "ax", name = "wrist_acc_x"}]\n'
                  '[time]\ncolumn = "t"\n')
  out = subprocess.run(
      [sys.executable, "-m", "imujax.data", "--dataset=recordings/50hz",
       f"--spec={spec}", f"--data_dir={tmp_path / 'tfds'}"],
      capture_output=True, text=True, env=subprocess_env(), timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "2 recordings, 2 subjects" in out.stdout
  assert "fingerprint: " in out.stdout


def test_info_prepare_takes_the_spec(tmp_path):
  data = tmp_path / "lab"
  data.mkdir()
  (data / "P01_a.csv").write_text(
      "t,ax\n" + "".join(f"{i * 0.02:.2f},1.0\n" for i in range(100)))
  spec = data / "imujax_spec.toml"
  spec.write_text('files = "*.csv"\nchannels = [{column = "ax", name = '
                  '"wrist_acc_x"}]\n[time]\ncolumn = "t"\n')
  builder = info.prepare("recordings/50hz", str(tmp_path / "tfds"),
                         spec=str(spec))
  summary = info.summarize(builder)
  assert summary["fingerprint"] == builder.info.metadata["fingerprint"]


def test_no_manual_dir_means_download_not_tfds_default_folder(tmp_path,
                                                              monkeypatch):
  """TFDS substitutes <data_dir>/downloads/manual for a missing manual_dir;
  a builder that can download must download then, not refuse that folder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from imujax.datasets import common  # pylint: disable=g-import-not-at-top
  import imujax.datasets  # noqa: F401  pylint: disable=g-import-not-at-top
  monkeypatch.setattr(tfds.core.GeneratorBasedBuilder, "download_and_prepare",
                      lambda self, **kwargs: None)
  builder = tfds.builder("ipol_gait/50hz", data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig())
  assert builder.given_manual_dir is None
  assert common.manual_data_dir(builder, lambda d: d, "x") is None
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(tmp_path / "nowhere")))
  with pytest.raises(FileNotFoundError, match="nowhere"):
    common.manual_data_dir(builder, lambda d: None, "GaitData/")
