"""andy: AnDy "AndyData-lab-onePerson", industry-like tasks in an Xsens suit.

Maurice et al., "Human movement and ergonomics: an industry-oriented dataset
for collaborative robotics", IJRR 38(14), 2019; Zenodo record 3254403. 13
participants performed pick-and-place, screwing, carrying... tasks wearing an
Xsens MVN suit (17 IMUs, 240 Hz). Every recording
`Participant_<id>_Setup_<A|B>_Seq_<n>_Trial_<k>` was annotated by three
annotators in four tracks: general posture, detailed posture, details and
current action.

One example per recording (subject = participant id): `signals` are the 17
sensors' free acceleration (m/s^2, global frame) then angular velocity (rad/s),
per sensor (102 channels, `<placement>_{acc,gyr}_{x,y,z}`), see
`imujax.datasets.mvnx.imu_channels` for the quantity each comes from; resampled to the
config's rate. `labels` is the general posture; `labels_detailed_posture`,
`labels_details`, `labels_current_action` the other tracks.

Annotations (format as read by the dataset authors' public code, github
inria-larsen/activity-recognition-prediction-wearable, `data_base.py`):
`Segments_<recording>_<track>_3A.csv`, a header row then one row per segment:
column 1 (0-based) the segment's end in seconds from the first frame, columns
3, 4, 5 the labels of annotators 1, 2, 3. A frame belongs to the first segment
ending at or after it; frames after the last segment are -1.

Majority vote per frame: "NONE" and empty cells are no vote; the label with the
most votes wins (2 or 3 agreeing, or the only vote cast). A tie (three
different labels, or two disagreeing votes) and a frame nobody labelled are
-1, counted in `repairs` as `vote_ties_unlabelled` and
`vote_none_unlabelled`. Labels are matched to fixed class lists (below),
through the abbreviations the authors' code uses (St, Wa, BF, Pi, ...); an
unknown label is an error naming file and line. Without a `details` file that
track is derived from the detailed posture by removing the posture prefix, as
the authors' code does.
"""

import csv
import dataclasses
import pathlib
import re

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import mvnx
from imujax.datasets import common
from imujax.datasets import resample

NATIVE_RATE_HZ = 240.0
RATES = common.rates(NATIVE_RATE_HZ)
RECORD_URL = "https://zenodo.org/api/records/3254403/files-archive"
SENSORS = ("Pelvis", "T8", "Head", "RightShoulder", "RightUpperArm",
           "RightForeArm", "RightHand", "LeftShoulder", "LeftUpperArm",
           "LeftForeArm", "LeftHand", "RightUpperLeg", "RightLowerLeg",
           "RightFoot", "LeftUpperLeg", "LeftLowerLeg", "LeftFoot")
RECORDING_RE = re.compile(
    r"Participant_(?P<participant>\d+)_Setup_(?P<setup>[AB])_Seq_(?P<seq>\d+)"
    r"_Trial_(?P<trial>\d+)")
GENERAL_POSTURE = ("standing", "walking", "crouching", "kneeling")
DETAILS = ("upright", "bent_forward", "strongly_bent_forward",
           "overhead_work_elbow_at_above_shoulder",
           "overhead_work_hands_above_head")
DETAILED_POSTURE = tuple(f"{g}_{d}" for g in GENERAL_POSTURE for d in DETAILS)
CURRENT_ACTION = ("reaching", "picking", "placing", "release", "carrying",
                  "fine_manipulation", "screwing", "idle")
TRACKS = {"general_posture": GENERAL_POSTURE,
          "detailed_posture": DETAILED_POSTURE, "details": DETAILS,
          "current_action": CURRENT_ACTION}
PRIMARY = "general_posture"
# Abbreviations and variants found in the authors' code (fusion_GT.py,
# data_base.py, demo lists) -> the names above.
_POSTURE_ALIASES = {"St": "standing", "Wa": "walking", "Cr": "crouching",
                    "Kn": "kneeling"}
