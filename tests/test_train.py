"""The training step, fine-tune protocols, init_from, and data parallelism."""

import functools
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import configlib
from imujax.data import input_pipeline as ip
from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import options
from imujax.training import optim
from imujax.training import program
from tests.conftest import subprocess_env


def _phase(**kw):
  p = configlib.base().finetune
  p.unlock()
  p.update(kw)
  return p


def _setup(watch_data, objective="classification", cell="lstm", batch=8):
  cfg = models.ModelConfig(
      in_dim=6, cell=cell, hidden=16, layers=2, dropout=0.1,
      num_classes=7 if objective == "classification" else 0)
  recs = watch_data.recordings[:20]
  norm = ip.Normalizer.fit(recs, watch_data.channel_names)
  batch = ip.sample_windows(recs, norm, 32, batch, seed=0, step=0)
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg)}
  spec = objectives.get(objective)
  opts = (options.validate(objective, {"mask_ratio": 0.2})
          if objective == "masked_reconstruction" else {})
  params.update(spec.init_heads(jax.random.key(1), cfg, opts))
  stats = losses.stats_of(norm.mean, norm.std)
  loss_fn = functools.partial(spec.loss, cfg=cfg, opts=opts)
  return cfg, batch, functools.partial(_with_stats, loss_fn, stats), params


def _with_stats(loss_fn, stats, params, batch, rng, unused_stats):
  """The loss with this run's statistics bound (the step passes None)."""
  return loss_fn(params, batch, rng, stats)


