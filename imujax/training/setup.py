"""Everything a phase trains and evaluates on, fixed before step 0: `prepare`.

`prepare(config, phase)` reads the phase's dataset, carries a pre-trained
encoder's channels over (`init_from`), splits subjects, refuses leaks, fits
the normaliser on training subjects, applies the label budget, builds the
model config, the initial params (or restores the encoder) and the loss, and
describes all of it in the run record. Each step is its own small function.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections

from imujax import models
from imujax import objectives
from imujax.data import input_pipeline
from imujax.objectives import losses
from imujax.objectives import options
from imujax.training import checkpoints
from imujax.training import run_record
from imujax.training import transfer


class Run(NamedTuple):
  """Everything a phase trains and evaluates on, fixed before step 0."""
  objective: objectives.Objective
  data: input_pipeline.Dataset
  by_split: dict            # "train" | "val" | "test" -> recordings.
  train_recordings: list    # The labelled (or pretext) training recordings.
  normalizer: input_pipeline.Normalizer
  stats: dict               # losses.stats_of(normalizer): the loss's data.
  cfg: models.ModelConfig
  opts: dict                # The objective's options (+ channel names).
  params: dict
  loss_fn: Any              # (params, batch, rng, stats) -> (loss, metrics).
  record: run_record.RunRecord


def objective_name(config: ml_collections.ConfigDict, phase: str) -> str:
  """What `phase` trains: the fine-tune target, or pretrain.objective."""
  return "classification" if phase == "finetune" else config.pretrain.objective


def _dataset(config, phase: str) -> tuple[str, input_pipeline.Dataset]:
  """(TFDS name, data) of the phase: pretrain.dataset when set, else data.name."""
  name, manual_dir, spec = (config.data.name, config.data.manual_dir,
                            config.data.spec)
  if phase == "pretrain" and config.pretrain.dataset:
    name, manual_dir, spec = (config.pretrain.dataset,
                              config.pretrain.manual_dir, "")
  return name, input_pipeline.load(name, config.data.data_dir, manual_dir,
                                   spec)


def _carry_channels(data, source, how: str):
  """The data restricted to a source encoder's channels, and the plan."""
  if source is None:
    return data, transfer.ChannelPlan(None, False, "")
  plan = transfer.plan(source.channel_names, data.channel_names, how)
  if plan.select is not None:
    data = data._replace(
        channel_names=[data.channel_names[i] for i in plan.select],
        recordings=[r._replace(signals=r.signals[:, plan.select])
                    for r in data.recordings])
  return data, plan


def _check_no_leak(source, init_from: str, dataset: str, splits: dict):
  """Refuses an encoder pre-trained on this run's val or test subjects.

  Subjects are compared by cohort: another view or rate of one dataset
  (sp_sw_har's watch and phone) records the same people.
  """
  if source is None or (input_pipeline.cohort_of(source.dataset)
                        != input_pipeline.cohort_of(dataset)):
    return
  held_out = set(splits["test"]) | set(splits["val"])
  leaked = sorted(set(source.splits["train"]) & held_out)
  if leaked:
    raise ValueError(
        f"init_from={init_from!r} was trained on {source.dataset} subjects "
        f"{leaked}, which are validation or test subjects of this run on "
        f"{dataset} (the same people; the seeds or folds differ?). "
        "Pre-train with the same seed, folds and split as the fine-tuning "
        "run.")


def _check_source_finished(init_from: str, allow_unfinished: bool) -> None:
  """An unfinished pre-training is refused unless asked for explicitly."""
  if not allow_unfinished and not (
      epath.Path(init_from) / "summary.json").exists():
    raise ValueError(
        f"init_from={init_from!r} has not finished (no summary.json): its "
        "latest checkpoint is not the encoder the run was meant to produce. "
        "Finish that run, or set init_from_unfinished=True to use it anyway.")


def _check_supervised_source(objective, config, phase: str) -> None:
  """Supervised pre-training must not read the target cohort's labels."""
  if phase != "pretrain" or not objective.uses_labels:
    return
  if input_pipeline.cohort_of(config.pretrain.dataset) == (
      input_pipeline.cohort_of(config.data.name)):
    raise ValueError(
        f"pretrain.objective={objective.name!r} on pretrain.dataset="
        f"{config.pretrain.dataset!r} would train on labels of the target "
        f"cohort ({config.data.name!r}: other views and rates of a dataset "
        "record the same people), beyond the label budget. Pre-train on "
        "another dataset's labels.")


def _model_config(config, data, objective, source,
                  plan: transfer.ChannelPlan) -> models.ModelConfig:
  # With an adapter, a learned map feeds the source encoder's inputs.
  adapter_dim = source.model.in_dim if plan.adapter else 0
  return models.ModelConfig(
      in_dim=len(data.channel_names), cell=config.model.cell,
      hidden=config.model.hidden, layers=config.model.layers,
      dropout=config.model.dropout, layer_norm=config.model.layer_norm,
      num_classes=len(data.class_names) if objective.uses_labels else 0,
      unroll=config.model.unroll, adapter_dim=adapter_dim)


