r"""Released pre-trained encoders: `init_from=pretrained:<name>`.

`imujax/pretrained/<name>/` holds what a finished pre-training workdir holds,
less its optimizer state: run.json (config, corpus with fingerprints,
cohorts and subjects), summary.json, metrics.jsonl, the final checkpoint's
params with their checksums (checksums.json), and README.md (the command,
data licences, measured fine-tune results). `resolve` turns the name into
that folder, so everything that reads an `init_from` workdir (the checksum
check, the leakage guards by cohort, the channel adapter) treats a release
like any run. `release` writes one from a finished workdir:

  python -m imujax.training.pretrained /tmp/release NAME
"""

import hashlib
import json
import pathlib
import shutil
import sys

from absl import app

PREFIX = "pretrained:"
RELEASES = pathlib.Path(__file__).resolve().parents[1] / "pretrained"
# What a release keeps of a workdir (besides the final params).
_KEPT = ("run.json", "summary.json", "metrics.jsonl", "splits.json")


def names() -> list[str]:
  """The released encoders in this checkout."""
  if not RELEASES.is_dir():
    return []
  return sorted(p.name for p in RELEASES.iterdir()
                if (p / "run.json").is_file())


def resolve(init_from: str) -> str:
  """`pretrained:<name>` -> its folder; any other value is returned as is."""
  if not init_from.startswith(PREFIX):
    return init_from
  name = init_from[len(PREFIX):]
  path = RELEASES / name
  if not name or "/" in name or not (path / "run.json").is_file():
    raise ValueError(
        f"init_from={init_from!r}: no released encoder {name!r} in "
        f"{RELEASES}. Released: {', '.join(names()) or 'none'} "
        "(init_from=pretrained:<one of them>), or give a workdir path.")
  return str(path)


def _digests(step_dir: pathlib.Path) -> dict:
  return {str(p.relative_to(step_dir)): hashlib.sha256(p.read_bytes())
          .hexdigest() for p in sorted(step_dir.rglob("*")) if p.is_file()}


def release(workdir: str, name: str, out: pathlib.Path = RELEASES
            ) -> pathlib.Path:
  """Copies a finished pre-training's final params and record to out/name.

  The optimizer state is left out (a fine-tune never reads it); checksums
  are written for exactly the files kept, so a damaged release is refused
  like a damaged checkpoint. An existing release of that name is replaced.
  """
  src = pathlib.Path(workdir)
  summary = src / "summary.json"
  if not summary.is_file():
    raise ValueError(f"{workdir} has no summary.json: only a finished run "
                     "can be released.")
  if json.loads(summary.read_text()).get("phase") != "pretrain":
    raise ValueError(f"{workdir} is not a pre-training run (summary.json "
                     "phase); release the encoder of a pretrain run.")
  steps = sorted(int(p.name) for p in (src / "checkpoints").glob("*")
                 if p.name.isdigit())
  if not steps:
    raise ValueError(f"{workdir}/checkpoints holds no checkpoint.")
  step = str(steps[-1])
  dest = out / name
  tmp = out / f".{name}.partial"
  shutil.rmtree(tmp, ignore_errors=True)
  (tmp / "checkpoints").mkdir(parents=True)
  for f in _KEPT:
    if (src / f).is_file():
      shutil.copy2(src / f, tmp / f)
  step_src = src / "checkpoints" / step
  step_dst = tmp / "checkpoints" / step
  shutil.copytree(step_src, step_dst,
                  ignore=lambda d, _: ["opt_state"] if pathlib.Path(d) ==
                  step_src else [])
  (tmp / "checksums.json").write_text(
      json.dumps({step: _digests(step_dst)}, indent=1))
  if (dest / "README.md").is_file():  # Keep the hand-written part.
    shutil.copy2(dest / "README.md", tmp / "README.md")
  shutil.rmtree(dest, ignore_errors=True)
  tmp.rename(dest)
  return dest


def _main(argv):
  if len(argv) != 3:
    raise app.UsageError("usage: python -m imujax.training.pretrained "
                         "WORKDIR NAME (a finished pretrain run; the "
                         "release's name).")
  _, workdir, name = argv
  dest = release(workdir, name)
  size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
  print(f"Released {dest} ({size / 1024:.0f} kB); fine-tune with "
        f"--config.init_from={PREFIX}{name}")


if __name__ == "__main__":
  sys.exit(app.run(_main))
