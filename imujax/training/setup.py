"""Everything a phase trains and evaluates on, fixed before step 0: `prepare`.

`prepare(config, phase)` reads the phase's dataset, carries a pre-trained
encoder's channels over (`init_from`), splits subjects, refuses leaks, fits
the normaliser on training subjects, applies the label budget, builds the
model config, the initial params (or restores the encoder) and the loss, and
describes all of it in the run record. Each step is its own small function.
"""

import copy
import dataclasses
import functools
from typing import Any, NamedTuple

from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections

from imujax import configlib
from imujax import models
from imujax import objectives
from imujax.data import corpus as corpus_lib
from imujax.data import corpus_budget
from imujax.data import corpus_labels
from imujax.data import input_pipeline
from imujax.objectives import corpus_supervised
from imujax.objectives import losses
from imujax.objectives import options
from imujax.training import checkpoints
from imujax.training import input_dropout
from imujax.training import pretrained
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
  # (window, batch_size, seed, step) -> training batch; None: windows of
  # train_recordings. A corpus pre-training sets it (`_prepare_corpus`).
  sampler: Any = None
  # The config with seconds-valued lengths in frames (`_in_frames`); None:
  # the config as given.
  config: Any = None

  def train_batch(self, window: int, batch_size: int, seed: int,
                  step: int) -> dict:
    """The batch of `step`, a pure function of (seed, step) (see loop.py)."""
    if self.sampler is not None:
      return self.sampler(window, batch_size, seed, step)
    return input_pipeline.sample_windows(self.train_recordings,
                                         self.normalizer, window, batch_size,
                                         seed, step)


def objective_name(config: ml_collections.ConfigDict, phase: str) -> str:
  """What `phase` trains: finetune.target, or pretrain.objective."""
  if phase == "finetune":
    return config.finetune.target
  if config.pretrain.objective in objectives.TARGET_KINDS:
    raise ValueError(
        f"pretrain.objective={config.pretrain.objective!r} is a fine-tune "
        f"target kind: set finetune.target={config.pretrain.objective!r} "
        "(and finetune.tracks), and pre-train with a pretext objective.")
  return config.pretrain.objective


# -------------------------------------- per-frame targets (finetune.target)
def _track_names(config, phase: str) -> list[str]:
  """finetune.tracks as short names; none outside the fine-tune."""
  if phase != "finetune":
    return []
  return [input_pipeline.short_name(input_pipeline.short_name(
      t, input_pipeline.LABEL_PREFIX), input_pipeline.TARGET_PREFIX)
          for t in options.split_list(config.finetune.tracks)]


def _select_tracks(data, config, phase: str):
  """The data carrying the tracks finetune.target reads, and no others."""
  target = config.finetune.target if phase == "finetune" else ""
  names = _track_names(config, phase)
  return input_pipeline.select_tracks(
      data, tracks=names if target == "events" else (),
      targets=names if target == "regression" else (),
      labels_from=names[0] if target == "classification" and names else "")


def _target_options(config, phase: str, data) -> dict:
  """The static data options of a target kind: tracks, rate, units."""
  if phase != "finetune" or config.finetune.target == "classification":
    return {}
  names = tuple(_track_names(config, phase))
  return {"tracks": names, "sample_rate_hz": float(data.sample_rate_hz),
          "units": tuple(data.target_units.get(n, "") for n in names)}


