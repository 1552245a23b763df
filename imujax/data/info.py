"""Builds an imujax TFDS dataset if needed and prints what it holds.

  python -m imujax.data --dataset=sp_sw_har/watch_50hz \
      --manual_dir=../shared/data/sp_sw_har [--data_dir=...] [--time_build]
  python -m imujax.data --dataset=recordings/50hz --spec=/data/lab/spec.toml

Prints recordings, subjects, duration, class balance per label track, channels
and every repair the builder counted. Works for any builder that follows
imujax/datasets/CONVENTIONS.md. `--time_build` builds into a fresh temporary
directory and reports the wall time of preparing from the raw files.
"""

import collections
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow_datasets as tfds

import imujax.datasets  # noqa: F401  (registers the builders)

_DATASET = flags.DEFINE_string("dataset", None,
                               "TFDS name[/config], e.g. sp_sw_har/watch_50hz.")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Where built datasets live (TFDS default).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                  "Raw files, for builders that read them.")
_WINDOW_S = flags.DEFINE_float(
    "window_s", 2.0, "Recordings shorter than this are counted as short "
    "(they are kept; the input pipeline pads them).")
_SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the subject split printed per split (as config.seed).")
_VAL = flags.DEFINE_integer("val_subjects", 2, "As config.data.val_subjects.")
_TEST = flags.DEFINE_integer("test_subjects", 3,
                             "As config.data.test_subjects.")
_SPEC = flags.DEFINE_string(
    "spec", None, "TOML spec of a lab's own files, for --dataset=recordings/"
    "<rate> (see imujax/datasets/recordings/README.md).")
_TIME_BUILD = flags.DEFINE_bool(
    "time_build", False, "Build into a fresh temp dir and report the time.")


def prepare(name: str, data_dir: str | None = None,
            manual_dir: str | None = None,
            spec: str | None = None) -> tfds.core.DatasetBuilder:
  """Returns the builder for `name`, built (array_record) if it was not.

  A named `manual_dir` that is missing or lacks the builder's files is an
  immediate error naming it; `spec` is the recordings builder's TOML spec.
  """
  from imujax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline.prepare(name, data_dir or "", manual_dir or "",
                                spec or "")


def summarize(builder: tfds.core.DatasetBuilder, window_s: float = 2.0,
              subjects_kept=None) -> dict:
  """Counts over the recordings of the `train` split (all, or of some subjects).

  Returns:
    dict with recordings, subjects, frames, duration_s, sample_rate_hz,
    channels, short_recordings (shorter than `window_s`), class_frames
    (track -> class name -> frames, `unlabelled` for -1) and repairs.
  """
  meta = builder.info.metadata
  rate = float(meta["sample_rate_hz"])
  tracks = meta.get("label_tracks") or {"labels": meta["class_names"]}
  source = builder.as_data_source()["train"]
  subjects, lengths, kept = set(), [], set()
  counts = {t: np.zeros(len(names) + 1, np.int64)
            for t, names in tracks.items()}
  for i in range(len(source)):
    example = source[i]
    subject = example["subject"]
    subject = subject.decode() if isinstance(subject, bytes) else subject
    if subjects_kept is not None and subject not in subjects_kept:
      continue
    subjects.add(subject)
    recording = example["recording"]
    kept.add(recording.decode() if isinstance(recording, bytes)
             else recording)
    lengths.append(example["signals"].shape[0])
    for track, names in tracks.items():
      # Class c lands in bin c; -1 (unlabelled) in the last bin.
      labels = np.where(example[track] < 0, len(names), example[track])
      counts[track] += np.bincount(labels, minlength=len(names) + 1)
  class_frames = {}
  for track, names in tracks.items():
    row = collections.OrderedDict(zip(names, counts[track][:-1].tolist()))
    if counts[track][-1]:
      row["unlabelled"] = int(counts[track][-1])
    class_frames[track] = row
  return {
      "name": builder.info.full_name,
      "recordings": len(lengths),
      "subjects": len(subjects),
      "frames": int(sum(lengths)),
      "duration_s": sum(lengths) / rate,
      "sample_rate_hz": rate,
      "channels": list(meta["channel_names"]),
      "short_recordings": sum(n < window_s * rate for n in lengths),
      "window_s": window_s,
      "class_frames": class_frames,
      "repairs": dict(meta.get("repairs") or {}),
      "fingerprint": str(meta.get("fingerprint") or builder.info.full_name),
      "resampling": resampling(builder, kept),
  }


