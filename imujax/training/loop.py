"""The training loop, one for every run: K >= 1 members, resumable.

K = 1 is a plain run: the state replicated over a `data` mesh, the batch
split over its devices (and over hosts). K > 1 trains the members of one
group (different seeds, init_from or learning rates; `imujax.training.
multiseed`) as one vmapped program with a leading member axis, split over
the devices of a `members` mesh. Either way every member is a complete run
in its own workdir (run.json, splits.json, normalization.json,
metrics.jsonl, checkpoints/, summary.json) and member k computes what its
one-member run computes (to float rounding; a test checks every objective).

Resume order (explicit, big_vision style): a checkpoint in the workdir →
`config.init_from` (pre-trained encoder, new head) → random initialisation.
Batches are a pure function of (seed, step), so a run killed and resumed
from its last checkpoint ends with exactly the numbers of an uninterrupted
run.
"""

import contextlib
import functools
import json
import time

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from imujax.training import checkpoints
from imujax.training import distributed
from imujax.training import evaluate
from imujax.training import multiseed
from imujax.training import optim
from imujax.training import progress
from imujax.training import run_record
from imujax.training import setup
from imujax.training import program


# summary.json's "no_test" of a run with no held-out subject ("test": None).
NO_TEST = ("no validation or test: data.val_subjects = data.test_subjects = 0: "
           "pre-trained on every subject, so no subject is held out.")


def train_and_evaluate(config, workdir: str, phase: str,
                       label: str = "") -> dict:
  """Trains one phase ("pretrain" or "finetune") of one run in `workdir`.

  Returns the summary (also written to workdir/summary.json).
  """
  return train_members([config], [workdir], phase, label=label)[0]


class _OneRun:
  """K = 1: state replicated over a data-parallel mesh, batch split."""

  def __init__(self, runs, configs, phase):
    self.mesh = program.make_mesh()
    batch_size = configs[0][phase].batch_size
    if batch_size % self.mesh.size:
      raise ValueError(f"config.{phase}.batch_size={batch_size} is not "
                       f"divisible by the {self.mesh.size} devices.")
    self.replicated = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec())
    self.batch_sharding = jax.sharding.NamedSharding(
        self.mesh, jax.sharding.PartitionSpec("data"))
    self.runs, self.configs, self.phase = runs, configs, phase

  def place(self, states, hparams):
    del hparams  # One member has one optimizer.
    return jax.device_put(states[0], self.replicated)

  def step_fn(self, loss_fn, optimizer):
    return program.jit_train_step(self.mesh, loss_fn, optimizer)

  def keys_and_stats(self):
    return (program.run_keys(self.configs[0].seed)[0],
            jax.device_put(self.runs[0].stats, self.replicated))

  def batch(self, step):
    run, c = self.runs[0], self.configs[0]
    batch = run.train_batch(c.data.window, c[self.phase].batch_size, c.seed,
                            step)
    return distributed.to_global(
        distributed.local_part(batch, self.batch_sharding),
        self.batch_sharding)

  def eval_sharding(self):
    return (self.batch_sharding if self.configs[0].data.eval_batch_size
            % self.mesh.size == 0 else None)

  def member(self, tree, k):
    del k
    return tree

  def save_state(self, state, k):
    del k
    return state


