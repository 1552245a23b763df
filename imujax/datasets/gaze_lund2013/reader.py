"""Reads the Lund 2013 `.mat` files: names, geometry, gaze in degrees, labels.

One file holds `ETdata` (a MATLAB struct) with:

* `pos` [N x 6]: timestamp (microseconds, may be NaN), two columns this
  reader does not use, x and y in screen pixels, label 1..6;
* `screenDim` [w h] in metres, `screenRes` [w h] in pixels, `viewDist` in
  metres, `sampFreq` in Hz.

Pixels become degrees of visual angle along each axis, from the screen centre:

  x_deg = degrees(atan((x_px - W_px / 2) * (W_m / W_px) / D_m))

and the same for y with the heights (x to the right, y downward, as the pixel
rows). Track loss (x or y exactly 0, or not finite) becomes NaN. Trailing rows
that are all zero (timestamp, x and y 0) are padding some files carry at the
end, and are dropped.
"""

import dataclasses
import re

from etils import epath
import numpy as np

# Upstream label codes 1..5 -> class index 0..4; 6 (undefined) -> -1.
CLASS_NAMES = ("fixation", "saccade", "pso", "smooth_pursuit", "blink")
UNDEFINED_CODE = 6
RATERS = ("RA", "MN")
STIMULUS_TYPES = ("dots", "images", "videos")
GEOMETRY_FIELDS = ("screenDim", "screenRes", "viewDist")
_NAME_RE = re.compile(
    r"([A-Z]{2}\d{2})_(.+)_labelled_(FIX_)?(MN|RA)\.mat")
# A plausible screen or viewing distance in metres; larger values are most
# likely millimetres or centimetres.
_MAX_METRES = 5.0
_MAX_GAP_S = 10.0
HOMEPAGE = "https://github.com/richardandersson/EyeMovementDetectorEvaluation"
FIX = (f"use the upstream file from {HOMEPAGE} (folder annotated_data/), or "
       "fix this field")


class GazeFileError(ValueError):
  """A `.mat` file this reader cannot use; the message names file and field."""


@dataclasses.dataclass(frozen=True)
class FileName:
  """What an upstream file name says, e.g. `UH21_img_Rome_labelled_MN.mat`.

  Attributes:
    participant: the participant code, `UH21`.
    stimulus: `img_Rome`, `video_BergoDalbana` or `trial1` (moving dots).
    rater: `MN` or `RA`.
    corrected: the file is a `_labelled_FIX_` correction.
  """
  participant: str
  stimulus: str
  rater: str
  corrected: bool = False

  @property
  def stimulus_type(self) -> str:
    if self.stimulus.startswith("img_"):
      return "images"
    if self.stimulus.startswith("video_"):
      return "videos"
    return "dots"

  @property
  def recording(self) -> str:
    """`UH21_img_Rome`, `UH21_video_BergoDalbana`, `UH21_dots_trial1`."""
    stimulus = self.stimulus
    if self.stimulus_type == "dots":
      stimulus = "dots_" + stimulus
    return f"{self.participant}_{stimulus}"


def parse_name(path: epath.Path) -> FileName:
  m = _NAME_RE.fullmatch(path.name)
  if not m:
    raise GazeFileError(
        f"{path}: not an upstream Lund 2013 file name "
        "(<participant>_<stimulus>_labelled_<MN|RA>.mat, e.g. "
        "UH21_img_Rome_labelled_MN.mat). Remove or rename it.")
  participant, stimulus, fix, rater = m.groups()
  name = FileName(participant, stimulus, rater, bool(fix))
  if not (stimulus.startswith(("img_", "video_"))
          or re.fullmatch(r"trial\d+", stimulus)):
    raise GazeFileError(
        f"{path}: stimulus {stimulus!r} is none of img_<name>, "
        "video_<name>, trial<n> (dots); rename the file as upstream does.")
  return name


@dataclasses.dataclass
class GazeFile:
  """One parsed file (padding rows already dropped).

  Attributes:
    timestamps_us: <float64>[N] when every row has a finite timestamp, else
      None (sample times are then row / rate).
    x_px, y_px: <float64>[N] as in the file.
    x_deg, y_deg: <float64>[N] degrees from the screen centre; NaN where the
      tracker lost the eye.
    labels: <int32>[N] class index into CLASS_NAMES, -1 undefined.
    samp_freq_hz: `sampFreq` as the file states it.
    padding_rows: trailing all-zero rows dropped.
  """
  path: epath.Path
  name: FileName
  timestamps_us: np.ndarray | None
  x_px: np.ndarray
  y_px: np.ndarray
  x_deg: np.ndarray
  y_deg: np.ndarray
  labels: np.ndarray
  samp_freq_hz: float
  padding_rows: int

  @property
  def track_loss(self) -> np.ndarray:
    return ~(np.isfinite(self.x_deg) & np.isfinite(self.y_deg))


