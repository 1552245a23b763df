r"""K runs that differ only in seed, trained as one vmapped, jitted program.

Each member is a complete imujax run of its own: `train.prepare` gives it its
own subject split, labelled recordings, normaliser, initial params (or
`init_from` encoder), and its workdir gets the files a single run writes
(run.json, splits.json, normalization.json, metrics.jsonl, checkpoints/,
summary.json), so reports and `init_from` treat members like single runs.
The train states are stacked on a leading member axis and one
`jax.jit(jax.vmap(train.train_step))` updates all of them; host batches are
<float32>[K, batch, time, channels], each member's a pure function of its own
(seed, step) exactly as in a single run, so member k follows the single run of
seed k (to float rounding).

Shared across members (so they must agree): model shapes, the optimizer and
its schedule, the loss program — except the trained phase's learning rate and
weight decay (`MEMBER_HPARAMS`), which members may set each for themselves
(a learning-rate sweep as one program); then every member's optimizer is built
inside the vmapped step from its own values. A pretext loss that bakes
per-seed constants into its program (simclr's normaliser statistics) cannot
share one program; then the members are trained one after another with
`train.train_and_evaluate` instead, and the log says so.

  python -m imujax.multiseed --config=configs/test.py --phase=finetune \
      --members='[{"seed": 0, "workdir": "/tmp/ms/s0"},
                  {"seed": 1, "workdir": "/tmp/ms/s1"}]'

Members may add "init_from" (their own pre-trained workdir) and "set":
{"finetune.learning_rate": 3e-3, "finetune.weight_decay": 0.1} (of the phase
they train). Rerunning the command resumes every member from its last
checkpoint.

With several devices the member axis is split over them (`member_mesh`). On
a CPU, `--cpu_devices=K` presents the CPU as K devices, one member each,
which run in parallel: about 1.7x the throughput of K sequential runs on a
2-core machine, where one vmapped device is slower than sequential
(imujax/bench_seeds.py, README "Vectorised seeds").
"""

import copy
import functools
import json
import time

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from imujax import checkpoints
from imujax import configlib
from imujax import input_pipeline
from imujax import runtime
from imujax import train


MEMBER_HPARAMS = configlib.MEMBER_HPARAMS


def member_configs(config: ml_collections.ConfigDict, members: list[dict]):
  """One config per member: `config` with the member's seed (and init_from).

  A member may also set "<phase>.learning_rate" / "<phase>.weight_decay"
  under "set", e.g. {"seed": 0, "set": {"finetune.learning_rate": 3e-3}}.
  """
  out = []
  for m in members:
    c = copy.deepcopy(config)
    c.seed = int(m["seed"])
    if "init_from" in m:
      c.init_from = m["init_from"]
    for key, value in m.get("set", {}).items():
      section, _, name = key.partition(".")
      if section not in ("pretrain", "finetune") or name not in MEMBER_HPARAMS:
        raise ValueError(
            f"Member key {key!r} cannot differ between members of one "
            f"program; only <pretrain|finetune>.{{{', '.join(MEMBER_HPARAMS)}}}"
            " can (run other differences as separate runs).")
      try:
        c[section][name] = float(value)
      except (TypeError, ValueError):
        raise ValueError(f"Member {m.get('workdir', m['seed'])!r}: {key}="
                         f"{value!r} is not a number.") from None
    out.append(c)
  return out


def same_program(loss_fns: list, params, batch, rng) -> bool:
  """Whether every loss traces to the same program with the same constants."""
  def trace(fn):
    closed = jax.make_jaxpr(fn)(params, batch, rng)
    return str(closed.jaxpr), [np.asarray(c) for c in closed.consts]
  ref_text, ref_consts = trace(loss_fns[0])
  for fn in loss_fns[1:]:
    text, consts = trace(fn)
    if text != ref_text or len(consts) != len(ref_consts) or not all(
        a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(consts, ref_consts)):
      return False
  return True