def _loss_stats(objective, normalizer, train_recs, opts):
  """(stats, what the run record adds to its normalizer) of the loss."""
  stats = losses.stats_of(normalizer.mean, normalizer.std)
  if objective.fit_stats is None:
    return stats, {}
  fitted = objective.fit_stats(train_recs, opts)
  stats.update({k: jnp.asarray(v, jnp.float32) for k, v in fitted.items()})
  return stats, {k: [float(x) for x in v] for k, v in fitted.items()}


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
  if plan.adapter and list(source.channel_names) == list(corpus_lib.CANONICAL):
    plan = plan._replace(note=f"input adapter {len(data.channel_names)}->6 "
                         "by sensor type (canonical corpus encoder)")
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
  leaked = sorted(set(source.splits["train"])
                  & (set(splits["test"]) | set(splits["val"])))
  if leaked:  # No val split: pre-trained on every subject (configlib).
    raise ValueError(
        f"init_from={init_from!r} was trained on {source.dataset} subjects "
        f"{leaked}, which are validation or test subjects of this run on "
        f"{dataset} (the same people; " + (
            "the seeds or folds differ?). Pre-train with the same seed, folds "
            "and split as the fine-tuning run." if source.splits["val"] else
            "it pre-trained on every subject: data.val_subjects=0, "
            "data.test_subjects=0). Fine-tune it on another cohort only."))


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
      unroll=config.model.unroll, adapter_dim=adapter_dim,
      residual=config.model.residual,
      **input_dropout.model_fields(config, data.channel_names))


def _in_frames(config, phase: str, objective, opts: dict, rate_hz: float):
  """(config, opts) with the lengths given in seconds turned into frames.

  data.window_s sets data.window, `<option>_s` its option
  (`options.in_frames`), at the dataset's rate; the config is the same
  object when data.window_s is unset. Frame-valued lengths used at a rate
  more than 2x from 50 Hz (the defaults' rate) are warned about.
  """
  opts, notes = options.in_frames(objective.name, opts, rate_hz, phase)
  if config.data.window_s:
    window = max(2, round(config.data.window_s * rate_hz))
    logging.info("data.window_s=%g s is %d frames at %g Hz.",
                 config.data.window_s, window, rate_hz)
    config = copy.deepcopy(config)
    config.data.window = window
  else:
    notes.append(options.frames_warning("data.window", config.data.window,
                                        rate_hz))
  for note in filter(None, notes):
    logging.warning("%s", note)
  return config, opts


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
  for field in models.ENCODER_FIELDS:
    if getattr(source.model, field) != getattr(cfg, field):
      raise run_record.IncompatibleRunError(
          f"init_from={init_from!r} has model {field}="
          f"{getattr(source.model, field)!r} but this run has "
          f"{getattr(cfg, field)!r}; set config.model.{field} to match.")
  stored, step = checkpoints.restore_params(init_from)
  encoder = jax.tree.map(jnp.asarray, stored["encoder"])
  encoder.pop("adapter", None)  # An earlier adapter belongs to its dataset.
  return encoder, step


def _split(config, data: input_pipeline.Dataset) -> dict:
  """The run's subject split of `data` (seed, folds)."""
  return input_pipeline.split_subjects(
      [r.subject for r in data.recordings], config.seed,
      config.data.val_subjects, config.data.test_subjects,
      config.data.num_folds, config.data.fold, config.data.fold_seed)


