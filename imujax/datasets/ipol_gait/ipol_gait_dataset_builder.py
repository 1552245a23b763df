"""ipol_gait: healthy-subject gait with three Xsens MTw Awinda IMUs.

Voisard et al., IPOL 2023 (ipol.im/pub/art/2023/497). 19 subjects, 110 trials
of: stand still, walk 10 m, U-turn, walk back, stop. IMUs on the lower back
(L5), right foot and left foot, 100 Hz; accelerometer (m/s^2) and gyroscope
(rad/s) are kept (the magnetometer, in arbitrary units, is not). One example
per trial (`s01_01` for upstream `1-1`).

The three sensors share the Awinda packet counter, which skips lost packets;
the JSON annotations index that counter (verified: foot-gyroscope energy peaks
inside the annotated footsteps on counter time, not on row number). So sample
time is `counter / 100 s`, the three sensors are resampled onto one grid over
the counter interval all three cover, and labels are read at each frame's
counter position:

* `labels` (stand / walk / turn): turn inside UTurnBoundaries, walk inside the
  rest of TrialBoundaries, stand outside it (both ends inclusive).
* `labels_footstep` (no_swing / left_swing / right_swing): a frame inside a
  [start, end] of LeftFootEvents (RightFootEvents) is left_swing (right_swing);
  these intervals are when that foot moves (toe-off to heel-strike). The few
  frames inside a left AND a right interval (annotation overlap) are -1.
"""

import dataclasses
import json
import re

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import resample

CLASS_NAMES = ("stand", "walk", "turn")
FOOTSTEP_CLASSES = ("no_swing", "left_swing", "right_swing")
# The JSON key of each foot's swings, in the order of the side codes 1, 2.
FEET = {"left": "LeftFootEvents", "right": "RightFootEvents"}
# Integer tracks derived from the swings (README, "Contact events").
CONTACT_TRACKS = {
    "labels_initial_contact": ["none", "initial_contact"],
    "labels_final_contact": ["none", "final_contact"],
    "labels_initial_contact_side": ["none", "left", "right"],
    **{f"labels_{kind}_contact_{foot}": ["none", f"{kind}_contact"]
       for kind in ("initial", "final") for foot in FEET},
    **{f"labels_{foot}_foot": ["stance", "swing"] for foot in FEET},
}
LABEL_TRACKS = {"labels": list(CLASS_NAMES),
                "labels_footstep": list(FOOTSTEP_CLASSES), **CONTACT_TRACKS}
# Longer "strides" hold a pause (standing between the two contacts).
MAX_STRIDE_S = 2.5
# Float per-frame regression targets (NaN = no target) and their units.
TARGETS = {"targets_stride_time": "s", "targets_stride_time_left": "s",
           "targets_stride_time_right": "s"}
# File suffix -> placement used in channel names, in channel order.
SENSORS = {"lb": "lower_back", "lf": "left_foot", "rf": "right_foot"}
COLUMNS = ("PacketCounter", "Acc_X", "Acc_Y", "Acc_Z", "Gyr_X", "Gyr_Y",
           "Gyr_Z", "Mag_X", "Mag_Y", "Mag_Z")
_KEPT = slice(1, 7)  # Acc, Gyr.
NATIVE_RATE_HZ = 100.0
RATES = common.rates(NATIVE_RATE_HZ)
# The upstream repository at the commit that was verified, as a zip.
URL = ("https://github.com/CyrilVoisard/ipol_dataset_1/archive/"
       "b9f4bbb3758135b877acf1676da3e5bae527314b.zip")
MAX_MALFORMED_ROWS = 10
_JSON_KEYS = ("Subject", "Trial", "TrialBoundaries", "UTurnBoundaries",
              "LeftFootEvents", "RightFootEvents")
_TRIAL_RE = re.compile(r"(\d+)-(\d+)\.json")
_AXES = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")

CHANNEL_NAMES = tuple(f"{p}_{a}" for p in SENSORS.values() for a in _AXES)


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float = 50.0


