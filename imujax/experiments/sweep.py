r"""Sweeps: many imujax runs declared next to the configs, each in its own workdir.

A sweep file (configs/sweeps/*.py) defines `sweep(arg=None)`, which yields one
dict of config overrides per fine-tune point, and `CONFIG`, the config file
every run starts from. A point's reserved keys:

  "objective": "scratch" | an objective ("classification": supervised) — how the encoder
               starts. Anything but "scratch" adds a pre-training run;
  "config":    another config file for this point (default: CONFIG);
  "set":       a dict of overrides that the named keys imply (e.g. a
               dataset's subject counts): applied, but kept out of the name.
  "finetune_only": named keys the point's pre-training does not depend
               on (e.g. data.fold of a leave-one-dataset-out corpus): kept
               out of its pretrain job, which those points then share.

Every other key is a config key (`"data.labeled_subjects": 2`). `expand`
turns points into jobs:

  pretrain/<name>  mode=pretrain, pretrain.objective=<objective>, one per
                   distinct pre-training (the point without its fine-tune-only
                   keys, `FINETUNE_ONLY`), shared by every point that needs it;
  finetune/<name>  mode=finetune, init_from=<its pretrain workdir> (scratch:
                   init_from=""), after that pre-training.

Every job is `python -m imujax.main --config=... --workdir=<sweep_dir>/<name>
--config.<key>=<value>...`; imujax runs resume from their workdir, so
rerunning a sweep skips finished jobs (summary.json present) and resumes
interrupted ones. Launchers (`python -m imujax.experiments.sweep --help`):

  local   run here, --parallel=N processes, dependencies respected;
          --vmap_seeds trains jobs that differ only in seed as one
          `imujax.training.multiseed` program (on a CPU with --cpu_devices=<seeds>:
          one CPU device per seed);
  slurm   write job-array scripts (pretrain array; fine-tune array with
          --dependency=afterok on it); --submit runs sbatch;
  tpu     write the `gcloud compute tpus tpu-vm ssh --worker=all` commands;
  list    print every job and its state.

  python -m imujax.experiments.sweep --sweep=configs/sweeps/study.py:variant=cheap \
      --sweep_dir=/tmp/study --set=data.manual_dir=../shared/data/sp_sw_har \
      --launcher=local --vmap_seeds --cpu_devices=3
  python -m imujax.experiments.report /tmp/study
"""

import argparse
import shutil
import subprocess
import sys

from imujax.experiments import jobs as jobs_lib
from imujax.experiments import launchers


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
      prog="python -m imujax.experiments.sweep", description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="See the module docstring (imujax/experiments/sweep.py) for the layout.")
  p.add_argument("--sweep", required=True,
                 help="Sweep file, e.g. configs/sweeps/study.py:variant=cheap.")
  p.add_argument("--sweep_dir", required=True, help="Root of the workdirs.")
  p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                 help="Config override for every run (repeatable), e.g. "
                 "data.manual_dir=../shared/data/sp_sw_har.")
  p.add_argument("--launcher", default="list",
                 choices=("list", "local", "slurm", "tpu"))
  p.add_argument("--parallel", type=int, default=1,
                 help="local: processes at a time.")
  p.add_argument("--vmap_seeds", action="store_true",
                 help="local: train jobs differing only in seed together.")
  p.add_argument("--impl", default="vmap", choices=("vmap", "loop"),
                 help="local --vmap_seeds: how one program steps members.")
  p.add_argument("--cpu_devices", type=int, default=0,
                 help="local --vmap_seeds: split the CPU into this many JAX "
                 "devices and each seed group's members over them (e.g. the "
                 "group size; imujax/bench/seeds.py). 0: JAX's default.")
  p.add_argument("--sbatch", action="append", default=[],
                 metavar="DIRECTIVE", help="slurm: extra #SBATCH line, "
                 "e.g. '--gres=gpu:1' (repeatable).")
  p.add_argument("--max_parallel", type=int, default=0,
                 help="slurm: array throttle (%%N).")
  p.add_argument("--submit", action="store_true", help="slurm: run sbatch.")
  p.add_argument("--tpu", default="", help="tpu: TPU VM name.")
  p.add_argument("--zone", default="", help="tpu: its zone.")
  p.add_argument("--project", default="", help="tpu: GCP project.")
  p.add_argument("--remote_repo", default="~/imujax",
                 help="tpu: the repository's path on the TPU VM.")
  p.add_argument("--out", default="", help="slurm/tpu: where the scripts "
                 "go (default <sweep_dir>/<launcher>; needed for gs://).")
  args = p.parse_args(argv)
  for s in args.set:
    if "=" not in s:
      p.error(f"--set {s!r} is not KEY=VALUE.")

  config, points = jobs_lib.load_sweep(args.sweep)
  jobs = jobs_lib.expand(points, config, args.sweep_dir)
  launchers.write_plan(jobs, args.sweep_dir, args.sweep, args.set)
  states = {j.name: jobs_lib.state(j, args.sweep_dir) for j in jobs}
  counts = {s: list(states.values()).count(s)
            for s in ("done", "archived", "damaged", "started", "new")}
  print(f"{len(jobs)} runs ({sum(j.mode == 'pretrain' for j in jobs)} "
        f"pre-training) in {args.sweep_dir}: {counts['done']} done, "
        f"{counts['archived']} archived (results kept, checkpoints not), "
        f"{counts['started']} to resume, {counts['new']} new"
        + (f", {counts['damaged']} with a damaged summary.json (run again)"
           if counts["damaged"] else "") + ".")

  if args.launcher == "list":
    for j in jobs:
      print(f"  {states[j.name]:7s} {j.name}")
    return 0
  if args.launcher == "local":
    result = launchers.run_local(jobs, args.sweep_dir, sets=args.set,
                       parallel=args.parallel, vmap_seeds=args.vmap_seeds,
                       impl=args.impl, cpu_devices=args.cpu_devices)
    bad = sorted(n for n, s in result.items() if s != "done")
    print(f"{len(result) - len(bad)}/{len(result)} runs done."
          + (f" Not done: {', '.join(bad)}" if bad else "")
          + f"\nReport: python -m imujax.experiments.report {args.sweep_dir}")
    return 1 if bad else 0
  if args.launcher == "slurm":
    path = launchers.write_slurm(jobs, args.sweep_dir, sets=args.set,
                       directives=args.sbatch, max_parallel=args.max_parallel,
                       out=args.out)
    print(f"Wrote {path} and its arrays.")
    if args.submit:
      if not shutil.which("sbatch"):
        print("sbatch is not on PATH here: run submit.sh on the cluster's "
              "login node.", file=sys.stderr)
        return 1
      return subprocess.call(["bash", str(path)])
    return 0
  if not (args.tpu and args.zone):
    p.error("--launcher=tpu needs --tpu=<TPU VM name> and --zone=<zone>.")
  path = launchers.write_tpu(jobs, args.sweep_dir, sets=args.set, tpu=args.tpu,
                   zone=args.zone, project=args.project,
                   remote_repo=args.remote_repo, out=args.out)
  print(f"Wrote {path}; run it where gcloud is set up.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
