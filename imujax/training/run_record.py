"""The run record: what a workdir's run is, in `run.json`; one owner.

Written once per run by the training loop (after the workdir's existing
record, if any, was found compatible) and read by everything that uses a run
afterwards: resuming, `init_from`, streaming, export, the live page and
reports. The model's shape has one source: `RunRecord.model`.

  record = run_record.read(workdir)
  record.model            # models.ModelConfig
  record.channel_names    # what the first layer expects, in order
  record.normalizer       # {"mean": [...], "std": [...]}, training subjects'
"""

import dataclasses
import json
import os
import tempfile
from typing import Any

from etils import epath

from imujax import configlib
from imujax import models

FILENAME = "run.json"


class IncompatibleRunError(ValueError):
  """The workdir (or init_from) holds a run written by another config."""


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """The fields of run.json (see the module docstring)."""
  phase: str                 # "pretrain" | "finetune".
  objective: str             # A name from imujax.objectives.
  dataset: str               # The TFDS name the phase trained on.
  config: dict               # The whole config, as a dict.
  model_config: dict         # models.ModelConfig fields.
  splits: dict               # "train" | "val" | "test" -> subjects.
  labeled_recordings: list   # Recordings whose labels (or frames) trained.
  channel_names: list
  class_names: list
  sample_rate_hz: float
  normalizer: dict           # {"mean": [C], "std": [C]}.
  source: dict               # Where the encoder came from ({} = scratch).
  # What the data was: input_pipeline.Dataset.fingerprint (a recordings
  # build's hash of its spec and files; TFDS name/config/version otherwise).
  data_fingerprint: str = ""
  # A corpus pre-training's members (imujax/data/corpus.py): name, cohort,
  # fingerprint, hours, weight, recordings, subjects, views; [] otherwise.
  # Its identity on resume is data_fingerprint (the corpus's hash).
  corpus: list = dataclasses.field(default_factory=list)
  # Config keys changed on resume (config.resume_changes), oldest first:
  # [{"step": resumed at, "changes": {key: [before, after]}}].
  history: list = dataclasses.field(default_factory=list)

  @property
  def model(self) -> models.ModelConfig:
    return models.ModelConfig(**self.model_config)

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: dict, where: str = "run.json") -> "RunRecord":
    names = [f.name for f in dataclasses.fields(cls)]
    optional = {"history", "data_fingerprint", "corpus"}
    missing = [n for n in names if n not in data and n not in optional]
    if missing:
      raise IncompatibleRunError(
          f"{where} lacks {missing}: it was not written by this version of "
          "imujax (or was edited). Rerun that run to rewrite it.")
    return cls(**{n: data[n] for n in names if n in data})


# Fields that must not change when a workdir is resumed: they fix the
# checkpoint's shapes or the meaning of its steps and metrics.
_IDENTITY_KEYS = ("model_config.", "phase", "objective", "dataset",
                  "channel_names", "class_names", "splits.",
                  "labeled_recordings", "source.", "data_fingerprint")
# Config keys that may change between sessions of one run: where files are,
# how often it logs, evaluates and checkpoints, and the override itself.
RESUME_FREE = ("log_every", "eval_every", "checkpoint_every", "mode",
               "dense_eval_until", "dense_eval_every",
               "num_seeds", "resume_changes", "data.data_dir",
               "data.manual_dir", "data.eval_batch_size",
               "pretrain.manual_dir")
# Config keys a phase does not read (its other phase's).
_OTHER_PHASE = {"pretrain": ("finetune.", "data.labeled_subjects",
                             "data.labeled_recordings", "init_from"),
                "finetune": ("pretrain.",)}


def path(workdir) -> epath.Path:
  return epath.Path(workdir) / FILENAME


def read(workdir) -> RunRecord:
  """The run record of `workdir`; a clear error when there is none."""
  p = path(workdir)
  if not p.exists():
    raise FileNotFoundError(
        f"{workdir} has no {FILENAME}: point at the workdir of an imujax run "
        "(e.g. config.init_from, --workdir, --model).")
  try:
    data = json.loads(p.read_text())
  except json.JSONDecodeError as e:
    raise IncompatibleRunError(f"{p} is not valid JSON ({e}); rerun that run "
                               "to rewrite it.") from None
  return RunRecord.from_json(data, str(p))


