"""Vmapped seeds: member k equals the single run of seed k, and resumes."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from imujax.training import checkpoints
from imujax.training import multiseed
from imujax.training import loop
from imujax.training import program
from tests.conftest import REPO
from tests.conftest import subprocess_env

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py


def _configs(tfds_dir, seeds):
  config = test_config.get_config(
      "finetune.steps=4,finetune.batch_size=4,data.window=16,model.hidden=8,"
      "eval_every=2,checkpoint_every=2,log_every=2")
  config.data.data_dir = tfds_dir
  return multiseed.member_configs(config, [{"seed": s} for s in seeds])


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _val_f1(workdir):
  return [r["macro_f1"] for r in map(json.loads, (
      workdir / "metrics.jsonl").read_text().splitlines())]


def test_members_equal_single_runs_and_resume(tmp_path, tfds_dir):
  configs = _configs(tfds_dir, (0, 1))
  members = [tmp_path / f"m{k}" for k in range(2)]
  summaries = loop.train_members(configs, members, "finetune")
  single = tmp_path / "single1"
  loop.train_and_evaluate(configs[1], str(single), "finetune")

  params, step = checkpoints.restore_params(members[1])
  reference, _ = checkpoints.restore_params(single)
  assert step == 4
  assert _max_diff(params, reference) < 1e-5
  np.testing.assert_allclose(_val_f1(members[1]), _val_f1(single), atol=1e-5)
  assert summaries[1]["test"]["macro_f1"] == json.loads(
      (single / "summary.json").read_text())["test"]["macro_f1"]
  # Different seeds: different splits and params.
  assert summaries[0]["splits"] != summaries[1]["splits"]
  assert _max_diff(checkpoints.restore_params(members[0])[0], params) > 1e-3

  # Interrupted after step 2: the members resume there and end the same.
  for m in members:
    (m / "summary.json").unlink()
    mngr = checkpoints.manager(m)
    mngr.delete(4)
    mngr.close()
  loop.train_members(configs, members, "finetune")
  assert _max_diff(checkpoints.restore_params(members[1])[0], params) < 1e-6
  assert len(_val_f1(members[1])) == 3  # val@2, val@4, test; none doubled.


@pytest.mark.parametrize("objective", [
    "classification", "masked_reconstruction", "forecast", "autoencoder",
    "cpc", "simclr", "transform_prediction"])
def test_member_equals_its_single_run_for_every_objective(tmp_path, tfds_dir,
                                                          objective):
  """The acceptance test of the one loop: no objective falls back to runs
  one after another, and member k computes what its own run computes, even
  where the loss uses the member's own normaliser (simclr, transforms)."""
  # Classification is what fine-tuning trains (supervised pre-training runs
  # the same objective on another dataset's labels).
  phase = "finetune" if objective == "classification" else "pretrain"
  config = test_config.get_config(
      f"{phase}.steps=2,{phase}.batch_size=4,data.window=16,model.hidden=8,"
      "eval_every=2,checkpoint_every=2,log_every=2")
  config.data.data_dir = tfds_dir
  config.pretrain.objective = objective
  # Fewer augmentations and horizons than the defaults: compile time is what
  # these cases cost, and the normaliser still reaches the loss as data
  # through rotation and scaling.
  config.pretrain.transform_prediction.transforms = "rotation,negation"
  config.pretrain.simclr.time_warp_std = 0.
  config.pretrain.simclr.channel_dropout = 0.
  config.pretrain.cpc.horizon = 2
  config.pretrain.cpc.anchors = 4
  configs = multiseed.member_configs(config, [{"seed": 0}, {"seed": 1}])
  members = [tmp_path / f"m{k}" for k in range(2)]
  summaries = loop.train_members(configs, members, phase)
  assert all(s["multiseed_members"] == 2 for s in summaries)
  single = tmp_path / "single1"
  loop.train_and_evaluate(configs[1], str(single), phase)
  params, step = checkpoints.restore_params(members[1])
  reference, _ = checkpoints.restore_params(single)
  assert step == 2
  assert _max_diff(params, reference) < 1e-5
  scalars = lambda test: {k: v for k, v in test.items()  # noqa: E731
                          if isinstance(v, float)}
  assert scalars(summaries[1]["test"]) == pytest.approx(scalars(json.loads(
      (single / "summary.json").read_text())["test"]), abs=1e-5)


def test_loop_impl_matches_vmap():
  def loss(params, batch, rng, stats):
    del rng
    return ((batch @ params["w"] * stats) ** 2).mean(), {}
  import optax  # pylint: disable=g-import-not-at-top
  opt = optax.adam(1e-2)
  keys = jax.random.split(jax.random.key(0), 3)
  params = [{"w": jax.random.normal(k, (4, 2))} for k in keys]
  def fresh():
    return program.stack([{"step": np.int32(0), "params": p,
                             "opt_state": opt.init(p)} for p in params])
  batch = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
  stats = np.arange(1., 4.)[:, None].astype(np.float32)  # Per member.
  a, _ = program.make_members_step(loss, opt, "vmap")(fresh(), batch, keys,
                                                      stats)
  b, _ = program.make_members_step(loss, opt, "loop")(fresh(), batch, keys,
                                                      stats)
  assert _max_diff(a["params"], b["params"]) < 1e-6


