"""A run's files in its workdir: checkpoints, run.json, metrics.jsonl.

  workdir/run.json            what the run is (config, model, splits, channels,
                              classes, normaliser, source of its encoder)
  workdir/checkpoints/<step>/ Orbax: items `params`, `opt_state`, `meta`
  workdir/metrics.jsonl       one JSON object per evaluation
  workdir/summary.json        the final test scores; present only while the
                              checkpoints are those of that finish (the
                              loop removes it when a run trains again)

Checkpoints keep params and optimizer state as separate items so that a later
run can restore the params alone (`init_from`) whatever optimizer wrote them.
"""

import hashlib
import json
import os
import pathlib

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from imujax.training import run_record


CHECKSUMS = "checksums.json"  # {step: {file: sha256}} beside checkpoints/.


class DamagedCheckpointError(run_record.IncompatibleRunError):
  """No checkpoint of a workdir passes its checksums."""


def manager(workdir: epath.Path) -> ocp.CheckpointManager:
  # Saves are synchronous so that a step's checksums are written the moment
  # its files are complete (a small model's save takes milliseconds).
  # Orbax refuses relative paths; a user's init_from=runs/pre is one.
  if "://" not in str(workdir):
    workdir = os.path.abspath(workdir)
  return ocp.CheckpointManager(
      epath.Path(workdir) / "checkpoints",
      options=ocp.CheckpointManagerOptions(
          max_to_keep=2, create=True, enable_async_checkpointing=False))


def save_args(state: dict) -> ocp.args.Composite:
  return ocp.args.Composite(
      params=ocp.args.StandardSave(state["params"]),
      opt_state=ocp.args.StandardSave(state["opt_state"]),
      meta=ocp.args.JsonSave({"step": int(state["step"])}))


def save(mngr: ocp.CheckpointManager, workdir, step: int, state: dict):
  """Saves `state` as checkpoint `step` and records its files' checksums."""
  mngr.save(step, args=save_args(state))
  mngr.wait_until_finished()
  sums = _read_checksums(workdir)
  sums[str(step)] = _file_digests(_step_dir(workdir, step))
  kept = {str(s) for s in mngr.all_steps()}
  run_record.write_text_atomic(
      epath.Path(workdir) / CHECKSUMS,
      json.dumps({k: v for k, v in sums.items() if k in kept}, indent=1))


def _step_dir(workdir, step: int) -> epath.Path:
  return epath.Path(workdir) / "checkpoints" / str(step)


def _file_digests(step_dir: epath.Path) -> dict:
  out = {}
  for path in sorted(pathlib.Path(step_dir).rglob("*")):
    if path.is_file():
      out[str(path.relative_to(step_dir))] = hashlib.sha256(
          path.read_bytes()).hexdigest()
  return out


def _read_checksums(workdir) -> dict:
  path = epath.Path(workdir) / CHECKSUMS
  if not path.exists():
    return {}
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError:
    logging.warning("%s is damaged; no checkpoint of %s can be verified.",
                    path, workdir)
    return {}


def damage(workdir, step: int) -> str | None:
  """Why checkpoint `step` of `workdir` fails its checksums (None: it passes).

  A workdir without checksums.json was written before imujax kept them: its
  checkpoints are accepted unverified (with a warning).
  """
  path = epath.Path(workdir) / CHECKSUMS
  if not path.exists():
    logging.warning("%s has no %s (written by an earlier imujax): step %d is "
                    "restored unverified.", workdir, CHECKSUMS, step)
    return None
  expected = _read_checksums(workdir).get(str(step))
  if expected is None:
    return "no checksums were recorded for it (killed while saving?)"
  found = _file_digests(_step_dir(workdir, step))
  missing = sorted(set(expected) - set(found))
  if missing:
    return f"missing file {missing[0]}"
  changed = sorted(f for f in expected if found[f] != expected[f])
  if changed:
    return f"checksum mismatch in {changed[0]}"
  return None


def good_steps(mngr: ocp.CheckpointManager, workdir) -> list[int]:
  """Steps whose checkpoints pass their checksums, newest first; says why
  each newer one was skipped."""
  good = []
  for step in sorted(mngr.all_steps(), reverse=True):
    why = damage(workdir, step)
    if why is None:
      good.append(step)
    else:
      logging.warning("Checkpoint step %d in %s is damaged (%s); falling back "
                      "to an earlier one.", step, workdir, why)
  return good


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
  """(params, step) of the newest good checkpoint in `workdir`, as stored."""
  if not (epath.Path(workdir) / "checkpoints").exists():
    raise FileNotFoundError(f"{workdir} has no checkpoints/; finish (or "
                            "rerun) that run first.")
  mngr = manager(workdir)
  try:
    if not mngr.all_steps():
      raise FileNotFoundError(f"{workdir} has no checkpoint yet; finish (or "
                              "rerun) that run first.")
    steps = good_steps(mngr, workdir)
    if not steps:
      raise DamagedCheckpointError(
          f"Every checkpoint in {workdir}/checkpoints fails its checksums "
          f"({CHECKSUMS}); rerun that run in a fresh workdir.")
    restored = mngr.restore(steps[0], args=ocp.args.Composite(
        params=ocp.args.StandardRestore(
            fallback_sharding=_first_local_device())))
  finally:
    mngr.close()
  return restored["params"], steps[0]


def append_jsonl(path: epath.Path, record: dict) -> None:
  with path.open("a") as f:
    f.write(json.dumps(record) + "\n")


def truncate_metrics(path: epath.Path, step: int) -> None:
  """Drops records written after `step` (by a run that was then killed),
  and any "test" record: the test evaluation runs at the end of every run
  that has no summary.json yet, so a kill between it and summary.json
  would otherwise leave it twice.

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
    if record["step"] <= step and record.get("split") != "test":
      kept.append(line)
  run_record.write_text_atomic(path, "".join(line + "\n" for line in kept))


def check_source_finished(init_from: str, allow_unfinished: bool) -> None:
  """An unfinished pre-training is refused unless asked for explicitly."""
  if not allow_unfinished and not (
      epath.Path(init_from) / "summary.json").exists():
    raise ValueError(
        f"init_from={init_from!r} has not finished (no summary.json): its "
        "latest checkpoint is not the encoder the run was meant to produce. "
        "Finish that run, or set init_from_unfinished=True to use it anyway.")


def check_source_step(init_from: str, step: int) -> None:
  """The restored checkpoint is the one the source's summary.json reports.

  A finished run restarted (an archived pre-training run again) and killed
  before it finished again would otherwise pass as finished with a partial
  checkpoint (the loop now removes summary.json when a run starts; this
  catches workdirs written before that).
  """
  summary = epath.Path(init_from) / "summary.json"
  try:
    finished = json.loads(summary.read_text()).get("step")
  except ValueError as e:
    raise ValueError(f"{summary} does not parse ({e}): rerun that run, or "
                     "set init_from_unfinished=True to use its latest "
                     "checkpoint anyway.") from None
  if finished is not None and finished != step:
    raise ValueError(
        f"init_from={init_from!r}: its latest checkpoint is step {step} but "
        f"its summary.json reports a finish at step {finished} (the run was "
        "restarted and did not finish again). Rerun it to the end, or set "
        f"init_from_unfinished=True to use step {step} anyway.")