@dataclasses.dataclass
class Table:
  """One sensor file: counter <float64>[T], values <float64>[T, 6] (acc, gyr),
  lines <int64>[T] file line of each row, repairs name -> count."""
  counter: np.ndarray
  values: np.ndarray
  lines: np.ndarray
  repairs: dict[str, int]


def read_sensor(path: epath.Path) -> Table:
  """Parses one `<subject>-<trial>_{lb,lf,rf}.txt` (tab-separated).

  Errors name `path:line`. Repairs (counted) as for sp_sw_har: a last line
  without its newline is dropped (`truncated_rows_dropped`); rows whose numbers
  do not parse are dropped (`malformed_rows_dropped`), at most
  MAX_MALFORMED_ROWS per file.
  """
  text = path.read_text()
  rows = text.splitlines()
  rate = re.fullmatch(r"Acquisition frequency: ([\d.]+) Hz",
                      rows[0].strip()) if rows else None
  if rate is None or float(rate.group(1)) != NATIVE_RATE_HZ:
    raise ValueError(
        f"{path}:1: expected 'Acquisition frequency: 100 Hz', found "
        f"{rows[0][:80] if rows else 'an empty file'!r}. Point manual_dir at "
        "the upstream GaitData folder with the files unchanged.")
  if len(rows) < 2 or tuple(rows[1].split()) != COLUMNS:
    raise ValueError(f"{path}:2: expected the columns {' '.join(COLUMNS)}; "
                     "restore the file from the archive.")
  repairs = {"truncated_rows_dropped": 0, "malformed_rows_dropped": 0}
  end = len(rows)
  if len(rows) > 2 and not text.endswith("\n"):
    end -= 1
    repairs["truncated_rows_dropped"] = 1
  data, lines, malformed = [], [], []
  for lineno in range(3, end + 1):
    fields = rows[lineno - 1].split("\t")
    if len(fields) != len(COLUMNS):
      raise ValueError(
          f"{path}:{lineno}: {len(fields)} tab-separated fields, expected "
          f"{len(COLUMNS)}. The file is damaged: restore it from the archive.")
    try:
      data.append([float(v) for v in fields[:7]])
    except ValueError:
      malformed.append(lineno)
      continue
    lines.append(lineno)
  if len(malformed) > MAX_MALFORMED_ROWS:
    raise ValueError(
        f"{path}:{malformed[0]}: {len(malformed)} rows with numbers that do "
        f"not parse; at most {MAX_MALFORMED_ROWS} are dropped. Restore the "
        "file.")
  repairs["malformed_rows_dropped"] = len(malformed)
  data = np.asarray(data, np.float64).reshape(-1, 7)
  return Table(data[:, 0], data[:, _KEPT], np.asarray(lines, np.int64),
               repairs)


def read_annotations(path: epath.Path) -> dict:
  """The trial JSON, validated: intervals are [start, end] counter values."""
  if not path.exists():
    raise FileNotFoundError(
        f"{path} is missing: every trial needs its JSON annotations. Restore "
        "it from the archive, or delete the trial's three .txt files.")
  try:
    meta = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); restore "
                     "the file from the archive.") from e
  for key in _JSON_KEYS:
    if key not in meta:
      raise ValueError(f"{path}: no {key!r} key; restore the file.")
  intervals = ([meta["TrialBoundaries"], meta["UTurnBoundaries"]]
               + list(meta["LeftFootEvents"]) + list(meta["RightFootEvents"]))
  for iv in intervals:
    if (len(iv) != 2 or not all(isinstance(v, int) and v >= 0 for v in iv)
        or iv[0] > iv[1]):
      raise ValueError(f"{path}: interval {iv!r} is not [start, end] with "
                       "0 <= start <= end sample indices; fix the file.")
  for key in FEET.values():
    order = sorted(range(len(meta[key])), key=lambda i: meta[key][i][0])
    for i, j in zip(order, order[1:]):
      if meta[key][j][0] <= meta[key][i][1]:
        raise ValueError(
            f"{path}: {key}[{j}] {meta[key][j]} overlaps {key}[{i}] "
            f"{meta[key][i]} (0-based): one foot's swings (toe-off to "
            "heel-strike) cannot overlap. Fix the file (merge or move them).")
  return meta


