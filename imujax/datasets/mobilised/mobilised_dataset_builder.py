"""mobilised: lower-back IMU with a gait reference, Mobilise-D data.mat format.

Mobilise-D Technical Validation Study (TVS; Mazzà et al., BMJ Open 2021;
data: Zenodo doi 10.5281/zenodo.13899386, CC BY 4.0), laboratory part, and
the example data of the mobgap repository (Apache-2.0) in the same layout:
`<cohort>/<participant>/Laboratory/data.mat` (TVS) or
`<cohort>/<participant>/data.mat` (example). One example per participant x
test x trial (`HA_001_TimeMeasure1_Test5_Trial1`), subject `HA_001`.

Signals: SU.LowerBack Acc (g -> m/s^2) and Gyr (deg/s -> rad/s), 100 Hz.
Every track comes from one reference system and bout type (INDIP,
ContinuousWalkingPeriod); a reference time t (s) is the 0-based sample
round(t * Fs) - 1 (MATLAB's 1-based sample, as mobgap reads it), then the
nearest frame of the config's grid (a tie goes to the earlier frame):

* `labels`: walking (1) on the frames from each bout's Start to its End
  (inclusive), not_walking (0) elsewhere.
* `labels_initial_contact` / `labels_final_contact`: 1 on the frame of each
  InitialContact_Event / FinalContact_Event, 0 elsewhere.
* `labels_initial_contact_side`: left (1) / right (2) at initial contacts
  (InitialContact_LeftRight), 0 elsewhere, -1 where unknown or conflicting.
* `targets_walking_speed` (m/s, float32): the bout's WalkingSpeed on its
  frames; `targets_stride_length` (m): on frames [start IC, end IC) of each
  stride (Stride_InitialContacts) its Stride_Length, the mean where the two
  feet's strides overlap. NaN = no target (outside bouts, or missing).

A trial whose reference lists no bout has every label -1 and targets NaN.
See README.md for the derivations, checks and counts.
"""

import dataclasses

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import resample
from imujax.datasets.mobilised import matfile

CLASS_NAMES = ("not_walking", "walking")
LABEL_TRACKS = {
    "labels": list(CLASS_NAMES),
    "labels_initial_contact": ["none", "initial_contact"],
    "labels_initial_contact_side": ["none", "left", "right"],
    "labels_final_contact": ["none", "final_contact"],
}
# Float per-frame regression targets (NaN = no target) and their units.
TARGETS = {"targets_walking_speed": "m/s", "targets_stride_length": "m"}
CHANNEL_NAMES = tuple(f"lowerback_{sensor}_{axis}"
                      for sensor in ("acc", "gyr") for axis in "xyz")
NATIVE_RATE_HZ = 100.0
# The first is the default.
RATES = {"100hz": NATIVE_RATE_HZ, "50hz": 50.0}
CONDITIONS = ("Laboratory", "Free-living")  # TVS folders under a participant.
COHORTS = {"HA": "healthy older adults", "CHF": "congestive heart failure",
           "COPD": "chronic obstructive pulmonary disease",
           "MS": "multiple sclerosis", "PD": "Parkinson's disease",
           "PFF": "proximal femoral fracture"}
REPAIR_KEYS = (
    # Whole trial unlabelled: the reference system lists no bout.
    "recordings_without_reference",
    # InitialContact_Event / FinalContact_Event entries that are NaN.
    "nan_reference_events_dropped",
    # Events on a frame that already holds one of the same kind.
    "reference_events_merged",
    # Initial contacts whose side is not left/right, or conflicts: side -1.
    "initial_contacts_without_side",
    # Strides with a NaN start/end contact or length: no stride_length.
    "strides_without_value_skipped",
)
MANUAL_EXPECTED = ("Mobilise-D data.mat files as <cohort>/<participant>/"
                   "Laboratory/data.mat (TVS) or <cohort>/<participant>/"
                   "data.mat")
HOMEPAGE = "https://doi.org/10.5281/zenodo.13899386"


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float = NATIVE_RATE_HZ
  reference_system: str = "INDIP"
  bout_type: str = "ContinuousWalkingPeriod"
  condition: str = "Laboratory"


