"""Where a sweep's jobs run: here (local), as SLURM arrays, or on a TPU VM.

Each launcher takes the jobs `jobs.expand` made (local runs: grouped into
units by `jobs.units`) and runs or writes them. Every job is a command with
its own workdir, so a rerun skips what finished and resumes what started.
"""

import json
import pathlib
import shlex
import subprocess
import sys
import time
from typing import Callable, Iterable

from imujax.experiments import jobs as jobs_lib
from imujax.experiments.jobs import Job

# ----------------------------------------------------------------- local
def _popen(argv: list[str], log: pathlib.Path):
  log.parent.mkdir(parents=True, exist_ok=True)
  with log.open("a") as f:
    argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    return subprocess.Popen(argv, cwd=jobs_lib.REPO, stdout=f, stderr=subprocess.STDOUT)


def run_local(jobs: list[Job], sweep_dir: str, *, sets=(), parallel: int = 1,
              vmap_seeds: bool = False, impl: str = "vmap",
              cpu_devices: int = 0, start: Callable = _popen,
              poll_s: float = 1.0, echo: Callable = print) -> dict[str, str]:
  """Runs the unfinished jobs here, `parallel` processes at a time.

  A unit starts once every pre-training it needs is done; units whose
  pre-training failed are reported as "blocked". Fine-tunes of a finished
  pre-training start before any further pre-training (depth first): a
  pre-training's checkpoint is not kept in git, so one whose fine-tunes did
  not all finish before a kill must be run again on resume elsewhere.
  `start(argv, log)` returns something with `.poll()` (a Popen); tests pass
  a fake.

  Returns:
    {job name: "done" | "failed" | "blocked"} for every job of the sweep.
  """
  todo = {j.name for j in jobs_lib.unfinished(jobs, sweep_dir)}
  result = {j.name: "done" for j in jobs if j.name not in todo}
  pending = jobs_lib.units(jobs, sweep_dir, sets, vmap_seeds, impl, cpu_devices)
  running: list = []
  while pending or running:
    for unit in sorted(pending, key=lambda u: not u.after):
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
        ok = rc == 0 and jobs_lib.state(j, sweep_dir) == "done"
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
  workdir = f"{jobs_lib.root_of(sweep_dir)}/{job.name}"
  done = f"test -f {shlex.quote(workdir)}/summary.json"
  if job.mode == "pretrain":  # An archived one (no checkpoints) runs again.
    done += f" && test -d {shlex.quote(workdir)}/checkpoints"
  check = (done if "://" not in
           workdir else shlex.join(
               ["python", "-c", "import sys; from etils import epath; "
                "sys.exit(not epath.Path(sys.argv[1]).exists())",
                f"{workdir}/summary.json"]))
  return f"{check} || {shlex.join(jobs_lib.command(job, sweep_dir, sets))}"


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
  todo = jobs_lib.unfinished(jobs, sweep_dir)
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
        logs=out / "logs", repo=jobs_lib.REPO, commands=commands,
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
  todo = jobs_lib.unfinished(jobs, sweep_dir)
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


