"""Corpus subsets of H hours (imujax/data/corpus_budget.py) and the names and
report of the scale sweep (configs/sweeps/scale.py)."""

import json
import math

import numpy as np
import pytest

from imujax import configlib
from imujax.data import corpus
from imujax.data import corpus_budget
from imujax.data import input_pipeline as ip
from imujax.experiments import jobs
from imujax.experiments import scale_report

SIX = ["acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z"]
RATE = 50.


def _dataset(name, placement, subjects, seconds, seed):
  """Recordings of varied lengths (seconds[i % len]) per subject, 2 each."""
  rng = np.random.default_rng(seed)
  recs = []
  for j, s in enumerate(subjects):
    for k in range(2):
      t = int(seconds[(2 * j + k) % len(seconds)] * RATE)
      recs.append(ip.Recording(rng.normal(size=(t, 6)).astype(np.float32),
                               np.full(t, -1, np.int32), s, f"{s}_{k}"))
  return ip.Dataset(name, recs, [f"{placement}_{c}" for c in SIX], [], RATE,
                    f"{name}/fixture")


BIG = _dataset("big_set", "wrist", [f"a{i}" for i in range(12)],
               [60, 90, 120, 45], 0)             # 31.5 min.
SMALL = _dataset("small_set", "back", [f"b{i}" for i in range(6)],
                 [30, 50], 1)                    # 8 min.
TARGET = _dataset("target_set", "hip", ["t1", "t2", "t3"], [20], 2)
SPLIT = ip.split_subjects([r.subject for r in TARGET.recordings], 0, 1, 1)
MAX_REC_H = 120 / 3600


def _pool(hours, **kw):
  return corpus_budget.build([BIG, SMALL], TARGET, SPLIT, hours=hours, **kw)


def _chosen(pool):
  return {m.name: set(m.recordings) for m in pool.members}


def test_subsets_are_nested_deterministic_and_near_the_hours():
  previous = {}
  for hours in (0.05, 0.1, 0.2, 0.4):
    pool = _pool(hours)
    got = _chosen(pool)
    assert got == _chosen(_pool(hours))  # Deterministic.
    for name, recs in previous.items():  # Nested.
      assert recs <= got.get(name, set())
    actual = sum(m.hours for m in pool.members)
    assert hours <= actual < hours + MAX_REC_H  # Within one recording.
    assert pool.budget["hours"] == pytest.approx(actual, abs=1e-4)
    assert pool.budget["requested"] == hours
    previous = got
  # Proportional to the members' hours (31.5 : 8 min) at 0.4 h = 24 min.
  shares = [m.hours for m in pool.members]
  assert shares[0] / sum(shares) == pytest.approx(31.5 / 39.5, abs=0.1)


def test_the_subset_does_not_depend_on_the_run_seed_or_split():
  other = ip.split_subjects([r.subject for r in TARGET.recordings], 7, 1, 1)
  a = _pool(0.2)
  b = corpus_budget.build([BIG, SMALL], TARGET, other, hours=0.2)
  assert _chosen(a) == _chosen(b)


def test_zero_hours_is_the_whole_corpus_unchanged():
  whole = corpus.build([BIG, SMALL], TARGET, SPLIT)
  pool = _pool(0.)
  assert pool.budget is None
  assert corpus_budget.fingerprint(pool) == whole.fingerprint
  assert corpus_budget.describe(pool) == whole.describe()
  assert _pool(5.).budget["hours"] == pytest.approx(39.5 / 60, abs=1e-3)


def test_fingerprint_and_record_change_with_the_hours():
  prints = {corpus_budget.fingerprint(_pool(h)) for h in (0., 0.1, 0.2)}
  assert len(prints) == 3
  entries = corpus_budget.describe(_pool(0.1))
  assert all(e["corpus_hours"]["requested"] == 0.1 for e in entries)
  assert corpus_budget.total_hours(entries) == pytest.approx(
      entries[0]["corpus_hours"]["hours"], abs=1e-3)


def test_weights_set_the_shares_and_small_hours_drop_a_member():
  pool = _pool(0.2, weights=[1., 1.])
  shares = [m.hours for m in pool.members]
  assert shares[0] / sum(shares) == pytest.approx(0.5, abs=0.15)
  tiny = _pool(0.01)  # One recording: the other member has none.
  assert len(tiny.members) == 1
  with pytest.raises(ValueError, match="corpus_hours"):
    _pool(-1.)


def test_the_batches_come_from_the_subset_only():
  pool = _pool(0.1)
  batch = pool.batch(64, 8, 0, 0)
  assert batch["signals"].shape == (8, 64, 6) and batch["valid"].any()


# ----------------------------------------------------------- job names
LONG = ("uci_hapt/50hz@../shared/data/uci_hapt,"
        "sp_sw_har/phone_50hz@../shared/data/sp_sw_har,ipol_gait/50hz@/x/y")


