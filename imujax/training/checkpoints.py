"""A run's files in its workdir: checkpoints, run.json, metrics.jsonl.

  workdir/run.json            what the run is (config, model, splits, channels,
                              classes, normaliser, source of its encoder)
  workdir/checkpoints/<step>/ Orbax: items `params`, `opt_state`, `meta`
  workdir/metrics.jsonl       one JSON object per evaluation
  workdir/summary.json        the final test scores

Checkpoints keep params and optimizer state as separate items so that a later
run can restore the params alone (`init_from`) whatever optimizer wrote them.
"""

import json

from etils import epath
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from imujax.training import run_record


def manager(workdir: epath.Path) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      epath.Path(workdir) / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def save_args(state: dict) -> ocp.args.Composite:
  return ocp.args.Composite(
      params=ocp.args.StandardSave(state["params"]),
      opt_state=ocp.args.StandardSave(state["opt_state"]),
      meta=ocp.args.JsonSave({"step": int(state["step"])}))


def _first_local_device() -> jax.sharding.Sharding:
  """Where a leaf goes when the devices it was saved from do not exist here.

  A checkpoint written on 8 accelerators, or by a member on CPU device 3 of a
  split CPU (imujax.training.multiseed), still loads on a one-device machine.
  """
  return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def restore_state(mngr: ocp.CheckpointManager, step: int, like: dict,
                  workdir) -> dict:
  """Restores the train state of `step` with the structure of `like`."""
  abstract = jax.eval_shape(lambda: like)
  here = _first_local_device()
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract["params"],
                                        fallback_sharding=here),
        opt_state=ocp.args.StandardRestore(abstract["opt_state"],
                                           fallback_sharding=here),
        meta=ocp.args.JsonRestore()))
  except (ValueError, KeyError, TypeError) as e:
    raise run_record.IncompatibleRunError(
        f"The checkpoint at step {step} in {workdir} does not match this "
        f"config's model ({e}). Use another --workdir or delete it.") from e
  return {"step": jnp.asarray(restored["meta"]["step"], jnp.int32),
          "params": restored["params"], "opt_state": restored["opt_state"]}


def restore_params(workdir) -> tuple[dict, int]:
  """(params, step) of the latest checkpoint in `workdir`, as stored."""
  mngr = manager(workdir)
  step = mngr.latest_step()
  if step is None:
    raise FileNotFoundError(f"{workdir} has no checkpoint yet; finish (or "
                            "rerun) that run first.")
  restored = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(
          fallback_sharding=_first_local_device())))
  mngr.close()
  return restored["params"], step


def append_jsonl(path: epath.Path, record: dict) -> None:
  with path.open("a") as f:
    f.write(json.dumps(record) + "\n")


def truncate_metrics(path: epath.Path, step: int) -> None:
  """Drops records written after `step` (by a run that was then killed).

  A last line cut off mid-write (a kill during the append) is dropped too;
  a damaged line before it is an error naming the file and line. The file is
  replaced atomically.
  """
  if not path.exists():
    return
  lines = path.read_text().splitlines()
  kept = []
  for i, line in enumerate(lines):
    if not line:
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if i == len(lines) - 1:
        break  # A partial final append: that evaluation reruns.
      raise run_record.IncompatibleRunError(
          f"{path}:{i + 1} is not a JSON record; repair or delete that line "
          "(or the workdir) to resume.") from None
    if record["step"] <= step:
      kept.append(line)
  run_record.write_text_atomic(path, "".join(line + "\n" for line in kept))