def pixels_to_degrees(px, res_px: float, size_m: float,
                      view_dist_m: float) -> np.ndarray:
  """Degrees of visual angle from the screen centre along one axis.

  Args:
    px: pixel coordinates along the axis (0 = left / top edge).
    res_px: screen resolution along the axis (`screenRes`).
    size_m: screen size along the axis in metres (`screenDim`).
    view_dist_m: eye-to-screen distance in metres (`viewDist`).
  """
  offset_m = (np.asarray(px, np.float64) - res_px / 2.0) * (size_m / res_px)
  return np.degrees(np.arctan2(offset_m, view_dist_m))


def _field(path, etdata, name: str) -> np.ndarray:
  if name not in (etdata.dtype.names or ()):
    what = ("the screen geometry needed to convert pixels to degrees "
            "(screenDim [w h] m, screenRes [w h] px, viewDist m)"
            if name in GEOMETRY_FIELDS else "needed by this reader")
    raise GazeFileError(f"{path}: ETdata.{name} is missing; it is {what}. "
                        f"Add it, or {FIX}.")
  try:
    return np.asarray(etdata[name][0, 0], np.float64)
  except (TypeError, ValueError) as e:
    raise GazeFileError(f"{path}: ETdata.{name} is not numeric ({e}); "
                        f"{FIX}.") from e


def _positive(path, name, value, count, metres=False) -> np.ndarray:
  flat = value.ravel()
  if flat.size != count or not np.isfinite(flat).all() or (flat <= 0).any():
    raise GazeFileError(
        f"{path}: ETdata.{name} is {flat.tolist()}; expected {count} finite "
        f"positive value(s). Add the geometry of the recording, or {FIX}.")
  if metres and (flat > _MAX_METRES).any():
    raise GazeFileError(
        f"{path}: ETdata.{name} is {flat.tolist()}; it must be in metres "
        f"(at most {_MAX_METRES:g}). Convert it (mm / 1000, cm / 100).")
  return flat


def _load_etdata(path: epath.Path):
  from scipy import io as sio  # pylint: disable=g-import-not-at-top
  try:
    with path.open("rb") as f:
      mat = sio.loadmat(f)
  except Exception as e:  # pylint: disable=broad-except
    # scipy raises ValueError, MatReadError, NotImplementedError (v7.3), ...
    raise GazeFileError(f"{path}: not a readable MATLAB v5 file "
                        f"({type(e).__name__}: {e}); {FIX}.") from e
  etdata = mat.get("ETdata")
  if etdata is None or etdata.dtype.names is None or etdata.size != 1:
    raise GazeFileError(f"{path}: no 1x1 struct ETdata in the file; {FIX}.")
  return etdata


def read_labels(path, column: np.ndarray) -> np.ndarray:
  """<int32>[N] class indices from the label column (codes 1..6)."""
  ok = np.isfinite(column) & (column == np.round(column))
  ok &= (column >= 1) & (column <= UNDEFINED_CODE)
  if not ok.all():
    row = int(np.argmin(ok))
    raise GazeFileError(
        f"{path}: ETdata.pos row {row + 1}, column 6 (label) is "
        f"{float(column[row])!r}; labels must be integers 1..6 (1 fixation, 2 "
        "saccade, 3 PSO, 4 smooth pursuit, 5 blink, 6 undefined). "
        f"Correct the label, or {FIX}.")
  codes = column.astype(np.int32)
  return np.where(codes == UNDEFINED_CODE, -1, codes - 1).astype(np.int32)