def _init_params(seed: int, cfg, objective, opts) -> dict:
  init_key = jax.random.fold_in(jax.random.key(seed), 0)
  params = {"encoder": models.init_encoder(init_key, cfg)}
  # The head keys of earlier versions (1: classifier, 2: pretext heads), kept
  # so that every published number reproduces.
  head_key = jax.random.fold_in(init_key, 1 if objective.uses_labels else 2)
  params.update(objective.init_heads(head_key, cfg, opts))
  return params


def _load_encoder(init_from: str, source, cfg: models.ModelConfig):
  """The pre-trained encoder of `init_from`, checked against this model."""
  for field in ("cell", "hidden", "layers", "layer_norm"):
    if getattr(source.model, field) != getattr(cfg, field):
      raise run_record.IncompatibleRunError(
          f"init_from={init_from!r} has model {field}="
          f"{getattr(source.model, field)!r} but this run has "
          f"{getattr(cfg, field)!r}; set config.model.{field} to match.")
  stored, step = checkpoints.restore_params(init_from)
  encoder = jax.tree.map(jnp.asarray, stored["encoder"])
  encoder.pop("adapter", None)  # An earlier adapter belongs to its dataset.
  return encoder, step


def prepare(config: ml_collections.ConfigDict, phase: str) -> Run:
  """Data, splits, normaliser, model, params and loss of one phase.

  The pretrain phase reads `pretrain.dataset` when set (supervised or
  self-supervised pre-training on another dataset); everything else reads
  `data.name`. Subjects are split with the same seed in both phases.
  """
  objective = objectives.get(objective_name(config, phase))
  _check_supervised_source(objective, config, phase)
  name, data = _dataset(config, phase)
  init_from = config.init_from if phase == "finetune" else ""
  source = None
  if init_from:
    source = run_record.read(init_from)
    _check_source_finished(init_from, config.init_from_unfinished)
  data, plan = _carry_channels(data, source, config[phase].get(
      "channels", "auto"))

  splits = input_pipeline.split_subjects(
      [r.subject for r in data.recordings], config.seed,
      config.data.val_subjects, config.data.test_subjects,
      config.data.num_folds, config.data.fold, config.data.fold_seed)
  _check_no_leak(source, init_from, name, splits)
  by_split = {k: input_pipeline.select(data.recordings, v)
              for k, v in splits.items()}
  normalizer = input_pipeline.Normalizer.fit(by_split["train"],
                                             data.channel_names)
  train_recs = by_split["train"]
  if phase == "finetune":
    train_recs = input_pipeline.label_budget(
        train_recs, config.seed, subjects=config.data.labeled_subjects,
        recordings_budget=config.data.labeled_recordings)

  cfg = _model_config(config, data, objective, source, plan)
  given = config[phase].get(objective.name)
  opts = options.validate(objective.name,
                          given.to_dict() if given is not None else {})
  opts.update(losses.data_options(data.channel_names))
  if phase == "finetune" and config.finetune.augment:
    opts["augment"] = config.finetune.augment
    opts["augment_opts"] = {
        **options.validate("simclr", config.pretrain.simclr.to_dict()),
        "time_warp_std": 0., **losses.data_options(data.channel_names)}
  params = _init_params(config.seed, cfg, objective, opts)
  source_info = {}
  if source is not None:
    encoder, src_step = _load_encoder(init_from, source, cfg)
    if plan.adapter:
      encoder["adapter"] = transfer.adapter_init(source.channel_names,
                                                 data.channel_names)
    params["encoder"] = encoder
    source_info = {"init_from": init_from, "step": src_step,
                   "dataset": source.dataset, "objective": source.objective,
                   "channels": plan.note}
    logging.info("Encoder from %s (step %d; %s).", init_from, src_step,
                 plan.note)

  record = run_record.RunRecord(
      phase=phase, objective=objective.name, dataset=name,
      config=config.to_dict(), model_config=dataclasses.asdict(cfg),
      splits=splits,
      labeled_recordings=sorted(r.recording for r in train_recs),
      channel_names=list(data.channel_names),
      class_names=list(data.class_names),
      sample_rate_hz=data.sample_rate_hz,
      normalizer={"mean": normalizer.mean.tolist(),
                  "std": normalizer.std.tolist()},
      source=source_info, data_fingerprint=data.fingerprint)
  loss_fn = functools.partial(objective.loss, cfg=cfg, opts=opts)
  return Run(objective, data, by_split, train_recs, normalizer,
             losses.stats_of(normalizer.mean, normalizer.std), cfg, opts,
             params, loss_fn, record)
