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
import types
from typing import Any, NamedTuple

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from imujax import checkpoints
from imujax import distributed
from imujax import evaluate
from imujax import input_pipeline
from imujax import models
from imujax import objectives
from imujax import pretext_options
from imujax import transfer

IncompatibleCheckpointError = checkpoints.IncompatibleCheckpointError

def make_optimizer(phase: ml_collections.ConfigDict, params, *,
                   frozen_layers: int = 0,
                   layer_decay: float = 1.0) -> optax.GradientTransformation:
  """AdamW with linear warmup + cosine decay and global-norm clipping.

  Weight decay applies to matrices only (not biases or norm scales). Fine-tune
  protocols act on the encoder's layers: the lowest `frozen_layers` get no
  updates (all of them: a linear probe), and with `layer_decay` < 1 encoder
  layer i of L learns at `layer_decay ** (L - i)` times the head's rate. The
  input adapter, when there is one, is new and always learns at full rate.
  """
  # The shape of the schedule times the rate, so that the rate may be a
  # traced value (imujax.multiseed: one rate per member); optax's schedule
  # branches on its peak value in Python.
  shape = optax.warmup_cosine_decay_schedule(
      init_value=0., peak_value=1.,
      warmup_steps=min(phase.warmup_steps, max(phase.steps - 1, 0)),
      decay_steps=max(phase.steps, 1), end_value=0.01)
  schedule = lambda step: phase.learning_rate * shape(step)  # noqa: E731
  # A callable mask: under multi_transform it sees only its own subtree.
  decay_mask = lambda tree: jax.tree.map(lambda p: p.ndim >= 2, tree)  # noqa: E731

  def adamw(scale):
    return optax.adamw(lambda step: scale * schedule(step),
                       weight_decay=phase.weight_decay, mask=decay_mask)

  num_layers = len([k for k in params.get("encoder", {})
                    if k.startswith("layer_")])

  def label(path, _):
    keys = [getattr(p, "key", None) for p in path]
    if keys[0] != "encoder" or not str(keys[1]).startswith("layer_"):
      return "1.0"
    i = int(keys[1].split("_")[1])
    if i < frozen_layers:
      return "frozen"
    return repr(float(layer_decay ** (num_layers - i)))

  labels = jax.tree_util.tree_map_with_path(label, params)
  groups = set(jax.tree.leaves(labels))
  clip = optax.clip_by_global_norm(phase.grad_clip)
  if groups == {"1.0"}:
    return optax.chain(clip, adamw(1.0))
  transforms = {g: optax.set_to_zero() if g == "frozen" else adamw(float(g))
                for g in groups}
  return optax.chain(clip, optax.multi_transform(transforms, labels))


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


# ------------------------------------------------------------------ the run
class Run(NamedTuple):
  """Everything a phase trains and evaluates on, fixed before step 0."""
  objective: str            # "classification" or a pretext kind.
  data: input_pipeline.Dataset
  by_split: dict            # "train" | "val" | "test" -> recordings.
  train_recordings: list    # The labelled (or pretext) training recordings.
  normalizer: input_pipeline.Normalizer
  cfg: models.ModelConfig
  params: dict
  loss_fn: Any              # (params, batch, rng) -> (loss, metrics).
  info: dict                # Written to run.json.


def _objective(config, phase: str) -> str:
  if phase == "finetune" or config.pretrain.objective == "supervised":
    return "classification"
  return config.pretrain.objective


