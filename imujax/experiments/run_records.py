"""The records of a sweep's runs, as the reports read them.

`read_runs` walks a sweep dir (run.json, metrics.jsonl, summary.json; see
imujax/training/checkpoints.py) and returns its fine-tune runs as
`FinetuneRun` (each named by its arm, `arm_name`) and its pre-training runs
as dicts; fine-tunes of targets other than classification are kept apart in
`OTHER_TARGETS`.
"""

import math
import pathlib
from typing import NamedTuple, Optional

from imujax.experiments import cells_report
from imujax.experiments import stats


class FinetuneRun(NamedTuple):
  """What the report needs of one fine-tune run."""
  path: str
  dataset: str
  arm: str
  budget: int               # Labelled training subjects; 0 = all.
  labelled_subjects: int    # The budget as a number (all = training subjects).
  seed: int
  steps: int                # Configured fine-tune steps.
  val: list                 # [(step, macro_f1)], in step order.
  test: Optional[dict]      # summary.json's test record; None if unfinished.
  class_names: list
  fold: int = -1            # data.fold under cross-validation; -1: none.
  learning_rate: float = 0.
  pretrain_steps: int = 0   # Of the encoder it started from (0: scratch).
  cell: str = "lstm"        # model.cell.
  hidden: int = 0           # model.hidden.
  wall_s: float = math.nan  # One program's wall time, started from step 0.
  pretrain_wall_s: float = math.nan  # Its pre-training's, likewise.


def _read_jsonl(path: pathlib.Path) -> list:
  if not path.exists():
    return []
  return [stats.read_json(path, i + 1) for i, line in
          enumerate(path.read_text().splitlines()) if line]


# Fine-tunes of targets other than classification, per sweep dir read.
OTHER_TARGETS = {}


def other_targets(sweep_dir) -> list:
  """The non-classification fine-tunes `read_runs(sweep_dir)` collected."""
  return OTHER_TARGETS.get(str(sweep_dir), [])