def read_gaze_file(path: epath.Path) -> GazeFile:
  """Parses one file; every error names the file and the field."""
  path = epath.Path(path)
  name = parse_name(path)
  etdata = _load_etdata(path)
  pos = _field(path, etdata, "pos")
  if pos.ndim != 2 or pos.shape[1] != 6 or pos.shape[0] < 2:
    raise GazeFileError(
        f"{path}: ETdata.pos has shape {pos.shape}; expected [N >= 2, 6] "
        f"(timestamp, -, -, x px, y px, label); {FIX}.")
  dim = _positive(path, "screenDim", _field(path, etdata, "screenDim"), 2,
                  metres=True)
  res = _positive(path, "screenRes", _field(path, etdata, "screenRes"), 2)
  dist = _positive(path, "viewDist", _field(path, etdata, "viewDist"), 1,
                   metres=True)[0]
  rate = _positive(path, "sampFreq", _field(path, etdata, "sampFreq"), 1)[0]
  # Trailing padding: rows whose timestamp, x and y are all exactly 0.
  empty = (pos[:, 0] == 0) & (pos[:, 3] == 0) & (pos[:, 4] == 0)
  keep = len(pos)
  while keep > 0 and empty[keep - 1]:
    keep -= 1
  padding, pos = len(pos) - keep, pos[:keep]
  if len(pos) < 2:
    raise GazeFileError(f"{path}: ETdata.pos has fewer than 2 rows that are "
                        f"not zero padding; {FIX}.")
  labels = read_labels(path, pos[:, 5])
  x_px, y_px = pos[:, 3], pos[:, 4]
  lost = ~(np.isfinite(x_px) & np.isfinite(y_px)) | (x_px == 0) | (y_px == 0)
  x_deg = pixels_to_degrees(x_px, res[0], dim[0], dist)
  y_deg = pixels_to_degrees(y_px, res[1], dim[1], dist)
  x_deg[lost] = np.nan
  y_deg[lost] = np.nan
  t = pos[:, 0]
  timestamps = t.copy() if np.isfinite(t).all() else None
  return GazeFile(path, name, timestamps, x_px.copy(), y_px.copy(), x_deg,
                  y_deg, labels, float(rate), padding)


def rate_from_timestamps(gaze: GazeFile) -> float | None:
  """The rate the timestamps show, in Hz (1e6 / median interval), or None.

  Within 5 % of `sampFreq` it is `sampFreq`; otherwise rounded to 0.1 Hz.
  """
  if gaze.timestamps_us is None:
    return None
  d = np.diff(gaze.timestamps_us)
  if (d <= 0).any():
    row = int(np.argmax(d <= 0)) + 1
    raise GazeFileError(
        f"{gaze.path}: ETdata.pos row {row + 1}, column 1 (timestamp) "
        f"{float(gaze.timestamps_us[row])!r} is not after the previous "
        f"row's {float(gaze.timestamps_us[row - 1])!r}; timestamps must "
        f"increase. {FIX}.")
  rate = 1e6 / float(np.median(d))
  if abs(rate - gaze.samp_freq_hz) <= 0.05 * gaze.samp_freq_hz:
    return gaze.samp_freq_hz
  return round(rate, 1)


def sample_slots(gaze: GazeFile, rate_hz: float) -> np.ndarray:
  """<int64>[N] index of each sample on the recording's own uniform grid.

  Without timestamps: 0..N-1. With them, consecutive samples are
  round(interval * rate) slots apart (at least 1), so a skipped slot is a
  dropped sample; the clock's jitter (a few percent of a period) is absorbed.
  """
  n = len(gaze.labels)
  if gaze.timestamps_us is None:
    return np.arange(n)
  steps = np.rint(np.diff(gaze.timestamps_us) * 1e-6 * rate_hz)
  big = np.flatnonzero(steps > _MAX_GAP_S * rate_hz)
  if big.size:
    row = int(big[0]) + 1
    raise GazeFileError(
        f"{gaze.path}: ETdata.pos row {row + 1}, column 1 (timestamp): "
        f"{steps[big[0]] / rate_hz:.1f} s since the previous row, more than "
        f"{_MAX_GAP_S:g} s. Split the recording at the gap.")
  return np.concatenate([[0], np.cumsum(np.maximum(steps, 1))]).astype(
      np.int64)


def same_samples(a: GazeFile, b: GazeFile) -> None:
  """Raises unless two raters' files hold the same gaze samples."""
  same = len(a.x_px) == len(b.x_px)
  if same:
    same = (np.array_equal(a.x_px, b.x_px, equal_nan=True)
            and np.array_equal(a.y_px, b.y_px, equal_nan=True))
  if same and (a.timestamps_us is None) != (b.timestamps_us is None):
    same = False
  if same and a.timestamps_us is not None:
    same = np.array_equal(a.timestamps_us, b.timestamps_us)
  if not same:
    raise GazeFileError(
        f"{a.path} and {b.path} code the same recording but hold different "
        f"gaze samples ({len(a.x_px)} and {len(b.x_px)} rows). Keep the "
        "two raters' files of one upstream folder together (copy them again "
        f"from {HOMEPAGE}).")


# Config subset -> upstream folder under annotated_data/.
SUBSET_DIRS = {"original": "originally uploaded data",
               "article": "data used in the article"}
