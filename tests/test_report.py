"""The sweep report on a small synthetic sweep dir (fixture data, not results)."""

import csv
import json
import math
import shutil

import numpy as np
import pytest

from imujax.experiments import plots
from imujax.experiments import report
from imujax.experiments import run_records
from imujax.experiments import stats

_CLASSES = ["walk", "run", "sit"]


def _write_run(root, name, *, arm, budget, seed, f1s, test_f1, finished=True,
               train_subjects=("a", "b", "c", "d")):
  workdir = root / name
  workdir.mkdir(parents=True)
  source = ({} if arm == "scratch" else
            {"init_from": str(root / f"pre-{arm}-{seed}"), "objective": arm,
             "dataset": "toy", "step": 100})
  (workdir / "run.json").write_text(json.dumps({
      "phase": "finetune", "objective": "classification", "dataset": "toy",
      "config": {"seed": seed, "data": {"labeled_subjects": budget},
                 "finetune": {"steps": 10 * len(f1s)}},
      "splits": {"train": list(train_subjects), "val": ["v"], "test": ["t"]},
      "class_names": _CLASSES, "source": source}))
  records = [{"step": 10 * (i + 1), "split": "val", "accuracy": f,
              "macro_f1": f} for i, f in enumerate(f1s)]
  confusion = [[50, 5, 0], [3, 40, 2], [0, 1, 60]]
  test = {"step": 10 * len(f1s), "split": "test", "macro_f1": test_f1,
          "accuracy": test_f1 + 0.01, "confusion": confusion}
  (workdir / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records + [test]))
  if finished:
    (workdir / "summary.json").write_text(json.dumps({"test": test}))


@pytest.fixture
def sweep_dir(tmp_path):
  root = tmp_path / "sweep"
  rng = np.random.default_rng(0)
  for budget in (1, 0):
    for seed in range(5):
      base = 0.5 + 0.02 * seed + (0.1 if budget == 0 else 0)
      _write_run(root, f"finetune/scratch-b{budget}-s{seed}", arm="scratch",
                 budget=budget, seed=seed,
                 f1s=[base * 0.5, base * 0.8, base * 0.9, base],
                 test_f1=base)
      # cpc: +0.05 on test, and fast: its first curve point is already high.
      _write_run(root, f"finetune/cpc-b{budget}-s{seed}", arm="cpc",
                 budget=budget, seed=seed,
                 f1s=[base * 0.96, base, base + 0.03, base + 0.04],
                 test_f1=base + 0.05 + rng.normal(0, 0.005))
  _write_run(root, "finetune/cpc-b1-s9", arm="cpc", budget=1, seed=9,
             f1s=[0.1], test_f1=0.1, finished=False)
  pre = root / "pretrain/cpc-s0"
  pre.mkdir(parents=True)
  (pre / "run.json").write_text(json.dumps({
      "phase": "pretrain", "objective": "cpc", "dataset": "toy",
      "config": {"seed": 0}}))
  (pre / "metrics.jsonl").write_text(json.dumps(
      {"step": 100, "split": "val", "loss": 1.25}) + "\n")
  (pre / "summary.json").write_text("{}")
  return root


def test_statistics():
  assert stats.steps_to([(10, 0.2), (20, 0.6), (30, 0.9)], 0.5) == 20
  assert stats.steps_to([(10, 0.2)], 0.5) is None
  assert stats.curve_auc([(0, 0.), (10, 1.)]) == pytest.approx(0.5)
  assert stats.curve_auc([(10, 0.4)]) == pytest.approx(0.4)
  lo, hi = stats.bootstrap_ci([0.04, 0.05, 0.06, 0.05, 0.05])
  assert 0.04 <= lo < 0.05 < hi <= 0.06
  assert math.isnan(stats.bootstrap_ci([0.1])[0])
  assert stats.wilcoxon_p([0.1, 0.2, 0.3, 0.4]) is None  # < 5 pairs.
  assert stats.wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)