def stack(trees: list):
  """Stacks pytrees on a new leading member axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree, k: int):
  """Member k of a stacked pytree (also inside a traced function)."""
  return jax.tree.map(lambda x: x[k], tree)


def local_member(tree, k: int):
  """Member k of a stacked pytree of arrays, read on the device that holds it.

  Indexing an array split over devices (`x[k]`) compiles an SPMD program that
  all-reduces over every device; launched from the host between the members'
  steps, such collectives can wait on each other and deadlock XLA:CPU (seen:
  "Termination timeout for all reduce"). This takes member k from its own
  device's shard instead: no collective, the result stays on that device.
  """
  def leaf(x):
    for shard in x.addressable_shards:
      rows = range(x.shape[0])[shard.index[0]]
      if k in rows:
        return shard.data[k - rows.start]
    raise IndexError(f"member {k} is on no local device")
  return jax.tree.map(leaf, tree)


def member_mesh(num_members: int, devices=None) -> jax.sharding.Mesh:
  """The most leading `devices` (default: local) that split the members evenly.

  On one `members` axis: with d devices each holds num_members / d members and
  runs its share of the vmapped step in parallel with the others (several
  accelerators, or a CPU split into devices with `--cpu_devices`).
  """
  devices = list(devices or jax.local_devices())
  n = max(d for d in range(1, len(devices) + 1) if num_members % d == 0)
  return jax.sharding.Mesh(np.array(devices[:n]), ("members",))


def member_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
  """Leading (member) axis split over `mesh`; the rest of each array whole."""
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))


def make_step(loss_fn, optimizer, impl: str = "vmap", mesh=None):
  """`train.train_step` over the member axis, jitted, state donated.

  `optimizer` is shared by the members, or a function of one member's
  hyper-parameters (a dict of scalars, traced) returning its optimizer; then
  the state carries them, <float32>[K] each, under "hparams".

  impl "vmap" batches the members' matmuls; with a `mesh` of several devices
  (`member_mesh`) the member axis is split over them, inputs and outputs
  sharded alike (no communication: members are independent). "loop" traces
  one step per member into the same program (independent subgraphs) on one
  device. Which is faster depends on the machine: imujax/bench_seeds.py.
  """
  if isinstance(optimizer, optax.GradientTransformation):
    step = functools.partial(train.train_step, loss_fn=loss_fn,
                             optimizer=optimizer)
  else:
    step = functools.partial(_step_with_hparams, loss_fn=loss_fn,
                             optimizer_for=optimizer)
  if impl == "vmap":
    over_members = jax.vmap(step)
  elif impl == "loop":
    if mesh is not None and mesh.size > 1:
      raise ValueError("impl='loop' runs on one device; use impl='vmap' to "
                       f"split members over {mesh.size} devices.")

    def over_members(state, batch, rng):
      outs = [step(member(state, k), member(batch, k), rng[k])
              for k in range(rng.shape[0])]
      return stack([o[0] for o in outs]), stack([o[1] for o in outs])
  else:
    raise ValueError(f"impl={impl!r}; choose 'vmap' or 'loop'.")
  if mesh is None:
    return jax.jit(over_members, donate_argnums=0)
  members = member_sharding(mesh)
  return jax.jit(over_members, in_shardings=(members,) * 3,
                 out_shardings=(members, members), donate_argnums=0)


def _step_with_hparams(state, batch, rng, *, loss_fn, optimizer_for):
  """One member's step with the optimizer of its own hyper-parameters."""
  hparams = state["hparams"]
  core = {k: v for k, v in state.items() if k != "hparams"}
  core, metrics = train.train_step(core, batch, rng, loss_fn=loss_fn,
                                   optimizer=optimizer_for(hparams))
  return {**core, "hparams": hparams}, metrics


def member_hparams(configs: list, phase: str) -> dict:
  """{key: [value per member]} of the MEMBER_HPARAMS in which members differ."""
  out = {}
  for key in MEMBER_HPARAMS:
    values = [float(c[phase][key]) for c in configs]
    if len(set(values)) > 1:
      out[key] = values
  return out


def host_batch(runs: list, configs: list, phase: str, step: int) -> dict:
  """<[K, batch, ...]> the batch each member's single run would draw."""
  batches = [input_pipeline.sample_windows(
      r.train_recordings, r.normalizer, c.data.window, c[phase].batch_size,
      c.seed, step) for r, c in zip(runs, configs)]
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def step_keys(configs: list) -> jax.Array:
  """Each member's training key, as `train.train_and_evaluate` derives it."""
  return jnp.stack([jax.random.split(jax.random.key(c.seed))[0]
                    for c in configs])


def _check_compatible(configs, runs, phase):
  """Members must share shapes, optimizer and schedule; say which key differs."""
  def shared(c):
    d = c.to_dict()
    d[phase] = {k: v for k, v in d[phase].items() if k not in MEMBER_HPARAMS}
    return d
  ref = shared(configs[0])
  for c in configs[1:]:
    this = shared(c)
    for key in ("model", phase):
      if this[key] != ref[key]:
        raise ValueError(f"Multiseed members differ in config.{key} "
                         f"({this[key]} vs {ref[key]}); only seed, "
                         f"init_from and {phase}.{{{', '.join(MEMBER_HPARAMS)}}}"
                         " may differ.")
    for key in ("window", "name"):
      if c.data[key] != configs[0].data[key]:
        raise ValueError(f"Multiseed members differ in config.data.{key}.")
  for r in runs[1:]:
    if r.cfg != runs[0].cfg:
      raise ValueError(f"Multiseed members have different model shapes "
                       f"({r.cfg} vs {runs[0].cfg}).")