# ------------------------------------------------ pooled corpora (CORPUS.md)
def _prepare_corpus(config, objective) -> Run:
  """The pretrain phase on `pretrain.corpus` (imujax/data/corpus.py).

  Batches come from the corpus mixer (`Run.sampler`); validation and test
  are the pretext loss on the target's (`data.name`) held-out subjects,
  whose split (the run's seed and folds) also keeps them out of the corpus.
  Supervised (`_corpus_supervision`): never with the target's cohort.
  """
  members = configlib.corpus_members(config.pretrain.corpus)
  supervised = (objective.name in objectives.CORPUS_SUPERVISED
                or config.pretrain.corpus_supervised_weight > 0)
  if supervised:
    corpus_labels.check_supervised([n for n, _ in members], config.data.name,
                                   config.pretrain.corpus)
  target = input_pipeline.load(config.data.name, config.data.data_dir,
                               config.data.manual_dir, config.data.spec)
  splits = _split(config, target)
  pool = corpus_budget.build(
      members, target, splits, data_dir=config.data.data_dir,
      hours=config.pretrain.corpus_hours,
      channels=config.pretrain.corpus_channels,
      normalize=config.pretrain.corpus_normalizer,
      weights=configlib.corpus_weights(config.pretrain.corpus_weights,
                                       len(members)))
  held = pool.held_out(target, splits)
  data = input_pipeline.Dataset(
      target.name, held["val"] + held["test"], pool.channel_names, [],
      target.sample_rate_hz, corpus_budget.fingerprint(pool))
  cfg = _model_config(config, data, objective, None,
                      transfer.ChannelPlan(None, False, ""))
  given = config.pretrain.get(objective.name)
  opts = options.validate(objective.name,
                          given.to_dict() if given is not None else {})
  config_frames, opts = _in_frames(config, "pretrain", objective, opts,
                                   target.sample_rate_hz)
  opts.update(losses.data_options(data.channel_names))
  if supervised:
    objective, opts = _corpus_supervision(config, objective, pool, opts)
  params = _init_params(config.seed, cfg, objective, opts)
  # splits["train"]: the target cohort's subjects the encoder saw, which
  # _check_no_leak compares with a fine-tune's held-out subjects.
  cohort = input_pipeline.cohort_of(target.name)
  seen = sorted({s for m in pool.members if m.cohort == cohort
                 for s in m.subjects})
  normalizer = pool.normalizer
  record = run_record.RunRecord(
      phase="pretrain", objective=objective.name, dataset=target.name,
      config=config.to_dict(), model_config=dataclasses.asdict(cfg),
      splits={"train": seen, "val": splits["val"], "test": splits["test"]},
      labeled_recordings=[f"{m.name}:{r}" for m in pool.members
                          for r in m.recordings],
      channel_names=list(data.channel_names), class_names=[],
      sample_rate_hz=data.sample_rate_hz,
      normalizer={"mean": normalizer.mean.tolist(),
                  "std": normalizer.std.tolist()},
      source={}, data_fingerprint=data.fingerprint,
      corpus=corpus_budget.describe(pool))
  for entry, index in zip(record.corpus, opts.get("corpus_label_maps", ())):
    entry["label_map"] = list(index)  # Class -> its head's class (-1: none).
  logging.info("Corpus for %s: %s", target.name, "; ".join(
      f"{m['name']} {m['hours']:.2f} h w={m['weight']:.3f}"
      for m in record.corpus))
  loss_fn = functools.partial(objective.loss, cfg=cfg, opts=opts)
  return Run(objective, data, {"train": [], **held}, [], normalizer,
             losses.stats_of(normalizer.mean, normalizer.std), cfg, opts,
             params, loss_fn, record, sampler=pool.batch,
             config=config_frames)


def _corpus_supervision(config, objective, pool, opts):
  """(objective, opts) of a supervised corpus pre-training (CORPUS.md).

  corpus_supervised itself, or the self-supervised objective plus
  pretrain.corpus_supervised_weight x its loss; opts gain the heads and how
  each member's classes reach them (pretrain.corpus_label_map).
  """
  spaces = corpus_labels.label_spaces(pool.members,
                                      config.pretrain.corpus_label_map)
  opts = {**opts, **spaces.options([m.name for m in pool.members])}
  weight = config.pretrain.corpus_supervised_weight
  if objective.name not in objectives.CORPUS_SUPERVISED:
    objective = corpus_supervised.with_supervised(objective, weight)
  return objective, opts


def _check_no_corpus_leak(source, init_from: str, dataset: str,
                          splits: dict) -> None:
  """Refuses an encoder whose corpus held this run's val or test subjects."""
  if source is not None and source.corpus:
    try:
      corpus_lib.check_no_leak({m["name"]: m["subjects"]
                                for m in source.corpus}, dataset, splits)
    except corpus_lib.LeakError as e:
      raise ValueError(f"init_from={init_from!r}: {e}") from None


