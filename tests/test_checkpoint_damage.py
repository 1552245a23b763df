"""A damaged checkpoint is never restored: the run falls back and says so.

One flipped byte in a params file used to resume silently and rewrite
summary.json with other numbers. Each checkpoint's files now have checksums
(workdir/checksums.json); a damaged newest checkpoint is skipped for the one
before it, and the resumed run ends exactly where an undamaged one does.
"""

import json
import pathlib
import shutil
import sys

from absl import logging as absl_logging
import jax
import numpy as np
import pytest

from imujax.training import checkpoints
from imujax.training import loop
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py


def _config(tfds_dir):
  config = test_config.get_config(
      "mode=finetune,finetune.steps=10,checkpoint_every=5,eval_every=5,"
      "log_every=5")
  config.data.data_dir = tfds_dir
  return config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tfds_dir):
  workdir = tmp_path_factory.mktemp("run")
  loop.train_and_evaluate(_config(tfds_dir), str(workdir), "finetune")
  return workdir


def _largest(step_dir: pathlib.Path, part: str) -> pathlib.Path:
  files = [p for p in (step_dir / part).rglob("*") if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


def _flip_byte(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))


DAMAGE = {
    "flipped byte": lambda d: _flip_byte(_largest(d, "params")),
    "truncated": lambda d: _largest(d, "params").write_bytes(
        _largest(d, "params").read_bytes()[:7]),
    "zero length": lambda d: _largest(d, "opt_state").write_bytes(b""),
    "missing file": lambda d: _largest(d, "params").unlink(),
    "garbage metadata": lambda d: (d / "meta" / "metadata").write_text(
        "{not json"),
}


def _leaves(params):
  return [np.asarray(x) for x in jax.tree.leaves(params)]


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_newest_checkpoint_falls_back_and_resumes_exactly(
    finished_run, tfds_dir, tmp_path, kind, caplog):
  reference, _ = checkpoints.restore_params(finished_run)
  summary = json.loads((finished_run / "summary.json").read_text())
  workdir = tmp_path / "run"
  shutil.copytree(finished_run, workdir)
  DAMAGE[kind](workdir / "checkpoints" / "10")

  absl_logging.get_absl_handler().setLevel("WARNING")
  with caplog.at_level("WARNING"):
    params, step = checkpoints.restore_params(workdir)  # As init_from does.
  assert step == 5
  assert "step 10" in caplog.text and "damaged" in caplog.text

  (workdir / "summary.json").unlink()
  resumed = loop.train_and_evaluate(_config(tfds_dir), str(workdir),
                                    "finetune")
  after, step = checkpoints.restore_params(workdir)
  assert step == 10
  for a, b in zip(_leaves(after), _leaves(reference)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert resumed["test"]["macro_f1"] == pytest.approx(
      summary["test"]["macro_f1"], abs=1e-6)


def test_every_checkpoint_damaged_is_an_error_naming_the_workdir(
    finished_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished_run, workdir)
  for step in (5, 10):
    _flip_byte(_largest(workdir / "checkpoints" / str(step), "params"))
  with pytest.raises(checkpoints.DamagedCheckpointError, match=str(workdir)):
    checkpoints.restore_params(workdir)