@dataclasses.dataclass(frozen=True)
class Participant:
  cohort: str
  participant: str
  path: epath.Path

  @property
  def subject(self) -> str:
    return f"{self.cohort}_{self.participant}"


def _layout_files(root: epath.Path, condition: str):
  """(cohort, participant, path) of each data.mat in either layout."""
  for path in sorted(root.glob("*/*/data.mat")):
    # <participant>/<condition>/data.mat: root is a cohort folder, not the
    # folder above the cohorts.
    if path.parent.name not in CONDITIONS:
      yield path.parent.parent.name, path.parent.name, path
  for path in sorted(root.glob(f"*/*/{condition}/data.mat")):
    yield path.parents[2].name, path.parents[1].name, path


def find_data_dir(root: epath.Path) -> epath.Path | None:
  """The folder holding the cohort folders, at or below `root`."""
  for depth in range(3):
    for candidate in ([root] if depth == 0 else
                      sorted(root.glob("*/" * (depth - 1) + "*"))):
      if candidate.is_dir() and next(
          _layout_files(candidate, CONDITIONS[0]), None):
        return candidate
  return None


def list_participants(data_dir: epath.Path,
                      condition: str) -> list[Participant]:
  """Every participant's data.mat of `condition`, one per subject."""
  found = {}
  for cohort, participant, path in _layout_files(data_dir, condition):
    p = Participant(cohort, participant, path)
    if p.subject in found:
      raise ValueError(
          f"{path} and {found[p.subject].path} are both participant "
          f"{participant} of cohort {cohort}; keep one layout (<cohort>/"
          f"<participant>/{condition}/data.mat, as in the TVS download).")
    found[p.subject] = p
  if not found:
    raise FileNotFoundError(f"{data_dir}: no {MANUAL_EXPECTED}. Point "
                            "manual_dir at the folder holding the cohorts.")
  return list(found.values())


def sample_index(t_s, fs: float) -> np.ndarray:
  """0-based sample of reference times: round(t * Fs) - 1 (MATLAB 1-based)."""
  return np.round(np.asarray(t_s, np.float64) * fs).astype(np.int64) - 1


def to_frame(index, fs: float, rate: float) -> np.ndarray:
  """Nearest frame at `rate` of 0-based samples at `fs`; ties go earlier."""
  return np.ceil(np.asarray(index) * (rate / fs) - 0.5).astype(np.int64)


class _Checker:
  """Turns reference times into samples, naming the field when outside."""

  def __init__(self, trial: matfile.Trial, path):
    self.n, self.fs = len(trial.acc), trial.fs
    self.path, self.trial = path, trial.where

  def __call__(self, times_s: np.ndarray, field: str) -> np.ndarray:
    """<int64>[n] samples of <float64>[n] times; `field` names them."""
    index = sample_index(times_s, self.fs)
    bad = np.flatnonzero((index < 0) | (index >= self.n))
    if bad.size:
      raise ValueError(
          f"{self.path}: {field} = {float(times_s[bad[0]]):.3f} s is "
          f"outside the recording: {self.trial}.SU.LowerBack has {self.n} "
          f"samples at {self.fs:g} Hz, so reference times run from "
          f"{1 / self.fs:.3f} to {self.n / self.fs:.3f} s. The reference "
          "belongs to another trial or the file is damaged: restore it.")
    return index


def _bout_spans(bouts, check: _Checker, path):
  """[(first sample, last sample, bout)] sorted, checked for overlaps."""
  spans = []
  for b in bouts:
    for field, value in (("Start", b.start_s), ("End", b.end_s)):
      if not np.isfinite(value):
        raise ValueError(f"{path}: {b.where}.{field} is {value}; a bout needs"
                         " a start and an end. Restore the file.")
    start = int(check(np.array([b.start_s]), f"{b.where}.Start")[0])
    end = int(check(np.array([b.end_s]), f"{b.where}.End")[0])
    if end < start:
      raise ValueError(f"{path}: {b.where}.End ({b.end_s} s) is before its "
                       f"Start ({b.start_s} s). Restore the file.")
    spans.append((start, end, b))
  spans.sort(key=lambda s: s[0])
  for (_, prev_end, prev), (start, _, cur) in zip(spans, spans[1:]):
    if start <= prev_end:
      raise ValueError(
          f"{path}: {cur.where} ({cur.start_s}..{cur.end_s} s) overlaps "
          f"{prev.where} ({prev.start_s}..{prev.end_s} s); bouts of one "
          "reference must not overlap. Restore the file, or fix the bouts.")
  return spans