def _interval_mask(n: int, intervals) -> np.ndarray:
  """<bool>[n], True on every index inside an inclusive [start, end]."""
  mask = np.zeros(n, bool)
  for start, end in intervals:
    mask[start:end + 1] = True
  return mask


def label_tracks(meta: dict, counter_at_frame: np.ndarray):
  """Labels at each frame, from counter positions <float64>[T'].

  Returns:
    (labels <int32>[T'], labels_footstep <int32>[T'], overlap frame count).
  """
  # Previous-sample hold on the counter: frame at 12.6 reads index 12.
  idx = np.floor(counter_at_frame + 1e-9).astype(np.int64)
  n = int(idx.max()) + 1
  labels = np.zeros(n, np.int32)  # stand
  labels[_interval_mask(n, [meta["TrialBoundaries"]])] = 1  # walk
  labels[_interval_mask(n, [meta["UTurnBoundaries"]])] = 2  # turn
  left = _interval_mask(n, meta["LeftFootEvents"])
  right = _interval_mask(n, meta["RightFootEvents"])
  steps = np.where(left, 1, np.where(right, 2, 0)).astype(np.int32)
  steps[left & right] = -1
  return labels[idx], steps[idx], int((left & right)[idx].sum())


def nearest_frame(counter_at_frame: np.ndarray, counters) -> np.ndarray:
  """The frame nearest each counter value (a tie goes to the earlier)."""
  c = np.asarray(counters, np.float64)
  k = np.clip(np.searchsorted(counter_at_frame, c), 1,
              len(counter_at_frame) - 1)
  before = c - counter_at_frame[k - 1] <= counter_at_frame[k] - c
  return np.where(before, k - 1, k)


def contact_tracks(meta: dict, counter_at_frame: np.ndarray, covered,
                   json_path, repairs: dict[str, int]) -> dict:
  """Contact events, stance/swing and stride time per frame (README).

  Each [start, end] of a foot's swings is its final contact (toe-off) at
  `start` and its initial contact (heel-strike) at `end`; the foot is in
  stance outside its swings. A stride of a foot runs from one of its initial
  contacts to the next, if exactly one swing of the other foot starts in
  between and it lasts at most MAX_STRIDE_S; its time, (end - start) / 100
  s, is the target on its frames [start, end).

  Args:
    meta: the trial JSON (`read_annotations`).
    counter_at_frame: <float64>[T'] each frame's counter position.
    covered: (first, last) counter any sensor file holds: the recording.
    json_path: names the file in errors.
    repairs: counts `contact_events_outside_shared_span_dropped` (events in
      a sensor file but past the span all three share) and
      `strides_not_alternating_skipped`, `strides_longer_than_max_skipped`
      (over MAX_STRIDE_S).

  Returns:
    CONTACT_TRACKS (int32) and TARGETS (float32), each [T'].

  Raises:
    ValueError: an event outside every sensor file, naming file and field.
  """
  n = len(counter_at_frame)
  out = {name: np.zeros(n, np.int32) for name in CONTACT_TRACKS}
  # Half a frame beyond the first and last frame still rounds onto them.
  half = 0.5 * (counter_at_frame[-1] - counter_at_frame[0]) / max(n - 1, 1)
  lo, hi = counter_at_frame[0] - half, counter_at_frame[-1] + half
  hold = np.floor(counter_at_frame + 1e-9)
  ends = {}
  for code, (foot, key) in enumerate(FEET.items(), 1):
    for i, (start, end) in enumerate(meta[key]):
      for kind, c in (("final", start), ("initial", end)):
        if not covered[0] <= c <= covered[1]:
          raise ValueError(
              f"{json_path}: {key}[{i}] = {[start, end]} (0-based): its "
              f"{kind} contact at counter {c} is outside the recording (the "
              f"sensor files hold counters {covered[0]:g}..{covered[1]:g}). "
              "The annotation belongs to another trial or a file is "
              "damaged: restore the trial from the archive.")
        if not lo <= c <= hi:
          repairs["contact_events_outside_shared_span_dropped"] += 1
          continue
        f = int(nearest_frame(counter_at_frame, [c])[0])
        out[f"labels_{kind}_contact_{foot}"][f] = 1
        out[f"labels_{kind}_contact"][f] = 1
        if kind == "initial":
          side = out["labels_initial_contact_side"]
          side[f] = code if side[f] in (0, code) else -1
      out[f"labels_{foot}_foot"][(hold >= start) & (hold <= end)] = 1
    ends[foot] = sorted(end for _, end in meta[key])
  targets = {}
  total, count = np.zeros(n), np.zeros(n)
  for foot, other in (("left", "right"), ("right", "left")):
    starts = np.asarray(sorted(s for s, _ in meta[FEET[other]]))
    value = np.full(n, np.nan)
    for t0, t1 in zip(ends[foot], ends[foot][1:]):
      if ((starts >= t0) & (starts < t1)).sum() != 1:
        repairs["strides_not_alternating_skipped"] += 1
        continue
      if t1 - t0 > MAX_STRIDE_S * NATIVE_RATE_HZ:  # A pause, not a stride.
        repairs["strides_longer_than_max_skipped"] += 1
        continue
      inside = (counter_at_frame >= t0) & (counter_at_frame < t1)
      value[inside] = (t1 - t0) / NATIVE_RATE_HZ
      total[inside] += value[inside]
      count[inside] += 1
    targets[f"targets_stride_time_{foot}"] = value.astype(np.float32)
  with np.errstate(invalid="ignore", divide="ignore"):
    targets["targets_stride_time"] = np.where(
        count > 0, total / count, np.nan).astype(np.float32)
  return {**out, **targets}