def _adapter_init(source, channel_names) -> dict:
  """A new input adapter's params for `source`'s encoder.

  By sensor type for a canonical corpus encoder (`corpus.adapter_init`: no
  hand mapping from any placement), else by name (`transfer.adapter_init`).
  """
  if list(source.channel_names) == list(corpus_lib.CANONICAL):
    return jax.tree.map(jnp.asarray, corpus_lib.adapter_init(channel_names))
  return transfer.adapter_init(source.channel_names, channel_names)


def prepare(config: ml_collections.ConfigDict, phase: str) -> Run:
  """Data, splits, normaliser, model, params and loss of one phase.

  The pretrain phase reads `pretrain.dataset` when set (supervised or
  self-supervised pre-training on another dataset); everything else reads
  `data.name`. Subjects are split with the same seed in both phases.
  """
  objective = objectives.get(objective_name(config, phase))
  if phase == "pretrain" and config.pretrain.corpus:
    return _prepare_corpus(config, objective)
  _check_supervised_source(objective, config, phase)
  name, data = _dataset(config, phase)
  data = _select_tracks(data, config, phase)
  # `pretrained:<name>` is a released encoder's folder (training/pretrained).
  init_from = (pretrained.resolve(config.init_from) if phase == "finetune"
               else "")
  source = None
  if init_from:
    source = run_record.read(init_from)
    checkpoints.check_source_finished(init_from, config.init_from_unfinished)
  data, plan = _carry_channels(data, source, config[phase].get(
      "channels", "auto"))
  if phase == "finetune" or name == config.data.name:  # Fails before step 0.
    input_dropout.missing_channels(config, data.channel_names)
  splits = _split(config, data)
  _check_no_leak(source, init_from, name, splits)
  _check_no_corpus_leak(source, init_from, name, splits)
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
  config_frames, opts = _in_frames(config, phase, objective, opts,
                                   data.sample_rate_hz)
  opts.update(losses.data_options(data.channel_names))
  opts.update(_target_options(config, phase, data))
  if phase == "finetune" and config.finetune.augment:
    opts["augment"] = config.finetune.augment
    opts["augment_opts"] = {
        **options.validate("simclr", config.pretrain.simclr.to_dict()),
        "time_warp_std": 0., **losses.data_options(data.channel_names)}
  params = _init_params(config.seed, cfg, objective, opts)
  source_info = {}
  if source is not None:
    encoder, src_step = _load_encoder(init_from, source, cfg)
    if not config.init_from_unfinished:
      checkpoints.check_source_step(init_from, src_step)
    if plan.adapter:
      encoder["adapter"] = _adapter_init(source, data.channel_names)
    params["encoder"] = encoder
    source_info = {"init_from": init_from, "step": src_step,
                   "dataset": source.dataset, "objective": source.objective,
                   "channels": plan.note}
    if source.corpus:
      source_info["corpus"] = [m["name"] for m in source.corpus]
      if "corpus_hours" in source.corpus[0]:  # A subset (corpus_budget).
        source_info["corpus_hours"] = corpus_budget.total_hours(source.corpus)
    if config.init_from.startswith(pretrained.PREFIX):
      source_info["release"] = config.init_from[len(pretrained.PREFIX):]
    logging.info("Encoder from %s (step %d; %s).", init_from, src_step,
                 plan.note)

  stats, target_stats = _loss_stats(objective, normalizer, train_recs, opts)
  record = run_record.RunRecord(
      phase=phase, objective=objective.name, dataset=name,
      config=config.to_dict(), model_config=dataclasses.asdict(cfg),
      splits=splits, labeled_recordings=sorted(r.recording for r in train_recs),
      channel_names=list(data.channel_names),
      class_names=list(data.class_names), sample_rate_hz=data.sample_rate_hz,
      normalizer={"mean": normalizer.mean.tolist(),
                  "std": normalizer.std.tolist(), **target_stats},
      source=source_info, data_fingerprint=data.fingerprint)
  loss_fn = functools.partial(objective.loss, cfg=cfg, opts=opts)
  return Run(objective, data, by_split, train_recs, normalizer, stats, cfg,
             opts, params, loss_fn, record, config=config_frames)