def test_summary_pairs_seeds_and_measures_convergence(sweep_dir):
  runs, pretrains = run_records.read_runs(sweep_dir)
  assert len(runs) == 21 and len(pretrains) == 1
  rows = {(r["budget"], r["arm"]): r for r in report.summarise(runs)}
  assert set(rows) == {(1, "scratch"), (1, "cpc"), (0, "scratch"),
                       (0, "cpc")}
  cpc = rows[(1, "cpc")]
  assert cpc["seeds"] == 5 and cpc["pairs"] == 5  # The unfinished one is out.
  assert cpc["diff_mean"] == pytest.approx(0.05, abs=0.005)
  assert 0 < cpc["diff_ci_lo"] < cpc["diff_mean"] < cpc["diff_ci_hi"]
  assert cpc["wilcoxon_p"] == pytest.approx(0.0625)
  assert cpc["steps_to_90_mean"] == 10 and cpc["steps_to_95_mean"] == 10
  assert rows[(1, "scratch")]["steps_to_90_mean"] == 30
  assert rows[(1, "scratch")]["steps_to_95_reached"] == "5/5"
  assert rows[(0, "cpc")]["labelled_subjects"] == 4  # "all" = 4 subjects.
  assert rows[(1, "cpc")]["auc_mean"] > rows[(1, "scratch")]["auc_mean"]


def test_report_writes_markdown_csv_and_plots(sweep_dir, tmp_path):
  pytest.importorskip("matplotlib")
  path = report.write_report(sweep_dir, tmp_path / "out")
  text = path.read_text()
  assert "| 1 | scratch | 5 |" in text and "| all (4) | cpc | 5 |" in text
  assert "+0.05" in text and "0.062" in text  # The claim and its p-value.
  assert "(reference)" in text and "cpc-b1-s9" in text  # Unfinished listed.
  for name in ("label_efficiency_toy.png", "convergence_toy.png",
               "confusion_toy.png"):
    assert f"]({name})" in text
    assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
  with (tmp_path / "out" / "summary.csv").open() as f:
    assert len(list(csv.DictReader(f))) == 4
  with (tmp_path / "out" / "runs.csv").open() as f:
    assert len(list(csv.DictReader(f))) == 21


def test_best_arm_per_budget(sweep_dir):
  runs, _ = run_records.read_runs(sweep_dir)
  best = plots.best_arms(report.summarise(runs), "toy")
  assert [(r["budget"], r["arm"]) for r in best] == [(1, "cpc"), (0, "cpc")]


def test_other_targets_are_listed_with_their_headline_metric(tmp_path):
  workdir = tmp_path / "sweep" / "finetune" / "speed"
  workdir.mkdir(parents=True)
  (workdir / "run.json").write_text(json.dumps({
      "phase": "finetune", "objective": "regression", "dataset": "toy",
      "config": {"seed": 0, "data": {"labeled_subjects": 1},
                 "finetune": {"steps": 10, "target": "regression"}},
      "splits": {"train": ["a"], "val": ["v"], "test": ["t"]},
      "class_names": [], "source": {}}))
  (workdir / "summary.json").write_text(json.dumps(
      {"test": {"mae": 0.1875, "rmse": 0.25}}))
  runs, _ = run_records.read_runs(tmp_path / "sweep")
  assert runs == []  # Not mixed into the macro-F1 tables.
  table = report.other_targets_table(tmp_path / "sweep")
  assert "| regression | mae (lower is better) | 0.1875 |" in table


def test_a_partial_sweep_is_never_reported_as_complete(sweep_dir, tmp_path):
  # The plan (sweep.json) declares 22 runs; 21 have finished (one fine-tune
  # is unfinished): the report says PARTIAL first.
  (sweep_dir / "sweep.json").write_text(json.dumps(
      {"jobs": [{"name": f"job{i}"} for i in range(22)]}))
  text = report.write_report(sweep_dir, tmp_path / "a").read_text()
  assert "**PARTIAL SWEEP**: 21 of 22 planned runs" in text
  assert "Complete" not in text
  shutil.rmtree(sweep_dir / "finetune/cpc-b1-s9")
  (sweep_dir / "sweep.json").write_text(json.dumps(
      {"jobs": [{"name": f"job{i}"} for i in range(21)]}))
  text = report.write_report(sweep_dir, tmp_path / "b").read_text()
  assert "**Complete**: all 21 planned runs" in text


