"""Pre-training on every subject (mode=pretrain, data.val_subjects =
data.test_subjects = 0): the one-person insole recording trains, resumes and
says it has no test; every other use of 0 held-out subjects, and too many
held-out subjects for the dataset, is a one-line config error; a fine-tune of
such an encoder on its own cohort is refused as a leak."""

import json
import subprocess
import sys

import numpy as np
import pytest

from imujax import configlib
from imujax.training import loop
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.test_insole import _cells
from tests.test_insole import gait
from tests.test_insole import write_data_mat

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py

EVERY = "mode=pretrain,data.val_subjects=0,data.test_subjects=0"


@pytest.fixture(name="insole_raw")
def _insole_raw(tmp_path):
  """A data.mat of the upstream layout: 30 s of walking at 100 Hz."""
  left, _ = gait(3000, 110, 70)
  right, _ = gait(3000, 110, 70, shift=55)
  write_data_mat(tmp_path / "raw", _cells(left, 0.005), _cells(right, 0.005))
  return tmp_path / "raw"


def _insole_config(tmp_path, raw, arg=EVERY):
  config = test_config.get_config(arg)
  config.data.name = "insole_pin2gpi/50hz"
  config.data.manual_dir = str(raw)
  config.data.data_dir = str(tmp_path / "tfds")
  config.pretrain.objective = "masked_reconstruction"
  return config


def test_pretraining_on_every_insole_subject_trains_and_resumes(
    tmp_path, insole_raw):
  config = _insole_config(tmp_path, insole_raw)
  configlib.check(config)
  workdir = tmp_path / "pre"
  summary = loop.train_and_evaluate(config, str(workdir), "pretrain")

  run = json.loads((workdir / "run.json").read_text())
  assert run["splits"] == {"test": [], "val": [], "train": ["s01"]}
  assert run["labeled_recordings"] == ["s01_free_living"]
  assert json.loads((workdir / "splits.json").read_text())["train"] == ["s01"]
  assert (workdir / "checkpoints" / "20").is_dir()
  # No held-out subject: no test scores, explicitly, and why.
  on_disk = json.loads((workdir / "summary.json").read_text())
  for s in (summary, on_disk):
    assert s["step"] == 20 and s["test"] is None
    assert "data.test_subjects = 0" in s["no_test"]
  records = [json.loads(line) for line in
             (workdir / "metrics.jsonl").read_text().splitlines()]
  assert {r["split"] for r in records} == {"train"}  # No val / test.
  assert [r["step"] for r in records] == [5, 10, 15, 20]
  assert all(np.isfinite(r["loss"]) for r in records)
  assert records[-1]["loss"] < records[0]["loss"]

  # Rerun: resumes at its last checkpoint, trains nothing, same summary.
  again = loop.train_and_evaluate(config, str(workdir), "pretrain")
  assert again["step"] == 20 and again["steps_this_session"] == 0
  assert again["test"] is None and again["no_test"] == summary["no_test"]
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("arg, key", [
    ("mode=finetune,data.test_subjects=0", "data.test_subjects=0"),
    ("mode=compare,data.test_subjects=0", "data.test_subjects=0"),
    ("mode=finetune,data.val_subjects=0,data.test_subjects=0",
     "data.test_subjects=0"),
    ("mode=compare,data.val_subjects=0", "data.val_subjects=0"),
    ("mode=pretrain,data.val_subjects=0", "data.val_subjects=0"),
    ("mode=pretrain,data.test_subjects=0", "data.test_subjects=0"),
    (EVERY + ",data.num_folds=3", "data.num_folds=3"),
    (EVERY + ",pretrain.corpus=seglearn_watch", "pretrain.corpus"),
])
def test_zero_held_out_subjects_elsewhere_is_an_error_naming_the_key(arg,
                                                                     key):
  with pytest.raises(ValueError, match=key.replace(".", r"\.")):
    configlib.check(test_config.get_config(arg))


def test_zero_held_out_subjects_pass_the_check_for_pretrain():
  configlib.check(test_config.get_config(EVERY))


def _main(tmp_path, raw, *args):
  return subprocess.run(
      [sys.executable, "-m", "imujax.main", "--config=configs/test.py",
       "--config.data.name=insole_pin2gpi/50hz",
       f"--config.data.manual_dir={raw}",
       f"--config.data.data_dir={tmp_path / 'tfds'}",
       f"--workdir={tmp_path / 'w'}", *args],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
      timeout=120, check=False)


def test_too_many_held_out_subjects_is_a_one_line_config_error(tmp_path,
                                                                insole_raw):
  done = _main(tmp_path, insole_raw, "--config.mode=pretrain")
  assert done.returncode == 2, done.stderr[-2000:]
  assert "Traceback" not in done.stderr
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("imujax: config error: The dataset has 1 subjects; "
                         "data.val_subjects=2 plus data.test_subjects=3")
  assert not (tmp_path / "w" / "checkpoints").exists()

  done = _main(tmp_path, insole_raw, "--config.mode=finetune",
               "--config.data.test_subjects=0")
  assert done.returncode == 2 and "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1].startswith(
      "imujax: config error: Config key data.test_subjects=0 with "
      "mode='finetune'")


def test_fine_tuning_an_every_subject_encoder_on_its_cohort_is_refused(
    tmp_path, tfds_dir, watch_data):
  del watch_data  # Prepared in tfds_dir.
  pre = test_config.get_config(EVERY + ",pretrain.steps=2,checkpoint_every=2")
  pre.data.data_dir = tfds_dir
  loop.train_and_evaluate(pre, str(tmp_path / "pre"), "pretrain")
  assert not json.loads((tmp_path / "pre" / "run.json").read_text())[
      "splits"]["test"]

  fine = test_config.get_config("mode=finetune,finetune.steps=2")
  fine.data.data_dir = tfds_dir
  fine.init_from = str(tmp_path / "pre")
  configlib.check(fine)
  with pytest.raises(ValueError, match=r"pre-trained on every subject.*"
                     r"data\.val_subjects=0, data\.test_subjects=0"):
    loop.train_and_evaluate(fine, str(tmp_path / "ft"), "finetune")
  assert not (tmp_path / "ft" / "checkpoints").exists()