def test_corpus_and_hours_get_short_distinct_names():
  a = jobs.slug([("objective", "simclr"), ("pretrain.corpus", LONG),
                 ("pretrain.corpus_hours", 0.5)])
  b = jobs.slug([("objective", "simclr"), ("pretrain.corpus", LONG),
                 ("pretrain.corpus_hours", 0)])
  c = jobs.slug([("objective", "simclr"),
                 ("pretrain.corpus", LONG.rsplit(",", 1)[0]),
                 ("pretrain.corpus_hours", 0.5)])
  assert a.startswith("simclr-corpus=3m-") and a.endswith("-0.5h")
  assert b.endswith("-allh") and c.startswith("simclr-corpus=2m-")
  assert len({a, b, c}) == 3 and max(map(len, (a, b, c))) < 40
  # The manual dirs are where files are, not what the corpus is.
  assert jobs.slug([("pretrain.corpus", LONG.replace("../shared", "/d"))]) \
      == jobs.slug([("pretrain.corpus", LONG)])


def test_finetune_only_keys_share_one_pretraining():
  points = [{"data.name": "t", "objective": "simclr", "data.fold": f,
             "pretrain.corpus": LONG, "pretrain.corpus_hours": 1,
             "finetune_only": ("data.fold",)} for f in (0, 1)]
  out = jobs.expand(points, "configs/test.py", "/tmp/sw")
  pre = [j for j in out if j.mode == "pretrain"]
  fine = [j for j in out if j.mode == "finetune"]
  assert len(pre) == 1 and "fold" not in pre[0].name
  assert "data.fold" not in dict(pre[0].overrides)
  assert [j.after for j in fine] == [pre[0].name] * 2
  assert len({j.name for j in fine}) == 2


def test_the_scale_sweep_declares_distinct_runs():
  config, points = jobs.load_sweep("configs/sweeps/scale.py:variant=readme")
  out = jobs.expand(points, config, "/tmp/sw")
  assert len(out) == len({j.name for j in out}) == 96 + 216
  uci = [j for j in out if j.mode == "pretrain" and "uci_hapt" in j.name
         and "corpus=" in j.name]
  # uci_hapt's corpus (2.3 h) has no uci_hapt member.
  assert all("uci_hapt" not in dict(j.overrides)["pretrain.corpus"]
             for j in uci)
  with pytest.raises(ValueError, match="variant"):
    list(jobs.load_sweep("configs/sweeps/scale.py:variant=huge")[1])


def test_the_seen_variant_shows_every_corpus_to_every_pre_training():
  """scale.py:variant=seen differs from readme in pre-training frames and
  objectives only, and its frames cover the largest corpus at 50 Hz."""
  config, points = jobs.load_sweep("configs/sweeps/scale.py:variant=seen")
  out = jobs.expand(points, config, "/tmp/sw")
  assert len(out) == len({j.name for j in out}) == 276 + 576
  keys = lambda spec: dict(  # noqa: E731
      item.split("=") for item in spec.split(":", 1)[1].split(","))
  seen = keys(points[0]["config"])
  readme = keys(jobs.load_sweep("configs/sweeps/scale.py:variant=readme")[1][0][
      "config"])
  assert {k for k in seen | readme if seen.get(k) != readme.get(k)} == {
      "pretrain.steps", "pretrain.batch_size"}
  frames = (int(seen["pretrain.steps"]) * int(seen["pretrain.batch_size"])
            * int(seen["data.window"]))
  largest_corpus_frames = 8.57 * 3600 * 50  # seglearn_watch's, CORPUS.md.
  assert frames >= 1.5 * largest_corpus_frames
  assert {p["objective"] for p in points} == {
      "scratch", "simclr", "masked_reconstruction", "forecast", "cpc"}


# ----------------------------------------------------------- the report
def _run(root, name, *, dataset="toy", budget=1, seed=0, scores, source=None):
  workdir = root / name
  workdir.mkdir(parents=True)
  (workdir / "run.json").write_text(json.dumps({
      "phase": "finetune", "objective": "classification", "dataset": dataset,
      "config": {"seed": seed, "data": {"labeled_subjects": budget},
                 "finetune": {"steps": 10}},
      "splits": {"train": ["a"], "val": ["v"], "test": list(scores)},
      "class_names": ["x", "y"], "source": source or {}}))
  test = {"step": 10, "split": "test", "accuracy": 0.5,
          "confusion": [[5, 1], [1, 5]],
          "macro_f1": float(np.mean(list(scores.values()))),
          "per_subject": {s: {"macro_f1": f, "accuracy": f}
                          for s, f in scores.items()}}
  (workdir / "metrics.jsonl").write_text(
      json.dumps({"step": 10, "split": "val", "macro_f1": 0.5}) + "\n"
      + json.dumps(test) + "\n")
  (workdir / "summary.json").write_text(json.dumps({"test": test}))


def _pretrain(root, name, corpus_hours=None):
  workdir = root / "pretrain" / name
  workdir.mkdir(parents=True)
  info = {"phase": "pretrain", "objective": "simclr", "dataset": "toy",
          "config": {"seed": 0, "pretrain": {"corpus_hours": 0., "steps": 100}},
          "corpus": []}
  if corpus_hours is not None:
    requested, actual = corpus_hours
    info["config"]["pretrain"]["corpus_hours"] = requested
    info["corpus"] = [{"name": "m1", "hours": actual * 0.75},
                      {"name": "m2", "hours": actual * 0.25}]
  (workdir / "run.json").write_text(json.dumps(info))
  (workdir / "summary.json").write_text("{}")
  return str(workdir)


