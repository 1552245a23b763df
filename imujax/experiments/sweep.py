r"""Sweeps: many imujax runs declared next to the configs, each in its own workdir.

A sweep file (configs/sweeps/*.py) defines `sweep(arg=None)`, which yields one
dict of config overrides per fine-tune point, and `CONFIG`, the config file
every run starts from. A point's reserved keys:

  "objective": "scratch" | an objective ("classification": supervised) — how the encoder
               starts. Anything but "scratch" adds a pre-training run;
  "config":    another config file for this point (default: CONFIG);
  "set":       a dict of overrides that the named keys imply (e.g. a
               dataset's subject counts): applied, but kept out of the name.

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

import dataclasses
import importlib.util
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Optional

from imujax import configlib

REPO = pathlib.Path(__file__).resolve().parents[1]

# Keys that change only the fine-tuning: a pre-training run is shared by the
# points that differ in these alone.
FINETUNE_ONLY = ("data.labeled_subjects", "data.labeled_recordings",
                 "finetune.")
RESERVED = ("objective", "config", "set")
# Short name parts for the usual keys; others are written `<last part>=<v>`.
_ALIASES = {"data.name": "", "objective": "", "pretrain.dataset": "from-",
            "data.labeled_subjects": "b", "data.labeled_recordings": "r",
            "seed": "s"}


@dataclasses.dataclass(frozen=True)
class Job:
  """One imujax run of a sweep."""
  name: str                 # Workdir relative to the sweep dir.
  config: str               # Config file, optionally with :args.
  overrides: tuple          # ((key, value), ...) passed as --config.key=value.
  after: Optional[str] = None  # Name of the job this one starts from.
  objective: str = ""       # The point's "objective" (fine-tunes: the arm).

  @property
  def mode(self) -> str:
    """"pretrain" | "finetune"; "" for a plain point (its config's mode)."""
    return dict(self.overrides).get("mode", "")

  def member_keys(self) -> tuple:
    """Overrides a member of a multiseed program may have for itself."""
    return ("seed", "init_from", *(f"{self.mode}.{h}" for h in
                                   configlib.MEMBER_HPARAMS))

  def without_seed(self) -> tuple:
    """What a job shares with its group (for --vmap_seeds): all but its seed,
    init_from and the trained phase's learning rate / weight decay."""
    return (self.config, self.objective,
            tuple((k, v) for k, v in self.overrides
                  if k not in self.member_keys()))


# ----------------------------------------------------------------- declare
def load_sweep(spec: str) -> tuple[str, list[dict]]:
  """(CONFIG, points) of a sweep file given as `path.py[:arg]`."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise FileNotFoundError(f"Sweep file {path!r} does not exist (--sweep).")
  module_spec = importlib.util.spec_from_file_location("_imujax_sweep", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  for attr in ("sweep", "CONFIG"):
    if not hasattr(module, attr):
      raise AttributeError(f"Sweep file {path} defines no {attr!r}; a sweep "
                           "file needs CONFIG (a config file) and "
                           "sweep(arg=None) yielding override dicts.")
  return module.CONFIG, list(module.sweep(arg or None))


def slug(point: Iterable[tuple[str, Any]]) -> str:
  """A readable, stable directory name for the (key, value) pairs."""
  parts = []
  for key, value in point:
    prefix = _ALIASES.get(key, key.split(".")[-1] + "=")
    parts.append(prefix + str(value).replace("/", "_").replace(" ", ""))
  return "-".join(parts)


def root_of(sweep_dir: str) -> str:
  """The sweep dir as runs see it: absolute, or a URL (gs://...) as given."""
  sweep_dir = os.fspath(sweep_dir)
  return sweep_dir if "://" in sweep_dir else os.path.abspath(sweep_dir)


def _finetune_only(key: str) -> bool:
  return any(key == k or (k.endswith(".") and key.startswith(k))
             for k in FINETUNE_ONLY)


def expand(points: Iterable[dict], config: str, sweep_dir: str) -> list[Job]:
  """Pretrain jobs (deduplicated) then fine-tune jobs, in declaration order."""
  root = root_of(sweep_dir)
  pretrains, finetunes = {}, []
  for point in points:
    point = dict(point)
    objective = point.pop("objective", None)
    cfg = point.pop("config", config)
    implied = list(point.pop("set", {}).items())
    for key in ("mode", "init_from"):
      if key in point or key in dict(implied):
        raise ValueError(f"Sweep point {point} sets {key!r}; the sweep sets "
                         "it from 'objective' (scratch or a pretext kind).")
    named = list(point.items())
    items = named + implied
    if objective is None:  # A plain run: the config's own mode, no deps.
      finetunes.append(Job(slug(named), cfg, tuple(items)))
      continue
    ft_name = "finetune/" + slug([("objective", objective), *named])
    if objective == "scratch":
      finetunes.append(Job(ft_name, cfg, (("mode", "finetune"),
                                          ("init_from", ""), *items),
                           objective=objective))
      continue
    pre_items = [(k, v) for k, v in items if not _finetune_only(k)]
    pre_name = "pretrain/" + slug(
        [("objective", objective),
         *((k, v) for k, v in named if not _finetune_only(k))])
    pre = Job(pre_name, cfg, (("mode", "pretrain"),
                              ("pretrain.objective", objective), *pre_items),
              objective=objective)
    if pretrains.setdefault(pre_name, pre) != pre:
      raise ValueError(f"Two sweep points map to {pre_name} with different "
                       f"settings: {pretrains[pre_name]} vs {pre}.")
    finetunes.append(Job(ft_name, cfg, (
        ("mode", "finetune"), ("init_from", f"{root}/{pre_name}"),
        *items), after=pre_name, objective=objective))
  jobs = [*pretrains.values(), *finetunes]
  names = [j.name for j in jobs]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ValueError(f"The sweep declares these runs twice: {dupes[:5]}.")
  return jobs


def _flag_value(value) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  return str(value)


def command(job: Job, sweep_dir: str, sets: Iterable[str] = ()) -> list[str]:
  """The `python -m imujax.main ...` argv of a job; `sets` are key=value."""
  return ["python", "-m", "imujax.main", f"--config={job.config}",
          f"--workdir={root_of(sweep_dir)}/{job.name}",
          *(f"--config.{k}={_flag_value(v)}" for k, v in job.overrides),
          *(f"--config.{s}" for s in sets)]


def state(job: Job, sweep_dir: str) -> str:
  """"done" (summary.json), "started" (a workdir with files) or "new".

  A URL sweep dir (gs://) is not looked into from here: every job is "new",
  and the generated commands skip finished runs when they run.
  """
  if "://" in os.fspath(sweep_dir):
    return "new"
  workdir = pathlib.Path(sweep_dir) / job.name
  if (workdir / "summary.json").exists():
    return "done"
  if workdir.exists() and any(workdir.iterdir()):
    return "started"
  return "new"


# ----------------------------------------------------------------- groups
@dataclasses.dataclass
class Unit:
  """What the local launcher starts as one process: one job or a seed group."""
  jobs: list
  argv: list
  log: pathlib.Path

  @property
  def after(self) -> set:
    return {j.after for j in self.jobs if j.after}


def seed_groups(jobs: list[Job], sweep_dir: str) -> list[list[Job]]:
  """Jobs that differ only in seed (and their init_from), in order.

  Members must resume from the same step, so a started job is grouped only
  with started jobs (a group interrupted together resumes together) and new
  ones only with new ones.
  """
  groups: dict = {}
  for job in jobs:
    key = (job.without_seed(), state(job, sweep_dir) == "new")
    groups.setdefault(key, []).append(job)
  return list(groups.values())


def multiseed_command(jobs: list[Job], sweep_dir: str,
                      sets: Iterable[str] = (), impl: str = "vmap",
                      cpu_devices: int = 0) -> list[str]:
  """`python -m imujax.training.multiseed` argv training `jobs` as one program."""
  root = root_of(sweep_dir)
  members = []
  for job in jobs:
    o = dict(job.overrides)
    m = {"seed": int(o.get("seed", 0)),
         "workdir": f"{root}/{job.name}"}
    if o.get("init_from"):
      m["init_from"] = o["init_from"]
    own = {k: v for k, v in job.overrides
           if k in job.member_keys() and k not in ("seed", "init_from")}
    if own:
      m["set"] = own
    members.append(m)
  shared = [(k, v) for k, v in jobs[0].overrides
            if k not in (*jobs[0].member_keys(), "mode")]
  return ["python", "-m", "imujax.training.multiseed", f"--config={jobs[0].config}",
          f"--phase={jobs[0].mode}", f"--impl={impl}",
          f"--members={json.dumps(members)}",
          *([f"--cpu_devices={cpu_devices}"] if cpu_devices else []),
          *(f"--config.{k}={_flag_value(v)}" for k, v in shared),
          *(f"--config.{s}" for s in sets)]


def units(jobs: list[Job], sweep_dir: str, sets=(), vmap_seeds=False,
          impl="vmap", cpu_devices: int = 0) -> list[Unit]:
  """The unfinished jobs as launchable units (seed groups with vmap_seeds)."""
  todo = [j for j in jobs if state(j, sweep_dir) != "done"]
  root = pathlib.Path(sweep_dir)
  if not vmap_seeds:
    return [Unit([j], command(j, sweep_dir, sets), root / j.name / "log.txt")
            for j in todo]
  out = []
  for group in seed_groups(todo, sweep_dir):
    if len(group) == 1 or not group[0].mode:  # Plain points run singly.
      out.extend(Unit([j], command(j, sweep_dir, sets),
                      root / j.name / "log.txt") for j in group)
    else:
      name = group[0].name.replace("/", "__")
      out.append(Unit(group, multiseed_command(group, sweep_dir, sets, impl,
                                               cpu_devices),
                      root / "logs" / f"{name}-x{len(group)}.txt"))
  return out


# ----------------------------------------------------------------- local
def _popen(argv: list[str], log: pathlib.Path):
  log.parent.mkdir(parents=True, exist_ok=True)
  with log.open("a") as f:
    argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    return subprocess.Popen(argv, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)


def run_local(jobs: list[Job], sweep_dir: str, *, sets=(), parallel: int = 1,
              vmap_seeds: bool = False, impl: str = "vmap",
              cpu_devices: int = 0, start: Callable = _popen,
              poll_s: float = 1.0, echo: Callable = print) -> dict[str, str]:
  """Runs the unfinished jobs here, `parallel` processes at a time.

  A unit starts once every pre-training it needs is done; units whose
  pre-training failed are reported as "blocked". `start(argv, log)` returns
  something with `.poll()` (a Popen); tests pass a fake.

  Returns:
    {job name: "done" | "failed" | "blocked"} for every job of the sweep.
  """
  result = {j.name: "done" for j in jobs if state(j, sweep_dir) == "done"}
  pending = units(jobs, sweep_dir, sets, vmap_seeds, impl, cpu_devices)
  running: list = []
  while pending or running:
    for unit in list(pending):
      if any(result.get(a) in ("failed", "blocked") for a in unit.after):
        pending.remove(unit)
        result.update({j.name: "blocked" for j in unit.jobs})
        echo(f"blocked (its pre-training failed): "
             f"{', '.join(j.name for j in unit.jobs)}")
      elif len(running) < parallel and all(
          result.get(a) == "done" for a in unit.after):
        pending.remove(unit)
        echo(f"start {', '.join(j.name for j in unit.jobs)} "
             f"(log {unit.log})")
        running.append((unit, start(unit.argv, unit.log)))
    for unit, proc in list(running):
      rc = proc.poll()
      if rc is None:
        continue
      running.remove((unit, proc))
      for j in unit.jobs:
        ok = rc == 0 and state(j, sweep_dir) == "done"
        result[j.name] = "done" if ok else "failed"
        echo(f"{'done' if ok else f'FAILED (exit {rc})'}: {j.name}")
    if running and not any(p.poll() is not None for _, p in running):
      time.sleep(poll_s)
    elif pending and not running and not any(
        all(result.get(a) == "done" for a in u.after) for u in pending):
      # Nothing runs and nothing can start: a dependency outside the sweep.
      for u in pending:
        result.update({j.name: "blocked" for j in u.jobs})
      break
  return result


# ----------------------------------------------------------------- slurm
_SBATCH = """#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --array=0-{last}{throttle}
#SBATCH --output={logs}/%x-%A_%a.out
{directives}
# Task i runs line i+1 of {commands}; a finished run is skipped, an
# interrupted one resumes from its workdir (so requeueing is safe).
set -euo pipefail
cd {repo}
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {commands})
eval "$line"
"""


def _guarded(job: Job, sweep_dir: str, sets) -> str:
  """The job's command, skipped at run time when its run has finished."""
  workdir = f"{root_of(sweep_dir)}/{job.name}"
  check = (f"test -f {shlex.quote(workdir)}/summary.json" if "://" not in
           workdir else shlex.join(
               ["python", "-c", "import sys; from etils import epath; "
                "sys.exit(not epath.Path(sys.argv[1]).exists())",
                f"{workdir}/summary.json"]))
  return f"{check} || {shlex.join(command(job, sweep_dir, sets))}"


def _script_dir(sweep_dir: str, out: str, kind: str) -> pathlib.Path:
  if out:
    return pathlib.Path(out).absolute()
  if "://" in sweep_dir:
    raise ValueError(f"--sweep_dir={sweep_dir} is remote: give --out=<a "
                     f"local folder> for the {kind} scripts.")
  return pathlib.Path(sweep_dir).absolute() / kind


def write_slurm(jobs: list[Job], sweep_dir: str, *, sets=(),
                directives: Iterable[str] = (), max_parallel: int = 0,
                out: str = "") -> pathlib.Path:
  """Writes job-array scripts and submit.sh under <sweep_dir>/slurm/.

  Arrays: `pretrain` (no dependency), `finetune_after` (fine-tunes whose
  pre-training is not finished yet: --dependency=afterok on the whole pretrain
  array, so one failed pre-training holds them all back until it is rerun)
  and `finetune` (the rest: scratch, or pre-training already done).

  Returns:
    The path of submit.sh.
  """
  out = _script_dir(sweep_dir, out, "slurm")
  (out / "logs").mkdir(parents=True, exist_ok=True)
  todo = [j for j in jobs if state(j, sweep_dir) != "done"]
  pre_todo = {j.name for j in todo if j.mode == "pretrain"}
  arrays = {
      "pretrain": [j for j in todo if j.name in pre_todo],
      "finetune_after": [j for j in todo if j.after in pre_todo],
      "finetune": [j for j in todo
                   if j.name not in pre_todo and j.after not in pre_todo],
  }
  submit = ["#!/bin/bash", "# Submits the sweep's job arrays; written by "
            "imujax.experiments.sweep.", "set -euo pipefail", f"cd {out}"]
  for name, array in arrays.items():
    if not array:
      continue
    commands = out / f"{name}.txt"
    commands.write_text("".join(_guarded(j, sweep_dir, sets) + "\n"
                                for j in array))
    (out / f"{name}.sbatch").write_text(_SBATCH.format(
        job_name=f"imujax-{pathlib.PurePath(sweep_dir).name}-{name}",
        last=len(array) - 1,
        throttle=f"%{max_parallel}" if max_parallel else "",
        logs=out / "logs", repo=REPO, commands=commands,
        directives="\n".join(f"#SBATCH {d}" for d in directives)))
    if name == "pretrain":
      submit.append("pre=$(sbatch --parsable pretrain.sbatch)")
      submit.append('echo "pretrain array: $pre"')
    elif name == "finetune_after":
      submit.append("sbatch --dependency=afterok:${pre} finetune_after.sbatch")
    else:
      submit.append("sbatch finetune.sbatch")
  path = out / "submit.sh"
  path.write_text("\n".join(submit) + "\n")
  path.chmod(0o755)
  return path


# ----------------------------------------------------------------- tpu
def write_tpu(jobs: list[Job], sweep_dir: str, *, sets=(), tpu: str,
              zone: str, project: str = "", remote_repo: str = "~/imujax",
              out: str = "") -> pathlib.Path:
  """Writes <sweep_dir>/tpu/run.sh: one `gcloud ... ssh --worker=all` per job.

  Every host of the TPU VM runs the same command (JAX's multi-host model),
  one job after another, pre-trainings first. `sweep_dir` should be a path
  every host sees (a gs:// bucket or a shared disk).
  """
  out = _script_dir(sweep_dir, out, "tpu")
  out.mkdir(parents=True, exist_ok=True)
  todo = [j for j in jobs if state(j, sweep_dir) != "done"]
  todo.sort(key=lambda j: j.mode != "pretrain")
  base = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}",
          *([f"--project={project}"] if project else []), "--worker=all"]
  lines = ["#!/bin/bash", "# The sweep on a TPU VM; written by imujax.experiments.sweep. "
           "Rerun to resume.", "set -euo pipefail"]
  for job in todo:
    remote = f"cd {remote_repo} && " + _guarded(job, sweep_dir, sets)
    lines.append(shlex.join([*base, f"--command={remote}"]))
  path = out / "run.sh"
  path.write_text("\n".join(lines) + "\n")
  path.chmod(0o755)
  return path


