"""Bad configs and damaged or contested workdirs: a clear error, never a
silent run, never a hang (issue 14, the training side)."""

import json
import os
import subprocess
import sys

import pytest

from imujax import configlib
from imujax.training import loop
from imujax.training import run_record
from tests.conftest import REPO
from tests.conftest import subprocess_env

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py


def _config(tfds_dir, arg="mode=finetune,finetune.steps=4,eval_every=2,"
            "checkpoint_every=2,log_every=2"):
  config = test_config.get_config(arg)
  config.data.data_dir = tfds_dir
  return config


@pytest.mark.parametrize("arg, key", [
    ("finetune.steps=-5", "finetune.steps=-5"),
    ("pretrain.steps=0", "pretrain.steps=0"),
    ("data.window=0", "data.window=0"),
    ("model.hidden=-4", "model.hidden=-4"),
    ("model.layers=0", "model.layers=0"),
    ("model.dropout=1.0", "model.dropout=1.0"),
    ("finetune.learning_rate=-0.1", "finetune.learning_rate=-0.1"),
    ("checkpoint_every=0", "checkpoint_every=0"),
    ("data.test_subjects=0", "data.test_subjects=0"),
])
def test_out_of_range_values_name_the_key(arg, key):
  with pytest.raises(ValueError, match=key.replace(".", r"\.")):
    configlib.check(test_config.get_config(arg))


def test_resuming_with_a_changed_learning_rate_is_refused_then_recorded(
    tmp_path, tfds_dir):
  config = _config(tfds_dir)
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  before = (tmp_path / "run.json").read_text()
  changed = _config(tfds_dir)
  changed.finetune.learning_rate = 0.1
  with pytest.raises(run_record.IncompatibleRunError,
                     match="finetune.learning_rate.*resume_changes"):
    loop.train_and_evaluate(changed, str(tmp_path), "finetune")
  assert (tmp_path / "run.json").read_text() == before  # Untouched.

  # Logging, evaluation and checkpoint intervals may change freely.
  freer = _config(tfds_dir)
  freer.log_every = 1
  loop.train_and_evaluate(freer, str(tmp_path), "finetune")

  changed.resume_changes = "finetune.learning_rate"
  loop.train_and_evaluate(changed, str(tmp_path), "finetune")
  record = run_record.read(tmp_path)
  assert record.history == [{"step": 4, "changes": {
      "finetune.learning_rate": [0.002, 0.1]}}]


def test_a_second_process_on_one_workdir_is_refused_at_once(tmp_path,
                                                            tfds_dir):
  (tmp_path / "w").mkdir()
  with run_record.WorkdirLock(tmp_path / "w"):
    with pytest.raises(run_record.IncompatibleRunError,
                       match=f"pid {os.getpid()}"):
      loop.train_and_evaluate(_config(tfds_dir), str(tmp_path / "w"),
                              "finetune")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only dirs")
def test_read_only_checkpoints_are_an_error_before_training(tmp_path,
                                                            tfds_dir):
  (tmp_path / "checkpoints").mkdir()
  os.chmod(tmp_path / "checkpoints", 0o500)
  try:
    with pytest.raises(PermissionError, match="not a writable directory"):
      loop.train_and_evaluate(_config(tfds_dir), str(tmp_path), "finetune")
  finally:
    os.chmod(tmp_path / "checkpoints", 0o700)


def test_checkpoints_path_taken_by_a_file_is_an_error_before_training(
    tmp_path, tfds_dir):
  (tmp_path / "checkpoints").write_text("not a directory")
  with pytest.raises(PermissionError, match="not a writable directory"):
    loop.train_and_evaluate(_config(tfds_dir), str(tmp_path), "finetune")