def resampling(builder, recordings=None) -> dict:
  """{native rate in Hz: recordings} resampled to the builder's rate.

  From the builder's per-recording `native_rates_hz` metadata when it has
  one, else from its module's `NATIVE_RATE_HZ` (every recording); {} when
  the builder records neither.
  """
  meta = builder.info.metadata
  per = dict(meta.get("native_rates_hz") or {})
  if per:
    rates = [float(r) for name, r in per.items()
             if recordings is None or name in recordings]
  else:
    native = getattr(sys.modules.get(type(builder).__module__),
                     "NATIVE_RATE_HZ", None)
    if native is None:
      return {}
    source = builder.as_data_source()["train"]
    count = len(source) if recordings is None else len(recordings)
    rates = [float(native)] * count
  return dict(sorted(collections.Counter(rates).items()))


def _factor(native: float, rate: float) -> str:
  """"no resampling", "upsampled 2.5x" or "downsampled 2x"."""
  if native == rate or not native > 0 or not rate > 0:
    return "no resampling" if native == rate else "rate unknown"
  ratio = rate / native
  return (f"upsampled {ratio:.3g}x" if ratio > 1
          else f"downsampled {1 / ratio:.3g}x")


def format_summary(s: dict, split: bool = False) -> str:
  """The summary as text; `split`: only the first line and the classes."""
  rate = s["sample_rate_hz"]
  how = "; ".join(
      f"{n} recordings {native:g} Hz -> {rate:g} Hz ({_factor(native, rate)})"
      for native, n in s.get("resampling", {}).items()) or "not recorded"
  lines = [
      f"{s['name']}: {s['recordings']} recordings, {s['subjects']} subjects, "
      f"{s['duration_s'] / 60:.1f} min ({s['frames']} frames at "
      f"{s['sample_rate_hz']:g} Hz)",
      f"channels ({len(s['channels'])}): {', '.join(s['channels'])}",
      f"recordings shorter than {s['window_s']:g} s: {s['short_recordings']} "
      "(kept; the input pipeline pads them)",
      f"resampling (native -> this config's rate): {how}",
  ]
  if split:
    lines = lines[:1]
  for track, row in s["class_frames"].items():
    total = max(sum(row.values()), 1)
    balance = ", ".join(f"{k} {v} ({100 * v / total:.1f}%)"
                        for k, v in row.items())
    lines.append(f"{track}: {balance}")
    absent = [k for k, v in row.items() if not v and k != "unlabelled"]
    lines.append(f"{track} absent: {', '.join(absent) or 'none'}" + (
        " (eval.f1_classes says if macro-F1 counts them)" if absent else ""))
  if split:
    return "\n".join(lines)
  repairs = ", ".join(f"{k} {v}" for k, v in s["repairs"].items()) or "none"
  lines.append(f"repairs: {repairs}")
  if s.get("fingerprint"):
    lines.append(f"fingerprint: {s['fingerprint']}")
  return "\n".join(lines)


def time_build(name: str, manual_dir: str | None = None,
               spec: str | None = None) -> float:
  """Seconds to prepare `name` from raw files into a fresh directory."""
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    prepare(name, data_dir=tmp, manual_dir=manual_dir, spec=spec)
    return time.perf_counter() - start


def main(argv):
  del argv
  if not _DATASET.value:
    raise app.UsageError("--dataset is required, e.g. --dataset=seglearn_watch")
  if not sys.stderr.isatty():  # TFDS's bars would be glued onto log lines.
    tfds.disable_progress_bar()
  try:
    if _TIME_BUILD.value:
      seconds = time_build(_DATASET.value, _MANUAL_DIR.value, _SPEC.value)
      print(f"built {_DATASET.value} from raw files in {seconds:.1f} s")
    builder = prepare(_DATASET.value, _DATA_DIR.value, _MANUAL_DIR.value,
                      _SPEC.value)
  except (FileNotFoundError, ValueError) as e:
    # Bad folders, specs and files: their message says what to fix, a
    # traceback through TFDS would only bury it.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  whole = summarize(builder, _WINDOW_S.value)
  print(format_summary(whole))
  # The subject-disjoint splits a run with these settings would use.
  from imujax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  source = builder.as_data_source()["train"]
  all_subjects = [input_pipeline.decode_text(source[i]["subject"])
                  for i in range(len(source))]
  try:
    splits = input_pipeline.split_subjects(all_subjects, _SEED.value,
                                           _VAL.value, _TEST.value)
  except ValueError as e:
    print(f"\nno per-split summary: {e}")
    return
  for split, subjects in splits.items():
    print(f"\n[{split}] subjects {', '.join(subjects)} (seed {_SEED.value})")
    part = summarize(builder, _WINDOW_S.value, set(subjects))
    part["fingerprint"] = ""  # Printed once, for the whole dataset.
    print(format_summary(part, split=True))


if __name__ == "__main__":
  app.run(main)
