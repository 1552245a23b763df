"""Per-frame evaluation of whole recordings, run causally.

The classifier runs the same causal scan as in training over each whole
held-out recording from a zero state, so the prediction at frame t uses frames
0..t only: what an online system would have output at that moment. The
fine-tune target kinds (regression, events, prediction) run the same way
through their objective's `predict` and are scored by its `score`.

With `eval.missing_modalities` set, the test split of a fine-tune (labelled
or a target kind) is also scored with those modalities' normalised input
channels at 0 (the training mean: how a missing modality is fed in training
and streaming), every metric again under the prefix "test_without_<m>/".
Pretext losses are not: their targets are the inputs themselves.
"""

import functools
from typing import Iterable, Optional

import jax
import numpy as np

from imujax.training import distributed
from imujax import metrics
from imujax import models
from imujax.data import input_pipeline
from imujax.objectives import modality
from imujax.training import input_dropout


@functools.partial(jax.jit, static_argnames="cfg")
def predict(params, signals, *, cfg: models.ModelConfig):
  """Per-frame class ids <int32>[batch, time] for signals [batch, time, C]."""
  return models.classify_sequence(params, cfg, signals).argmax(-1)


def evaluate_classifier(params, cfg: models.ModelConfig,
                        batches: Iterable[dict], sharding=None,
                        f1_classes: str = "present",
                        events: bool = False) -> dict:
  """Scores and confusion matrix over every valid, labelled frame.

  `f1_classes`: which classes macro-F1 averages over (`metrics.scores`).
  `events`: also count events matched by overlap, one batch row being one
  whole recording (`metrics.event_overlap_counts`): "event_counts" [K, 3].
  """
  confusion = np.zeros((cfg.num_classes, cfg.num_classes), np.int64)
  counts = np.zeros((cfg.num_classes, 3), np.int64)
  for batch in batches:
    signals = batch["signals"]
    if sharding is not None:
      signals = jax.device_put(signals, sharding)
    pred = distributed.to_host(predict(params, signals, cfg=cfg))
    keep = batch["valid"] & (batch["labels"] >= 0)
    confusion += metrics.confusion_matrix(batch["labels"][keep], pred[keep],
                                  cfg.num_classes)
    for b in range(len(pred) if events else 0):
      valid = np.asarray(batch["valid"][b], bool)
      counts += metrics.event_overlap_counts(
          np.asarray(batch["labels"][b])[valid], np.asarray(pred[b])[valid],
          cfg.num_classes)
  out = {**metrics.scores(confusion, f1_classes),
         "confusion": confusion.tolist()}
  if events:
    out["event_counts"] = counts.tolist()
  return out


@functools.partial(jax.jit, static_argnames="loss_fn")
def _batch_loss(params, batch, rng, stats, *, loss_fn):
  return loss_fn(params, batch, rng, stats)[0]


def evaluate_loss(params, loss_fn, batches: Iterable[dict], rng: jax.Array,
                  stats: dict) -> dict:
  """Mean objective over fixed batches (for pretext validation)."""
  losses = [float(_batch_loss(params, b, jax.random.fold_in(rng, i), stats,
                              loss_fn=loss_fn))
            for i, b in enumerate(batches)]
  return {"loss": float(np.mean(losses))}


