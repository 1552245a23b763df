"""Multi-host: launcher detection, and two processes training as one."""

import functools
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import configlib
from imujax.training import distributed
from imujax import models
from imujax import objectives
from imujax.training import optim
from imujax.training import program
from tests.conftest import subprocess_env

_BATCH, _STEPS = 8, 3
_PREFIXES = ("JAX_", "SLURM_", "TPU_", "MEGASCALE_")


# ---------------------------------------------------------------- detection
_SRUN = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "node[001-002]",
         "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}
_BY_HAND = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
            "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}


@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    (_BY_HAND, ("env", {"coordinator_address": "10.0.0.1:1234",
                        "num_processes": 4, "process_id": 3})),
    ({**_SRUN, **_BY_HAND}, ("env", {"coordinator_address": "10.0.0.1:1234",
                                     "num_processes": 4, "process_id": 3})),
    (_SRUN, ("slurm", {"cluster_detection_method": "slurm"})),
    ({**_SRUN, "SLURM_NTASKS": "1"}, None),
    # The batch script itself, before `srun`: one process.
    ({"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2"}, None),
    ({"TPU_WORKER_HOSTNAMES": "t1v-0,t1v-1"}, ("tpu", {})),
    ({"TPU_PROCESS_ADDRESSES": "10.0.0.2:8476,10.0.0.3:8476"}, ("tpu", {})),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),
    ({"MEGASCALE_COORDINATOR_ADDRESS": "10.0.0.2"}, ("tpu", {})),
])
def test_detect(environ, expected):
  launcher = distributed.detect(environ, tpu_vm=False)
  assert (launcher and tuple(launcher)) == expected


def test_detect_a_cloud_tpu_vm():
  assert distributed.detect({}, tpu_vm=True).name == "tpu"


@pytest.mark.parametrize("environ, message", [
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"},
     "JAX_PROCESS_ID not"),
    ({"JAX_PROCESS_ID": "0"}, "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES"),
    ({**_BY_HAND, "JAX_PROCESS_ID": "4"}, "outside 0..3"),
    ({**_BY_HAND, "JAX_NUM_PROCESSES": "four"}, "must be integers"),
])
def test_detect_rejects_incomplete_settings(environ, message):
  with pytest.raises(ValueError, match=message):
    distributed.detect(environ, tpu_vm=False)


@pytest.fixture
def calls(monkeypatch):
  """A bare environment; records `jax.distributed.initialize` instead."""
  for key in list(os.environ):
    if key.startswith(_PREFIXES):
      monkeypatch.delenv(key)
  monkeypatch.setattr(distributed, "_on_tpu_vm", lambda: False)
  recorded = []
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda **kw: recorded.append(kw))
  return recorded


def test_initialize_auto_without_a_launcher_is_one_process(calls):
  assert distributed.initialize("auto") is False
  assert calls == []


def test_initialize_follows_the_mode(calls, monkeypatch):
  for key, value in _SRUN.items():
    monkeypatch.setenv(key, value)
  assert distributed.initialize("off") is False
  assert calls == []
  assert distributed.initialize("auto") is True
  assert distributed.initialize("on") is True
  assert calls == [{"cluster_detection_method": "slurm"}] * 2


def test_initialize_on_without_a_launcher_says_what_to_set(calls):
  with pytest.raises(RuntimeError,
                     match="no multi-process launcher.*JAX_NUM_PROCESSES"):
    distributed.initialize("on")
  assert calls == []


def test_initialize_rejects_an_unknown_mode(calls):
  with pytest.raises(ValueError, match="auto.*on.*off"):
    distributed.initialize("yes")


def test_one_process_keeps_every_row():
  sharding = jax.sharding.NamedSharding(program.make_mesh(),
                                        jax.sharding.PartitionSpec("data"))
  batch = _global_batch(0)
  np.testing.assert_array_equal(distributed.local_rows(sharding, _BATCH),
                                np.arange(_BATCH))
  assert distributed.local_part(batch, sharding) is batch
  placed = distributed.to_global(batch, sharding)
  for k, v in batch.items():
    assert placed[k].sharding == sharding
    np.testing.assert_array_equal(distributed.to_host(placed[k]), v)