def test_a_damaged_record_is_an_error_naming_the_file(sweep_dir, tmp_path):
  bad = sweep_dir / "finetune/cpc-b1-s2/summary.json"
  bad.write_text('{"test": {"macro')
  with pytest.raises(stats.DamagedRecordError, match="cpc-b1-s2/summary.json"):
    report.write_report(sweep_dir, tmp_path / "out")
  assert report.main([str(sweep_dir), "--out", str(tmp_path / "o2")]) == 1
  bad.write_text("{}")
  metrics = sweep_dir / "finetune/cpc-b1-s3/metrics.jsonl"
  metrics.write_text(metrics.read_text() + '{"step": 9\n')
  with pytest.raises(stats.DamagedRecordError, match="metrics.jsonl:6"):
    report.write_report(sweep_dir, tmp_path / "out")


def _write_cell_run(root, cell, fold, seed, subjects, *, wall_s, resumed=False,
                    arm="scratch"):
  """A fine-tune of `cell` (`arm`: scratch or a pre-training objective)
  testing `subjects` {name: macro-F1}."""
  workdir = root / "finetune" / f"{arm}-{cell}-f{fold}-s{seed}"
  source = {} if arm == "scratch" else {
      "objective": arm, "dataset": "toy",
      "init_from": str(root / "pretrain" / f"{arm}-{cell}-f{fold}-s{seed}")}
  workdir.mkdir(parents=True)
  (workdir / "run.json").write_text(json.dumps({
      "phase": "finetune", "objective": "classification", "dataset": "toy",
      "config": {"seed": seed, "model": {"cell": cell, "hidden": 8},
                 "data": {"labeled_subjects": 1, "num_folds": 3,
                          "fold": fold},
                 "finetune": {"steps": 20}},
      "splits": {"train": ["a"], "val": ["v"], "test": list(subjects)},
      "class_names": _CLASSES, "source": source}))
  mean = float(np.mean(list(subjects.values())))
  test = {"step": 20, "split": "test", "macro_f1": mean, "accuracy": mean,
          "confusion": [[5, 0, 0], [0, 5, 0], [0, 0, 5]],
          "per_subject": {s: {"macro_f1": f, "accuracy": f, "frames": 10}
                          for s, f in subjects.items()}}
  (workdir / "metrics.jsonl").write_text(json.dumps(
      {"step": 20, "split": "val", "accuracy": mean, "macro_f1": mean}) + "\n")
  (workdir / "summary.json").write_text(json.dumps({
      "test": test, "step": 20, "wall_s_this_session": wall_s,
      "steps_this_session": 10 if resumed else 20}))


