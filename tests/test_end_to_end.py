"""End to end on the real watch data: main, resume after SIGKILL, bad input."""

import json
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from imujax import configlib
from imujax.experiments import compare
from imujax.data import input_pipeline
from imujax.training import loop
from imujax.training import setup
from imujax.training import run_record
from tests.conftest import REPO, subprocess_env

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py


def _config(tfds_dir, arg=None):
  config = test_config.get_config(arg)
  config.data.data_dir = tfds_dir
  return config


def _main(workdir, tfds_dir, *extra, **popen):
  cmd = [sys.executable, "-m", "imujax.main", "--config=configs/test.py",
         f"--workdir={workdir}", f"--config.data.data_dir={tfds_dir}", *extra]
  return subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **popen)


def _restore_params(workdir):
  mngr = ocp.CheckpointManager(pathlib.Path(workdir) / "checkpoints")
  step = mngr.latest_step()
  restored = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore()))
  return restored["params"]


@pytest.mark.slow
def test_main_runs_the_comparison_and_writes_its_outputs(tmp_path, tfds_dir):
  proc = _main(tmp_path, tfds_dir)
  out, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, out[-4000:]
  assert "| scratch |" in out
  table = (tmp_path / "results.md").read_text()
  assert "| scratch |" in table and "| masked_reconstruction |" in table
  assert (tmp_path / "report" / "report.md").exists()
  runs = {}
  for arm in ("masked_reconstruction", "scratch"):
    workdir = tmp_path / "finetune" / f"{arm}-s0"
    summary = json.loads((workdir / "summary.json").read_text())
    # The printed table is the summaries' numbers.
    assert f"{summary['test']['macro_f1']:.3f}" in table.split(f"| {arm} |")[1]
    assert 0 <= summary["test"]["macro_f1"] <= 1
    cm = np.array(summary["test"]["confusion"])
    assert cm.sum() == summary["test"]["frames"]
    assert np.trace(cm) / cm.sum() == pytest.approx(summary["test"]["accuracy"])
    records = [json.loads(l) for l in
               (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "val"] == [10, 20]
    assert records[-1]["split"] == "test"
    splits = json.loads((workdir / "splits.json").read_text())
    assert not set(splits["train"]) & set(splits["test"])
    runs[arm] = json.loads((workdir / "run.json").read_text())
  # Both arms saw the same labelled recordings.
  assert (runs["masked_reconstruction"]["labeled_recordings"]
          == runs["scratch"]["labeled_recordings"])
  assert runs["masked_reconstruction"]["normalizer"] == runs["scratch"][
      "normalizer"]
  assert runs["masked_reconstruction"]["source"]["init_from"].endswith(
      "pretrain/masked_reconstruction-s0")
  assert "step 20/20" in out and "steps/s" in out and "ETA" in out
  # The scratch arm did not start from the pre-trained encoder.
  pre = _restore_params(tmp_path / "pretrain" / "masked_reconstruction-s0")[
      "encoder"]
  scratch = _restore_params(tmp_path / "finetune" / "scratch-s0")["encoder"]
  assert not np.allclose(pre["layer_0"]["cell"]["w_hh"],
                         scratch["layer_0"]["cell"]["w_hh"])


@pytest.mark.slow
def test_init_from_loads_the_pretrained_encoder(tmp_path, tfds_dir):
  pre_dir, probe_dir = tmp_path / "pre", tmp_path / "probe"
  loop.train_and_evaluate(_config(tfds_dir, "mode=pretrain"), str(pre_dir),
                           "pretrain")
  probe = _config(tfds_dir, "mode=finetune,finetune.protocol=linear_probe")
  probe.init_from = str(pre_dir)
  pre = _restore_params(pre_dir)
  # At step 0 of fine-tuning the encoder is the checkpoint's, exactly.
  start = setup.prepare(probe, "finetune").params
  for a, b in zip(jax.tree.leaves(pre["encoder"]),
                  jax.tree.leaves(start["encoder"])):
    np.testing.assert_array_equal(a, b)
  loop.train_and_evaluate(probe, str(probe_dir), "finetune")
  tuned = _restore_params(probe_dir)
  # Frozen under a linear probe, so equal to the checkpoint only if loaded.
  for a, b in zip(jax.tree.leaves(pre["encoder"]),
                  jax.tree.leaves(tuned["encoder"])):
    np.testing.assert_array_equal(a, b)
  assert "reconstructor" not in tuned and "classifier" in tuned
  # A model of another shape is refused with the key to change.
  wrong = _config(tfds_dir, "mode=finetune,model.hidden=24")
  wrong.init_from = str(pre_dir)
  with pytest.raises(run_record.IncompatibleRunError, match="model.hidden"):
    loop.train_and_evaluate(wrong, str(tmp_path / "wrong"), "finetune")


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_metrics(tmp_path, tfds_dir):
  args = ("--config.mode=finetune", "--config.finetune.steps=400",
          "--config.checkpoint_every=50", "--config.eval_every=50",
          "--config.log_every=50")
  killed = tmp_path / "killed"
  proc = _main(killed, tfds_dir, *args)
  deadline = time.time() + 300
  first_ckpt = killed / "checkpoints" / "50"
  while not first_ckpt.exists() and time.time() < deadline:
    if proc.poll() is not None:
      pytest.fail("run ended before its first checkpoint:\n"
                  + proc.stdout.read()[-3000:])
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / "summary.json").exists(), "killed too late to test"
  resumed = _main(killed, tfds_dir, *args)
  out, _ = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, out[-3000:]
  assert "Resumed from" in out
  straight = _main(tmp_path / "straight", tfds_dir, *args)
  out2, _ = straight.communicate(timeout=600)
  assert straight.returncode == 0, out2[-3000:]
  a = json.loads((killed / "summary.json").read_text())["test"]
  b = json.loads((tmp_path / "straight" / "summary.json").read_text())["test"]
  assert a == b
  lines = lambda d: [json.loads(l) for l in
                     (d / "metrics.jsonl").read_text().splitlines()]
  assert lines(killed) == lines(tmp_path / "straight")