# ------------------------------------------------------ two processes as one
def _global_batch(step: int) -> dict:
  """The global batch of `step`: the same in every process."""
  rng = np.random.default_rng([7, step])
  return {"signals": rng.normal(size=(_BATCH, 16, 6)).astype(np.float32),
          "labels": rng.integers(0, 5, (_BATCH, 16)).astype(np.int32),
          "valid": rng.random((_BATCH, 16)) < 0.9}


def _model():
  cfg = models.ModelConfig(in_dim=6, cell="lstm", hidden=8, layers=1,
                           num_classes=5)
  return cfg, models.init(jax.random.key(0), cfg)


def _train(mesh, put) -> list:
  """Params after `_STEPS` steps on `mesh`; `put` places a global batch."""
  cfg, params = _model()
  phase = configlib.base().finetune
  phase.unlock()
  phase.update(warmup_steps=0, learning_rate=1e-2)
  optimizer = optim.make_optimizer(phase, params)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put({"step": jnp.zeros((), jnp.int32), "params": params,
                          "opt_state": optimizer.init(params)}, replicated)
  step_fn = program.jit_train_step(
      mesh, functools.partial(objectives.get("classification").loss, cfg=cfg),
      optimizer)
  for step in range(_STEPS):
    state, _ = step_fn(state, put(_global_batch(step)), jax.random.key(1), None)
  return [np.asarray(p) for p in jax.tree.leaves(state["params"])]


_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from imujax.training import distributed
    assert distributed.initialize("auto")
    import jax
    from imujax.training import optim
    from imujax.training import program
    from tests import test_distributed as t
    assert (jax.process_count(), jax.device_count()) == (2, 4), jax.devices()
    mesh = program.make_mesh()
    sharding = jax.sharding.NamedSharding(mesh,
                                          jax.sharding.PartitionSpec("data"))
    half = t._BATCH // 2
    rows = distributed.local_rows(sharding, t._BATCH)
    assert rows.tolist() == list(range(half * jax.process_index(),
                                       half * (jax.process_index() + 1))), rows
    def put(batch):
      local = distributed.local_part(batch, sharding)
      assert len(local["signals"]) == half
      return distributed.to_global(local, sharding)
    params = t._train(mesh, put)
    whole = t._global_batch(0)
    gathered = distributed.to_host(put(whole)["signals"])
    np.testing.assert_array_equal(gathered, whole["signals"])
    if jax.process_index() == 0:
      np.savez(sys.argv[1], *params)
    print("DONE", jax.process_index())
""")


def _cpu_collectives_available() -> bool:
  try:
    from jax._src.lib import _jax  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  return ("jax_cpu_collectives_implementation" in jax.config.values and
          hasattr(_jax, "make_gloo_tcp_collectives"))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path: pathlib.Path):
  if not _cpu_collectives_available():
    pytest.skip(f"jax {jax.__version__} has no gloo CPU collectives "
                "(jax_cpu_collectives_implementation): two CPU processes "
                "cannot share a mesh.")
  port = _free_port()
  out = tmp_path / "params.npz"
  procs = [subprocess.Popen(
      [sys.executable, "-c", _WORKER, str(out)], stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True,
      env=subprocess_env(
          JAX_PLATFORMS="cpu",
          XLA_FLAGS="--xla_force_host_platform_device_count=2",
          JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
          JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
          JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
           for i in range(2)]
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=120)[0])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  for i, (p, log) in enumerate(zip(procs, logs)):
    assert p.returncode == 0 and f"DONE {i}" in log, (
        f"process {i} exited {p.returncode}:\n{log[-3000:]}")

  # The reference: one process, one device, the whole global batch.
  mesh = program.make_mesh(jax.devices()[:1])
  sharding = jax.sharding.NamedSharding(mesh,
                                        jax.sharding.PartitionSpec("data"))
  expected = _train(mesh, lambda b: jax.device_put(b, sharding))
  with np.load(out) as stored:
    got = [stored[f"arr_{i}"] for i in range(len(stored.files))]
  assert len(got) == len(expected)
  for a, b in zip(got, expected):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
  # The steps moved the params, so the comparison means something.
  initial = jax.tree.leaves(_model()[1])
  assert min(float(np.abs(a - b).max()) for a, b in zip(got, initial)) > 1e-3
