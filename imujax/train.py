"""One training loop for every objective: pretext or fine-tune.

State is a dict {"step", "params", "opt_state"}; `train_step` is a
module-level pure function, jitted with the state donated, run over a
`jax.sharding.Mesh` with one `data` axis (batch sharded, state replicated).

Resume order (explicit, big_vision style): a checkpoint in `workdir` →
`config.init_from` (pre-trained encoder, new head) → random initialisation.
Batches are a pure function of (seed, step), so a run killed and resumed from
its last checkpoint ends with exactly the numbers of an uninterrupted run.
"""

import dataclasses
import functools
import json
import time

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from imujax import evaluate
from imujax import input_pipeline
from imujax import models
from imujax import objectives

class IncompatibleCheckpointError(ValueError):
  """The workdir holds a checkpoint written by another config."""


def make_optimizer(phase: ml_collections.ConfigDict, params,
                   frozen: tuple[str, ...] = ()) -> optax.GradientTransformation:
  """AdamW with linear warmup + cosine decay and global-norm clipping.

  Weight decay applies to matrices only (not biases or norm scales). Top-level
  parameter groups named in `frozen` get no updates (e.g. ("encoder",) for a
  linear probe).
  """
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0., peak_value=phase.learning_rate,
      warmup_steps=min(phase.warmup_steps, max(phase.steps - 1, 0)),
      decay_steps=max(phase.steps, 1), end_value=0.01 * phase.learning_rate)
  # A callable mask: under multi_transform it sees only the trained subtree.
  decay_mask = lambda tree: jax.tree.map(lambda p: p.ndim >= 2, tree)  # noqa: E731
  tx = optax.chain(
      optax.clip_by_global_norm(phase.grad_clip),
      optax.adamw(schedule, weight_decay=phase.weight_decay, mask=decay_mask))
  if not frozen:
    return tx
  labels = {k: ("frozen" if k in frozen else "trained") for k in params}
  return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()},
                               labels)


def train_step(state: dict, batch: dict, rng: jax.Array, *, loss_fn,
               optimizer: optax.GradientTransformation):
  """One optimisation step; pure. Returns (new_state, metrics)."""
  rng = jax.random.fold_in(rng, state["step"])
  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state["params"], batch, rng)
  updates, opt_state = optimizer.update(grads, state["opt_state"],
                                        state["params"])
  params = optax.apply_updates(state["params"], updates)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
  return {"step": state["step"] + 1, "params": params,
          "opt_state": opt_state}, metrics


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """`devices` (default: all local devices) along one `data` axis."""
  return jax.sharding.Mesh(np.array(devices or jax.devices()), ("data",))


def jit_train_step(mesh, loss_fn, optimizer):
  """`train_step` jitted for `mesh`, with the state donated."""
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  return jax.jit(
      functools.partial(train_step, loss_fn=loss_fn, optimizer=optimizer),
      in_shardings=(replicated, sharded, replicated),
      out_shardings=(replicated, replicated),
      donate_argnums=0)


# ------------------------------------------------------------------ run files
def _flatten(config, prefix=""):
  out = {}
  for k, v in config.items():
    if isinstance(v, (dict, ml_collections.ConfigDict)):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def _check_compatible(workdir: epath.Path, run_info: dict) -> None:
  """Fails clearly when `workdir` was written by an incompatible config."""
  path = workdir / "run.json"
  if not path.exists():
    return
  old = _flatten(json.loads(path.read_text()))
  new = _flatten(run_info)
  diffs = [f"{k}: {old.get(k)!r} in the workdir vs {new.get(k)!r} now"
           for k in sorted(set(old) | set(new))
           if k.startswith(("model_config.", "phase", "objective",
                            "channel_names", "class_names", "splits.",
                            "labeled_recordings", "config.data.name",
                            "config.seed", "config.init_from"))
           and old.get(k) != new.get(k)]
  if diffs:
    raise IncompatibleCheckpointError(
        f"{workdir} holds a run from an incompatible config ("
        + "; ".join(diffs) + "). Use another --workdir, or delete this one "
        "to start over.")