class Evaluator:
  """Validation / test scores of one run: macro-F1 or the objective's loss.

  A labelled objective is scored over whole recordings of the split, run
  causally from a zero state; a self-supervised one by its own loss (dropout
  off) on 8 fixed batches of windows, the same at every evaluation.
  """

  def __init__(self, run, config, batch_size: int, rng, sharding,
               like: Optional["Evaluator"] = None):
    """`like`: the evaluator of member 0 of the same program (same model,
    objective and options; members differ in seed and rates only), whose
    jitted loss / predict this one reuses, so they compile once, not once
    per member (a simclr eval loss takes seconds to compile)."""
    self.run, self.config, self.rng = run, config, rng
    self.batch_size, self.sharding = batch_size, sharding
    # Which classes macro-F1 averages over (config eval.f1_classes).
    self.f1_classes = config.get("eval", {}).get("f1_classes", "present")
    self.length = input_pipeline.padded_length(run.data.recordings)
    # Eye-movement runs also get per-class kappa and event-level F1.
    self.gaze = "gaze" in modality.of(getattr(run.data, "channel_names", ()))
    # Built once: a new partial per evaluation would recompile each time.
    if like is not None:
      self.eval_loss_fn = like.eval_loss_fn
      self.predict = like.predict
    else:
      self.eval_loss_fn = functools.partial(run.loss_fn, dropout=False)
      self.predict = None if run.objective.predict is None else jax.jit(
          functools.partial(run.objective.predict, cfg=run.cfg,
                            opts=run.opts))
    # eval.missing_modalities: (metric prefix, channels zeroed); ("", []).
    self.missing = ("", [])
    if config.get("eval", {}).get("missing_modalities", "") and (
        run.record.phase == "finetune") and (
            run.objective.uses_labels or run.objective.score is not None):
      self.missing = input_dropout.missing_channels(config,
                                                    run.data.channel_names)

  def __call__(self, params, split: str) -> dict:
    out = self._scores(params, split, [])
    prefix, zeroed = self.missing
    if split == "test" and zeroed:
      without = self._scores(params, split, zeroed)
      out.update({prefix + k: v for k, v in without.items()})
    return out

  def _scores(self, params, split: str, zeroed: list) -> dict:
    """The split's scores, with the `zeroed` input channels at 0."""
    run, config = self.run, self.config
    if run.objective.uses_labels:
      return self._per_subject(params, run.by_split[split], zeroed)
    if run.objective.score is not None:
      return self._target_scores(params, run.by_split[split], zeroed)
    batches = [input_pipeline.sample_windows(
        run.by_split[split], run.normalizer, config.data.window,
        self.batch_size, config.seed, i, stream=1)
               for i in range(8)]
    return evaluate_loss(params, self.eval_loss_fn, batches, self.rng,
                         run.stats)

  def _per_subject(self, params, recordings, zeroed=()) -> dict:
    """Pooled scores over every frame, and each subject's own.

    Each subject's recordings are scored in their own batches; the pooled
    confusion is the sum of the subjects' (each frame counted once), so the
    pooled numbers are those of scoring all recordings together. A gaze
    run's subjects also get their own `kappa_per_class` and `event_f1`
    (`_gaze_scores`), beside the pooled ones.
    """
    by_subject = {}
    for rec in recordings:
      by_subject.setdefault(rec.subject, []).append(rec)
    k = self.run.cfg.num_classes
    pooled = np.zeros((k, k), np.int64)
    counts = np.zeros((k, 3), np.int64)
    per_subject = {}
    for subject, recs in sorted(by_subject.items()):
      scored = evaluate_classifier(
          params, self.run.cfg,
          map(functools.partial(_zero, zeroed=zeroed),
              input_pipeline.whole_recordings(
                  recs, self.run.normalizer,
                  self.config.data.eval_batch_size, self.length)),
          sharding=self.sharding, f1_classes=self.f1_classes,
          events=self.gaze)
      pooled += np.asarray(scored["confusion"])
      per_subject[subject] = {key: scored[key] for key in
                              ("macro_f1", "accuracy", "frames")}
      if self.gaze:
        counts += np.asarray(scored["event_counts"])
        per_subject[subject].update(_gaze_scores(scored))
    extra = {}
    if self.gaze:
      extra = {"kappa_per_class": metrics.kappa_per_class(pooled),
               **metrics.event_overlap_scores(counts)}
    return {**metrics.scores(pooled, self.f1_classes), **extra,
            "confusion": pooled.tolist(), "per_subject": per_subject}

  def _target_scores(self, params, recordings, zeroed=()) -> dict:
    """A target kind's own metrics over whole recordings, run causally.

    Every recording runs from a zero state through the objective's
    `predict`; its outputs and batch arrays, cut to its length, go to the
    objective's `score`: pooled over the split, and per subject (the
    subject's headline numbers, the floats at the top of its scores).
    """
    run = self.run
    outputs, cut = [], []
    stats = {k: np.asarray(v) for k, v in run.stats.items()}
    batches = input_pipeline.whole_recordings(
        recordings, run.normalizer, self.config.data.eval_batch_size,
        self.length)
    for first, batch in zip(range(0, len(recordings),
                                  self.config.data.eval_batch_size), batches):
      signals = _zero(batch, zeroed)["signals"]  # `cut` keeps the inputs.
      if self.sharding is not None:
        signals = jax.device_put(signals, self.sharding)
      # Only the signals go in (`predict` reads nothing else): the
      # recordings' tracks stay on the host, for `score`.
      out = distributed.to_host(self.predict(params, {"signals": signals},
                                             run.stats))
      for b, rec in enumerate(recordings[first:first + len(out)]):
        n = min(len(rec.labels), self.length)
        outputs.append(np.asarray(out[b, :n]))
        cut.append({k: v[b, :n] for k, v in batch.items()})
    scores = run.objective.score(outputs, cut, stats, run.opts)
    per_subject = {}
    for subject in sorted({r.subject for r in recordings}):
      mine = [i for i, r in enumerate(recordings) if r.subject == subject]
      own = run.objective.score([outputs[i] for i in mine],
                                [cut[i] for i in mine], stats, run.opts)
      per_subject[subject] = {k: v for k, v in own.items()
                              if isinstance(v, (int, float))}
    return {**scores, "per_subject": per_subject}


def _gaze_scores(scored: dict) -> dict:
  """One subject's per-class kappa and event F1, from its own confusion and
  event counts (`evaluate_classifier(..., events=True)`'s output)."""
  return {"kappa_per_class": metrics.kappa_per_class(
              np.asarray(scored["confusion"])),
          "event_f1": metrics.event_overlap_scores(
              scored["event_counts"])["event_f1"]}


def _zero(batch: dict, zeroed) -> dict:
  """The batch with its `zeroed` signal channels at 0 (a copy); as is if
  there are none."""
  if not len(zeroed):
    return batch
  signals = np.array(batch["signals"])
  signals[..., list(zeroed)] = 0.
  return {**batch, "signals": signals}