# ----------------------------------------------------------------- CLI
def write_plan(jobs: list[Job], sweep_dir: str, spec: str, sets) -> None:
  """<sweep_dir>/sweep.json: the jobs, for people and for the report."""
  if "://" in sweep_dir:
    return
  root = pathlib.Path(sweep_dir)
  root.mkdir(parents=True, exist_ok=True)
  (root / "sweep.json").write_text(json.dumps({
      "sweep": spec, "set": list(sets),
      "jobs": [{"name": j.name, "config": j.config,
                "overrides": dict(j.overrides), "after": j.after}
               for j in jobs]}, indent=1))


def main(argv=None) -> int:
  import argparse  # pylint: disable=g-import-not-at-top
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

  config, points = load_sweep(args.sweep)
  jobs = expand(points, config, args.sweep_dir)
  write_plan(jobs, args.sweep_dir, args.sweep, args.set)
  states = {j.name: state(j, args.sweep_dir) for j in jobs}
  counts = {s: list(states.values()).count(s)
            for s in ("done", "started", "new")}
  print(f"{len(jobs)} runs ({sum(j.mode == 'pretrain' for j in jobs)} "
        f"pre-training) in {args.sweep_dir}: {counts['done']} done, "
        f"{counts['started']} to resume, {counts['new']} new.")

  if args.launcher == "list":
    for j in jobs:
      print(f"  {states[j.name]:7s} {j.name}")
    return 0
  if args.launcher == "local":
    result = run_local(jobs, args.sweep_dir, sets=args.set,
                       parallel=args.parallel, vmap_seeds=args.vmap_seeds,
                       impl=args.impl, cpu_devices=args.cpu_devices)
    bad = sorted(n for n, s in result.items() if s != "done")
    print(f"{len(result) - len(bad)}/{len(result)} runs done."
          + (f" Not done: {', '.join(bad)}" if bad else "")
          + f"\nReport: python -m imujax.experiments.report {args.sweep_dir}")
    return 1 if bad else 0
  if args.launcher == "slurm":
    path = write_slurm(jobs, args.sweep_dir, sets=args.set,
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
  path = write_tpu(jobs, args.sweep_dir, sets=args.set, tpu=args.tpu,
                   zone=args.zone, project=args.project,
                   remote_repo=args.remote_repo, out=args.out)
  print(f"Wrote {path}; run it where gcloud is set up.")
  return 0


if __name__ == "__main__":
  sys.exit(main())
