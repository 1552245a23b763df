"""The study's protocol: folds over subjects, guards, censoring, controls."""

import functools
import math

import jax
import numpy as np
import pytest

from imujax import models
from imujax import objectives
from imujax.data import input_pipeline as ip
from imujax.experiments import claims
from imujax.experiments import run_records
from imujax.objectives import losses
from imujax.objectives import options
from imujax.training import checkpoints
from imujax.training import run_record
from imujax.training import setup

SUBJECTS = [f"s{i:02d}" for i in range(23)]


@pytest.mark.parametrize("folds", [3, 5, 23])
def test_every_subject_is_tested_exactly_once_over_the_folds(folds):
  for seed in (0, 1):
    tested = []
    for fold in range(folds):
      s = ip.split_subjects(SUBJECTS, seed, 3, 0, folds, fold)
      assert not (set(s["test"]) & set(s["val"])) and not (
          set(s["test"]) & set(s["train"])) and not (
              set(s["val"]) & set(s["train"]))
      assert len(s["val"]) == 3
      assert sorted(s["test"] + s["val"] + s["train"]) == SUBJECTS
      tested += s["test"]
    assert sorted(tested) == SUBJECTS
  # A fold's test subjects do not depend on the seed (arms and seeds pair).
  assert (ip.split_subjects(SUBJECTS, 0, 3, 0, 5, 2)["test"]
          == ip.split_subjects(SUBJECTS, 7, 3, 0, 5, 2)["test"])
  assert (ip.split_subjects(SUBJECTS, 0, 3, 0, 5, 2)["val"]
          != ip.split_subjects(SUBJECTS, 7, 3, 0, 5, 2)["val"])


def test_bad_folds_name_the_keys():
  with pytest.raises(ValueError, match="data.fold=5"):
    ip.split_subjects(SUBJECTS, 0, 3, 0, 5, 5)
  with pytest.raises(ValueError, match="data.val_subjects"):
    ip.split_subjects(SUBJECTS[:4], 0, 3, 0, 2, 0)


def _record(dataset, train):
  return run_record.RunRecord(
      phase="pretrain", objective="simclr", dataset=dataset, config={},
      model_config={}, splits={"train": train, "val": [], "test": []},
      labeled_recordings=[], channel_names=[], class_names=[],
      sample_rate_hz=50., normalizer={}, source={})


def test_leak_guard_compares_cohorts_not_tfds_names():
  splits = {"train": ["a"], "val": ["b"], "test": ["c", "d"]}
  watch = _record("sp_sw_har/watch_50hz", ["a", "c"])
  with pytest.raises(ValueError, match=r"\['c'\].*same people"):
    setup._check_no_leak(watch, "/pre", "sp_sw_har/phone_50hz", splits)
  with pytest.raises(ValueError, match="validation or test"):
    setup._check_no_leak(_record("sp_sw_har/watch_30hz", ["b"]), "/pre",
                         "sp_sw_har/watch_50hz", splits)
  # Another cohort shares no people: subject ids may repeat by chance.
  setup._check_no_leak(_record("uci_hapt/50hz", ["c"]), "/pre",
                       "sp_sw_har/phone_50hz", splits)


def test_supervised_pretraining_on_the_target_cohort_is_refused():
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({
      "pretrain": {"dataset": "sp_sw_har/watch_50hz"},
      "data": {"name": "sp_sw_har/phone_50hz"}})
  with pytest.raises(ValueError, match="target cohort"):
    setup._check_supervised_source(objectives.get("classification"), config,
                                   "pretrain")
  config.pretrain.dataset = "uci_hapt/50hz"
  setup._check_supervised_source(objectives.get("classification"), config,
                                 "pretrain")
  config.pretrain.dataset = "sp_sw_har/watch_50hz"  # Self-supervised: fine.
  setup._check_supervised_source(objectives.get("simclr"), config, "pretrain")


def test_an_unfinished_init_from_is_refused_unless_asked(tmp_path):
  with pytest.raises(ValueError, match="init_from_unfinished"):
    checkpoints.check_source_finished(str(tmp_path), False)
  checkpoints.check_source_finished(str(tmp_path), True)
  (tmp_path / "summary.json").write_text("{}")
  checkpoints.check_source_finished(str(tmp_path), False)


def test_censored_median_counts_runs_that_never_reach():
  assert claims.censored_median([10., 20., math.inf])[0] == 20.
  assert claims.censored_median([10., math.inf, math.inf])[0] == math.inf
  # Dropping the censored runs would have claimed 10.
  assert claims.censored_median([10.])[0] == 10.


def _run(arm, seed, fold, per_subject, val=((10, 0.4), (20, 0.8)), lr=2e-3):
  return run_records.FinetuneRun(
      path="", dataset="d", arm=arm, budget=1, labelled_subjects=1,
      seed=seed, steps=20, val=list(val),
      test={"macro_f1": 0.5, "accuracy": 0.5,
            "per_subject": {s: {"macro_f1": f} for s, f in
                            per_subject.items()}},
      class_names=[], fold=fold, learning_rate=lr,
      pretrain_steps=100 if arm != "scratch" else 0)


def test_claims_pair_subjects_and_seeds_across_folds():
  runs = []
  for seed in (0, 1):
    for fold, subjects in enumerate((("a", "b"), ("c", "d"))):
      runs.append(_run("scratch", seed, fold, {s: 0.5 for s in subjects}))
      runs.append(_run("simclr", seed, fold, {s: 0.6 for s in subjects},
                       val=((10, 0.9), (20, 0.9))))
  rows = claims.claim_rows(runs)
  assert len(rows) == 1
  row = rows[0]
  assert (row["subjects"], row["seeds"], row["pairs"]) == (4, 2, 8)
  assert row["mean"] == pytest.approx(0.1)
  conv = {r["arm"]: r for r in claims.convergence_rows(runs)}
  assert conv["simclr"]["f1>=0.7_median"] == 10
  assert conv["simclr"]["f1>=0.7_median_total"] == 110  # + pre-training.
  assert conv["scratch"]["f1>=0.7_median"] == 20


def test_learning_rate_is_chosen_on_validation_only():
  good_val = ((10, 0.9), (20, 0.9))
  runs = [_run("simclr", 0, 0, {"a": 0.1}, val=good_val, lr=1e-3),
          _run("simclr", 0, 0, {"a": 0.9}, lr=1e-2)]  # Better test only.
  kept, chosen = claims.select_by_validation(runs)
  assert chosen == {("d", 1, "simclr"): 1e-3}
  assert [r.learning_rate for r in kept] == [1e-3]


def test_augmented_finetune_changes_training_only(watch_data):
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1, num_classes=7)
  recs = watch_data.recordings[:10]
  norm = ip.Normalizer.fit(recs, watch_data.channel_names)
  batch = ip.sample_windows(recs, norm, 32, 4, seed=0, step=0)
  params = models.init(jax.random.key(0), cfg)
  stats = losses.stats_of(norm.mean, norm.std)
  plain = functools.partial(objectives.get("classification").loss, cfg=cfg,
                            opts={})
  augmented = functools.partial(
      objectives.get("classification").loss, cfg=cfg,
      opts={"augment": "simclr", "augment_opts": {
          **options.validate("simclr"), "time_warp_std": 0.,
          **losses.data_options(watch_data.channel_names)}})
  key = jax.random.key(3)
  np.testing.assert_allclose(
      plain(params, batch, key, stats, dropout=False)[0],
      augmented(params, batch, key, stats, dropout=False)[0])
  assert abs(float(plain(params, batch, key, stats)[0])
             - float(augmented(params, batch, key, stats)[0])) > 1e-4
