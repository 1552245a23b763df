"""The report's eye-movement section (per-class kappa, event F1) on synthetic
sweep dirs (fixture numbers, not results), and the per-participant gaze
scores of training/evaluate.py against scikit-learn."""

import json
import math
import types

import jax
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from imujax import configlib
from imujax import metrics
from imujax import models
from imujax.data import input_pipeline
from imujax.experiments import gaze_report
from imujax.experiments import report
from imujax.experiments import run_records
from imujax.training import evaluate

NAN = float("nan")
CLASSES = ["fixation", "saccade", "pso"]
ARM = "masked_reconstruction"
FOLDS = {0: ("a", "b"), 1: ("c", "d")}   # Test participants of each fold.
# Pooled test scores of scratch per (fold, seed): kappa per class, event F1.
SCRATCH = {(0, 101): ([0.50, 0.70, 0.30], 0.30),
           (0, 102): ([0.52, 0.72, NAN], 0.32),
           (1, 101): ([0.40, 0.60, 0.20], 0.20),
           (1, 102): ([0.42, 0.62, 0.22], 0.22)}
GAIN = [0.10, -0.05, 0.02]               # The arm's kappa − scratch's.
EVENT_GAIN = {(0, 101): 0.05, (0, 102): 0.07, (1, 101): 0.03, (1, 102): 0.05}


def _write(root, *, arm, fold, seed, kappa, event_f1, macro_f1,
           per_subject=None, dataset="toy_gaze/500hz"):
  workdir = root / "finetune" / f"{arm}-fold={fold}-s{seed}"
  workdir.mkdir(parents=True)
  source = ({} if arm == "scratch" else
            {"init_from": str(root / "pretrain" / f"{arm}-{fold}-{seed}"),
             "objective": arm, "dataset": dataset})
  (workdir / "run.json").write_text(json.dumps({
      "phase": "finetune", "objective": "classification",
      "dataset": dataset,
      "config": {"seed": seed, "data": {"labeled_subjects": 1,
                                        "num_folds": 2, "fold": fold},
                 "finetune": {"steps": 10}},
      "splits": {"train": ["x", "y"], "val": ["v"],
                 "test": list(FOLDS[fold])},
      "class_names": CLASSES, "source": source}))
  (workdir / "metrics.jsonl").write_text(json.dumps(
      {"step": 10, "split": "val", "macro_f1": macro_f1,
       "accuracy": macro_f1}) + "\n")
  per_subject = per_subject or {
      s: {"macro_f1": macro_f1, "accuracy": macro_f1, "frames": 100}
      for s in FOLDS[fold]}
  (workdir / "summary.json").write_text(json.dumps({"test": {
      "macro_f1": macro_f1, "accuracy": macro_f1, "kappa_per_class": kappa,
      "event_f1": event_f1, "event_f1_per_class": [event_f1] * 3,
      "confusion": [[50, 5, 0], [3, 40, 2], [0, 1, 60]],
      "per_subject": per_subject}}))  # NaN is written as NaN, as the loop.


def _subject_scores(arm, fold, seed):
  """Per-participant kappa and event F1: participant index i, seed, arm."""
  out = {}
  for s in FOLDS[fold]:
    i = "abcd".index(s)
    gain = 0.01 * (i + 1) if arm != "scratch" else 0.
    kappa = [0.3 + 0.1 * i + gain, 0.6 + gain, 0.2 + 0.01 * (seed - 100)]
    if arm != "scratch" and s == "d" and seed == 102:
      kappa[2] = NAN  # No PSO in d's own test frames, say.
    out[s] = {"macro_f1": 0.4, "accuracy": 0.5, "frames": 100,
              "kappa_per_class": kappa, "event_f1": 0.25 + 2 * gain}
  return out


def _sweep(root, per_participant=False, dataset="toy_gaze/500hz"):
  for (fold, seed), (kappa, ev) in SCRATCH.items():
    arm_kappa = [k + g for k, g in zip(kappa, GAIN)]
    if (fold, seed) == (1, 101):
      arm_kappa[2] = NAN  # The arm predicted no PSO in a fold without it.
    for arm, k, e, f1 in (("scratch", kappa, ev, 0.40),
                          (ARM, arm_kappa, ev + EVENT_GAIN[(fold, seed)],
                           0.45)):
      _write(root, arm=arm, fold=fold, seed=seed, kappa=k, event_f1=e,
             macro_f1=f1 + 0.01 * fold, dataset=dataset,
             per_subject=(_subject_scores(arm, fold, seed)
                          if per_participant else None))
  return root


@pytest.fixture
def sweep_dir(tmp_path):
  return _sweep(tmp_path / "sweep")


