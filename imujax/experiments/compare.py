"""What `main` runs: one phase, or the pre-train vs scratch comparison."""

import copy
import json

from absl import logging
from etils import epath
import jax
import ml_collections
import numpy as np

from imujax.training import loop

ARMS = ("pretrained", "scratch")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs `config.mode` in `workdir`; every phase resumes where it stopped."""
  if config.mode == "pretrain":
    return loop.train_and_evaluate(config, workdir, "pretrain")
  if config.mode == "finetune":
    return loop.train_and_evaluate(config, workdir, "finetune")
  return compare(config, workdir)


def compare(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pre-trains, fine-tunes from it and from scratch; writes results.md.

  Within a seed both arms see the same subjects, labelled recordings and steps;
  they differ only in where the encoder starts. With `num_seeds` > 1 the whole
  comparison is repeated for seeds seed, seed+1, ... (each its own split,
  labels and initialisation) under workdir/seed_<s>/, and the table gives
  mean ± std over seeds and the paired difference.

  Returns:
    {seed: {arm: summary}}.
  """
  root = epath.Path(workdir)
  seeds = [config.seed + k for k in range(config.num_seeds)]
  results = {}
  for seed in seeds:
    seed_config = copy.deepcopy(config)
    seed_config.seed = seed
    seed_root = root if len(seeds) == 1 else root / f"seed_{seed}"
    results[seed] = _compare_one_seed(seed_config, seed_root)
  table = results_table(config, results)
  if jax.process_index() == 0:
    (root / "results.md").write_text(table)
    scores = {arm: [results[s][arm]["test"] for s in seeds] for arm in ARMS}
    (root / "results.json").write_text(json.dumps(
        {arm: v[0] for arm, v in scores.items()} if len(seeds) == 1 else
        {"seeds": seeds, **scores}, indent=1))
  logging.info("Results written to %s", root / "results.md")
  print(table)
  return results


def _compare_one_seed(config, root: epath.Path) -> dict:
  pretrain_dir = root / "pretrain"
  loop.train_and_evaluate(config, str(pretrain_dir), "pretrain")
  summaries = {}
  for arm in ARMS:
    arm_config = copy.deepcopy(config)
    arm_config.init_from = str(pretrain_dir) if arm == "pretrained" else ""
    summaries[arm] = loop.train_and_evaluate(arm_config, str(root / arm),
                                              "finetune")
  return summaries


def results_table(config: ml_collections.ConfigDict, results: dict) -> str:
  """Markdown: each arm's test scores, mean ± std over seeds, and each seed."""
  seeds = sorted(results)
  first = results[seeds[0]]["scratch"]
  lines = [
      f"Dataset `{config.data.name}`, {config.model.cell.upper()} "
      f"{config.model.layers}x{config.model.hidden}; "
      f"{config.data.labeled_subjects or len(first['splits']['train'])} "
      f"labelled training subjects; {config.finetune.steps} fine-tune steps "
      f"({config.finetune.protocol}); seeds {', '.join(map(str, seeds))} "
      "(each seed its own subject split, labels and initialisation); "
      "per-frame scores over whole test recordings, run causally.",
      "",
      "| arm | test macro-F1 | test accuracy | macro-F1 per seed |",
      "|---|---|---|---|",
  ]
  f1 = {arm: np.array([results[s][arm]["test"]["macro_f1"] for s in seeds])
        for arm in ARMS}
  for arm in ARMS:
    acc = np.array([results[s][arm]["test"]["accuracy"] for s in seeds])
    source = (f" on `{config.pretrain.dataset}`"
              if config.pretrain.dataset else "")
    name = (f"pre-trained ({config.pretrain.objective}{source}, "
            f"{config.pretrain.steps} steps)") if arm == "pretrained" else arm
    lines.append(f"| {name} | {_mean_std(f1[arm])} | {_mean_std(acc)} | "
                 + ", ".join(f"{v:.3f}" for v in f1[arm]) + " |")
  if len(seeds) > 1:
    diff = f1["pretrained"] - f1["scratch"]
    lines += ["", f"Pre-trained − scratch, test macro-F1, paired by seed: "
              f"mean {diff.mean():+.3f} (std {diff.std(ddof=1):.3f}); "
              f"pre-trained ahead in {int((diff > 0).sum())} of {len(seeds)} "
              "seeds."]
  return "\n".join(lines) + "\n"


def _mean_std(values: np.ndarray) -> str:
  if len(values) == 1:
    return f"{values[0]:.3f}"
  return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"
