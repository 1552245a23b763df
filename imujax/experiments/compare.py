"""What `main` runs: one phase, or the pre-train vs scratch comparison.

The comparison is a small sweep run in this process: the same points a
sweep file would declare (the configured objective and "scratch", for each
seed), expanded by `jobs_lib.expand` into pre-training and fine-tune runs with
the sweep's workdir layout, and summarised by `report` (the same tables,
paired differences and plots as any sweep). So there is one research
protocol, whether it runs here or on a cluster:

  <workdir>/pretrain/<objective>-s<seed>/   pre-training of each seed
  <workdir>/finetune/<objective>-s<seed>/   fine-tuned from it
  <workdir>/finetune/scratch-s<seed>/       the same labels and steps, random init
  <workdir>/report/report.md                tables, CSVs and plots
  <workdir>/results.md                      the arms' table, as printed

Within a seed both arms see the same subjects, labelled recordings and
steps; they differ only in where the encoder starts. Every run resumes where
it stopped, so rerunning the command finishes an interrupted comparison.
"""

import copy
import statistics
import time

from absl import logging
from etils import epath
import jax
import ml_collections

from imujax.experiments import report
from imujax.experiments import run_records
from imujax.experiments import jobs as jobs_lib
from imujax.training import loop


def run(config: ml_collections.ConfigDict, workdir: str):
  """Runs `config.mode` in `workdir`; every phase resumes where it stopped."""
  if config.mode in ("pretrain", "finetune"):
    return loop.train_and_evaluate(config, workdir, config.mode)
  return compare(config, workdir)


def points(config: ml_collections.ConfigDict) -> list[dict]:
  """The comparison as sweep points: each seed, pre-trained and scratch.

  With `init_from` set (a workdir or `pretrained:<name>`), that encoder is
  the pre-trained arm and nothing is pre-trained (`given_encoder_jobs`).
  """
  seeds = [config.seed + k for k in range(config.num_seeds)]
  arms = ("scratch",) if config.init_from else (config.pretrain.objective,
                                                "scratch")
  return [{"objective": arm, "seed": seed} for seed in seeds for arm in arms]


def given_encoder_jobs(config: ml_collections.ConfigDict) -> list:
  """Fine-tunes from `config.init_from`, one per seed ([] when unset)."""
  if not config.init_from:
    return []
  source = config.init_from.rstrip("/")
  slug = (source.replace(":", "-") if ":" in source else
          "from-" + source.rsplit("/", 1)[-1])
  return [jobs_lib.Job(f"finetune/{slug}-s{config.seed + k}", "(in-process)",
                       (("mode", "finetune"), ("init_from", config.init_from),
                        ("seed", config.seed + k)), objective="given")
          for k in range(config.num_seeds)]


def job_config(config: ml_collections.ConfigDict,
               job: jobs_lib.Job) -> ml_collections.ConfigDict:
  """`config` with a sweep job's overrides (mode, seed, init_from, ...)."""
  out = copy.deepcopy(config)
  for key, value in job.overrides:
    *parents, name = key.split(".")
    node = out
    for part in parents:
      node = node[part]
    node[name] = value
  return out


def compare(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Pre-trains, fine-tunes from it and from scratch; writes the report.

  Returns:
    The report's rows (one per arm: scores over seeds, paired difference).
  """
  jobs = given_encoder_jobs(config) + jobs_lib.expand(
      points(config), config="(in-process)", sweep_dir=workdir)
  t0, done_s = time.time(), {"pretrain": [], "finetune": []}
  for i, job in enumerate(jobs):
    label = f"run {i + 1}/{len(jobs)} {job.name}"
    logging.info("Run %d of %d: %s (%s)", i + 1, len(jobs), job.name,
                 _eta(jobs[i:], done_s))
    t_run = time.time()
    summary = loop.train_and_evaluate(
        job_config(config, job), str(epath.Path(workdir) / job.name),
        job.mode, label=label)
    if summary.get("steps_this_session"):  # Not a finished run, skipped.
      done_s[job.mode].append(time.time() - t_run)
  logging.info("All %d runs done in %.0f s.", len(jobs), time.time() - t0)
  if jax.process_index() != 0:
    return []
  path = report.write_report(workdir)
  runs, _ = run_records.read_runs(workdir)
  rows = report.summarise(runs)
  table = report.arms_table(rows) + report.other_targets_table(workdir)
  (epath.Path(workdir) / "results.md").write_text(table)
  logging.info("Results written to %s and %s", epath.Path(workdir) /
               "results.md", path)
  print(table)
  return rows


def _eta(remaining: list, done_s: dict) -> str:
  """Time left for `remaining` jobs, from the runs of each phase so far."""
  if not any(done_s.values()):
    return "ETA after the first run"
  per = {m: statistics.mean(s) for m, s in done_s.items() if s}
  fallback = statistics.mean(per.values())
  left = sum(per.get(j.mode, fallback) for j in remaining)
  return f"ETA {int(left // 60)}m{int(left % 60):02d}s for {len(remaining)} runs"