def test_table_means_sds_and_nan_counts(sweep_dir):
  runs, _ = run_records.read_runs(sweep_dir)
  rows = {r["arm"]: r for r in gaze_report.table_rows(runs)}
  assert list(rows) == ["scratch", ARM] and rows[ARM]["runs"] == 4
  s, a = rows["scratch"], rows[ARM]
  assert s["kappa_fixation_mean"] == pytest.approx(0.46)
  # Deviations from 0.46: ±0.04, ±0.06; sample sd.
  assert s["kappa_fixation_sd"] == pytest.approx(math.sqrt(0.0104 / 3))
  assert a["kappa_saccade_mean"] == pytest.approx(0.66 - 0.05)
  # PSO: NaN in 1 scratch run and 2 arm runs, left out and counted.
  assert s["kappa_pso_mean"] == pytest.approx((0.30 + 0.20 + 0.22) / 3)
  assert s["kappa_pso_na"] == 1 and a["kappa_pso_na"] == 2
  assert a["kappa_pso_mean"] == pytest.approx((0.32 + 0.24) / 2)
  assert s["event_f1_mean"] == pytest.approx(0.26)
  assert a["event_f1_mean"] == pytest.approx(0.26 + 0.05)
  assert a["macro_f1_mean"] == pytest.approx(0.455)
  assert s["kappa_saccade_na"] == 0


def test_paired_per_fold_with_nan_pairs_left_out(sweep_dir):
  runs, _ = run_records.read_runs(sweep_dir)
  rows = {r["metric"]: r for r in gaze_report.paired_rows(runs)}
  assert set(rows) == {"event_f1", "kappa_fixation", "kappa_saccade",
                       "kappa_pso"}
  ev = rows["event_f1"]
  assert ev["unit"] == "fold" and ev["arm"] == ARM
  assert ev["mean"] == pytest.approx(0.05)  # (0.05+0.07+0.03+0.05) / 4.
  assert (ev["units"], ev["seeds"], ev["pairs"]) == (2, 2, 4)
  assert math.isnan(ev["ci_lo"])  # 2 folds: nothing to resample.
  assert rows["kappa_fixation"]["mean"] == pytest.approx(0.10)
  assert rows["kappa_saccade"]["mean"] == pytest.approx(-0.05)
  pso = rows["kappa_pso"]  # (0, 102): scratch NaN; (1, 101): arm NaN.
  assert pso["nan_pairs"] == 2 and pso["pairs"] == 2
  assert pso["mean"] == pytest.approx(0.02)
  assert pso["arm_mean"] == pytest.approx((0.32 + 0.24) / 2)
  assert pso["scratch_mean"] == pytest.approx((0.30 + 0.22) / 2)


def test_markdown_and_csv(sweep_dir, tmp_path):
  runs, _ = run_records.read_runs(sweep_dir)
  text = gaze_report.section(runs, tmp_path)
  assert "## Eye-movement events" in text
  assert "### toy_gaze/500hz, labelled subjects 1" in text
  assert "| κ fixation | κ saccade | κ pso | event F1 | macro-F1 |" in text
  assert "| scratch | 4 | 0.460 ± 0.059 |" in text
  assert "0.240 ± 0.053 (n/a in 1 run) |" in text  # sd: sqrt(.0056 / 2).
  assert "(n/a in 2 runs)" in text
  assert "same (fold, seed)" in text and "pooled over its test " \
      "participants" in text
  assert "| event_f1 | masked_reconstruction | 2 × 2 (4) | 0.310 | 0.260 " \
      "| +0.050 |" in text
  assert "| kappa_pso | masked_reconstruction | 2 × 2 (2) |" in text
  assert "Reference kappas" not in text  # Only for gaze_lund2013.
  table = (tmp_path / "gaze_events.csv").read_text().splitlines()
  assert len(table) == 3 and "kappa_pso_na" in table[0]
  assert len((tmp_path / "gaze_events_paired.csv").read_text()
             .splitlines()) == 1 + 4


def test_pairs_per_participant_when_every_run_has_them(tmp_path):
  runs, _ = run_records.read_runs(_sweep(tmp_path / "s", per_participant=True))
  rows = {r["metric"]: r for r in gaze_report.paired_rows(runs)}
  fix = rows["kappa_fixation"]
  assert fix["unit"] == "participant"
  assert (fix["units"], fix["seeds"], fix["pairs"]) == (4, 2, 8)
  # Participant i gains 0.01 (i + 1), under both seeds: mean of .01...04.
  assert fix["mean"] == pytest.approx(0.025)
  assert fix["arm_mean"] == pytest.approx(0.45 + 0.025)
  assert 0.01 <= fix["ci_lo"] <= 0.025 <= fix["ci_hi"] <= 0.04
  assert rows["event_f1"]["mean"] == pytest.approx(0.05)
  pso = rows["kappa_pso"]  # d under seed 102: the arm's NaN.
  assert pso["pairs"] == 7 and pso["nan_pairs"] == 1
  assert pso["mean"] == pytest.approx(0.)
  text = gaze_report.markdown(runs)
  assert "same (participant, seed)" in text and "4 × 2 (8)" in text
  # One run without per-participant kappa: that cell pairs per fold.
  broken = [r._replace(test={**r.test, "per_subject": {
      s: {"macro_f1": 0.4} for s in r.test["per_subject"]}})
            if r.arm == "scratch" and r.seed == 101 and r.fold == 0 else r
            for r in runs]
  assert {r["unit"] for r in gaze_report.paired_rows(broken)} == {"fold"}