def test_members_split_over_two_cpu_devices_equal_single_run(tmp_path,
                                                             tfds_dir):
  """`--cpu_devices=2`: one member per device, same numbers as one run."""
  members = [{"seed": s, "workdir": str(tmp_path / f"m{s}")} for s in (0, 1)]
  result = subprocess.run(
      [sys.executable, "-m", "imujax.training.multiseed",
       "--config=configs/test.py:finetune.steps=4,finetune.batch_size=4,"
       "data.window=16,model.hidden=8,eval_every=2,checkpoint_every=2,"
       "log_every=2",
       f"--config.data.data_dir={tfds_dir}", "--phase=finetune",
       f"--members={json.dumps(members)}", "--cpu_devices=2"],
      cwd=REPO, capture_output=True, text=True,
      env=subprocess_env(JAX_PLATFORMS="cpu"), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Members split over 2 devices (1 each)" in result.stderr
  single = tmp_path / "single1"
  loop.train_and_evaluate(_configs(tfds_dir, (1,))[0], str(single),
                           "finetune")
  params, step = checkpoints.restore_params(tmp_path / "m1")
  reference, _ = checkpoints.restore_params(single)
  assert step == 4
  assert _max_diff(params, reference) < 1e-5
  np.testing.assert_allclose(_val_f1(tmp_path / "m1"), _val_f1(single),
                             atol=1e-5)


def test_members_with_their_own_learning_rate_and_weight_decay(tmp_path,
                                                               tfds_dir):
  """One program, two learning rates: each member equals its single run."""
  config = _configs(tfds_dir, (0,))[0]
  configs = multiseed.member_configs(config, [
      {"seed": 0},
      {"seed": 0, "set": {"finetune.learning_rate": 3e-2,
                          "finetune.weight_decay": 0.5}}])
  assert configs[1].finetune.learning_rate == 3e-2
  assert configs[0].finetune.learning_rate != 3e-2
  members = [tmp_path / f"m{k}" for k in range(2)]
  loop.train_members(configs, members, "finetune")
  single = tmp_path / "single"
  loop.train_and_evaluate(configs[1], str(single), "finetune")
  params, _ = checkpoints.restore_params(members[1])
  reference, _ = checkpoints.restore_params(single)
  assert _max_diff(params, reference) < 1e-5
  # Same seed, same data: only the hyper-parameters set them apart.
  assert _max_diff(checkpoints.restore_params(members[0])[0], params) > 1e-3


def test_member_keys_other_than_learning_rate_and_weight_decay_refused():
  config = test_config.get_config()
  with pytest.raises(ValueError, match="finetune.steps"):
    multiseed.member_configs(config, [{"seed": 0, "set": {"finetune.steps": 9}}])
  with pytest.raises(ValueError, match="finetune.learning_rate='fast'"):
    multiseed.member_configs(
        config, [{"seed": 0, "set": {"finetune.learning_rate": "fast"}}])


_SPLIT_STEP_HAS_NO_COLLECTIVES = """
import jax, numpy as np, optax

from imujax.training import program

def loss(params, batch, rng, stats):
  del rng
  return ((batch @ params["w"] * stats) ** 2).mean(), {}

opt = optax.adam(1e-2)
mesh = program.member_mesh(4)
assert mesh.size == 2, mesh
keys = jax.random.split(jax.random.key(0), 4)
params = [{"w": jax.random.normal(k, (3, 2))} for k in keys]
state = program.stack([{"step": np.int32(0), "params": p,
                          "opt_state": opt.init(p)} for p in params])
sharding = program.member_sharding(mesh)
state = jax.device_put(state, sharding)
batch = jax.device_put(np.ones((4, 5, 3), np.float32), sharding)
step = program.make_members_step(loss, opt, "vmap", mesh)
stats = jax.device_put(np.ones((4, 1), np.float32), sharding)
hlo = step.lower(state, batch, jax.device_put(keys, sharding),
                 stats).compile().as_text()
assert not any(op in hlo for op in ("all-reduce", "all-gather",
                                    "collective-permute", "all-to-all")), hlo
for k in range(4):
  w = program.local_member(state["params"], k)["w"]
  assert w.devices() == {jax.devices()[k // 2]}, (k, w.devices())
  np.testing.assert_array_equal(w, params[k]["w"])
print("OK")
"""


def test_split_members_need_no_collectives():
  """Split members share nothing: no collective in the step, none to read one."""
  result = subprocess.run(
      [sys.executable, "-c", _SPLIT_STEP_HAS_NO_COLLECTIVES], cwd=REPO,
      capture_output=True, text=True, timeout=300,
      env=subprocess_env(JAX_PLATFORMS="cpu",
                         XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "OK" in result.stdout
