"""Released encoders (imujax/pretrained/): they load, match their record,
are refused when damaged, and fine-tune by name (`init_from=pretrained:`)."""

import json
import shutil

import jax
import numpy as np
import pytest

from imujax import configlib
from imujax import models
from imujax.training import checkpoints
from imujax.training import loop
from imujax.training import pretrained
from imujax.training import run_record

RELEASED = pretrained.names()


def test_an_unknown_release_is_refused_naming_the_released_ones():
  with pytest.raises(ValueError, match="no released encoder 'nope'") as e:
    pretrained.resolve("pretrained:nope")
  for name in RELEASED:
    assert name in str(e.value)
  assert pretrained.resolve("/some/workdir") == "/some/workdir"


def test_at_least_one_encoder_is_released():
  assert RELEASED, f"{pretrained.RELEASES} holds no release"


@pytest.mark.parametrize("name", RELEASED)
def test_release_loads_and_matches_its_recorded_model(name):
  path = pretrained.resolve(f"{pretrained.PREFIX}{name}")
  record = run_record.read(path)
  assert record.phase == "pretrain" and record.corpus, "a corpus pre-training"
  params, step = checkpoints.restore_params(path)
  assert step == json.loads(
      (pretrained.RELEASES / name / "summary.json").read_text())["step"]
  cfg = record.model
  expected = models.init(jax.random.key(0), cfg)
  got_shapes = jax.tree.map(np.shape, params["encoder"])
  assert got_shapes == jax.tree.map(np.shape, expected["encoder"])
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  readme = (pretrained.RELEASES / name / "README.md").read_text()
  assert f"init_from=pretrained:{name}" in readme


@pytest.mark.parametrize("name", RELEASED)
def test_a_damaged_release_is_refused(name, tmp_path):
  copy = tmp_path / name
  shutil.copytree(pretrained.RELEASES / name, copy)
  victim = max((p for p in (copy / "checkpoints").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
  data = bytearray(victim.read_bytes())
  data[len(data) // 2] ^= 0xFF
  victim.write_bytes(bytes(data))
  with pytest.raises(checkpoints.DamagedCheckpointError):
    checkpoints.restore_params(copy)


@pytest.mark.parametrize("name", RELEASED)
def test_release_of_a_release_is_identical(name, tmp_path):
  out = pretrained.release(str(pretrained.RELEASES / name), name, tmp_path)
  for f in ("run.json", "summary.json", "checksums.json"):
    assert (out / f).read_bytes() == (pretrained.RELEASES / name / f
                                      ).read_bytes()
  assert not list(out.rglob("opt_state"))


@pytest.mark.parametrize("name", RELEASED)
def test_released_encoder_fine_tunes_on_seglearn(name, watch_data, tfds_dir,
                                                  tmp_path):
  del watch_data  # Prepared in tfds_dir.
  config = configlib.backbone(configlib.base())
  config.mode = "finetune"
  config.data.name = "seglearn_watch"
  config.data.data_dir = tfds_dir
  config.data.val_subjects, config.data.test_subjects = 2, 3
  config.init_from = f"{pretrained.PREFIX}{name}"
  config.finetune.steps = 4
  config.finetune.batch_size = 4
  config.finetune.warmup_steps = 1
  config.eval_every = config.checkpoint_every = 4
  summary = loop.train_and_evaluate(config, str(tmp_path / "ft"), "finetune")
  assert summary["step"] == 4 and np.isfinite(summary["test"]["macro_f1"])
  source = run_record.read(tmp_path / "ft").source
  assert source["init_from"] == str(pretrained.RELEASES / name)
  assert source["step"] == checkpoints.restore_params(
      pretrained.RELEASES / name)[1]


@pytest.mark.parametrize("name", RELEASED)
def test_a_relative_workdir_restores_too(name, monkeypatch):
  # Orbax wants absolute paths; a user's init_from=runs/pre is relative.
  monkeypatch.chdir(pretrained.RELEASES)
  _, step = checkpoints.restore_params(name)
  assert step == checkpoints.restore_params(pretrained.RELEASES / name)[1]