def _resume_step(mngrs, workdirs) -> int | None:
  """The newest step every member has a checkpoint of (members save together)."""
  latest = [m.latest_step() for m in mngrs]
  if all(s is None for s in latest):
    return None
  if any(s is None for s in latest):
    missing = [str(w) for w, s in zip(workdirs, latest) if s is None]
    raise checkpoints.IncompatibleCheckpointError(
        f"Some multiseed members have checkpoints and {missing} have none; "
        "delete those workdirs' checkpoints/ or run the members singly.")
  common = min(latest)
  for m, w in zip(mngrs, workdirs):
    if common not in m.all_steps():
      raise checkpoints.IncompatibleCheckpointError(
          f"{w} no longer holds a checkpoint of step {common}, the newest "
          "step all members share; run the members singly to resume them.")
  return common


def train_and_evaluate(configs: list, workdirs: list, phase: str,
                       impl: str = "vmap") -> list:
  """Trains the members of `configs` (one per workdir) together; resumable.

  Returns the members' summaries (also written to each workdir/summary.json).
  """
  t0 = time.time()
  workdirs = [epath.Path(w) for w in workdirs]
  runs = [train.prepare(c, phase) for c in configs]
  _check_compatible(configs, runs, phase)
  pcfg = configs[0][phase]
  probe = host_batch(runs[:1], configs[:1], phase, 0)
  probe = jax.tree.map(lambda x: x[0], probe)
  if not same_program([r.loss_fn for r in runs], runs[0].params, probe,
                      jax.random.key(0)):
    logging.warning("The members' %s losses differ in baked-in constants "
                    "(per-seed statistics); training them one by one.",
                    runs[0].objective)
    return [train.train_and_evaluate(c, str(w), phase)
            for c, w in zip(configs, workdirs)]

  for run, w in zip(runs, workdirs):
    w.mkdir(parents=True, exist_ok=True)
    checkpoints.write_run(w, run.info)
    (w / "splits.json").write_text(json.dumps(run.info["splits"], indent=1))
    run.normalizer.save(w / "normalization.json")

  optimizer = train.phase_optimizer(configs[0], phase, runs[0].params)
  states = [{"step": jnp.zeros((), jnp.int32), "params": r.params,
             "opt_state": optimizer.init(r.params)} for r in runs]
  hparams = member_hparams(configs, phase)
  if hparams:  # Members differ in them: each steps with its own optimizer.
    logging.info("Members differ in %s: %s", phase, hparams)
    optimizer = functools.partial(train.phase_optimizer, configs[0], phase,
                                  runs[0].params)
  mngrs = [checkpoints.manager(w) for w in workdirs]
  metrics_paths = [w / "metrics.jsonl" for w in workdirs]
  start = _resume_step(mngrs, workdirs)
  if start is not None:
    states = [checkpoints.restore_state(m, start, s, w)
              for m, s, w in zip(mngrs, states, workdirs)]
    for p in metrics_paths:
      checkpoints.truncate_metrics(p, start)
    logging.info("Resumed %d members at step %d.", len(runs), start)
  else:
    start = 0
    for p in metrics_paths:
      p.write_text("")

  mesh = member_mesh(len(runs), None if impl == "vmap" else
                     jax.local_devices()[:1])
  if mesh.size > 1:
    logging.info("Members split over %d devices (%d each).", mesh.size,
                 len(runs) // mesh.size)
  state = stack(states)
  if hparams:
    state["hparams"] = {k: jnp.asarray(v, jnp.float32)
                        for k, v in hparams.items()}
  # Placed as the step returns it, so the second call reuses the compilation.
  state = jax.device_put(state, member_sharding(mesh))
  step_fn = make_step(runs[0].loss_fn, optimizer, impl, mesh)
  keys = jax.device_put(step_keys(configs), member_sharding(mesh))
  evaluators = [
      train.Evaluator(r, c, pcfg.batch_size,
                       jax.random.split(jax.random.key(c.seed))[1], None)
      for r, c in zip(runs, configs)]

  def evaluate_now(split, step):
    records = []
    for k, (evaluator, path) in enumerate(zip(evaluators, metrics_paths)):
      record = {"step": step, "split": split,
                **evaluator(local_member(state["params"], k), split)}
      checkpoints.append_jsonl(path, record)
      records.append(record)
    return records

  config = configs[0]
  pending, t_last, since = [], time.time(), 0
  try:
    for step in range(start, pcfg.steps):
      batch = host_batch(runs, configs, phase, step)
      state, metrics = step_fn(state, batch, keys)
      pending.append(metrics)
      since += 1
      done = step + 1
      is_last = done == pcfg.steps
      if done % config.log_every == 0 or is_last or (
          done % config.checkpoint_every == 0):
        loss = _check_finite(pending, done - len(pending), workdirs)
        pending = []
        now = time.time()
        logging.info("[%s x%d] step %d/%d loss %s | %.1f steps/s per member",
                     phase, len(runs), done, pcfg.steps,
                     " ".join(f"{x:.4f}" for x in loss),
                     since / max(now - t_last, 1e-9))
        t_last, since = now, 0
      if done % config.eval_every == 0 or is_last:
        records = evaluate_now("val", done)
        logging.info("[%s x%d] step %d val macro_f1 %s", phase, len(runs),
                     done, " ".join(f"{r.get('macro_f1', r.get('loss')):.4f}"
                                    for r in records))
      if done % config.checkpoint_every == 0 or is_last:
        for k, m in enumerate(mngrs):  # Saved as a one-device run's.
          m.save(done, args=checkpoints.save_args(
              jax.device_put(local_member(state, k),
                             jax.local_devices()[0])))
  finally:
    for m in mngrs:
      m.wait_until_finished()
      m.close()

  final_step = int(local_member(state["step"], 0))
  tests = evaluate_now("test", final_step)
  summaries = []
  for run, w, test in zip(runs, workdirs, tests):
    summary = {"phase": phase, "objective": run.objective, "step": final_step,
               "test": test, "splits": run.info["splits"],
               "labeled_recordings": len(run.train_recordings),
               "class_names": run.data.class_names,
               "wall_s_this_session": time.time() - t0,
               "multiseed_members": len(runs)}
    (w / "summary.json").write_text(json.dumps(summary, indent=1))
    summaries.append(summary)
  return summaries


def _check_finite(pending: list, first_step: int, workdirs) -> np.ndarray:
  """Per-member mean loss since the last check; raises on a non-finite one."""
  fetched = jax.device_get(pending)
  for i, m in enumerate(fetched):
    bad = ~(np.isfinite(m["loss"]) & np.isfinite(m["grad_norm"]))
    if bad.any():
      names = [str(workdirs[k]) for k in np.flatnonzero(bad)]
      raise FloatingPointError(
          f"Non-finite loss or gradient at step {first_step + i + 1} in "
          f"members {names}. Stopped without saving this step; every member "
          "resumes from its last checkpoint. Lower the learning rate or "
          "check the input data.")
  return np.mean([m["loss"] for m in fetched], axis=0)


# ------------------------------------------------------------------ CLI
def _define_flags():
  """Flags of the command line only: importing this module defines none."""
  config = config_flags.DEFINE_config_file(
      "config", None, "Config file shared by the members (with :args).",
      lock_config=True)
  members = flags.DEFINE_string(
      "members", None, 'JSON list of {"seed", "workdir"[, "init_from"]}.')
  phase = flags.DEFINE_enum("phase", None, ["pretrain", "finetune"],
                            "Which phase the members train.")
  impl = flags.DEFINE_enum("impl", "vmap", ["vmap", "loop"],
                           "How one program steps the members.")
  cpu_devices = flags.DEFINE_integer(
      "cpu_devices", 0, "Split the host CPU into this many JAX devices and "
      "the members over them (vmap; e.g. the number of cores). 0: JAX's "
      "default.")
  flags.mark_flags_as_required(["config", "members", "phase"])
  return config, members, phase, impl, cpu_devices


def main(argv, config_flag, members_flag, phase_flag, impl_flag,
         cpu_devices_flag):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.info("%s", runtime.tune_malloc())  # As imujax.main does.
  logging.info("%s", runtime.split_cpu(cpu_devices_flag.value))
  config = config_flag.value
  config.mode = phase_flag.value  # What each member is, for check and run.json.
  configlib.check(config)
  members = json.loads(members_flag.value)
  configs = member_configs(config, members)
  for c in configs:
    configlib.check(c)
  train_and_evaluate(configs, [m["workdir"] for m in members],
                     phase_flag.value, impl_flag.value)


if __name__ == "__main__":
  app.run(functools.partial(main, **dict(zip(
      ("config_flag", "members_flag", "phase_flag", "impl_flag",
       "cpu_devices_flag"),
      _define_flags()))))
