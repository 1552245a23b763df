"""recordings: a lab's own IMU files (CSV, Parquet, NPZ or MVNX) + a TOML spec.

The spec (see README.md beside this file) names the files, the channel columns
with their placement and unit (some possibly from sibling files), the time
column (+ unit) or the sampling rate, the labels (a column, a segment file per
recording, the file name, a preamble line, or one segment table for all), the
label map, and the regex that finds the subject in a file path. Every file
becomes one example on the config's uniform grid (`imujax.datasets.resample`);
its native rate is kept in `metadata["native_rates_hz"]`.

  builder = Builder(spec="/data/mylab/imujax_spec.toml", config="50hz",
                    data_dir="/tmp/tfds")      # manual_dir=... overrides folder
  builder.download_and_prepare()
  builder.as_data_source()["train"]

Configs are `<spec name>_<rate>_<fingerprint[:12]>` with rate `30hz`, `50hz`
(default), `60hz` or `native` (the spec's `rate_hz`, else the first file's
median rate). The fingerprint (`Builder.fingerprint`, also
`info.metadata["fingerprint"]`) hashes the resolved spec, every input file's
relative path, size and mtime (label files included), the rate and the
builder's version: editing, adding or removing a file or changing the spec
gives a new config, hence a fresh build (logged with the reason), and two specs
that share a name never share a build.

Bad input (each a test in tests/test_recordings.py or tests/test_bad_data_*):

* a row whose numbers do not parse (`1.012.598.156`): dropped and bridged by
  interpolation, counted in `malformed_rows_dropped`, up to
  `csv.max_malformed_rows` per file (default 10); more is an error naming the
  file and first line;
* a last line without its newline (file cut off): dropped, counted in
  `truncated_rows_dropped`;
* a finite value beyond float32 (1e39, or one that overflows once converted
  to SI units): treated as missing, counted in `values_beyond_float32`, then
  like NaN (short runs interpolated, long runs an error);
* a row with the wrong number of fields, an unknown label, a missing label
  file, a subject regex that does not match, a duplicated header column, a
  file that is not text in `csv.encoding`, an NPZ that is not a zip of
  numeric arrays: an error naming file (and line) and the fix;
* a label file whose segments cover less than `labels.min_coverage` of the
  recording (default 0.1; e.g. seconds against ms data), start > end, or
  non-finite times: an error naming the file (and line);
* NaN/Inf runs, duplicated or decreasing timestamps, gaps: the
  `resample_to_grid` rules with the spec's `max_nonfinite_run` and
  `max_gap_s` (short runs and duplicates repaired and counted, the rest an
  error naming file and line);
* a recording shorter than `min_duration_s` (default 2.56 s, one typical
  window): kept and counted in `recordings_shorter_than_min_duration`; one
  with fewer than 2 samples cannot be put on a grid: skipped and counted in
  `recordings_skipped_too_few_samples` (an error when no file is left);
* an MVNX file cut off mid-frame: an error, or with `mvnx.allow_truncated =
  true` its complete frames, counted in `truncated_file_tail_dropped`;
* a path that is not a regular file (FIFO, device, dangling symlink) or is
  larger than `max_file_mb` (default 1024): an error before anything is read;
* spec paths (`files`, `labels.file`, `labels.segments`, `channels[].file`)
  must stay inside the data folder;
* a missing sibling channel file (`channels[].file`) or one with another
  number of data rows, a file name `key_regex` or `labels.from_name` does
  not match, a recording without rows in `labels.segments`: an error naming
  the file (rows of the table naming no recording are counted in
  `segment_rows_without_recording`).

All bad files of a build are reported together, in one error.
"""

import dataclasses
import json
import os
import pathlib
import re

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import mvnx
from imujax.datasets import resample
from imujax.datasets.recordings import channel_modality
from imujax.datasets.recordings import fingerprints
from imujax.datasets.recordings import paths
from imujax.datasets.recordings import readers
from imujax.datasets.recordings import schema
from imujax.datasets.recordings import segment_table

# The spec's schema lives in schema.py; these names stay importable from here.
Spec = schema.Spec
SpecError = schema.SpecError
load_spec = schema.load_spec
UNITS, TIME_UNITS, FORMATS = schema.UNITS, schema.TIME_UNITS, schema.FORMATS

RATES = common.rates(None)  # Native: the spec's, else the files' rate.
REPAIR_KEYS = ("malformed_rows_dropped", "truncated_rows_dropped",
               "values_beyond_float32",
               "recordings_shorter_than_min_duration",
               "recordings_skipped_too_few_samples",
               "label_segments_outside_recording",
               "truncated_file_tail_dropped") + resample.REPAIR_KEYS
