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

  @property
  def model(self) -> models.ModelConfig:
    return models.ModelConfig(**self.model_config)

  def to_json(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: dict, where: str = "run.json") -> "RunRecord":
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in data]
    if missing:
      raise IncompatibleRunError(
          f"{where} lacks {missing}: it was not written by this version of "
          "imujax (or was edited). Rerun that run to rewrite it.")
    return cls(**{n: data[n] for n in names})


# Fields that must not change when a workdir is resumed: they fix the
# checkpoint's shapes or the meaning of its steps and metrics.
_IDENTITY_KEYS = ("model_config.", "phase", "objective", "dataset",
                  "channel_names", "class_names", "splits.",
                  "labeled_recordings", "config.seed", "config.init_from",
                  "source.")


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


def check_compatible(workdir, record: RunRecord) -> None:
  """Refuses a workdir whose existing run.json is another run's."""
  p = path(workdir)
  if not p.exists():
    return
  old = _flatten(json.loads(p.read_text()))
  new = _flatten(json.loads(json.dumps(record.to_json())))
  diffs = [f"{k}: {old.get(k)!r} in the workdir vs {new.get(k)!r} now"
           for k in sorted(set(old) | set(new))
           if k.startswith(_IDENTITY_KEYS) and old.get(k) != new.get(k)]
  if diffs:
    raise IncompatibleRunError(
        f"{workdir} holds a run from an incompatible config ("
        + "; ".join(diffs[:5]) + "). Use another --workdir, or delete this "
        "one to start over.")


def write(workdir, record: RunRecord) -> None:
  """Writes run.json atomically, after `check_compatible`."""
  check_compatible(workdir, record)
  write_text_atomic(path(workdir), json.dumps(record.to_json(), indent=1))


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