_DETAIL_ALIASES = {"U": "upright", "BF": "bent_forward", "bent": "bent_forward",
                   "BS": "strongly_bent_forward",
                   "strongly_bent": "strongly_bent_forward",
                   "OH": "overhead_work_hands_above_head",
                   "OS": "overhead_work_elbow_at_above_shoulder",
                   "elbow_at_above_shoulder":
                       "overhead_work_elbow_at_above_shoulder"}
_ACTION_ALIASES = {"Re": "reaching", "Pi": "picking", "Pl": "placing",
                   "Rl": "release", "Ca": "carrying", "Fm": "fine_manipulation",
                   "Sc": "screwing", "Id": "idle"}
_NO_VOTE = frozenset({"", "NONE", "none", "nan", "NaN"})
REPAIR_KEYS = ("vote_ties_unlabelled", "vote_none_unlabelled",
               "frames_after_last_segment_unlabelled", "details_derived",
               "truncated_file_tail_dropped") + resample.REPAIR_KEYS


def canonical_label(track: str, raw: str) -> str | None:
  """The class name of one annotator cell, or None if it is no vote.

  Raises:
    KeyError: the label is not one of the track's classes or aliases.
  """
  text = raw.strip()
  if text in _NO_VOTE:
    return None
  text = re.sub(r"[\s\-]+", "_", text)
  if text.endswith("_no_task"):  # The authors fold these into idle.
    text = "idle"
  classes = TRACKS[track]
  if text in classes:
    return text
  if track == "general_posture":
    return _POSTURE_ALIASES.get(text) or _lower_in(text, classes)
  if track == "current_action":
    return _ACTION_ALIASES.get(text) or _lower_in(text, classes)
  if track == "details":
    return _DETAIL_ALIASES.get(text) or _lower_in(text, classes)
  posture, _, detail = text.partition("_")
  posture = _POSTURE_ALIASES.get(posture, posture.lower())
  detail = _DETAIL_ALIASES.get(detail, detail.lower())
  if f"{posture}_{detail}" in classes:
    return f"{posture}_{detail}"
  raise KeyError(raw)


def _lower_in(text, classes):
  if text.lower() in classes:
    return text.lower()
  raise KeyError(text)


class Segments:
  """One annotation file: segment ends and the three annotators' labels.

  Attributes:
    ends_s: <float64>[S] segment ends, seconds from the first frame.
    votes: <int32>[S, 3] class ids, -1 for no vote.
  """

  def __init__(self, ends_s, votes):
    self.ends_s, self.votes = ends_s, votes


def read_segments(path: epath.Path, track: str) -> Segments:
  """Parses `Segments_<recording>_<track>_3A.csv` (see module docstring)."""
  classes = {c: i for i, c in enumerate(TRACKS[track])}
  rows = list(csv.reader(path.read_text().splitlines()))
  ends, votes = [], []
  for lineno, row in enumerate(rows[1:], start=2):
    if not row:
      continue
    if len(row) < 6:
      raise ValueError(f"{path}:{lineno}: {len(row)} columns; expected at "
                       "least 6 (segment times, then three annotators' labels "
                       "in columns 4-6). Restore the file from the archive.")
    try:
      end = float(row[1])
    except ValueError:
      raise ValueError(f"{path}:{lineno}: segment end {row[1]!r} is not a "
                       "number of seconds. Restore the file.") from None
    if ends and end < ends[-1]:
      raise ValueError(f"{path}:{lineno}: segment end {end} s is before the "
                       f"previous one ({ends[-1]} s); segments must be in "
                       "time order. Restore the file.")
    ids = []
    for cell in row[3:6]:
      try:
        name = canonical_label(track, cell)
      except KeyError:
        raise ValueError(
            f"{path}:{lineno}: unknown {track} label {cell!r}; known: "
            f"{list(TRACKS[track])} and the authors' abbreviations. Add it to "
            "the aliases in andy_dataset_builder.py if it is a variant."
        ) from None
      ids.append(-1 if name is None else classes[name])
    ends.append(end)
    votes.append(ids)
  if not ends:
    raise ValueError(f"{path}: no segments; restore the file.")
  return Segments(np.asarray(ends), np.asarray(votes, np.int32))