@pytest.mark.parametrize("objective", ["classification",
                                       "masked_reconstruction"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_one_step_changes_every_parameter(watch_data, objective, cell):
  cfg, batch, loss_fn, params = _setup(watch_data, objective, cell)
  opt = optim.make_optimizer(_phase(warmup_steps=0), params)
  state = {"step": jnp.zeros((), jnp.int32), "params": params,
           "opt_state": opt.init(params)}
  before = jax.tree.map(np.array, params)
  step = program.jit_train_step(program.make_mesh(), loss_fn, opt)
  new, metrics = step(state, batch, jax.random.key(1), None)
  assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
  assert int(new["step"]) == 1
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before,
                         new["params"])
  assert all(jax.tree.leaves(changed)), changed


def test_a_few_steps_lower_the_loss_on_real_data(watch_data):
  cfg, batch, loss_fn, params = _setup(watch_data)
  opt = optim.make_optimizer(_phase(warmup_steps=0, learning_rate=1e-2),
                             params)
  state = {"step": jnp.zeros((), jnp.int32), "params": params,
           "opt_state": opt.init(params)}
  step = program.jit_train_step(program.make_mesh(), loss_fn, opt)
  losses = []
  for _ in range(15):
    state, m = step(state, batch, jax.random.key(1), None)
    losses.append(float(m["loss"]))
  assert losses[-1] < 0.7 * losses[0]


def test_linear_probe_leaves_the_encoder_untouched(watch_data):
  cfg, batch, loss_fn, params = _setup(watch_data)
  opt = optim.make_optimizer(_phase(warmup_steps=0), params,
                             frozen_layers=cfg.layers)
  state = {"step": jnp.zeros((), jnp.int32), "params": params,
           "opt_state": opt.init(params)}
  before = jax.tree.map(np.array, params)
  step = program.jit_train_step(program.make_mesh(), loss_fn, opt)
  for _ in range(3):
    state, _ = step(state, batch, jax.random.key(1), None)
  for a, b in zip(jax.tree.leaves(before["encoder"]),
                  jax.tree.leaves(state["params"]["encoder"])):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(before["classifier"]["w"],
                         state["params"]["classifier"]["w"])


def test_weight_decay_spares_biases_and_norms(watch_data):
  cfg, batch, _, params = _setup(watch_data)
  opt = optim.make_optimizer(_phase(warmup_steps=0, weight_decay=0.5),
                             params)
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = opt.update(zero_grads, opt.init(params), params)
  # With zero gradients only weight decay moves a parameter.
  assert np.abs(updates["classifier"]["w"]).max() > 0
  assert np.abs(updates["classifier"]["b"]).max() == 0
  assert np.abs(updates["encoder"]["layer_0"]["norm"]["scale"]).max() == 0


_DATA_PARALLEL = textwrap.dedent("""
    import functools, jax, jax.numpy as jnp, numpy as np
    from imujax import configlib
    from imujax import models
    from imujax import objectives
    from imujax.training import optim
    from imujax.training import program
    assert jax.device_count() == 4, jax.devices()
    cfg = models.ModelConfig(in_dim=6, cell="lstm", hidden=16, layers=2,
                             num_classes=7)
    loss_fn = functools.partial(objectives.get("classification").loss, cfg=cfg)
    rng = np.random.default_rng(0)
    batches = [{"signals": rng.normal(size=(8, 24, 6)).astype(np.float32),
                "labels": rng.integers(0, 7, (8, 24)).astype(np.int32),
                "valid": np.ones((8, 24), bool)} for _ in range(2)]
    phase = configlib.base().finetune
    def run(devices):
      mesh = program.make_mesh(devices)
      params = models.init(jax.random.key(0), cfg)
      opt = optim.make_optimizer(phase, params)
      state = {"step": jnp.zeros((), jnp.int32), "params": params,
               "opt_state": opt.init(params)}
      sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
      step = program.jit_train_step(mesh, loss_fn, opt)
      for b in batches:
        state, _ = step(state, jax.device_put(b, sharding), jax.random.key(1), None)
      leaf = jax.tree.leaves(state["params"])[0]
      return jax.device_get(state["params"]), len(leaf.sharding.device_set)
    four, n4 = run(jax.devices())
    one, n1 = run(jax.devices()[:1])
    assert (n4, n1) == (4, 1), (n4, n1)
    diffs = [float(np.abs(a - b).max()) for a, b in
             zip(jax.tree.leaves(four), jax.tree.leaves(one))]
    moved = [float(np.abs(a).max()) for a in jax.tree.leaves(four)]
    print("MAXDIFF", max(diffs))
    assert max(diffs) < 1e-5, diffs
""")


def test_two_steps_on_four_devices_equal_one_device():
  result = subprocess.run(
      [sys.executable, "-c", _DATA_PARALLEL], capture_output=True, text=True,
      env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4",
                         JAX_PLATFORMS="cpu"), timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "MAXDIFF" in result.stdout


_SAVE_ON_TWO_DEVICES = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp, numpy as np
    from imujax.training import checkpoints
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    assert mesh.size == 2
    both = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state = jax.device_put(
        {"step": jnp.int32(3), "params": {"w": jnp.arange(6.).reshape(2, 3)},
         "opt_state": {"mu": jnp.ones(3)}}, both)
    mngr = checkpoints.manager(sys.argv[1])
    mngr.save(3, args=checkpoints.save_args(state))
    mngr.wait_until_finished()
    mngr.close()
""")


def test_checkpoint_from_two_devices_restores_on_one(tmp_path):
  """A run saved on more devices than this process has still loads here."""
  result = subprocess.run(
      [sys.executable, "-c", _SAVE_ON_TWO_DEVICES, str(tmp_path)],
      capture_output=True, text=True, timeout=300,
      env=subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
                         JAX_PLATFORMS="cpu"))
  assert result.returncode == 0, result.stderr[-3000:]
  from imujax.training import checkpoints  # pylint: disable=g-import-not-at-top
  params, step = checkpoints.restore_params(tmp_path)
  assert step == 3
  np.testing.assert_array_equal(params["w"], np.arange(6.).reshape(2, 3))
  like = {"step": jnp.int32(0), "params": {"w": jnp.zeros((2, 3))},
          "opt_state": {"mu": jnp.zeros(3)}}
  mngr = checkpoints.manager(tmp_path)
  state = checkpoints.restore_state(mngr, 3, like, tmp_path)
  mngr.close()
  assert int(state["step"]) == 3
  np.testing.assert_array_equal(state["opt_state"]["mu"], np.ones(3))
  assert state["params"]["w"].devices() == {jax.local_devices()[0]}