def make_example(trial_paths: dict[str, epath.Path], meta: dict, rate_hz,
                 repairs: dict[str, int]) -> dict:
  """Resamples the three sensors of one trial onto one grid.

  Returns:
    signals <float32>[T', 18], labels and labels_footstep <int32>[T'].
  """
  tables = {s: read_sensor(trial_paths[s]) for s in SENSORS}
  # Counter interval every sensor covers, so no frame is extrapolated.
  start = max(t.counter[0] for t in tables.values())
  end = min(t.counter[-1] for t in tables.values())
  if end <= start:
    raise ValueError(f"{trial_paths['lb']}: the three sensors share no packet "
                     "counter interval; restore the files from the archive.")
  parts = []
  for s, table in tables.items():
    _add(repairs, table.repairs)
    out = resample.resample_to_grid(
        table.counter / NATIVE_RATE_HZ, table.values, None, rate_hz,
        source=str(trial_paths[s]), first_line=table.lines,
        span_s=(start / NATIVE_RATE_HZ, end / NATIVE_RATE_HZ))
    _add(repairs, out.repairs)
    parts.append(out.signals)
  counter_at_frame = out.timestamps_s * NATIVE_RATE_HZ
  labels, steps, overlap = label_tracks(meta, counter_at_frame)
  _add(repairs, {"footstep_overlap_frames_unlabelled": overlap})
  contacts = dict.fromkeys(("contact_events_outside_shared_span_dropped",
                            "strides_not_alternating_skipped",
                            "strides_longer_than_max_skipped"), 0)
  covered = (min(t.counter[0] for t in tables.values()),
             max(t.counter[-1] for t in tables.values()))
  derived = contact_tracks(meta, counter_at_frame, covered,
                           trial_paths.get("json", trial_paths["lb"]),
                           contacts)
  _add(repairs, contacts)
  return {"signals": np.concatenate(parts, axis=1), "labels": labels,
          "labels_footstep": steps, **derived}


def _add(total: dict[str, int], repairs: dict[str, int]) -> None:
  for k, v in repairs.items():
    total[k] = total.get(k, 0) + int(v)


def find_data_dir(root: epath.Path) -> epath.Path | None:
  """The folder holding `<subject>-<trial>_lb.txt` files, at or below `root`."""
  # Archives nest it a few folders deep; epath has no recursive glob.
  for depth in range(4):
    found = sorted(root.glob("*/" * depth + "*-*_lb.txt"))
    if found:
      return found[0].parent
  return None


