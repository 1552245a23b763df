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


class IncompatibleCheckpointError(ValueError):
  """The workdir (or init_from) holds a run written by another config."""


# Keys of run.json that must not change when a workdir is resumed: they fix
# the checkpoint's shapes or the meaning of its steps and metrics.
_IDENTITY_KEYS = ("model_config.", "phase", "objective", "dataset",
                  "channel_names", "class_names", "splits.",
                  "labeled_recordings", "config.seed", "config.init_from",
                  "source.")


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
  split CPU (imujax.multiseed), still loads on a one-device machine.
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
    raise IncompatibleCheckpointError(
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


def read_run(workdir) -> dict:
  path = epath.Path(workdir) / "run.json"
  if not path.exists():
    raise FileNotFoundError(
        f"{workdir} has no run.json: point config.init_from at the workdir "
        "of an imujax run.")
  return json.loads(path.read_text())


def _flatten(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def write_run(workdir: epath.Path, run_info: dict) -> None:
  """Writes run.json, refusing a workdir that holds an incompatible run."""
  path = workdir / "run.json"
  if path.exists():
    old = _flatten(json.loads(path.read_text()))
    new = _flatten(json.loads(json.dumps(run_info)))
    diffs = [f"{k}: {old.get(k)!r} in the workdir vs {new.get(k)!r} now"
             for k in sorted(set(old) | set(new))
             if k.startswith(_IDENTITY_KEYS) and old.get(k) != new.get(k)]
    if diffs:
      raise IncompatibleCheckpointError(
          f"{workdir} holds a run from an incompatible config ("
          + "; ".join(diffs[:5]) + "). Use another --workdir, or delete this "
          "one to start over.")
  path.write_text(json.dumps(run_info, indent=1))


def append_jsonl(path: epath.Path, record: dict) -> None:
  with path.open("a") as f:
    f.write(json.dumps(record) + "\n")


def truncate_metrics(path: epath.Path, step: int) -> None:
  """Drops records written after `step` (by a run that was then killed)."""
  if path.exists():
    kept = [line for line in path.read_text().splitlines()
            if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))