def prepare(config: ml_collections.ConfigDict, phase: str) -> Run:
  """Loads data, splits subjects, builds the model and its loss for a phase.

  The pretrain phase reads `pretrain.dataset` when set (supervised or
  self-supervised pre-training on another dataset); everything else reads
  `data.name`. Subjects are split with the same seed in both phases.
  """
  pcfg = config[phase]
  objective = _objective(config, phase)
  name, manual_dir = config.data.name, config.data.manual_dir
  spec = config.data.spec
  if phase == "pretrain" and pcfg.dataset:
    name, manual_dir, spec = pcfg.dataset, pcfg.manual_dir, ""
  data = input_pipeline.load(name, config.data.data_dir, manual_dir, spec)

  init_from = config.init_from if phase == "finetune" else ""
  source = checkpoints.read_run(init_from) if init_from else None
  plan = transfer.ChannelPlan(None, False, "")
  if source:
    plan = transfer.plan(source["channel_names"], data.channel_names,
                         pcfg.channels)
    if plan.select is not None:
      data = data._replace(
          channel_names=[data.channel_names[i] for i in plan.select],
          recordings=[r._replace(signals=r.signals[:, plan.select])
                      for r in data.recordings])

  splits = input_pipeline.split_subjects(
      [r.subject for r in data.recordings], config.seed,
      config.data.val_subjects, config.data.test_subjects)
  if source and source["dataset"] == name:
    leaked = sorted(set(source["splits"]["train"]) & set(splits["test"]))
    if leaked:
      raise ValueError(
          f"init_from={init_from!r} was trained on subjects {leaked}, which "
          "are test subjects of this run (the seeds differ?). Pre-train with "
          "the same seed and data split as the fine-tuning run.")
  by_split = {k: input_pipeline.select(data.recordings, v)
              for k, v in splits.items()}
  normalizer = input_pipeline.Normalizer.fit(by_split["train"],
                                             data.channel_names)
  train_recs = by_split["train"]
  if phase == "finetune":
    train_recs = input_pipeline.label_budget(
        train_recs, config.seed, subjects=config.data.labeled_subjects,
        recordings_budget=config.data.labeled_recordings)

  src_cfg = models.ModelConfig(**source["model_config"]) if source else None
  cfg = models.ModelConfig(
      in_dim=len(data.channel_names), cell=config.model.cell,
      hidden=config.model.hidden, layers=config.model.layers,
      dropout=config.model.dropout, layer_norm=config.model.layer_norm,
      num_classes=(len(data.class_names) if objective == "classification"
                   else 0),
      unroll=config.model.unroll,
      adapter_dim=src_cfg.in_dim if plan.adapter else 0)

  init_key = jax.random.fold_in(jax.random.key(config.seed), 0)
  params = {"encoder": models.init_encoder(init_key, cfg)}
  if objective == "classification":
    params["classifier"] = models.init_classifier(
        jax.random.fold_in(init_key, 1), cfg)
    loss_fn = functools.partial(objectives.classification_loss, cfg=cfg)
  else:
    pretext = objectives.PRETEXTS[objective]
    opts = pretext_options.validate(objective, pcfg[objective].to_dict())
    # Augmentations in physical units need the channels and their scaling.
    opts.update(objectives.data_options(data.channel_names, normalizer.mean,
                                        normalizer.std))
    params.update(pretext.init_heads(jax.random.fold_in(init_key, 2), cfg,
                                     opts))
    loss_fn = functools.partial(pretext.loss, cfg=cfg, opts=opts)

  source_info = {}
  if source:
    encoder, src_step = _load_encoder(init_from, src_cfg, cfg)
    if plan.adapter:
      encoder["adapter"] = transfer.adapter_init(source["channel_names"],
                                                 data.channel_names)
    params["encoder"] = encoder
    source_info = {"init_from": init_from, "step": src_step,
                   "dataset": source["dataset"],
                   "objective": source["objective"], "channels": plan.note}
    logging.info("Encoder from %s (step %d; %s).", init_from, src_step,
                 plan.note)

  info = {
      "phase": phase, "objective": objective, "dataset": name,
      "config": config.to_dict(), "model_config": dataclasses.asdict(cfg),
      "splits": splits,
      "labeled_recordings": sorted(r.recording for r in train_recs),
      "channel_names": data.channel_names, "class_names": data.class_names,
      "sample_rate_hz": data.sample_rate_hz,
      "normalizer": {"mean": normalizer.mean.tolist(),
                     "std": normalizer.std.tolist()},
      "source": source_info,
  }
  return Run(objective, data, by_split, train_recs, normalizer, cfg, params,
             loss_fn, info)