FIX_DIR = "fix_by_Zemblys2018"
EXPECTED = ("annotated_data/originally uploaded data/ (or data used in the "
            "article/) with the Lund 2013 .mat files")


def find_data_dir(root: epath.Path) -> epath.Path | None:
  """The `annotated_data` folder at or below root (or above a subset folder).

  epath has no recursive glob, so a few levels are searched.
  """
  root = epath.Path(root)
  if root.name in SUBSET_DIRS.values():
    return root.parent
  for depth in range(4):
    for folder in SUBSET_DIRS.values():
      found = sorted(root.glob("*/" * depth + folder))
      if found and found[0].is_dir():
        return found[0].parent
  return None


@dataclasses.dataclass
class Recording:
  """One participant watching one stimulus, coded by one or both raters.

  Attributes:
    files: rater -> its file; both hold the same gaze samples.
    rate_hz: the sampling rate the timestamps show (see `recording_rates`).
  """
  name: str
  participant: str
  stimulus_type: str
  files: dict[str, GazeFile]
  rate_hz: float = 0.0


def _apply_corrections(data_dir, recordings, repairs) -> None:
  """Replaces labels with upstream's `fix_by_Zemblys2018/*_FIX_*.mat`."""
  for path in sorted((data_dir / FIX_DIR).glob("*.mat")):
    fixed = read_gaze_file(path)
    rec = recordings.get(fixed.name.recording)
    old = rec.files.get(fixed.name.rater) if rec else None
    if old is None:
      continue  # Its recording is not in this subset.
    same_samples(old, fixed)
    repairs["labels_corrected_zemblys2018"] += int(
        (old.labels != fixed.labels).sum())
    old.labels = fixed.labels


def recording_rates(recordings: dict[str, Recording], repairs) -> None:
  """Sets each recording's true rate.

  From its timestamps where they exist; a recording without timestamps takes
  the rate of the same participant's timestamped recordings when they all
  agree (a session runs at one rate), else its `sampFreq`. A rate other than
  `sampFreq` is counted in `recordings_rate_corrected`.
  """
  by_participant = {}
  for rec in recordings.values():
    rate = rate_from_timestamps(next(iter(rec.files.values())))
    if rate is not None:
      rec.rate_hz = rate
      by_participant.setdefault(rec.participant, set()).add(rate)
  for rec in recordings.values():
    stated = next(iter(rec.files.values())).samp_freq_hz
    if not rec.rate_hz:
      rates = by_participant.get(rec.participant, set())
      rec.rate_hz = rates.pop() if len(rates) == 1 else stated
    if rec.rate_hz != stated:
      repairs["recordings_rate_corrected"] += 1


def load_recordings(data_dir: epath.Path, subset: str = "original"):
  """Reads every file of one subset folder.

  Returns:
    (recording name -> Recording, sorted; repairs name -> count).
  """
  data_dir = epath.Path(data_dir)
  folder = data_dir / SUBSET_DIRS[subset]
  if not folder.is_dir():
    raise FileNotFoundError(
        f"{folder} is missing; the {subset!r} subset is read from it. Copy "
        f"annotated_data/ whole from {HOMEPAGE}.")
  paths = sorted(folder.glob("*/*.mat"))
  if not paths:
    raise FileNotFoundError(
        f"{folder}: no <stimulus folder>/*.mat files; copy annotated_data/ "
        f"whole from {HOMEPAGE}.")
  repairs = {"padding_rows_dropped": 0, "labels_corrected_zemblys2018": 0,
             "recordings_rate_corrected": 0}
  recordings = {}
  for path in paths:
    gaze = read_gaze_file(path)
    if gaze.name.corrected:
      raise GazeFileError(f"{path}: a _FIX_ file belongs in {FIX_DIR}/, "
                          "where it replaces the labels of its original.")
    repairs["padding_rows_dropped"] += gaze.padding_rows
    name = gaze.name
    rec = recordings.setdefault(name.recording, Recording(
        name.recording, name.participant, name.stimulus_type, {}))
    if name.rater in rec.files:
      raise GazeFileError(
          f"{path} and {rec.files[name.rater].path} are both {name.rater}'s "
          f"coding of {name.recording}; keep one.")
    if rec.files:
      same_samples(next(iter(rec.files.values())), gaze)
    rec.files[name.rater] = gaze
  _apply_corrections(data_dir, recordings, repairs)
  recording_rates(recordings, repairs)
  for rec in recordings.values():
    for gaze in rec.files.values():
      sample_slots(gaze, rec.rate_hz)  # Raises on gaps longer than 10 s.
  return dict(sorted(recordings.items())), repairs