def test_cells_are_arms_compared_with_the_lstm_by_subject(tmp_path):
  root = tmp_path / "cells"
  rng = np.random.default_rng(0)
  for fold in range(3):
    for seed in (1, 2):
      lstm = {f"p{fold}{i}": float(rng.uniform(0.4, 0.8)) for i in range(2)}
      _write_cell_run(root, "lstm", fold, seed, lstm, wall_s=30. + fold)
      # minGRU: exactly 0.05 above the LSTM on every subject and seed; one
      # resumed program, whose clock restarted, is left out of the wall.
      _write_cell_run(root, "mingru", fold, seed,
                      {s: f + 0.05 for s, f in lstm.items()}, wall_s=10.,
                      resumed=(fold, seed) == (0, 1))
  runs, _ = run_records.read_runs(root)
  assert sorted({r.arm for r in runs}) == ["scratch", "scratch (mingru)"]
  table = {r["cell"]: r for r in report.cells_report.rows(runs)}
  assert table["lstm"]["finetune_wall_s"] == 31.  # Median of 30, 31, 32.
  assert table["mingru"]["finetune_wall_s"] == 10.
  assert table["mingru"]["runs"] == 6
  assert table["mingru"]["diff_mean"] == pytest.approx(0.05)
  assert table["mingru"]["diff_ci_lo"] == pytest.approx(0.05)
  assert (table["mingru"]["subjects"], table["mingru"]["seeds"]) == (6, 2)
  assert table["mingru"]["p_holm"] == pytest.approx(2 / 2 ** 6)
  text = report.write_report(root).read_text()
  assert "## Cells" in text and "| toy | 1 | scratch | mingru | 8 | 6 |" in text
  assert (root / "report" / "cells.csv").exists()
  # One cell: no section.
  assert report.cells_report.rows([r for r in runs if r.cell == "lstm"]) == []


def test_halves_of_a_sweep_join_and_each_arm_pairs_with_its_cells_scratch(
    tmp_path):
  # configs/sweeps/cells.py runs readme as two sweep dirs: scratch and
  # simclr. Joined with --also, simclr (mingru) pairs with scratch (mingru)
  # (+0.03 on every subject), never with the LSTM's scratch (+0.08), which
  # would add the cell's effect (+0.05) to pre-training's.
  rng = np.random.default_rng(1)
  offsets = {("scratch", "lstm"): 0., ("scratch", "mingru"): 0.05,
             ("simclr", "lstm"): 0.02, ("simclr", "mingru"): 0.08}
  for fold in range(3):
    for seed in (1, 2):
      base = {f"p{fold}{i}": float(rng.uniform(0.4, 0.8)) for i in range(2)}
      for (arm, cell), offset in offsets.items():
        _write_cell_run(tmp_path / arm, cell, fold, seed,
                        {k: f + offset for k, f in base.items()},
                        wall_s=10., arm=arm)
  for arm in ("scratch", "simclr"):
    (tmp_path / arm / "sweep.json").write_text(json.dumps(
        {"jobs": [{"name": f"job{i}"} for i in range(12)]}))
  runs, _ = run_records.read_runs(tmp_path / "simclr", [tmp_path / "scratch"])
  assert stats.control_arm("simclr (mingru)") == "scratch (mingru)"
  assert stats.control_arm("simclr [linear_probe]") == "scratch"
  assert stats.is_control("scratch (mingru)")
  assert not stats.is_control("scratch +aug")
  rows = {r["arm"]: r for r in report.summarise(runs)}
  assert rows["simclr (mingru)"]["diff_mean"] == pytest.approx(0.03)
  assert rows["simclr"]["diff_mean"] == pytest.approx(0.02)
  assert rows["scratch (mingru)"]["pairs"] == 0  # A control, not a claim.
  claimed = {r["arm"]: r for r in report.claims.claim_rows(runs)}
  assert set(claimed) == {"simclr", "simclr (mingru)"}
  assert claimed["simclr (mingru)"]["mean"] == pytest.approx(0.03)
  cells = {(r["arm"], r["cell"]): r for r in report.cells_report.rows(runs)}
  assert cells[("scratch", "mingru")]["diff_mean"] == pytest.approx(0.05)
  assert cells[("simclr", "mingru")]["diff_mean"] == pytest.approx(0.06)
  text = report.write_report(tmp_path / "simclr", tmp_path / "out",
                             also=[tmp_path / "scratch"]).read_text()
  assert text.startswith(f"# Sweep report: `{tmp_path / 'simclr'}` + "
                         f"`{tmp_path / 'scratch'}`")
  assert "**Complete**: all 24 planned runs" in text
  with pytest.raises(SystemExit):  # Joined sweeps: no default --out.
    report.main([str(tmp_path / "simclr"), "--also",
                 str(tmp_path / "scratch")])