def _load_encoder(init_from: str, src_cfg: models.ModelConfig,
                  cfg: models.ModelConfig):
  """The pre-trained encoder of `init_from`, checked against this model."""
  for field in ("cell", "hidden", "layers", "layer_norm"):
    if getattr(src_cfg, field) != getattr(cfg, field):
      raise IncompatibleCheckpointError(
          f"init_from={init_from!r} has model {field}="
          f"{getattr(src_cfg, field)!r} but this run has "
          f"{getattr(cfg, field)!r}; set config.model.{field} to match.")
  stored, step = checkpoints.restore_params(init_from)
  encoder = jax.tree.map(jnp.asarray, stored["encoder"])
  encoder.pop("adapter", None)  # An earlier adapter belongs to its dataset.
  return encoder, step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       phase: str) -> dict:
  """Trains one phase ("pretrain" or "finetune") in `workdir`; resumable.

  Returns the summary (also written to workdir/summary.json).
  """
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  pcfg = config[phase]
  run = prepare(config, phase)
  writer = jax.process_index() == 0  # One process writes files.
  if writer:
    checkpoints.write_run(workdir, run.info)
    (workdir / "splits.json").write_text(json.dumps(run.info["splits"],
                                                    indent=1))
    run.normalizer.save(workdir / "normalization.json")

  optimizer = phase_optimizer(config, phase, run.params)
  state = {"step": jnp.zeros((), jnp.int32), "params": run.params,
           "opt_state": optimizer.init(run.params)}
  metrics_path = workdir / "metrics.jsonl"
  mngr = checkpoints.manager(workdir)
  start = mngr.latest_step()
  if start is not None:
    state = checkpoints.restore_state(mngr, start, state, workdir)
    if writer:
      checkpoints.truncate_metrics(metrics_path, start)
    logging.info("Resumed from %s at step %d.", workdir, start)
  else:
    start = 0
    if writer:
      metrics_path.write_text("")

  mesh = make_mesh()
  if pcfg.batch_size % mesh.size:
    raise ValueError(f"config.{phase}.batch_size={pcfg.batch_size} is not "
                     f"divisible by the {mesh.size} devices.")
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  batch_sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data"))
  state = jax.device_put(state, replicated)
  step_fn = jit_train_step(mesh, run.loss_fn, optimizer)
  step_key, eval_key = jax.random.split(jax.random.key(config.seed))
  evaluator = Evaluator(run, config, pcfg.batch_size, eval_key,
                         batch_sharding if config.data.eval_batch_size
                         % mesh.size == 0 else None)

  def evaluate_now(split, step):
    record = {"step": step, "split": split,
              **evaluator(state["params"], split)}
    if writer:
      checkpoints.append_jsonl(metrics_path, record)
    return record

  pending, t0, t_last = [], time.time(), time.time()
  steps_since_log = 0
  try:
    for step in range(start, pcfg.steps):
      batch = input_pipeline.sample_windows(
          run.train_recordings, run.normalizer, config.data.window,
          pcfg.batch_size, config.seed, step)
      batch = distributed.to_global(
          distributed.local_part(batch, batch_sharding), batch_sharding)
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
        logging.info("[%s] step %d/%d loss %.4f grad_norm %.3f | %.1f "
                     "steps/s, ETA %s", phase, done, pcfg.steps,
                     summary["loss"], summary["grad_norm"], rate,
                     _fmt_seconds(eta))
      if done % config.eval_every == 0 or is_last:
        record = evaluate_now("val", done)
        logging.info("[%s] step %d val %s", phase, done, _short(record))
      if done % config.checkpoint_every == 0 or is_last:
        mngr.save(done, args=checkpoints.save_args(state))
  finally:
    # Pending saves are good checkpoints: finish them even on an error.
    mngr.wait_until_finished()
    mngr.close()

  final_step = int(state["step"])
  test = evaluate_now("test", final_step)
  summary = {"phase": phase, "objective": run.objective, "step": final_step,
             "test": test, "splits": run.info["splits"],
             "labeled_recordings": len(run.train_recordings),
             "class_names": run.data.class_names,
             "wall_s_this_session": time.time() - t0}
  if writer:
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
  logging.info("[%s] test %s", phase, _short(test))
  return summary


def phase_optimizer(config, phase: str, params, hparams: dict | None = None
                    ) -> optax.GradientTransformation:
  """The optimizer of `phase`, with the fine-tune protocol's freezing.

  `hparams` replaces numeric keys of config[phase] (e.g. learning_rate,
  weight_decay) with values that may be traced: imujax.multiseed builds one
  optimizer per member inside its vmapped step this way.
  """
  pcfg = config[phase]
  if hparams:
    pcfg = types.SimpleNamespace(**{**pcfg.to_dict(), **hparams})
  if phase != "finetune":
    return make_optimizer(pcfg, params)
  layers = config.model.layers
  frozen = {"full": 0, "linear_probe": layers,
            "freeze_lower": pcfg.freeze_layers}[pcfg.protocol]
  if frozen > layers:
    raise ValueError(f"finetune.freeze_layers={frozen} but the encoder has "
                     f"{layers} layers (model.layers).")
  return make_optimizer(pcfg, params, frozen_layers=frozen,
                        layer_decay=pcfg.layer_decay)


class Evaluator:
  """Validation/test scores: per-frame classification or pretext loss."""

  def __init__(self, run: Run, config, batch_size: int, rng, sharding):
    self.run, self.config, self.rng = run, config, rng
    self.batch_size, self.sharding = batch_size, sharding
    self.length = input_pipeline.padded_length(run.data.recordings)
    # Built once: a new partial per evaluation would recompile each time.
    self.eval_loss_fn = functools.partial(run.loss_fn, dropout=False)

  def __call__(self, params, split: str) -> dict:
    run, config = self.run, self.config
    if run.objective == "classification":
      return evaluate.evaluate_classifier(
          params, run.cfg,
          input_pipeline.whole_recordings(
              run.by_split[split], run.normalizer,
              config.data.eval_batch_size, self.length),
          sharding=self.sharding)
    batches = [input_pipeline.sample_windows(
        run.by_split[split], run.normalizer, config.data.window,
        self.batch_size, config.seed, i, stream=1)
               for i in range(8)]  # The same windows at every evaluation.
    return evaluate.evaluate_loss(params, self.eval_loss_fn, batches,
                                  self.rng)


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

