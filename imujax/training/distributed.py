"""Multi-host runs: one JAX process per host (or per GPU), one global mesh.

`initialize(mode)` starts `jax.distributed` when a multi-process launcher is
found; it must run before any other JAX call. Afterwards `jax.devices()` spans
every process, so `program.make_mesh()` builds the global mesh unchanged.

Batches stay a pure function of (seed, step): every process computes the same
global batch, keeps its own rows (`local_part`) and hands them to `to_global`,
which assembles one `jax.Array` sharded over all processes' devices. Computing
the whole batch on every host is cheap for IMU windows (a few hundred
[window, channels] float32 rows) and gives every step the batch of a
one-process run; `local_rows` says which rows a process owns, for a pipeline
that would rather draw only those. `to_host` brings a batch-sharded result
(e.g. predictions) back to numpy in every process.
"""

import glob
import importlib.util
import os
from typing import Mapping, NamedTuple, Optional

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

MODES = ("auto", "on", "off")
_EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
# What `jax.distributed`'s own SLURM detection needs: set by `srun`, not by
# the batch script itself.
_SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS",
               "SLURM_PROCID", "SLURM_LOCALID")


class Launcher(NamedTuple):
  """A detected multi-process launcher and the arguments it implies."""
  name: str     # "env", "slurm" or "tpu": for logs and errors.
  kwargs: dict  # For `jax.distributed.initialize`.


def _on_tpu_vm() -> bool:
  """A Cloud TPU VM: libtpu installed and TPU chips present."""
  return (importlib.util.find_spec("libtpu") is not None and
          bool(glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")))


def detect(environ: Optional[Mapping[str, str]] = None,
           tpu_vm: Optional[bool] = None) -> Optional[Launcher]:
  """The launcher this process runs under, or None for a one-process run.

  Checked in order: explicit `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
  `JAX_PROCESS_ID` (all three); a SLURM job step (`srun`) with more than one
  task; a TPU pod (`TPU_WORKER_HOSTNAMES` / `TPU_PROCESS_ADDRESSES` naming
  several hosts, multislice `MEGASCALE_COORDINATOR_ADDRESS`, or a Cloud TPU VM,
  whose workers JAX finds in the VM's metadata). Reads nothing but `environ`
  (default `os.environ`) and, when `tpu_vm` is None, the TPU device files.

  Raises:
    ValueError: some but not all of the explicit JAX_* variables are set, or
      one of them is malformed.
  """
  env = os.environ if environ is None else environ
  given = [k for k in _EXPLICIT if env.get(k)]
  if given:
    missing = [k for k in _EXPLICIT if k not in given]
    if missing:
      raise ValueError(
          f"{', '.join(given)} set but {', '.join(missing)} not: a multi-"
          f"process run started by hand needs all of {', '.join(_EXPLICIT)} "
          "(the same address and count in every process, ids 0..count-1).")
    try:
      count, pid = int(env["JAX_NUM_PROCESSES"]), int(env["JAX_PROCESS_ID"])
    except ValueError:
      raise ValueError(
          f"JAX_NUM_PROCESSES={env['JAX_NUM_PROCESSES']!r} and JAX_PROCESS_ID="
          f"{env['JAX_PROCESS_ID']!r} must be integers.") from None
    if not 0 <= pid < count:
      raise ValueError(f"JAX_PROCESS_ID={pid} is outside 0..{count - 1} "
                       f"(JAX_NUM_PROCESSES={count}).")
    return Launcher("env", {
        "coordinator_address": env["JAX_COORDINATOR_ADDRESS"],
        "num_processes": count, "process_id": pid})

  if all(k in env for k in _SLURM_STEP) and int(env["SLURM_NTASKS"]) > 1:
    return Launcher("slurm", {"cluster_detection_method": "slurm"})
  if int(env.get("SLURM_NTASKS", "1") or "1") > 1:
    logging.warning(
        "SLURM_NTASKS=%s but this is not an srun job step: running as one "
        "process. Start the command with `srun` (see launch/slurm.sbatch) to "
        "use every task.", env["SLURM_NTASKS"])

  hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES")
  if ((hosts and "," in hosts) or env.get("MEGASCALE_COORDINATOR_ADDRESS") or
      (_on_tpu_vm() if tpu_vm is None else tpu_vm)):
    # JAX reads the TPU topology itself (environment or VM metadata).
    return Launcher("tpu", {})
  return None


def initialize(mode: str = "auto") -> bool:
  """Starts `jax.distributed` as `mode` says; call before any other JAX call.

  Args:
    mode: "auto" (when `detect` finds a launcher), "on" (always; an error if
      there is nothing to start it with) or "off" (never).

  Returns:
    Whether `jax.distributed` was initialised.
  """
  if mode not in MODES:
    raise ValueError(f"--distributed={mode!r}: expected one of {MODES}.")
  if mode == "off":
    return False
  launcher = detect()
  if launcher is None:
    if mode == "auto":
      return False
    raise RuntimeError(
        "--distributed=on but no multi-process launcher was found: run under "
        "`srun` with more than one task (launch/slurm.sbatch), on a TPU VM "
        "(launch/tpu_vm.sh), or set JAX_COORDINATOR_ADDRESS (host:port of "
        "process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID in every process. "
        "For a one-process run use --distributed=auto or off.")
  # On CPU, cross-process collectives need an implementation (older JAX
  # versions have none by default).
  if jax.config.jax_cpu_collectives_implementation is None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**launcher.kwargs)
  logging.info("jax.distributed via %s: process %d of %d, %d local devices "
               "of %d.", launcher.name, jax.process_index(),
               jax.process_count(), jax.local_device_count(),
               jax.device_count())
  return True


def local_rows(sharding: jax.sharding.Sharding,
               global_batch_size: int) -> np.ndarray:
  """Rows of the global batch held by this process's devices, in order.

  That order is the one `to_global` expects its local batch in. With devices
  listed process by process (`jax.devices()`) the rows are one contiguous
  block: process p of P holds rows [p * B / P, (p + 1) * B / P).
  """
  rows = set()
  for idx in sharding.addressable_devices_indices_map(
      (global_batch_size,)).values():
    rows.update(range(global_batch_size)[idx[0]])
  return np.array(sorted(rows), np.int64)


def local_part(global_batch: dict, sharding: jax.sharding.Sharding) -> dict:
  """This process's rows of a global host batch (the same on every process).

  Args:
    global_batch: {name: <any>[global_batch, ...]} numpy arrays.
  """
  size = len(next(iter(global_batch.values())))
  rows = local_rows(sharding, size)
  if len(rows) == size:
    return global_batch
  return {k: v[rows] for k, v in global_batch.items()}


def to_global(local_batch: dict, sharding: jax.sharding.Sharding) -> dict:
  """One global `jax.Array` per entry, built from every process's rows.

  With one process this is `jax.device_put(local_batch, sharding)`.

  Args:
    local_batch: {name: <any>[local_batch, ...]}, this process's rows in the
      order of `local_rows`.
    sharding: the batch sharding, e.g. NamedSharding(mesh, P("data")).

  Returns:
    {name: jax.Array[local_batch * process_count, ...]}
  """
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def to_host(x: jax.Array) -> np.ndarray:
  """The whole value of `x` as numpy in every process.

  `np.asarray` fails on an array sharded over other processes' devices (e.g.
  predictions over a data-sharded batch); this gathers them first.
  """
  if x.is_fully_addressable or x.is_fully_replicated:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
