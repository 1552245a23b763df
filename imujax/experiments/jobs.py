"""A sweep's runs as jobs: declared by a sweep file, expanded, grouped.

`load_sweep` reads a sweep file (configs/sweeps/*.py); `expand` turns its
points into pre-training and fine-tune jobs (see `imujax.experiments.sweep`
for the layout), each a `python -m imujax.main` command with its own workdir
(`command`); `state` says whether a job is done, started or new; `units`
groups the unfinished ones (seed groups as one vmapped program with
vmap_seeds). Pure: nothing here starts a process.
"""

import dataclasses
import hashlib
import importlib.util
import json
import os
import pathlib
from typing import Any, Iterable, Optional

from imujax import configlib

REPO = pathlib.Path(__file__).resolve().parents[2]

# Keys that change only the fine-tuning: a pre-training run is shared by the
# points that differ in these alone.
FINETUNE_ONLY = ("data.labeled_subjects", "data.labeled_recordings",
                 "finetune.")
RESERVED = ("objective", "config", "set", "finetune_only")
# Short name parts for the usual keys; others are written `<last part>=<v>`.
_ALIASES = {"data.name": "", "objective": "", "pretrain.dataset": "from-",
            "data.labeled_subjects": "b", "data.labeled_recordings": "r",
            "seed": "s"}


def _corpus_part(value) -> str:
  """`pretrain.corpus` in a name: "corpus=<members>m-<hash of their names>"."""
  names = [m for m, _ in configlib.corpus_members(str(value))]
  digest = hashlib.sha256(",".join(names).encode()).hexdigest()[:6]
  return f"corpus={len(names)}m-{digest}"


# Keys whose values are too long for a name: key -> the name part.
_SHORT = {"pretrain.corpus": _corpus_part,
          "pretrain.corpus_hours": lambda v: f"{float(v):g}h" if float(v)
                                   else "allh"}


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
def sweep_module(path, name: str = "_imujax_sweep"):
  """A sweep file as a module (one sweep file may reuse another's tables:
  `jobs.sweep_module(pathlib.Path(__file__).with_name("scale.py"))`)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"Sweep file {str(path)!r} does not exist.")
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load_sweep(spec: str) -> tuple[str, list[dict]]:
  """(CONFIG, points) of a sweep file given as `path.py[:arg]`."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise FileNotFoundError(f"Sweep file {path!r} does not exist (--sweep).")
  module = sweep_module(path)
  for attr in ("sweep", "CONFIG"):
    if not hasattr(module, attr):
      raise AttributeError(f"Sweep file {path} defines no {attr!r}; a sweep "
                           "file needs CONFIG (a config file) and "
                           "sweep(arg=None) yielding override dicts.")
  return module.CONFIG, list(module.sweep(arg or None))


def variant_of(arg, variants: dict, sweep_file: str, **switches):
  """(switches, chosen variant) of a sweep file's `:arg`.

  Every declared study takes `variant` (default "full") and `data_root` (the
  folder of the datasets' manual dirs, default ../shared/data), plus its own
  `switches`; config keys are refused here (give them with --set, so that
  every run of the sweep shares them).
  """
  defaults = dict(variant="full", data_root="../shared/data", **switches)
  sw, keys = configlib.parse_arg(arg, **defaults)
  if keys:
    raise ValueError(f"{sweep_file} takes the switches {', '.join(defaults)}"
                     f", not {keys!r}; set config keys with --set.")
  if sw.variant not in variants:
    raise ValueError(f"{sweep_file}: unknown variant {sw.variant!r}; choose "
                     f"one of {sorted(variants)}.")
  return sw, variants[sw.variant]


def pretext_arms(pretexts, probes: bool, controls=(("scratch", {}),)):
  """A study's arms: its `controls`, then each pretext objective (and, with
  `probes`, the same encoder as a linear probe); (objective, finetune
  overrides) pairs, as sweep points name them."""
  arms = list(controls)
  for objective in pretexts:
    arms.append((objective, {}))
    if probes:
      arms.append((objective, {"finetune.protocol": "linear_probe"}))
  return arms


def slug(point: Iterable[tuple[str, Any]]) -> str:
  """A readable, stable directory name for the (key, value) pairs."""
  parts = []
  for key, value in point:
    if key in _SHORT:
      parts.append(_SHORT[key](value))
      continue
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
    # Named keys this point's pre-training does not depend on (e.g. the fold
    # of a leave-one-dataset-out corpus): one pre-training serves them all.
    shared = set(point.pop("finetune_only", ()))
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
    pre_items = [(k, v) for k, v in items
                 if not _finetune_only(k) and k not in shared]
    pre_name = "pretrain/" + slug(
        [("objective", objective),
         *((k, v) for k, v in named
           if not _finetune_only(k) and k not in shared)])
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
  """"done" (summary.json), "archived", "damaged", "started" (a workdir
  with files) or "new".

  "damaged": summary.json does not parse; the run is run again (it resumes
  from its checkpoint, or starts over without one) and rewrites it.

  A pre-training whose newest checkpoint is not the step its summary.json
  reports is "started" (rerun after archiving, then killed).

  "archived": a finished pre-training whose checkpoints are not here (a sweep
  dir kept in git holds results, never checkpoints). It counts as done unless
  a fine-tune that starts from it is unfinished; then `units` runs it again
  (pre-training is deterministic given its seed and machine).

  A URL sweep dir (gs://) is not looked into from here: every job is "new",
  and the generated commands skip finished runs when they run.
  """
  if "://" in os.fspath(sweep_dir):
    return "new"
  workdir = pathlib.Path(sweep_dir) / job.name
  if (workdir / "summary.json").exists():
    try:
      summary = json.loads((workdir / "summary.json").read_text())
    except ValueError:  # Damaged (a bad merge?): the run is done again.
      return "damaged"
    steps = [int(p.name) for p in (workdir / "checkpoints").glob("*")
             if p.name.isdigit()]
    if job.mode == "pretrain" and not steps:
      return "archived"
    if job.mode == "pretrain" and max(steps) != summary.get("step", max(steps)):
      # An archived run rerun and killed by code that left its old summary:
      # not finished with these checkpoints; it resumes from them.
      return "started"
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

  Members must resume from the same step, so jobs are grouped only with jobs
  in the same state (a group interrupted together resumes together; new and
  archived ones start at step 0).
  """
  groups: dict = {}
  for job in jobs:
    key = (job.without_seed(), state(job, sweep_dir))
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


def unfinished(jobs: list[Job], sweep_dir: str) -> list[Job]:
  """Jobs to run: neither done nor archived, plus the archived pre-trainings
  an unfinished fine-tune starts from."""
  states = {j.name: state(j, sweep_dir) for j in jobs}
  todo = [j for j in jobs if states[j.name] not in ("done", "archived")]
  needed = {j.after for j in todo if j.after}
  return [j for j in jobs
          if states[j.name] == "archived" and j.name in needed] + todo


def units(jobs: list[Job], sweep_dir: str, sets=(), vmap_seeds=False,
          impl="vmap", cpu_devices: int = 0) -> list[Unit]:
  """The unfinished jobs as launchable units (seed groups with vmap_seeds)."""
  todo = unfinished(jobs, sweep_dir)
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