class _Members:
  """K > 1: a leading member axis, vmapped, split over the devices."""

  def __init__(self, runs, configs, phase, impl):
    self.mesh = program.member_mesh(
        len(runs), None if impl == "vmap" else jax.local_devices()[:1])
    self.sharding = program.member_sharding(self.mesh)
    self.runs, self.configs, self.phase, self.impl = (runs, configs, phase,
                                                      impl)
    if self.mesh.size > 1:
      logging.info("Members split over %d devices (%d each).", self.mesh.size,
                   len(runs) // self.mesh.size)

  def place(self, states, hparams):
    state = program.stack(states)
    if hparams:
      state["hparams"] = {k: jnp.asarray(v, jnp.float32)
                          for k, v in hparams.items()}
    # Placed as the step returns it, so the second call reuses the compile.
    return jax.device_put(state, self.sharding)

  def step_fn(self, loss_fn, optimizer):
    return program.make_members_step(loss_fn, optimizer, self.impl,
                                      self.mesh)

  def keys_and_stats(self):
    keys = program.step_keys([c.seed for c in self.configs])
    stats = program.stack([r.stats for r in self.runs])
    return (jax.device_put(keys, self.sharding),
            jax.device_put(stats, self.sharding))

  def batch(self, step):
    return multiseed.host_batch(self.runs, self.configs, self.phase, step)

  def eval_sharding(self):
    return None

  def member(self, tree, k):
    return program.local_member(tree, k)

  def save_state(self, state, k):  # Saved as a one-device run's.
    return jax.device_put(program.local_member(state, k),
                          jax.local_devices()[0])


def train_members(configs: list, workdirs: list, phase: str,
                  impl: str = "vmap", label: str = "") -> list:
  """Trains the runs of `configs` (one per workdir) together; resumable.

  One config is a plain run. Several must agree on everything but seed,
  init_from and the trained phase's learning rate and weight decay
  (`multiseed.check_compatible` says which key differs otherwise).

  Returns:
    The members' summaries (also written to each workdir/summary.json).
  """
  t0 = time.time()
  k = len(configs)
  workdirs = [epath.Path(w) for w in workdirs]
  runs = [setup.prepare(c, phase) for c in configs]
  # Lengths given in seconds (data.window_s), now in frames at the data's rate.
  configs = [c if r.config is None else r.config for c, r in zip(configs, runs)]
  if k > 1:
    multiseed.check_compatible(configs, runs, phase)
  layout = _OneRun(runs, configs, phase) if k == 1 else _Members(
      runs, configs, phase, impl)
  writer = jax.process_index() == 0  # One process writes files.
  with contextlib.ExitStack() as held:
    for run, w in zip(runs, workdirs):
      run_record.check_writable(w / "checkpoints")
      if writer:
        held.enter_context(run_record.WorkdirLock(w))
      run_record.check_compatible(w, run.record)  # Before touching anything.
    tag = f"[{label or phase}{f' x{k}' if k > 1 else ''}]"
    return _train(runs, configs, workdirs, phase, layout, writer, t0, tag)


def _train(runs, configs, workdirs, phase, layout, writer, t0, tag) -> list:
  """The loop proper, in locked, compatible, writable workdirs."""
  k = len(runs)
  optimizer = optim.phase_optimizer(configs[0], phase, runs[0].params)
  states = [{"step": jnp.zeros((), jnp.int32), "params": r.params,
             "opt_state": optimizer.init(r.params)} for r in runs]
  hparams = multiseed.member_hparams(configs, phase) if k > 1 else {}
  if hparams:  # Members differ in them: each steps with its own optimizer.
    logging.info("Members differ in %s: %s", phase, hparams)
    optimizer = functools.partial(optim.phase_optimizer, configs[0], phase,
                                  runs[0].params)
  mngrs = [checkpoints.manager(w) for w in workdirs]
  metrics_paths = [w / "metrics.jsonl" for w in workdirs]
  start = _resume_step(mngrs, workdirs)
  if writer:
    for run, w in zip(runs, workdirs):
      _write_run_files(w, run, start)
      # summary.json says "finished with these checkpoints": a run that
      # trains again (an archived pre-training rerun) no longer is until it
      # writes a new one, so a kill meanwhile leaves it "started", not done.
      (w / "summary.json").unlink(missing_ok=True)
  if start is not None:
    states = [checkpoints.restore_state(m, start, s, w)
              for m, s, w in zip(mngrs, states, workdirs)]
    if writer:
      for p in metrics_paths:
        checkpoints.truncate_metrics(p, start)
    logging.info("Resumed from %s at step %d.",
                 workdirs[0] if k == 1 else f"{k} members' workdirs", start)
  else:
    start = 0
    if writer:
      for p in metrics_paths:
        p.write_text("")

  state = layout.place(states, hparams)
  step_fn = layout.step_fn(runs[0].loss_fn, optimizer)
  keys, stats = layout.keys_and_stats()
  batch_size = configs[0][phase].batch_size
  evaluators = []
  for r, c in zip(runs, configs):  # Members share member 0's jitted fns.
    evaluators.append(evaluate.Evaluator(
        r, c, batch_size, program.run_keys(c.seed)[1], layout.eval_sharding(),
        like=evaluators[0] if evaluators else None))

  # A pre-training on every subject (data.val_subjects = test_subjects = 0,
  # configlib._check_held_out) holds no one out: nothing to evaluate on; its
  # metrics.jsonl has the training loss (split "train") at each logged step.
  held_out = any(runs[0].record.splits[s] for s in ("val", "test"))

  def evaluate_now(split, step):
    if not held_out:
      return [None] * k
    records = []
    for i, (evaluator, path) in enumerate(zip(evaluators, metrics_paths)):
      record = {"step": step, "split": split,
                **evaluator(layout.member(state["params"], i), split)}
      if writer:
        checkpoints.append_jsonl(path, record)
      records.append(record)
    return records

  config, steps = configs[0], configs[0][phase].steps
  pending, t_last, since = [], time.time(), 0
  bar = progress.Progress(tag, steps)  # Draws only when stderr is a terminal.
  try:
    for step in range(start, steps):
      state, metrics = step_fn(state, layout.batch(step), keys, stats)
      pending.append(metrics)
      bar.update(step + 1)
      if step == start:  # Compiled in that call: keep it out of the rate.
        t_last = time.time()
      else:
        since += 1
      done = step + 1
      is_last = done == steps
      if done % config.log_every == 0 or is_last or (
          done % config.checkpoint_every == 0):
        loss, grad_norm = _check_finite(pending, done - len(pending), mngrs,
                                        workdirs)
        pending = []
        now = time.time()
        rate = since / max(now - t_last, 1e-9)
        t_last, since = now, 0
        logging.info("%s step %d/%d loss %s grad_norm %s | %.1f steps/s, "
                     "ETA %s", tag, done, steps, _floats(loss),
                     _floats(grad_norm, 3), rate,
                     _fmt_seconds((steps - done) / max(rate, 1e-9)))
        if writer and not held_out:  # metrics.jsonl's only record of progress.
          for path, value, norm in zip(metrics_paths, loss, grad_norm):
            checkpoints.append_jsonl(path, {
                "step": done, "split": "train", "loss": float(value),
                "grad_norm": float(norm)})
      if held_out and (done % config.eval_every == 0 or is_last or (
          done <= config.dense_eval_until
          and done % config.dense_eval_every == 0)):
        records = evaluate_now("val", done)
        logging.info("%s step %d val %s", tag, done,
                     " | ".join(_short(r) for r in records))
      if done % config.checkpoint_every == 0 or is_last:
        for i, (m, w) in enumerate(zip(mngrs, workdirs)):
          checkpoints.save(m, w, done, layout.save_state(state, i))
  finally:
    bar.close()
    # Pending saves are good checkpoints: finish them even on an error.
    for m in mngrs:
      m.wait_until_finished()
      m.close()

  final_step = int(layout.member(state["step"], 0))
  tests = evaluate_now("test", final_step)
  summaries = []
  for run, w, test in zip(runs, workdirs, tests):
    summary = {"phase": phase, "objective": run.objective.name,
               "step": final_step, "test": test,
               "splits": run.record.splits,
               "labeled_recordings": len(run.train_recordings),
               "class_names": run.data.class_names,
               "wall_s_this_session": time.time() - t0,
               "steps_this_session": final_step - (start or 0)}
    if not held_out:  # "test": None, and why.
      summary["no_test"] = NO_TEST
    if k > 1:
      summary["multiseed_members"] = k
    if writer:
      run_record.write_text_atomic(w / "summary.json",
                                   json.dumps(summary, indent=1))
    summaries.append(summary)
  logging.info("%s test %s", tag, " | ".join(_short(t) for t in tests)
               if held_out else NO_TEST)
  return summaries


def _write_run_files(workdir: epath.Path, run: setup.Run,
                     resumed_at: int | None) -> None:
  """run.json (after its compatibility check), splits, normaliser."""
  run_record.write(workdir, run.record, resumed_at)
  run_record.write_text_atomic(workdir / "splits.json",
                               json.dumps(run.record.splits, indent=1))
  run.normalizer.save(workdir / "normalization.json")


def _resume_step(mngrs, workdirs) -> int | None:
  """The newest step every member has a good checkpoint of; None: fresh.

  A checkpoint that fails its checksums is skipped (with a message) for the
  one before it; checkpoints newer than the step resumed from are deleted,
  so that the run writes them again.
  """
  if all(not m.all_steps() for m in mngrs):
    return None
  if any(not m.all_steps() for m in mngrs):
    missing = [str(w) for m, w in zip(mngrs, workdirs) if not m.all_steps()]
    raise run_record.IncompatibleRunError(
        f"Some members have checkpoints and {missing} have none; delete "
        "those workdirs' checkpoints/ or run the members singly.")
  good = [set(checkpoints.good_steps(m, w)) for m, w in zip(mngrs, workdirs)]
  common = set.intersection(*good)
  if not common:
    raise checkpoints.DamagedCheckpointError(
        f"No checkpoint step passes its checksums in every one of "
        f"{[str(w) for w in workdirs]} (good steps: "
        f"{[sorted(g) for g in good]}); delete their checkpoints/ and "
        f"{checkpoints.CHECKSUMS} to start over.")
  step = max(common)
  for m in mngrs:
    for newer in [s for s in m.all_steps() if s > step]:
      m.delete(newer)
  return step


def _check_finite(pending: list, first_step: int, mngrs, workdirs):
  """Per-member mean loss and grad norm since the last check, all finite."""
  fetched = jax.device_get(pending)
  for i, m in enumerate(fetched):
    loss, grad_norm = np.atleast_1d(m["loss"]), np.atleast_1d(m["grad_norm"])
    bad = np.flatnonzero(~(np.isfinite(loss) & np.isfinite(grad_norm)))
    if bad.size:
      last = [mngrs[j].latest_step() for j in bad]
      kept = "; ".join(
          f"the last good checkpoint is step {s} in {workdirs[j]}"
          if s is not None else
          f"no checkpoint had been written yet in {workdirs[j]}"
          for j, s in zip(bad, last))
      raise FloatingPointError(
          f"Non-finite loss or gradient at step {first_step + i + 1} "
          f"(loss={_floats(loss[bad])}, grad_norm={_floats(grad_norm[bad])})."
          f" Stopped without saving; {kept}. Lower the learning rate or check "
          "the input data for outliers.")
  return (np.mean([np.atleast_1d(m["loss"]) for m in fetched], axis=0),
          np.mean([np.atleast_1d(m["grad_norm"]) for m in fetched], axis=0))


def _floats(values, digits: int = 4) -> str:
  return " ".join(f"{float(v):.{digits}f}" for v in np.atleast_1d(values))


def _fmt_seconds(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (
      f"{s // 60}m{s % 60:02d}s")


def _short(record: dict) -> str:
  return ", ".join(f"{k}={v:.4f}" for k, v in record.items()
                   if isinstance(v, float))