def _flatten(tree: Any, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def _config_changes(old: dict, new: dict, phase: str) -> dict:
  """{config key: [before, after]} of the keys that matter to `phase`.

  A key the stored config lacks was added to imujax after the run started;
  at its default it changes nothing the run did, so it is not a change.
  """
  old, new = _flatten(old), _flatten(new)
  defaults = _flatten(configlib.base().to_dict())
  skip = (*RESUME_FREE, *_OTHER_PHASE.get(phase, ()))
  return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new))
          if old.get(k) != new.get(k)
          and not (k not in old and k in defaults and new[k] == defaults[k])
          and not any(k == s or (s.endswith(".") and k.startswith(s))
                      for s in skip)}


def check_compatible(workdir, record: RunRecord) -> dict:
  """Refuses a workdir whose run.json is another run, or changed keys.

  Returns:
    The config changes `record.config["resume_changes"]` allows, as
    {key: [before, after]} ({} for a new workdir or an unchanged config).

  Raises:
    IncompatibleRunError: naming the fields or keys that differ, and the fix.
  """
  p = path(workdir)
  if not p.exists():
    return {}
  stored = json.loads(p.read_text())
  old = _flatten(stored)
  new = _flatten(json.loads(json.dumps(record.to_json())))
  # A ModelConfig field added after the run started, at its default, is the
  # model the run trained (e.g. model_config.residual=False).
  added = {f"model_config.{f.name}": f.default
           for f in dataclasses.fields(models.ModelConfig)}
  diffs = [f"{k}: {old.get(k)!r} in the workdir vs {new.get(k)!r} now"
           for k in sorted(set(old) | set(new))
           if k.startswith(_IDENTITY_KEYS) and old.get(k) != new.get(k)
           and not (k not in old and k in added and new[k] == added[k])]
  if diffs:
    raise IncompatibleRunError(
        f"{workdir} holds a run from an incompatible config ("
        + "; ".join(diffs[:5]) + "). Use another --workdir, or delete this "
        "one to start over.")
  changes = _config_changes(stored.get("config", {}), record.config,
                            record.phase)
  allowed = {k.strip() for k in
             str(record.config.get("resume_changes", "")).split(",")
             if k.strip()}
  refused = sorted(set(changes) - allowed)
  if refused:
    shown = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}"
                      for k in refused[:5])
    raise IncompatibleRunError(
        f"{workdir} was started with another config ({shown}). Resuming "
        "would mix two runs under one name. Use another --workdir, or "
        f"accept the change with --config.resume_changes={','.join(refused)}"
        " (recorded in run.json's history).")
  return changes


def write(workdir, record: RunRecord, resumed_at: int | None = None) -> None:
  """Writes run.json atomically, after `check_compatible`.

  Config changes accepted on resume are appended to the stored history,
  with the step the run resumed at.
  """
  changes = check_compatible(workdir, record)
  history = read(workdir).history if path(workdir).exists() else []
  if changes:
    history = [*history, {"step": resumed_at, "changes": changes}]
  record = dataclasses.replace(record, history=history)
  write_text_atomic(path(workdir), json.dumps(record.to_json(), indent=1))


class WorkdirLock:
  """An exclusive lock on a workdir for the life of one training process.

  Two processes on one workdir would interleave checkpoints and metrics (and
  orbax stalls for minutes); the second is refused at once, naming the
  first's pid.
  """

  def __init__(self, workdir):
    self.path = epath.Path(workdir) / ".lock"
    self.file = None

  def __enter__(self):
    import fcntl  # pylint: disable=g-import-not-at-top  (POSIX only)
    self.file = open(self.path, "a+")
    try:
      fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self.file.seek(0)
      holder = self.file.read().strip() or "unknown"
      self.file.close()
      raise IncompatibleRunError(
          f"Another process (pid {holder}) is training in {self.path.parent};"
          " wait for it to finish or stop it, or use another --workdir.")
    self.file.seek(0)
    self.file.truncate()
    self.file.write(str(os.getpid()))
    self.file.flush()
    return self

  def __exit__(self, *exc):
    self.file.close()  # Closing releases the lock.


def check_writable(directory) -> None:
  """A clear error now rather than a stalled checkpoint write later."""
  directory = epath.Path(directory)
  try:
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(directory), prefix=".write_test.")
    os.close(fd)
    os.unlink(tmp)
  except OSError as e:
    raise PermissionError(
        f"{directory} is not a writable directory ({e.strerror}); fix its "
        "permissions (or remove what is in its place), or use another "
        "--workdir.") from None


def write_text_atomic(p: epath.Path, text: str) -> None:
  """Writes `text` to `p` so that a reader sees the old or the new file whole."""
  p = epath.Path(p)
  fd, tmp = tempfile.mkstemp(dir=str(p.parent), prefix=f".{p.name}.")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, str(p))
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
