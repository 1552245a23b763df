"""The report's paired tables of regression / events / prediction fine-tunes,
on a synthetic sweep dir (fixture numbers, not results)."""

import json

import pytest

from imujax.experiments import report
from imujax.experiments import run_records
from imujax.experiments import targets_report

SUBJECTS = ("a", "b", "c", "d")


def _write(root, name, *, target, tracks, arm, seed, per_subject):
  workdir = root / "finetune" / name
  workdir.mkdir(parents=True)
  source = ({} if arm == "scratch" else
            {"init_from": str(root / "pretrain" / f"{arm}-s{seed}"),
             "objective": arm, "dataset": "toy"})
  (workdir / "run.json").write_text(json.dumps({
      "phase": "finetune", "objective": target, "dataset": "toy",
      "config": {"seed": seed, "data": {"labeled_subjects": 2,
                                        "num_folds": 2, "fold": 0},
                 "finetune": {"target": target, "tracks": tracks,
                              "steps": 10}},
      "splits": {"train": ["x"], "val": ["v"], "test": list(SUBJECTS)},
      "class_names": [], "source": source}))
  pooled = {k: sum(s[k] for s in per_subject.values()) / len(per_subject)
            for k in next(iter(per_subject.values()))}
  (workdir / "summary.json").write_text(json.dumps(
      {"test": {**pooled, "per_subject": per_subject}}))


@pytest.fixture
def sweep_dir(tmp_path):
  root = tmp_path / "sweep"
  for seed in (1, 2):
    for arm in ("scratch", "masked_reconstruction"):
      gain = 0. if arm == "scratch" else 1.
      reg, ev, pred = {}, {}, {}
      for i, s in enumerate(SUBJECTS):
        wobble = 0.01 * ((i + seed) % 3)
        reg[s] = {"mae": 0.2 - 0.05 * gain + wobble, "rmse": 0.3 + wobble,
                  "mae_train_mean": 0.25, "rmse_train_mean": 0.3,
                  "r2": float("nan") if s == "d" else 0.5 + 0.1 * gain,
                  "pearson_r": 0.7, "frames": 100}
        ev[s] = {"f1": 0.6 + 0.1 * gain + wobble, "precision": 0.7,
                 "recall": 0.6, "timing_error_ms_abs": 20. - 5 * gain,
                 "delay_ms_mean": 60., "events": 30}
        rmse = 0.5 - 0.1 * gain + wobble
        pred[s] = {"rmse": rmse, "rmse_200ms": rmse,
                   "rmse_last": 0.8, "rmse_velocity": 1.1,
                   "rmse_last_200ms": 0.8, "rmse_velocity_200ms": 1.1}
      for target, tracks, per in (("regression", "speed", reg),
                                  ("events", "initial_contact", ev),
                                  ("prediction", "", pred)):
        _write(root, f"{arm}-{target}-s{seed}", target=target, tracks=tracks,
               arm=arm, seed=seed, per_subject=per)
  return root


def test_paired_rows_per_metric_with_direction_and_n(sweep_dir):
  run_records.read_runs(sweep_dir)
  rows = targets_report.paired_rows(run_records.OTHER_TARGETS[str(sweep_dir)])
  by = {(r["target"], r["metric"], r["arm"], r["reference"]): r
        for r in rows}
  mae = by[("regression", "mae", "masked_reconstruction", "scratch")]
  assert mae["mean"] == pytest.approx(-0.05)
  assert (mae["subjects"], mae["seeds"], mae["pairs"]) == (4, 2, 8)
  assert mae["ci_hi"] < 0 and not mae["higher_is_better"]
  assert mae["favours"] == "masked_reconstruction"  # Lower MAE is better.
  r2 = by[("regression", "r2", "masked_reconstruction", "scratch")]
  assert r2["pairs"] == 6 and r2["favours"] == "masked_reconstruction"
  assert by[("regression", "pearson_r", "masked_reconstruction",
             "scratch")]["favours"].startswith("neither")
  # Regression MAE / RMSE against predicting the training mean, every arm.
  floor = by[("regression", "mae", "scratch", "training mean")]
  # 0.2 + the mean wobble (0.01125 over subjects and seeds) − 0.25.
  assert floor["mean"] == pytest.approx(-0.03875)
  assert by[("regression", "mae", "masked_reconstruction",
             "training mean")]["favours"] == "masked_reconstruction"
  assert by[("regression", "rmse", "scratch", "training mean")][
      "mean"] == pytest.approx(0.01125)  # 0.3 + wobble − 0.3.
  assert not any(r["reference"] == "training mean" for r in rows
                 if r["metric"] in ("r2", "pearson_r"))
  f1 = by[("events", "f1", "masked_reconstruction", "scratch")]
  assert f1["mean"] == pytest.approx(0.1) and f1["higher_is_better"]
  assert by[("events", "timing_error_ms_abs", "masked_reconstruction",
             "scratch")]["favours"] == "masked_reconstruction"
  # Prediction: each arm against the baselines, scratch included.
  last = by[("prediction", "rmse_200ms", "scratch", "last value")]
  assert last["mean"] < 0 and last["favours"] == "scratch"
  assert by[("prediction", "rmse_200ms", "masked_reconstruction",
             "constant velocity")]["mean"] == pytest.approx(-0.68875)
  assert by[("prediction", "rmse_200ms", "masked_reconstruction",
             "scratch")]["mean"] == pytest.approx(-0.1)
  # "rmse" is the first horizon's: not compared twice.
  assert not any(r["metric"] == "rmse" for r in rows
                 if r["target"] == "prediction")
  assert 0 <= mae["p_holm"] <= 1


def test_report_writes_the_paired_section_and_csv(sweep_dir, tmp_path):
  (sweep_dir / "sweep.json").write_text(json.dumps({"jobs": [{}] * 12}))
  path = report.write_report(sweep_dir, tmp_path / "out")
  text = path.read_text()
  assert "**Complete**" in text  # The 12 target fine-tunes count as runs.
  assert "## Other targets: paired" in text
  assert "### toy: regression speed, labelled subjects 2" in text
  assert "| mae (lower) | masked_reconstruction | scratch |" in text
  assert "4 × 2 (8)" in text and "-0.0500 [" in text
  assert (tmp_path / "out" / "target_claims.csv").read_text().count(
      "\n") == 1 + len(targets_report.paired_rows(
          run_records.OTHER_TARGETS[str(sweep_dir)]))