def test_a_cut_off_last_metrics_line_resumes(tmp_path, tfds_dir):
  config = _config(tfds_dir)
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  (tmp_path / "summary.json").unlink()
  (tmp_path / "metrics.jsonl").write_text(
      "\n".join(lines[:-1]) + "\n" + lines[-1][:20])
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  records = [json.loads(l) for l in
             (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["split"] for r in records] == ["val", "val", "test"]


def test_a_kill_after_the_test_record_leaves_one_test_record(tmp_path,
                                                              tfds_dir):
  # Killed between the test evaluation and summary.json: the rerun
  # evaluates the test again and keeps that one record, same scores.
  config = _config(tfds_dir)
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  before = (tmp_path / "metrics.jsonl").read_text().splitlines()
  (tmp_path / "summary.json").unlink()
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  after = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert [json.loads(l)["split"] for l in after] == ["val", "val", "test"]
  assert json.loads(after[-1]) == json.loads(before[-1])


def test_main_with_a_bad_value_exits_with_the_key(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "imujax.main", "--config=configs/test.py",
       f"--workdir={tmp_path}", "--config.model.layers=0"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
      timeout=120)
  assert result.returncode != 0
  assert "model.layers=0" in result.stderr


def test_a_config_key_added_since_the_run_started_is_not_a_change(
    tmp_path, tfds_dir):
  """A workdir written before a key existed resumes when the key is at its
  default (it changes nothing the run did); a non-default value is refused."""
  config = _config(tfds_dir)
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  stored = json.loads((tmp_path / "run.json").read_text())
  del stored["config"]["finetune"]["augment"]  # As an older imujax wrote it.
  (tmp_path / "run.json").write_text(json.dumps(stored))
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  changed = _config(tfds_dir)
  changed.finetune.augment = "simclr"
  with pytest.raises(run_record.IncompatibleRunError,
                     match="finetune.augment"):
    loop.train_and_evaluate(changed, str(tmp_path), "finetune")


def test_an_archived_pretraining_rerun_and_killed_is_not_finished(
    tmp_path, tfds_dir, monkeypatch):
  # A sweep dir kept in git holds a pre-training's summary.json but not its
  # checkpoints; it is rerun for a fine-tune. Killed before it finishes
  # again, it must not pass as finished with a partial checkpoint (it did,
  # 2026-12-01: two fine-tunes started from step 800 of 1500).
  from imujax.training import setup  # pylint: disable=g-import-not-at-top
  pre = tmp_path / "pre"
  pre_config = _config(tfds_dir, "mode=pretrain,pretrain.steps=4,"
                       "eval_every=2,checkpoint_every=2,log_every=2")
  loop.train_and_evaluate(pre_config, str(pre), "pretrain")
  assert json.loads((pre / "summary.json").read_text())["step"] == 4
  finetune = _config(tfds_dir)
  finetune.init_from = str(pre)

  # (1) A workdir from before the loop removed stale summaries: summary.json
  # of a finish at step 4, newest checkpoint step 2. Refused by name...
  keep = (pre / "checkpoints" / "4").rename(tmp_path / "ckpt4")
  with pytest.raises(ValueError, match="latest checkpoint is step 2 but its "
                     "summary.json reports a finish at step 4"):
    setup.prepare(finetune, "finetune")
  finetune.init_from_unfinished = True  # ...unless asked for.
  assert setup.prepare(finetune, "finetune").record.source["step"] == 2
  finetune.init_from_unfinished = False
  keep.rename(pre / "checkpoints" / "4")

  # (2) The rerun itself: the archive (no checkpoints), then a kill just
  # before its new summary.json. The old summary is gone: the workdir is
  # "started" (it resumes), and a fine-tune refuses it as unfinished.
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(pre / "checkpoints")
  real_write = run_record.write_text_atomic

  def killed_at_summary(path, text):
    if str(path).endswith("summary.json"):
      raise KeyboardInterrupt("killed")
    return real_write(path, text)

  monkeypatch.setattr(run_record, "write_text_atomic", killed_at_summary)
  with pytest.raises(KeyboardInterrupt):
    loop.train_and_evaluate(pre_config, str(pre), "pretrain")
  monkeypatch.setattr(run_record, "write_text_atomic", real_write)
  assert not (pre / "summary.json").exists()
  with pytest.raises(ValueError, match="has not finished"):
    setup.prepare(finetune, "finetune")
  loop.train_and_evaluate(pre_config, str(pre), "pretrain")  # Resumes.
  assert setup.prepare(finetune, "finetune").record.source["step"] == 4