def _append_jsonl(path: epath.Path, record: dict) -> None:
  with path.open("a") as f:
    f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: epath.Path, step: int) -> None:
  """Drops records written after `step` (by a run that was then killed)."""
  if path.exists():
    kept = [line for line in path.read_text().splitlines()
            if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _checkpoint_manager(workdir: epath.Path) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      workdir / "checkpoints",
      options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def load_encoder(init_from: str, cfg: models.ModelConfig):
  """The encoder params of the latest checkpoint of the run in `init_from`.

  Also returns that run's normaliser, so the encoder sees inputs scaled as in
  pre-training.
  """
  src = epath.Path(init_from)
  info_path = src / "run.json"
  if not info_path.exists():
    raise FileNotFoundError(
        f"init_from={init_from!r} has no run.json: point config.init_from at "
        "the workdir of a finished imujax run.")
  info = json.loads(info_path.read_text())
  src_cfg = models.ModelConfig(**info["model_config"])
  for field in ("in_dim", "cell", "hidden", "layers", "layer_norm"):
    if getattr(src_cfg, field) != getattr(cfg, field):
      raise IncompatibleCheckpointError(
          f"init_from={init_from!r} has model {field}="
          f"{getattr(src_cfg, field)!r} but this run has "
          f"{getattr(cfg, field)!r}; set config.model.{field} to match.")
  mngr = _checkpoint_manager(src)
  step = mngr.latest_step()
  if step is None:
    raise FileNotFoundError(f"init_from={init_from!r} has no checkpoint yet; "
                            "finish (or rerun) that run first.")
  # The whole params item (encoder and the pretext heads) restores; the heads
  # are then dropped.
  abstract = jax.eval_shape(lambda: models.init(jax.random.key(0), src_cfg))
  restored = mngr.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(abstract)))
  mngr.close()
  normalizer = input_pipeline.Normalizer(
      np.asarray(info["normalizer"]["mean"], np.float32),
      np.asarray(info["normalizer"]["std"], np.float32),
      list(info["channel_names"]))
  return restored["params"]["encoder"], normalizer, step