@pytest.mark.slow
def test_incompatible_workdir_is_refused_by_name(tmp_path, tfds_dir):
  config = _config(tfds_dir, "mode=finetune,finetune.steps=10")
  loop.train_and_evaluate(config, str(tmp_path), "finetune")
  other = _config(tfds_dir, "mode=finetune,finetune.steps=10,model.hidden=32")
  with pytest.raises(run_record.IncompatibleRunError,
                     match=r"model_config.hidden.*another --workdir"):
    loop.train_and_evaluate(other, str(tmp_path), "finetune")


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, tfds_dir, monkeypatch):
  real_sample = input_pipeline.sample_windows

  def poisoned_from_step_15(*args, **kwargs):
    batch = real_sample(*args, **kwargs)
    if args[5] >= 15:  # The step argument.
      batch["signals"][0, 3, 0] = np.nan
    return batch

  monkeypatch.setattr(input_pipeline, "sample_windows", poisoned_from_step_15)
  config = _config(tfds_dir, "mode=finetune,finetune.steps=40")
  with pytest.raises(FloatingPointError,
                     match="step 16 .*last good checkpoint is step 10"):
    loop.train_and_evaluate(config, str(tmp_path), "finetune")
  assert ocp.CheckpointManager(tmp_path / "checkpoints").all_steps() == [10]
  params = _restore_params(tmp_path)
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_unknown_config_keys_are_named(tmp_path):
  with pytest.raises(KeyError, match="model.hiden"):
    test_config.get_config("model.hiden=3")
  config = configlib.base()
  with pytest.raises(AttributeError, match="hiden"):
    config.model.hiden = 3
  with pytest.raises(ValueError, match="model.cell"):
    configlib.check(test_config.get_config("model.cell=tcn"))
  proc = _main(tmp_path, str(tmp_path), "--config.model.hiden=3")
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode != 0 and "hiden" in out


def test_comparison_points_are_each_seed_pretrained_and_scratch():
  config = test_config.get_config("num_seeds=3,seed=4")
  assert compare.points(config) == [
      {"objective": arm, "seed": s} for s in (4, 5, 6)
      for arm in ("masked_reconstruction", "scratch")]
  assert compare.given_encoder_jobs(config) == []


def test_a_comparison_from_a_given_encoder_pretrains_nothing():
  config = test_config.get_config("num_seeds=2,seed=4")
  config.init_from = "pretrained:some_release"
  assert compare.points(config) == [{"objective": "scratch", "seed": s}
                                    for s in (4, 5)]
  jobs = compare.given_encoder_jobs(config)
  assert [j.name for j in jobs] == ["finetune/pretrained-some_release-s4",
                                    "finetune/pretrained-some_release-s5"]
  assert all(dict(j.overrides)["init_from"] == config.init_from and
             j.mode == "finetune" for j in jobs)
