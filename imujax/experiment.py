"""What `main` runs: one phase, or the pre-train vs scratch comparison."""

import copy
import json

from absl import logging
from etils import epath
import jax
import ml_collections

from imujax import train

ARMS = ("pretrained", "scratch")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs `config.mode` in `workdir`; every phase resumes where it stopped."""
  if config.mode == "pretrain":
    return train.train_and_evaluate(config, workdir, "pretrain")
  if config.mode == "finetune":
    return train.train_and_evaluate(config, workdir, "finetune")
  return compare(config, workdir)


def compare(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pre-trains, fine-tunes from it and from scratch; writes results.md.

  Both arms see the same subjects, labelled recordings, steps and seed; they
  differ only in where the encoder starts.
  """
  root = epath.Path(workdir)
  pretrain_dir = root / "pretrain"
  train.train_and_evaluate(config, str(pretrain_dir), "pretrain")
  summaries = {}
  for arm in ARMS:
    arm_config = copy.deepcopy(config)
    arm_config.init_from = str(pretrain_dir) if arm == "pretrained" else ""
    summaries[arm] = train.train_and_evaluate(arm_config, str(root / arm),
                                              "finetune")
  table = results_table(config, summaries)
  if jax.process_index() == 0:
    (root / "results.md").write_text(table)
    (root / "results.json").write_text(json.dumps(
        {arm: s["test"] for arm, s in summaries.items()}, indent=1))
  logging.info("Results written to %s", root / "results.md")
  print(table)
  return summaries


def results_table(config: ml_collections.ConfigDict, summaries: dict) -> str:
  """A markdown table of both arms' test scores."""
  any_summary = next(iter(summaries.values()))
  splits = any_summary["splits"]
  lines = [
      f"Dataset `{config.data.name}`, {config.model.cell.upper()} "
      f"{config.model.layers}x{config.model.hidden}, seed {config.seed}; "
      f"{any_summary['labeled_recordings']} labelled recordings of "
      f"{config.data.labeled_subjects or len(splits['train'])} training "
      f"subjects; {config.finetune.steps} fine-tune steps "
      f"({config.finetune.protocol}); test subjects {', '.join(splits['test'])} "
      f"({any_summary['test']['frames']} frames, per-frame, causal).",
      "",
      "| arm | test macro-F1 | test accuracy |",
      "|---|---|---|",
  ]
  for arm, s in summaries.items():
    source = (f" on `{config.pretrain.dataset}`"
              if config.pretrain.dataset else "")
    name = (f"pre-trained ({config.pretrain.objective}{source}, "
            f"{config.pretrain.steps} steps)") if arm == "pretrained" else arm
    lines.append(f"| {name} | {s['test']['macro_f1']:.3f} | "
                 f"{s['test']['accuracy']:.3f} |")
  return "\n".join(lines) + "\n"