def list_trials(data_dir: epath.Path) -> dict[str, tuple[int, int, dict]]:
  """Trial name ('1-1') -> (subject, trial, {'json'|'lb'|'lf'|'rf': path})."""
  trials = {}
  for lb in sorted(data_dir.glob("*-*_lb.txt")):
    name = lb.name[:-len("_lb.txt")]
    m = _TRIAL_RE.fullmatch(f"{name}.json")
    if not m:
      continue
    paths = {s: data_dir / f"{name}_{s}.txt" for s in SENSORS}
    paths["json"] = data_dir / f"{name}.json"
    for s in SENSORS:
      if not paths[s].exists():
        raise FileNotFoundError(f"{paths[s]} is missing but {lb.name} exists; "
                                "restore it from the archive.")
    trials[name] = (int(m.group(1)), int(m.group(2)), paths)
  if not trials:
    raise FileNotFoundError(
        f"{data_dir}: no <subject>-<trial>_lb.txt files. Point manual_dir at "
        "the upstream GaitData folder (or its parent).")
  return trials


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for ipol_gait."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: 110 trials, 19 subjects.",
      "1.1.0": "Per-foot initial / final contact events, stance / swing "
               "per foot and stride time (s) from the footstep annotation "
               "(README, 'Contact events'); a foot's overlapping swings and "
               "events outside the recording are errors.",
  }
  BUILDER_CONFIGS = [
      Config(name=name, rate_hz=hz, description=f"3 IMUs at {hz:g} Hz")
      for name, hz in sorted(RATES.items(), key=lambda kv: kv[0] != "50hz")
  ]
  # What a named manual_dir must hold (common.check_builder_manual_dir).
  MANUAL_FIND = staticmethod(find_data_dir)
  MANUAL_EXPECTED = "GaitData/*_lb.txt"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional. Either let the builder download the upstream repository
  (github.com/CyrilVoisard/ipol_dataset_1), or point manual_dir at the
  GaitData folder (from that repository, or GaitData.zip from the IPOL
  article page, extracted), or at its parent.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    base = common.example_features(len(CHANNEL_NAMES), LABEL_TRACKS)
    features = {name: base[name] for name in base.keys()}
    features.update(common.target_features(TARGETS, __file__))
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict(features),
        metadata=tfds.core.MetadataDict(
            channel_names=list(CHANNEL_NAMES),
            class_names=list(CLASS_NAMES),
            label_tracks=LABEL_TRACKS,
            regression_targets=dict(TARGETS),
            sample_rate_hz=float(self.builder_config.rate_hz),
            units={"acc": "m/s^2", "gyr": "rad/s", **TARGETS},
            repairs={},
        ),
        homepage="https://www.ipol.im/pub/art/2023/497/",
        license="AGPL-3.0 (upstream repository licence; cite the article)",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    data_dir = common.manual_data_dir(self, find_data_dir,
                                      "GaitData/*_lb.txt")
    if data_dir is None:
      root = dl_manager.download_and_extract(URL)
      data_dir = find_data_dir(root)
      if data_dir is None:
        raise FileNotFoundError(
            f"{root}: the download holds no GaitData folder. Download it by "
            "hand and pass manual_dir (see the dataset README).")
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    return {"train": self._generate_examples(data_dir, repairs)}

  def _generate_examples(self, data_dir, repairs):
    for name, (subject, trial, paths) in list_trials(data_dir).items():
      meta = read_annotations(paths["json"])
      if (meta["Subject"], meta["Trial"]) != (subject, trial):
        raise ValueError(
            f"{paths['json']}: Subject/Trial {meta['Subject']}/"
            f"{meta['Trial']} do not match the file name {name}; fix the file.")
      example = make_example(paths, meta, self.builder_config.rate_hz, repairs)
      example["subject"] = f"s{subject:02d}"
      example["recording"] = f"s{subject:02d}_{trial:02d}"
      yield example["recording"], example