def test_lund_gets_reference_figures_and_report_has_the_section(tmp_path):
  root = _sweep(tmp_path / "s", dataset="gaze_lund2013/500hz")
  text = report.write_report(root, tmp_path / "out").read_text()
  assert "## Eye-movement events" in text
  assert "| REMoDNaV vs RA, images | Dar et al. 2021, published | 0.55 | " \
      "0.78 | 0.59 |" in text
  assert "python -m imujax.datasets.gaze_lund2013" in text
  assert (tmp_path / "out" / "gaze_events.csv").exists()


def test_no_gaze_runs_no_section(tmp_path):
  root = _sweep(tmp_path / "s")
  for summary in root.rglob("summary.json"):  # As a non-gaze run's scores.
    test = json.loads(summary.read_text())["test"]
    for key in ("kappa_per_class", "event_f1", "event_f1_per_class"):
      test.pop(key)
    summary.write_text(json.dumps({"test": test}))
  runs, _ = run_records.read_runs(root)
  assert gaze_report.table_rows(runs) == [] and gaze_report.markdown(
      runs) == ""
  assert gaze_report.section(runs, tmp_path) == ""
  assert not (tmp_path / "gaze_events.csv").exists()


# ----------------------------------------- training/evaluate.py per subject
def test_per_subject_kappa_and_event_f1_equal_hand_and_sklearn():
  names = ("gaze_x_deg", "gaze_y_deg")
  cfg = models.ModelConfig(in_dim=2, cell="lstm", hidden=8, layers=1,
                           num_classes=3)
  params = models.init(jax.random.key(0), cfg)
  # A large head spreads the untrained model's predictions over classes.
  params["classifier"] = jax.tree.map(lambda w: w * 30.,
                                      params["classifier"])
  rng = np.random.default_rng(3)
  recs = []
  for subject in ("p1", "p1", "p2"):  # One length: one compilation.
    n = 60
    labels = np.repeat(rng.integers(0, 3, n // 5), 5)[:n].astype(np.int32)
    signals = (rng.standard_normal((n, 2)) * 3 + labels[:, None]).astype(
        np.float32)
    recs.append(input_pipeline.Recording(signals, labels, subject,
                                         f"{subject}-{len(recs)}"))
  norm = input_pipeline.Normalizer.fit(recs, list(names))
  run = types.SimpleNamespace(
      objective=types.SimpleNamespace(uses_labels=True, predict=None,
                                      score=None),
      data=types.SimpleNamespace(recordings=recs, channel_names=list(names)),
      by_split={"test": recs}, normalizer=norm, cfg=cfg, opts={}, stats={},
      loss_fn=lambda *a, **k: None,
      record=types.SimpleNamespace(phase="finetune"))
  config = configlib.base()
  config.data.eval_batch_size = 2
  out = evaluate.Evaluator(run, config, 4, None, None)(params, "test")
  compared = 0
  for subject in ("p1", "p2"):
    y, p, counts = [], [], np.zeros((3, 3), np.int64)
    for rec in (r for r in recs if r.subject == subject):
      pred = np.asarray(models.classify_sequence(
          params, cfg, norm(rec.signals)[None]).argmax(-1))[0]
      y.append(rec.labels)
      p.append(pred)
      counts += metrics.event_overlap_counts(rec.labels, pred, 3)
    y, p = np.concatenate(y), np.concatenate(p)
    mine = out["per_subject"][subject]
    assert {"macro_f1", "accuracy", "frames"} <= set(mine)  # Kept.
    for c in range(3):
      if len(np.unique(p == c)) > 1:  # Else sklearn's kappa is undefined.
        assert mine["kappa_per_class"][c] == pytest.approx(
            cohen_kappa_score(y == c, p == c))
        compared += 1
    assert mine["event_f1"] == pytest.approx(
        metrics.event_overlap_scores(counts)["event_f1"])
  assert compared >= 3
  assert len(out["kappa_per_class"]) == 3  # The pooled ones stay.