@pytest.fixture
def scale_dir(tmp_path):
  root = tmp_path / "sweep"
  subjects = [f"p{i}" for i in range(6)]
  rng = np.random.default_rng(0)
  arms = {"in": (None, 0.03), "h05": ((0.5, 0.52), 0.01),
          "h2": ((2., 2.03), 0.05), "all": ((0., 8.6), 0.08)}
  for seed in (0, 1):
    base = {s: 0.5 + 0.02 * i for i, s in enumerate(subjects)}
    _run(root, f"finetune/scratch-s{seed}", seed=seed,
         scores={s: f + rng.normal(0, .005) for s, f in base.items()})
    for arm, (hours, gain) in arms.items():
      init = _pretrain(root, f"simclr-{arm}-s{seed}", hours)
      source = {"init_from": init, "objective": "simclr", "dataset": "toy"}
      if hours is not None:
        source["corpus"] = ["m1", "m2"]
        if hours[0]:
          source["corpus_hours"] = hours[1]
      _run(root, f"finetune/simclr-{arm}-s{seed}", seed=seed, source=source,
           scores={s: f + gain + rng.normal(0, .005)
                   for s, f in base.items()})
  return root


def test_scale_section_plots_hours_and_compares_pooled_with_in_domain(
    scale_dir, tmp_path):
  from imujax.experiments import report  # pylint: disable=g-import-not-at-top
  from imujax.experiments import run_records  # pylint: disable=g-import-not-at-top
  path = report.write_report(scale_dir, tmp_path / "out")
  text = path.read_text()
  assert "## Pre-training hours" in text
  assert (tmp_path / "out" / "scale_toy.png").exists()
  runs, _ = run_records.read_runs(scale_dir)
  table, versus = scale_report.rows(scale_report.points(runs))
  kinds = [(r["kind"], round(r["hours"], 2)) for r in table]
  assert kinds[0] == ("scratch", 0.)
  assert ("pooled", 0.52) in kinds and ("pooled", 8.6) in kinds
  assert any(k == "in-domain" for k, _ in kinds)
  by_hours = {round(v["hours"], 2): v for v in versus}
  assert by_hours[8.6]["mean"] == pytest.approx(0.05, abs=0.01)
  assert by_hours[8.6]["ci_lo"] > 0 and by_hours[0.52]["ci_hi"] < 0
  assert by_hours[8.6]["pairs"] == 12 and by_hours[8.6]["subjects"] == 6
  assert "Pooled beats in-domain (interval above 0) in 2 of 3" in text
  # The general tables keep corpus sizes apart.
  assert "simclr@corpus-0.52h" in text and "simclr@corpus |" in text


def test_no_scale_section_without_pooled_runs(tmp_path):
  _run(tmp_path, "finetune/scratch-s0", scores={"a": 0.5})
  assert scale_report.section(report_runs(tmp_path), tmp_path) == ""


def report_runs(root):
  from imujax.experiments import run_records  # pylint: disable=g-import-not-at-top
  return run_records.read_runs(root)[0]


@pytest.mark.parametrize("key,value,match", [
    ("pretrain.corpus_hours", -1.0, "must be >= 0"),
    ("pretrain.corpus_hours", 2.0, "pretrain.corpus is empty"),
    ("model.modality_dropout", 1.5, r"in \[0, 1\)")])
def test_bad_sizes_are_config_errors(key, value, match):
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  config = test_config.get_config()
  section, name = key.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=match):
    configlib.check(config)


def test_pooled_rows_pool_targets_keeping_their_subjects_apart():
  """Two targets with the same subject names are 2 x 3 subjects, not 3."""
  nan, pool, ind, scr = (math.nan, scale_report.POOLED, scale_report.IN_DOMAIN,
                         scale_report.SCRATCH)

  def arm(gain):
    return {"hours": [1.], "scores": {(s, seed): 0.5 + 0.1 * i + gain
                                      for i, s in enumerate("abc")
                                      for seed in (0, 1)}}
  cells = {(target, 1): {(scr, "", 0.): arm(0.), (ind, "simclr", nan):
                         arm(0.02), (pool, "simclr", 0.): arm(0.05)}
           for target in ("t1", "t2")}
  rows = {(r["kind"], r["versus"]): r for r in scale_report.pooled_rows(cells)}
  assert set(rows) == {(ind, "scratch"), (pool, "scratch"),
                       (pool, "in-domain")}
  for key, gain in (((ind, "scratch"), 0.02), ((pool, "scratch"), 0.05),
                    ((pool, "in-domain"), 0.03)):
    assert rows[key]["mean"] == pytest.approx(gain)
    assert (rows[key]["subjects"], rows[key]["seeds"]) == (6, 2)
    assert rows[key]["ci_lo"] == pytest.approx(gain)