# Bumped whenever the same files would give different examples; part of the
# fingerprint, so a new reader never reuses an old reader's build. 3: files
# read by time.rate_hz place a sample per data row (blank and comment lines
# no longer take a slot).
READER_VERSION = 3


class BuildError(ValueError):
  """Several files of one build are bad; `errors` holds each one's error."""

  def __init__(self, message: str, errors: list[Exception]):
    super().__init__(message)
    self.errors = errors


def _add(total: dict, repairs: dict) -> None:
  for k, v in repairs.items():
    total[k] = total.get(k, 0) + int(v)


def _resample_error(e: resample.ResampleError, spec: Spec, overflow: int):
  """The resampler's error with plain numbers and the spec keys to set."""
  message = re.sub(r"np\.(?:float|int)\d*\(([^()]*)\)", r"\1", str(e))
  notes = []
  if "max_gap_s" in message or "max_nonfinite_run" in message:
    notes.append(f"max_gap_s and max_nonfinite_run are keys of {spec.path}")
  if overflow:
    notes.append(f"{overflow} value(s) beyond float32 in this file count as "
                 "non-finite")
  if notes:
    message += f" ({'; '.join(notes)}.)"
  return resample.ResampleError(message, e.index)


def make_example(path, spec: Spec, rate_hz, repairs: dict,
                 segments=None) -> dict | None:
  """One file -> example (signals, labels) on the grid; None if skipped.

  `segments`: the parsed `labels.segments` table, when the spec has one.
  The example's `native_rate_hz` (the file's median rate, to 0.001 Hz) is
  metadata, not a feature: the builder moves it to `native_rates_hz`.
  """
  table, _ = readers.read_recording(path, spec, segments)
  if len(table.timestamps_s) < 2:
    _add(repairs, table.repairs)
    logging.warning("%s: %d sample(s), fewer than 2: skipped.", path,
                    len(table.timestamps_s))
    _add(repairs, {"recordings_skipped_too_few_samples": 1})
    return None
  labels = None if table.labels is None else {"labels": table.labels}
  binary = spec.format in ("npz", "parquet", "mvnx") or path.suffix.lower() in (
      ".npz", ".parquet", ".mvnx")
  try:
    out = resample.resample_to_grid(
        table.timestamps_s, table.values, labels, rate_hz, source=str(path),
        max_nonfinite_run=spec.max_nonfinite_run, max_gap_s=spec.max_gap_s,
        first_line=None if binary else table.lines)
  except resample.ResampleError as e:
    raise _resample_error(e, spec, table.repairs.get(
        "values_beyond_float32", 0)) from None
  # Counted only once the file is accepted: a failed build counts nothing.
  _add(repairs, table.repairs)
  _add(repairs, out.repairs)
  duration = out.timestamps_s[-1] - out.timestamps_s[0]
  if duration < spec.min_duration_s:
    logging.warning("%s: %.2f s long, shorter than min_duration_s=%g: kept.",
                    path, duration, spec.min_duration_s)
    _add(repairs, {"recordings_shorter_than_min_duration": 1})
  try:
    native = round(resample.native_rate_hz(table.timestamps_s), 3)
  except resample.ResampleError:  # No two distinct times: not recorded.
    native = None
  n = out.signals.shape[0]
  return {"signals": out.signals, "native_rate_hz": native,
          "labels": out.labels.get("labels", np.full(n, -1, np.int32))}


_spec_record = fingerprints.spec_record
fingerprint = fingerprints.fingerprint
manifest_diff = fingerprints.manifest_diff


def input_manifest(folder, spec: Spec, files, rate: str) -> dict:
  """What a build depends on (`fingerprints.input_manifest`)."""
  return fingerprints.input_manifest(
      folder, spec, files, rate, f"{Builder.VERSION}+r{READER_VERSION}")


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float | None = 50.0
  spec_path: str = ""
  fingerprint: str = ""


_ANY_RATE = re.compile(r"^(\d+(?:\.\d+)?)hz$")


def _rate_of(config) -> str:
  """The rate part of a config name: a named rate, `native` or any `<N>hz`.

  A lab's device may sample at 20 Hz: `recordings/20hz` keeps it there
  rather than resampling it to one of the named rates.
  """
  name = (config.name if isinstance(config, tfds.core.BuilderConfig)
          else (config or "50hz"))
  rates = [part for part in name.split("_")
           if part in RATES or _ANY_RATE.match(part)]
  if not rates:
    raise ValueError(f"config {name!r}: the rate must be `native` or "
                     "`<N>hz`, e.g. config='20hz' (data.name="
                     "'recordings/20hz').")
  return rates[-1]