def _events(bouts, field: str, attr: str, check, frame, repairs):
  """(frames, bout, position in the bout) of the finite events of a kind."""
  out = []
  for b in bouts:
    times = getattr(b, attr)
    finite = np.flatnonzero(np.isfinite(times))
    repairs["nan_reference_events_dropped"] += times.size - finite.size
    for i in finite:
      index = check(times[i:i + 1], f"{b.where}.{field}({i + 1})")
      out.append((int(frame(index)[0]), b, int(i)))
  return out


def reference_tracks(trial: matfile.Trial, n_out: int, rate: float, path,
                     repairs: dict[str, int]) -> dict[str, np.ndarray]:
  """The label tracks and targets of one trial on `n_out` frames at `rate`."""
  unlabelled = {name: np.full(n_out, -1, np.int32) for name in LABEL_TRACKS}
  targets = {name: np.full(n_out, np.nan, np.float32) for name in TARGETS}
  if trial.bouts is None:
    repairs["recordings_without_reference"] += 1
    return {**unlabelled, **targets}
  check = _Checker(trial, path)
  frame = lambda index: np.minimum(to_frame(index, trial.fs, rate),
                                   n_out - 1)
  tracks = {name: np.zeros(n_out, np.int32) for name in LABEL_TRACKS}
  speed = targets["targets_walking_speed"]
  for start, end, b in _bout_spans(trial.bouts, check, path):
    first, last = frame([start, end])
    tracks["labels"][first:last + 1] = 1
    speed[first:last + 1] = b.walking_speed
  for kind, field, attr in (
      ("initial_contact", "InitialContact_Event", "initial_contacts_s"),
      ("final_contact", "FinalContact_Event", "final_contacts_s")):
    events = _events(trial.bouts, field, attr, check, frame, repairs)
    frames = np.array([f for f, _, _ in events], np.int64)
    tracks[f"labels_{kind}"][frames] = 1
    repairs["reference_events_merged"] += frames.size - np.unique(
        frames).size
    if kind == "initial_contact":
      side = tracks["labels_initial_contact_side"]
      sides = {}
      for f, b, i in events:
        sides.setdefault(f, set()).add(b.initial_contact_sides[i])
      for f, found in sides.items():
        code = {("left",): 1, ("right",): 2}.get(tuple(found), -1)
        side[f] = code
        repairs["initial_contacts_without_side"] += code < 0
  total = np.zeros(n_out, np.float64)
  count = np.zeros(n_out, np.int64)
  for b in trial.bouts:
    for i, ((t0, t1), length) in enumerate(zip(b.strides_s,
                                               b.stride_lengths)):
      if not np.isfinite([t0, t1, length]).all():
        repairs["strides_without_value_skipped"] += 1
        continue
      field = f"{b.where}.Stride_InitialContacts({i + 1},"
      first = frame(check(np.array([t0]), field + "1)"))[0]
      last = frame(check(np.array([t1]), field + "2)"))[0]
      total[first:last] += length
      count[first:last] += 1
  walking = tracks["labels"] == 1
  with np.errstate(invalid="ignore", divide="ignore"):
    stride = np.where((count > 0) & walking, total / count, np.nan)
  targets["targets_stride_length"] = stride.astype(np.float32)
  speed[~walking] = np.nan
  return {**tracks, **targets}