def majority_vote(votes: np.ndarray, num_classes: int):
  """Per-row majority of three annotators.

  Args:
    votes: <int32>[N, 3], -1 = no vote.
  Returns:
    (<int32>[N] winner or -1, <bool>[N] tie, <bool>[N] no vote at all).
  """
  counts = np.zeros((votes.shape[0], num_classes + 1), np.int32)
  for j in range(votes.shape[1]):
    np.add.at(counts, (np.arange(votes.shape[0]), votes[:, j] + 1), 1)
  counts = counts[:, 1:]  # Drop the no-vote column.
  best = counts.max(axis=1)
  none = best == 0
  tie = ~none & ((counts == best[:, None]).sum(axis=1) > 1)
  winner = np.where(none | tie, -1, counts.argmax(axis=1)).astype(np.int32)
  return winner, tie, none


def frame_labels(seg: Segments, t: np.ndarray, num_classes: int, repairs):
  """Labels at frame times <float64>[T] (seconds from the first frame)."""
  winner, tie, none = majority_vote(seg.votes, num_classes)
  which = np.searchsorted(seg.ends_s, t - 1e-9, side="left")
  after = which >= len(seg.ends_s)
  which = np.minimum(which, len(seg.ends_s) - 1)
  labels = np.where(after, -1, winner[which]).astype(np.int32)
  repairs["vote_ties_unlabelled"] += int((tie[which] & ~after).sum())
  repairs["vote_none_unlabelled"] += int((none[which] & ~after).sum())
  repairs["frames_after_last_segment_unlabelled"] += int(after.sum())
  return labels


def derive_details(seg: Segments) -> Segments:
  """The details track from detailed-posture segments (posture prefix off)."""
  detail_of = np.array([DETAILS.index(name.split("_", 1)[1])
                        for name in DETAILED_POSTURE] + [-1], np.int32)
  return Segments(seg.ends_s, detail_of[seg.votes])  # -1 indexes the sentinel.


def find_files(root: epath.Path) -> tuple[dict, dict]:
  """Recording -> MVNX path, and (recording, track) -> annotation path."""
  root = pathlib.Path(root)
  recordings, annotations = {}, {}
  for p in sorted(root.rglob("*.mvnx")):
    m = RECORDING_RE.search(p.name)
    if m:
      recordings[m.group(0)] = epath.Path(p)
  pattern = re.compile(RECORDING_RE.pattern + r"_(?P<track>" +
                       "|".join(TRACKS) + r")_3A\.csv$")
  for p in sorted(root.rglob("Segments_*_3A.csv")):
    m = pattern.search(p.name)
    if m:
      rec = p.name[len("Segments_"):m.start("track") - 1]
      annotations[(rec, m.group("track"))] = epath.Path(p)
  return recordings, annotations


def find_data_dir(root) -> epath.Path | None:
  """`root` if it holds (at any depth) an AnDy MVNX recording, else None."""
  for p in pathlib.Path(root).rglob("*.mvnx"):
    if RECORDING_RE.search(p.name):
      return epath.Path(root)
  return None


EXPECTED_FILES = "Participant_*_Setup_*_Seq_*_Trial_*.mvnx files"


def channel_names() -> list[str]:
  return [f"{mvnx.sensor_placement(s)}_{q}_{a}" for s in SENSORS
          for q in ("acc", "gyr") for a in "xyz"]