# ------------------------------------------------------------------- the loop
def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       phase: str) -> dict:
  """Trains one phase ("pretrain" or "finetune") in `workdir`; resumable.

  Returns the summary (also written to workdir/summary.json).
  """
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  pcfg = config[phase]
  data = input_pipeline.load(config.data.name, config.data.data_dir,
                             config.data.manual_dir)
  splits = input_pipeline.split_subjects(
      [r.subject for r in data.recordings], config.seed,
      config.data.val_subjects, config.data.test_subjects)
  by_split = {k: input_pipeline.select(data.recordings, v)
              for k, v in splits.items()}

  objective = pcfg.objective if phase == "pretrain" else "classification"
  cfg = models.ModelConfig(
      in_dim=len(data.channel_names), cell=config.model.cell,
      hidden=config.model.hidden, layers=config.model.layers,
      dropout=config.model.dropout, layer_norm=config.model.layer_norm,
      num_classes=len(data.class_names) if objective == "classification" else 0,
      reconstruct=objective == "masked_reconstruction",
      unroll=config.model.unroll)

  key = jax.random.key(config.seed)
  init_key, step_key, eval_key = jax.random.split(key, 3)
  params = models.init(init_key, cfg)
  init_from = config.init_from if phase == "finetune" else ""
  if init_from:
    params["encoder"], normalizer, src_step = load_encoder(init_from, cfg)
    if normalizer.channel_names != data.channel_names:
      raise IncompatibleCheckpointError(
          f"init_from={init_from!r} was trained on channels "
          f"{normalizer.channel_names}, this dataset has {data.channel_names}.")
    logging.info("Encoder from %s (step %d).", init_from, src_step)
  else:
    normalizer = input_pipeline.Normalizer.fit(by_split["train"],
                                               data.channel_names)

  train_recs = by_split["train"]
  if objective == "classification":
    train_recs = input_pipeline.label_budget(
        train_recs, config.seed, subjects=config.data.labeled_subjects,
        recordings_budget=config.data.labeled_recordings)

  run_info = {
      "phase": phase, "objective": objective, "config": config.to_dict(),
      "model_config": dataclasses.asdict(cfg), "splits": splits,
      "labeled_recordings": sorted(r.recording for r in train_recs),
      "channel_names": data.channel_names, "class_names": data.class_names,
      "sample_rate_hz": data.sample_rate_hz,
      "normalizer": {"mean": normalizer.mean.tolist(),
                     "std": normalizer.std.tolist()},
  }
  _check_compatible(workdir, run_info)
  (workdir / "run.json").write_text(json.dumps(run_info, indent=1))
  (workdir / "splits.json").write_text(json.dumps(splits, indent=1))
  normalizer.save(workdir / "normalization.json")

  loss_fn = _loss_fn(objective, cfg, config)
  # Built once: a new partial per evaluation would recompile each time.
  eval_loss_fn = functools.partial(loss_fn, dropout=False)
  frozen = ("encoder",) if (phase == "finetune" and
                            pcfg.protocol == "linear_probe") else ()
  optimizer = make_optimizer(pcfg, params, frozen)
  state = {"step": jnp.zeros((), jnp.int32), "params": params,
           "opt_state": optimizer.init(params)}

  metrics_path = workdir / "metrics.jsonl"
  mngr = _checkpoint_manager(workdir)
  start = mngr.latest_step()
  if start is not None:
    state = _restore(mngr, start, state, workdir)
    _truncate_metrics(metrics_path, start)
    logging.info("Resumed from %s at step %d.", workdir, start)
  else:
    start = 0
    metrics_path.write_text("")

  mesh = make_mesh()
  if pcfg.batch_size % mesh.size:
    raise ValueError(f"config.{phase}.batch_size={pcfg.batch_size} is not "
                     f"divisible by the {mesh.size} devices.")
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  batch_sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data"))
  state = jax.device_put(state, replicated)
  step_fn = jit_train_step(mesh, loss_fn, optimizer)

  def evaluate_now(split, step):
    if objective == "classification":
      result = evaluate.evaluate_classifier(
          state["params"], cfg,
          input_pipeline.whole_recordings(
              by_split[split], normalizer, config.data.eval_batch_size,
              input_pipeline.padded_length(data.recordings)),
          sharding=(batch_sharding
                    if config.data.eval_batch_size % mesh.size == 0 else None))
    else:
      batches = [input_pipeline.sample_windows(
          by_split[split], normalizer, config.data.window, pcfg.batch_size,
          config.seed, i, stream=1) for i in range(8)]  # Fixed windows.
      result = evaluate.evaluate_loss(state["params"], eval_loss_fn, batches,
                                      eval_key)
    record = {"step": step, "split": split, **result}
    _append_jsonl(metrics_path, record)
    return record

  pending, t0, t_last = [], time.time(), time.time()
  steps_since_log = 0
  try:
    for step in range(start, pcfg.steps):
      batch = input_pipeline.sample_windows(
          train_recs, normalizer, config.data.window, pcfg.batch_size,
          config.seed, step)
      batch = jax.device_put(batch, batch_sharding)
      state, metrics = step_fn(state, batch, step_key)
      pending.append(metrics)
      steps_since_log += 1
      done = step + 1
      is_last = done == pcfg.steps
      if done % config.log_every == 0 or is_last or (
          done % config.checkpoint_every == 0):
        summary = _check_finite(pending, done - len(pending), mngr, workdir)
        pending = []
        now = time.time()
        rate = steps_since_log / max(now - t_last, 1e-9)
        t_last, steps_since_log = now, 0
        eta = (pcfg.steps - done) / max(rate, 1e-9)
        logging.info("[%s] step %d/%d loss %.4f grad_norm %.3f | %.1f steps/s, "
                     "ETA %s", phase, done, pcfg.steps, summary["loss"],
                     summary["grad_norm"], rate, _fmt_seconds(eta))
      if done % config.eval_every == 0 or is_last:
        record = evaluate_now("val", done)
        logging.info("[%s] step %d val %s", phase, done, _short(record))
      if done % config.checkpoint_every == 0 or is_last:
        mngr.save(done, args=_save_args(state))
  finally:
    # Pending saves are good checkpoints: finish them even on an error.
    mngr.wait_until_finished()
    mngr.close()

  final_step = int(state["step"])
  test = evaluate_now("test", final_step)
  summary = {"phase": phase, "objective": objective, "step": final_step,
             "test": test, "splits": splits,
             "labeled_recordings": len(train_recs),
             "class_names": data.class_names,
             "wall_s_this_session": time.time() - t0}
  (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
  logging.info("[%s] test %s", phase, _short(test))
  return summary


def _loss_fn(objective: str, cfg: models.ModelConfig, config):
  if objective == "masked_reconstruction":
    return functools.partial(objectives.masked_reconstruction_loss, cfg=cfg,
                             mask_ratio=config.pretrain.mask_ratio,
                             span=config.pretrain.mask_span)
  return functools.partial(objectives.classification_loss, cfg=cfg)


def _save_args(state):
  return ocp.args.Composite(
      params=ocp.args.StandardSave(state["params"]),
      opt_state=ocp.args.StandardSave(state["opt_state"]),
      meta=ocp.args.JsonSave({"step": int(state["step"])}))


def _restore(mngr, step: int, state: dict, workdir) -> dict:
  abstract = jax.eval_shape(lambda: state)
  try:
    restored = mngr.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract["params"]),
        opt_state=ocp.args.StandardRestore(abstract["opt_state"]),
        meta=ocp.args.JsonRestore()))
  except (ValueError, KeyError, TypeError) as e:
    raise IncompatibleCheckpointError(
        f"The checkpoint at step {step} in {workdir} does not match this "
        f"config's model ({e}). Use another --workdir or delete it.") from e
  return {"step": jnp.asarray(restored["meta"]["step"], jnp.int32),
          "params": restored["params"], "opt_state": restored["opt_state"]}


def _check_finite(pending: list, first_step: int, mngr, workdir) -> dict:
  """Host-side check of the metrics since the last check; averages them."""
  fetched = jax.device_get(pending)
  for i, m in enumerate(fetched):
    if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
      last = mngr.latest_step()
      kept = (f"the last good checkpoint is step {last} in "
              f"{workdir / 'checkpoints'}" if last is not None else
              "no checkpoint had been written yet")
      raise FloatingPointError(
          f"Non-finite loss or gradient at step {first_step + i + 1} "
          f"(loss={m['loss']}, grad_norm={m['grad_norm']}). Stopped without "
          f"saving; {kept}. Lower the learning rate or check the input data "
          "for outliers.")
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0]}


def _fmt_seconds(s: float) -> str:
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (
      f"{s // 60}m{s % 60:02d}s")


def _short(record: dict) -> str:
  return ", ".join(f"{k}={v:.4f}" for k, v in record.items()
                   if isinstance(v, float))

