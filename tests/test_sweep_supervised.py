"""configs/sweeps/supervised.py: the pre-registered supervised vs
self-supervised corpus comparison expands as its docstring says (run counts,
fresh seeds, one pooled pre-training per arm shared by the folds, no
supervised corpus holding the target's cohort, distinct arm names)."""

import pytest

from imujax import configlib
from imujax.data import corpus_labels
from imujax.data import input_pipeline
from imujax.experiments import claims
from imujax.experiments import jobs
from imujax.experiments import run_records
from tests.conftest import REPO

SWEEP = str(REPO / "configs" / "sweeps" / "supervised.py")


def _expanded(variant):
  config, points = jobs.load_sweep(f"{SWEEP}:variant={variant},"
                                   "data_root=/data")
  return jobs.expand(points, config, "/tmp/x")


@pytest.mark.parametrize("variant,pretrains,finetunes,programs", [
    ("smoke", 8, 24, 16), ("readme", 16, 240, 128), ("full", 24, 900, 308)])
def test_variants_expand_to_the_documented_runs(variant, pretrains, finetunes,
                                                programs):
  expanded = _expanded(variant)
  assert sum(j.mode == "pretrain" for j in expanded) == pretrains
  assert sum(j.mode == "finetune" for j in expanded) == finetunes
  assert len(jobs.seed_groups(expanded, "/tmp/x")) == programs
  assert {dict(j.overrides)["seed"] for j in expanded} <= {301, 302, 303}
  # Every fold of a (target, budget, seed) fine-tunes from the same encoder.
  pre = {j.name for j in expanded if j.mode == "pretrain"}
  assert {j.after for j in expanded if j.after} == pre


def test_supervised_corpora_hold_no_member_of_the_targets_cohort():
  supervised = 0
  for j in _expanded("full"):
    if j.mode != "pretrain":
      continue
    o = dict(j.overrides)
    names = [n for n, _ in configlib.corpus_members(o["pretrain.corpus"])]
    cohort = input_pipeline.cohort_of(o["data.name"])
    assert names and all(input_pipeline.cohort_of(n) != cohort for n in names)
    if (o["pretrain.objective"] == "corpus_supervised"
        or o.get("pretrain.corpus_supervised_weight")):
      supervised += 1
      corpus_labels.check_supervised(names, o["data.name"])  # Raises if not.
  assert supervised == 2 * 3 * 3  # Targets x supervised arms x seeds.
  with pytest.raises(ValueError, match="cohort"):  # The guard it relies on.
    corpus_labels.check_supervised(["uci_hapt/50hz", "sp_sw_har/phone_50hz"],
                                   "sp_sw_har/watch_50hz")


def test_the_reports_arm_names_are_distinct_and_as_declared():
  """run_records.arm_name on each fine-tune's source (its pre-training's config),
  as read_runs builds it: six full fine-tuning arms, four probes."""
  pretrains = {j.name: dict(j.overrides) for j in _expanded("full")
               if j.mode == "pretrain"}
  names = set()
  for j in _expanded("full"):
    if j.mode != "finetune":
      continue
    o = dict(j.overrides)
    pre = pretrains.get(j.after, {})
    source = ({"objective": pre["pretrain.objective"],
               "dataset": o["data.name"], "init_from": j.after,
               "corpus": ["m"]} if j.after else {})
    pretrain = {k.partition(".")[2]: v for k, v in pre.items()
                if k.startswith("pretrain.")}
    names.add(run_records.arm_name(source, o["data.name"],
                              {"protocol": o.get("finetune.protocol",
                                                 "full"),
                               "augment": o.get("finetune.augment", "")},
                              pretrain))
  full = {"scratch", "scratch +aug", "simclr@corpus",
          "corpus_supervised@corpus", "corpus_supervised:shared@corpus",
          "simclr+sup0.5@corpus"}
  assert names == full | {f"{a} [linear_probe]"
                          for a in full - {"scratch", "scratch +aug"}}


def test_versus_pairs_each_arm_with_simclr_of_its_own_protocol():
  runs = []
  for arm, score in (("scratch", .5), ("simclr@corpus", .6),
                     ("corpus_supervised@corpus", .7),
                     ("simclr@corpus [linear_probe]", .4),
                     ("corpus_supervised@corpus [linear_probe]", .3)):
    for seed in (301, 302):
      runs.append(run_records.FinetuneRun(
          path="", dataset="toy", arm=arm, budget=1, labelled_subjects=1,
          seed=seed, steps=1, val=[], class_names=[], test={
              "macro_f1": score, "per_subject": {
                  s: {"macro_f1": score + .01 * i}
                  for i, s in enumerate("abc")}}))
  table = claims.versus_markdown(runs, jobs.sweep_module(SWEEP).REFERENCE)
  assert "| toy | 1 | corpus_supervised@corpus | 3 × 2 | +0.100 |" in table
  assert ("| toy | 1 | corpus_supervised@corpus [linear_probe] | 3 × 2 | "
          "-0.100 |") in table
  assert "scratch" not in table and "| simclr@corpus" not in table


def test_versus_on_other_scores_pairs_the_prefixed_per_subject_scores():
  runs = []
  for arm, score, without in (("scratch", .8, .7), ("scratch +proj32", .8,
                                                     .6)):
    for seed in (1, 2):
      per = {s: {"macro_f1": score} for s in "abc"}
      runs.append(run_records.FinetuneRun(
          path="", dataset="toy", arm=arm, budget=0, labelled_subjects=3,
          seed=seed, steps=1, val=[], class_names=[], test={
              "macro_f1": score, "per_subject": per,
              "test_without_gyr/macro_f1": without,
              "test_without_gyr/per_subject": {
                  s: {"macro_f1": without} for s in "abc"}}))
  plain = claims.versus_markdown(runs, "scratch")
  assert "| toy | all | scratch +proj32 | 3 × 2 | +0.000 |" in plain
  gyr = claims.versus_markdown(claims.with_scores(runs, "test_without_gyr/"),
                               "scratch")
  assert "| toy | all | scratch +proj32 | 3 × 2 | -0.100 |" in gyr