def _hz(rate: str, spec) -> float | None:
  if rate == "native":
    return spec.rate_hz
  if rate in RATES:
    return RATES[rate]
  return float(_ANY_RATE.match(rate).group(1))


class Builder(common.PrepareMessage, tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for a lab's own recordings described by a spec file."""

  def local_source(self) -> str:
    """Where the files are read from (nothing is ever downloaded)."""
    return str(self._folder)

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "Configs keyed on a fingerprint of spec and files; values "
               "beyond float32 counted; label files must cover "
               "labels.min_coverage; strict spec.",
      "1.2.0": "Each recording's native rate in metadata native_rates_hz "
               "(`python -m imujax.data` prints how each was resampled); "
               "labels.from_header.",
  }
  # Placeholders so that TFDS can list the builder; a real config is made from
  # the spec (`Builder(spec=..., config="50hz")`).
  BUILDER_CONFIGS = [Config(name=r, rate_hz=hz) for r, hz in RATES.items()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Nothing is downloaded. Pass spec=<your spec.toml>; the files are read from
  manual_dir (Builder(spec=..., manual_dir=...)) when given, else from the
  spec's `folder` (default: the spec's own folder). See
  imujax/datasets/recordings/README.md.
  """

  def __init__(self, *, spec=None, config=None, manual_dir=None, **kwargs):
    self._spec, self._fingerprint, self._folder = None, "", None
    if spec is not None:
      self._spec = load_spec(spec)
      rate = _rate_of(config)
      self._folder = pathlib.Path(
          os.path.expanduser(str(manual_dir)) if manual_dir
          else self._spec.folder).absolute()
      self._files = paths.list_files(self._folder, self._spec)
      self._manifest = input_manifest(self._folder, self._spec, self._files,
                                      rate)
      self._fingerprint = fingerprint(self._manifest)
      hz = _hz(rate, self._spec)
      # The fingerprint in the name keys the build on its inputs: TFDS
      # reuses a prepared dataset only if nothing it was built from changed.
      config = Config(name=f"{self._spec.name}_{rate}_"
                      f"{self._fingerprint[:12]}", rate_hz=hz,
                      spec_path=self._spec.path,
                      fingerprint=self._fingerprint,
                      description=f"{self._spec.path} at {rate}")
    super().__init__(config=config, **kwargs)
    self._original_state["spec"] = spec
    self._original_state["manual_dir"] = manual_dir

  @property
  def fingerprint(self) -> str:
    """sha256 of the resolved spec, input files (paths, sizes, mtimes), rate
    and builder version; also `info.metadata["fingerprint"]`."""
    return self._fingerprint

  def download_and_prepare(self, *, download_dir=None, download_config=None,
                           **kwargs):
    manual = download_config and download_config.manual_dir
    if self._spec is not None and manual and (
        pathlib.Path(os.path.expanduser(str(manual))).absolute()
        != self._folder):
      raise ValueError(
          f"manual_dir {manual} differs from the folder this build is keyed "
          f"on ({self._folder}); pass it to the builder instead: "
          "Builder(spec=..., manual_dir=...), or tfds.builder("
          "'recordings/50hz', spec=..., manual_dir=...).")
    if self._spec is not None and not self.is_prepared():
      logging.info("recordings: building %s from %s: %s", self.info.full_name,
                   self._folder, self._rebuild_reason())
    return super().download_and_prepare(
        download_dir=download_dir, download_config=download_config, **kwargs)

  def _rebuild_reason(self) -> str:
    """Why no prepared build fits: compares with earlier builds' manifests."""
    root = pathlib.Path(self.data_dir_root) / self.name
    # `<name>_<rate>_*`, and `<name>_<rate>` of builder 1.0.0 (no fingerprint).
    prefix = self.builder_config.name[:-len(self._fingerprint[:12]) - 1]
    earlier = []
    for meta in root.glob(f"{prefix}*/*/metadata.json"):
      try:
        earlier.append((meta.stat().st_mtime, meta,
                        json.loads(meta.read_text())))
      except (OSError, ValueError):
        continue
    if not earlier:
      return "no earlier build of this spec name and rate"
    same = [e for e in earlier if e[2].get("spec") == self._spec.path]
    if not same:
      others = sorted({m.parent.parent.name for _, m, _ in earlier})
      return (f"earlier builds {others} come from another spec file "
              f"({earlier[0][2].get('spec')}); this spec gets its own build")
    _, meta, old = max(same, key=lambda e: e[0])
    if "fingerprint_inputs" not in old:
      return (f"the build at {meta.parent} predates builds keyed on their "
              "inputs and is not reused; delete it to free the space")
    diff = manifest_diff(old["fingerprint_inputs"], self._manifest)
    return (f"the build at {meta.parent} is stale ({diff}); it is kept, "
            "delete it to free the space")

  def _info(self) -> tfds.core.DatasetInfo:
    spec = self._spec
    if spec is None:
      raise ValueError("The recordings builder needs its spec: "
                       "Builder(spec='/path/spec.toml', config='50hz') or "
                       "tfds.builder('recordings/50hz', spec=...); "
                       "`python -m imujax.data` takes --spec.")
    names = self._channel_names()
    return self.dataset_info_from_configs(
        description=__doc__, features=common.example_features(len(names)),
        metadata=tfds.core.MetadataDict(
            channel_names=names, class_names=list(spec.class_names),
            label_tracks={"labels": list(spec.class_names)},
            sample_rate_hz=float(self.builder_config.rate_hz or 0.0),
            units={"acc": "m/s^2", "gyr": "rad/s", "quat": "1",
                   **channel_modality.stored_units(spec.channels,
                                                   spec.channel_units)},
            spec=spec.path, folder=str(self._folder),
            fingerprint=self._fingerprint,
            fingerprint_inputs=self._manifest, repairs={},
            native_rates_hz={}))

  def _channel_names(self) -> list[str]:
    spec = self._spec
    if spec.format != "mvnx":
      return [n for _, n, _ in spec.channels]
    sensors = spec.mvnx_sensors
    if sensors is None:
      # Without mvnx.sensors the names come from the first file (read whole,
      # which is fast: see imujax.datasets.mvnx).
      paths.check_regular(self._files[0], spec)
      sensors = mvnx.read(self._files[0], ("sensorOrientation",)).sensor_labels
    return readers.mvnx_channel_names(sensors, spec)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # The folder was fixed (and fingerprinted) in __init__.
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    repairs.update(dict.fromkeys(REPAIR_KEYS, 0))
    self.info.metadata["native_rates_hz"].clear()
    return {"train": self._generate_examples(self._folder, repairs)}

  def _generate_examples(self, folder, repairs):
    spec = self._spec
    rate = self.builder_config.rate_hz
    files = self._files
    segments = (segment_table.read(folder / spec.segments, spec)
                if spec.segments else None)
    if rate is None:  # native, with no rate in the spec: the first file's.
      rate = self._native_rate(segments)
    errors, skipped, yielded = [], 0, 0
    for path in files:
      try:
        example = make_example(path, spec, rate, repairs, segments)
        if example is None:
          skipped += 1
          continue
        subject = paths.subject_of(path, folder, spec)
      except (ValueError, OSError) as e:
        # Keep going: the user gets every bad file in one error.
        errors.append(e)
        continue
      recording = pathlib.Path(path).relative_to(folder).as_posix()
      recording = recording.rsplit(".", 1)[0].replace("/", "__")
      example["subject"], example["recording"] = subject, recording
      native = example.pop("native_rate_hz")
      if native is not None:
        self.info.metadata["native_rates_hz"][recording] = native
      yielded += 1
      if not errors:  # After an error nothing will be written: stop yielding.
        yield recording, example
    if len(errors) == 1:
      raise errors[0]
    if errors:
      raise BuildError(paths.too_many(errors, f"of {len(files)} files in "
                                      f"{folder} are bad"), errors)
    if not yielded:
      raise ValueError(
          f"{folder}: none of the {len(files)} file(s) matching "
          f"files={spec.files!r} has 2 or more samples ({skipped} skipped: "
          "header only or a single row); add recordings or fix files in "
          f"{spec.path}.")
    if segments is not None:
      unmatched = segments.unmatched_rows()
      repairs["segment_rows_without_recording"] = unmatched
      if unmatched:
        logging.warning("%s: %d row(s) name no recording of this build "
                        "(files=%r).", segments.path, unmatched, spec.files)

  def _native_rate(self, segments) -> float | None:
    """The median rate of the first file that reads; a bad file is skipped
    here and reported with every other bad file by the build."""
    for path in self._files:
      try:
        table, _ = readers.read_recording(path, self._spec, segments)
        rate = resample.native_rate_hz(table.timestamps_s)
      except (ValueError, OSError):
        continue
      self.info.metadata["sample_rate_hz"] = rate
      return rate
    return None