def make_examples(participant: Participant, config: Config,
                  repairs: dict[str, int]):
  """Yields (key, example) for every trial of one participant's data.mat."""
  trials = matfile.load(participant.path, config.reference_system,
                        config.bout_type)
  for trial in trials:
    values = np.concatenate([trial.acc, trial.gyr], axis=1)
    # Rows are consecutive samples at Fs (the reference counts samples, not
    # the Timestamp field); at the native rate the grid is these times.
    out = resample.resample_to_grid(
        np.arange(len(values)) / trial.fs, values, None, config.rate_hz,
        source=f"{participant.path}:{trial.where}.SU.LowerBack")
    for k, v in out.repairs.items():
      repairs[k] += v
    tracks = reference_tracks(trial, len(out.signals), config.rate_hz,
                              participant.path, repairs)
    recording = "_".join((participant.subject, *trial.names))
    yield recording, {"signals": out.signals, **tracks,
                      "subject": participant.subject,
                      "recording": recording}


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for mobilised."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: TVS laboratory layout, INDIP "
                            "ContinuousWalkingPeriod reference."}
  BUILDER_CONFIGS = [
      Config(name=name, rate_hz=hz,
             description=f"lower-back IMU at {hz:g} Hz, INDIP reference")
      for name, hz in RATES.items()
  ]
  # What a named manual_dir must hold (common.check_builder_manual_dir).
  MANUAL_FIND = staticmethod(find_data_dir)
  MANUAL_EXPECTED = MANUAL_EXPECTED
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Required (no download). Get the Mobilise-D Technical Validation Study
  from Zenodo (doi 10.5281/zenodo.13899386), extract every zip into one
  folder without changing the structure, and point manual_dir at the folder
  holding the cohort folders (CHF/, COPD/, HA/, MS/, PD/, PFF/): it reads
  <cohort>/<participant>/Laboratory/data.mat. The mobgap example layout,
  <cohort>/<participant>/data.mat (mobgap's example_data/data/lab), works
  too. A manual_dir that is missing or holds no such file is an error.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    base = common.example_features(len(CHANNEL_NAMES), LABEL_TRACKS)
    features = {name: base[name] for name in base.keys()}
    features.update(common.target_features(TARGETS, __file__))
    config = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict(features),
        metadata=tfds.core.MetadataDict(
            channel_names=list(CHANNEL_NAMES),
            class_names=list(CLASS_NAMES),
            label_tracks=LABEL_TRACKS,
            regression_targets=dict(TARGETS),
            sample_rate_hz=float(config.rate_hz),
            units={"acc": "m/s^2", "gyr": "rad/s", **TARGETS},
            reference={"system": config.reference_system,
                       "bout_type": config.bout_type,
                       "condition": config.condition},
            cohorts={},
            cohort_names=dict(COHORTS),
            repairs={},
        ),
        homepage=HOMEPAGE,
        license="CC-BY-4.0 (TVS); Apache-2.0 (mobgap example data)",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    given = self.given_manual_dir
    if given is not None:
      data_dir = common.check_manual_dir(given, find_data_dir,
                                         MANUAL_EXPECTED)
    else:  # TFDS's default manual folder, if the files were put there.
      default = common.manual_dir_given(dl_manager)
      data_dir = None
      if default is not None and default.is_dir():
        data_dir = find_data_dir(default)
    if data_dir is None:
      raise FileNotFoundError(
          "mobilised has no download: pass manual_dir (--manual_dir or "
          "data.manual_dir) = the folder holding the cohort folders of the "
          f"Mobilise-D TVS ({HOMEPAGE}). See the dataset's README.")
    participants = list_participants(data_dir, self.builder_config.condition)
    # Filled while examples are generated; written with the dataset info.
    meta = self.info.metadata
    meta["repairs"].clear()
    meta["repairs"].update(dict.fromkeys(
        (*resample.REPAIR_KEYS, *REPAIR_KEYS), 0))
    meta["cohorts"].clear()
    meta["cohorts"].update({p.subject: p.cohort for p in participants})
    return {"train": self._generate_examples(participants, meta["repairs"])}

  def _generate_examples(self, participants, repairs):
    for participant in participants:
      yield from make_examples(participant, self.builder_config, repairs)