def make_example(mvnx_path, annotations: dict, recording: str, rate_hz,
                 repairs: dict) -> dict:
  """Reads one recording and its four tracks; adds to `repairs`."""
  rec = mvnx.read(mvnx_path, mvnx.IMU_FIELDS)
  if rec.sensor_labels != SENSORS:
    raise ValueError(f"{mvnx_path}: sensors {rec.sensor_labels}, expected the "
                     f"17 of the full-body suit {SENSORS}. Is this an AnDy "
                     "file?")
  imu = mvnx.imu_channels(rec)
  signals = np.concatenate([imu.acc, imu.gyr], axis=2).reshape(
      len(rec.index), -1)
  t = rec.timestamps_s
  tracks = {}
  for track, classes in TRACKS.items():
    path = annotations.get((recording, track))
    if path is None and track == "details" and (
        recording, "detailed_posture") in annotations:
      seg = derive_details(read_segments(
          annotations[(recording, "detailed_posture")], "detailed_posture"))
      repairs["details_derived"] += 1
    elif path is None:
      raise FileNotFoundError(
          f"Segments_{recording}_{track}_3A.csv is missing for {mvnx_path}. "
          "Extract the dataset's annotation archive into manual_dir beside "
          "the MVNX files.")
    else:
      seg = read_segments(path, track)
    name = "labels" if track == PRIMARY else f"labels_{track}"
    tracks[name] = frame_labels(seg, t, len(classes), repairs)
  out = resample.resample_to_grid(t, signals, tracks, rate_hz,
                                  source=str(mvnx_path))
  for k, v in out.repairs.items():
    repairs[k] += v
  for k, v in rec.repairs.items():
    repairs[k] += v
  return {"signals": out.signals, **out.labels}


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float = 50.0


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for AnDy (AndyData-lab-onePerson)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 17 sensors' acc + gyr, four "
                            "majority-voted label tracks."}
  BUILDER_CONFIGS = [
      Config(name=f"sensors_{r}", rate_hz=hz,
             description=f"17 sensors' acc + gyr at {hz:g} Hz")
      for r, hz in RATES.items()]
  # What a named manual_dir must hold (common.check_builder_manual_dir).
  MANUAL_FIND = staticmethod(find_data_dir)
  MANUAL_EXPECTED = EXPECTED_FILES
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download from https://zenodo.org/records/3254403 the MVNX archive
  (xsens_mnvx.zip) and the annotation CSVs, and extract both into manual_dir
  (any layout: files are found recursively by name,
  Participant_<id>_Setup_<A|B>_Seq_<n>_Trial_<k>[.xsens].mvnx and
  Segments_<recording>_<track>_3A.csv). Without manual_dir the builder
  downloads the whole Zenodo record (large).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.example_features(len(SENSORS) * 6,
                                         self._track_features()),
        metadata=tfds.core.MetadataDict(
            channel_names=channel_names(),
            class_names=list(GENERAL_POSTURE),
            label_tracks={name: list(TRACKS[t])
                          for name, t in self._track_features().items()},
            sample_rate_hz=float(self.builder_config.rate_hz),
            units={"acc": "m/s^2", "gyr": "rad/s"},
            repairs={}),
        homepage="https://zenodo.org/records/3254403",
        license="see https://zenodo.org/records/3254403",
    )

  @staticmethod
  def _track_features() -> dict[str, str]:
    return {("labels" if t == PRIMARY else f"labels_{t}"): t for t in TRACKS}

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    # A named manual_dir that is missing or holds no recording is an error,
    # never a silent download of the (large) record.
    root = common.manual_data_dir(self, find_data_dir, EXPECTED_FILES)
    if root is None:
      root = self._download(dl_manager)
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    repairs.update(dict.fromkeys(REPAIR_KEYS, 0))
    return {"train": self._generate_examples(root, repairs)}

  def _download(self, dl_manager) -> epath.Path:
    root = dl_manager.download_and_extract(tfds.download.Resource(
        url=RECORD_URL, extract_method=tfds.download.ExtractMethod.ZIP))
    for inner in sorted(pathlib.Path(root).rglob("*.zip")):
      dl_manager.extract(epath.Path(inner))
    return epath.Path(root).parent  # Extractions sit beside the archive.

  def _generate_examples(self, root, repairs):
    recordings, annotations = find_files(root)
    if not recordings:
      raise FileNotFoundError(
          f"{root}: no Participant_*_Setup_*_Seq_*_Trial_*.mvnx files. "
          f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    logging.info("andy: %d recordings, %d annotation files", len(recordings),
                 len(annotations))
    for recording, path in recordings.items():
      example = make_example(path, annotations, recording,
                             self.builder_config.rate_hz, repairs)
      example["subject"] = RECORDING_RE.search(recording).group("participant")
      example["recording"] = recording
      yield recording, example