def read_runs(sweep_dir, also=()) -> tuple[list, list]:
  """(fine-tune runs, pre-training runs) under `sweep_dir` and the sweep
  dirs `also` (a sweep run as halves on one cohort: configs/sweeps/cells.py
  readme_scratch + readme_simclr), sorted by path within each dir.

  Only classification fine-tunes are returned as FinetuneRun; the others are
  collected in OTHER_TARGETS[sweep_dir] (see `other_targets_table`). When
  they differ in model.modality_projection, arms with d > 0 end "+proj<d>";
  when they differ in model.cell, arms of cells other than the LSTM end
  " (<cell>)" (configs/sweeps/cells.py; `cells_report`), and so do the
  pre-training runs' objectives.
  """
  OTHER_TARGETS[str(sweep_dir)] = []
  finetunes, pretrains, projections = [], [], []
  for run_json in [j for d in (sweep_dir, *also)
                   for j in sorted(pathlib.Path(d).rglob("run.json"))]:
    workdir = run_json.parent
    info = stats.read_json(run_json)
    summary_path = workdir / "summary.json"
    summary = (stats.read_json(summary_path)
               if summary_path.exists() else None)
    metrics = _read_jsonl(workdir / "metrics.jsonl")
    config = info["config"]
    target = config.get("finetune", {}).get("target", "classification")
    if info["phase"] == "finetune" and target != "classification":
      # Tables and claims here are per-frame classification's (macro-F1);
      # other targets are listed with their own headline metric.
      ft, data_cfg = config["finetune"], config["data"]
      OTHER_TARGETS.setdefault(str(sweep_dir), []).append(
          {"path": str(workdir), "dataset": info["dataset"],
           "target": target, "tracks": str(ft.get("tracks", "")),
           "arm": arm_name(info.get("source") or {}, info["dataset"], ft),
           "budget": int(data_cfg.get("labeled_subjects", 0)),
           "seed": int(config["seed"]),
           "fold": (int(data_cfg.get("fold", 0))
                    if data_cfg.get("num_folds") else -1),
           "test": summary["test"] if summary else None})
      continue
    if info["phase"] != "finetune":
      val = [m for m in metrics if m["split"] == "val"]
      pretrains.append({
          "path": str(workdir), "dataset": info["dataset"],
          "objective": info["objective"] + stats.supervision_tag(
              config.get("pretrain")), "seed": config["seed"],
          "cell": config.get("model", {}).get("cell", "lstm"),
          "steps": val[-1]["step"] if val else 0,
          "val_loss": val[-1].get("loss") if val else None,
          "done": summary is not None})
      continue
    source, pretrain = info.get("source") or {}, {}
    budget = int(config["data"]["labeled_subjects"])
    pretrain_wall = math.nan
    if source.get("init_from"):
      source_run = pathlib.Path(source["init_from"]) / "run.json"
      if not source_run.exists():  # The sweep dir moved (e.g. a git clone).
        source_run = (workdir.parent.parent / "pretrain" /
                      pathlib.Path(source["init_from"]).name / "run.json")
      if source_run.exists():
        pretrain = stats.read_json(source_run)["config"]["pretrain"]
        source_summary = source_run.parent / "summary.json"
        if source_summary.exists():
          pretrain_wall = cells_report.wall_s(
              stats.read_json(source_summary))
    arm = arm_name(source, info["dataset"], config["finetune"], pretrain)
    pretrain_steps = int(pretrain.get("steps", 0))
    finetunes.append(FinetuneRun(
        path=str(workdir), dataset=info["dataset"], arm=arm, budget=budget,
        labelled_subjects=budget or len(info["splits"]["train"]),
        seed=int(config["seed"]), steps=int(config["finetune"]["steps"]),
        val=sorted((m["step"], m["macro_f1"]) for m in metrics
                   if m["split"] == "val"),
        test=summary["test"] if summary else None,
        class_names=info["class_names"],
        fold=(int(config["data"].get("fold", 0))
              if config["data"].get("num_folds") else -1),
        learning_rate=float(config["finetune"].get("learning_rate", 0.)),
        pretrain_steps=pretrain_steps,
        cell=config.get("model", {}).get("cell", "lstm"),
        hidden=int(config.get("model", {}).get("hidden", 0)),
        wall_s=cells_report.wall_s(summary), pretrain_wall_s=pretrain_wall))
    projections.append(config.get("model", {}).get("modality_projection", 0))
  if len(set(projections)) > 1:  # configs/sweeps/modality.py: its arms.
    finetunes = [r._replace(arm=f"{r.arm} +proj{d}") if d else r
                 for r, d in zip(finetunes, projections)]
  finetunes = cells_report.name_arms(finetunes, pretrains)
  return finetunes, pretrains


def arm_name(source: dict, dataset: str, finetune: dict,
             pretrain: Optional[dict] = None) -> str:
  """The arm of a fine-tune run: where its encoder started, and controls.

  "scratch", an objective ("simclr"; + stats.supervision_tag of the source's
  `pretrain` config), from another dataset ("classification@uci_hapt/50hz")
  or a corpus ("simclr+sup0.5@corpus"), a released encoder
  ("pretrained:<name>"); a protocol other than full fine-tuning in brackets
  ("simclr [linear_probe]"); "+aug" when the fine-tune itself was trained
  with augmentations (the control for simclr's).
  """
  arm = source.get("objective", "scratch") + stats.supervision_tag(pretrain)
  if source.get("release"):
    arm = f"pretrained:{source['release']}"
  elif source.get("corpus"):  # A corpus subset (corpus_hours) names its hours.
    arm = f"{arm}@corpus" + (f"-{source['corpus_hours']:.2f}h"
                             if source.get("corpus_hours") else "")
  elif source and source.get("dataset") != dataset:
    arm = f"{arm}@{source['dataset']}"
  if finetune.get("protocol", "full") != "full":
    arm += f" [{finetune['protocol']}]"
  if finetune.get("augment"):
    arm += " +aug"
  return arm
