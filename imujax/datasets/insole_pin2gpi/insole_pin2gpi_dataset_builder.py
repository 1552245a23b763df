"""insole_pin2gpi: a pair of 16-cell pressure insoles, free-living walking.

The sample recording of the PIN2GPI toolbox (Ghislieri et al., J. NeuroEng.
Rehabil. 22 (2025) 161; github.com/Biolab-PoliTO/PIN2GPI), taken from the
Mobilise-D Technical Validation Study data (Küderle 2024, Zenodo
10.5281/zenodo.13899386, CC BY 4.0): one healthy adult, `data.mat` holding a
struct `data` with `LeftFoot` and `RightFoot`, [N x 16] each, every cell
normalised to [0, 1]. No annotation: upstream gives no rate; the INDIP insoles
of Mobilise-D record at 100 Hz (and the stance / swing durations this rate
gives are those of normal walking, see README.md).

The label tracks are DERIVED from the pressure by a fixed rule, not annotated:
per foot, the load is the mean of its 16 cells; the foot is in stance from the
frame the load reaches STANCE_ON until the frame it falls below STANCE_OFF
(hysteresis), else in swing. A swing -> stance frame is a heel strike (initial
contact), a stance -> swing frame a toe off. The rule follows the force- and
area-threshold gait-event detection evaluated on in-shoe pressure by
Catalfamo et al. (Gait Posture 28 (2008) 420-426).
"""

import dataclasses

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import resample

CELLS = 16
FEET = {"LeftFoot": "left", "RightFoot": "right"}
CHANNEL_NAMES = tuple(f"{side}_pressure_{cell:02d}" for side in FEET.values()
                      for cell in range(CELLS))
PHASES = ("swing", "stance")
EVENTS = ("none", "heel_strike", "toe_off")
# Primary track first: the left foot's phase (the brief's convention).
TRACKS = {"labels": PHASES, "labels_right": PHASES,
          "labels_left_events": EVENTS, "labels_right_events": EVENTS}
# Hysteresis on the mean normalised cell load of one foot.
STANCE_ON = 0.15
STANCE_OFF = 0.10
NATIVE_RATE_HZ = 100.0
RATES = {"100hz": NATIVE_RATE_HZ, "50hz": 50.0}
FILE_NAME = "data.mat"
SUBJECT = "s01"
RECORDING = "s01_free_living"
HOMEPAGE = "https://github.com/Biolab-PoliTO/PIN2GPI"
# Values this far outside [0, 1] are rounding, not another normalisation.
_TOLERANCE = 1e-6
_FIX = (f"use data.mat from {HOMEPAGE}, or write your insoles in its layout "
        "(struct `data`, fields LeftFoot and RightFoot, [N x 16] each, "
        "every cell normalised to [0, 1])")


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float = NATIVE_RATE_HZ


def find_data_dir(root: epath.Path) -> epath.Path | None:
  """The folder holding data.mat, at or a level or two below root."""
  for depth in range(3):
    found = sorted(epath.Path(root).glob("*/" * depth + FILE_NAME))
    if found:
      return found[0].parent
  return None


def read_insoles(path: epath.Path) -> dict[str, np.ndarray]:
  """{"LeftFoot", "RightFoot"} -> <float64>[N, 16]; errors name the field."""
  from scipy import io as sio  # pylint: disable=g-import-not-at-top
  try:
    with epath.Path(path).open("rb") as f:
      mat = sio.loadmat(f)
  except Exception as e:  # pylint: disable=broad-except
    # scipy raises ValueError, MatReadError, NotImplementedError (v7.3), ...
    raise ValueError(f"{path}: not a readable MATLAB v5 file "
                     f"({type(e).__name__}: {e}); {_FIX}.") from e
  data = mat.get("data")
  if data is None or data.dtype.names is None or data.size != 1:
    raise ValueError(f"{path}: no 1x1 struct `data` in the file; {_FIX}.")
  feet = {}
  for field in FEET:
    if field not in data.dtype.names:
      raise ValueError(f"{path}: data.{field} is missing; {_FIX}.")
    try:
      x = np.asarray(data[field][0, 0], np.float64)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{path}: data.{field} is not numeric ({e}); "
                       f"{_FIX}.") from e
    if x.ndim != 2 or x.shape[1] != CELLS:
      raise ValueError(
          f"{path}: data.{field} has shape {x.shape}; expected [N, {CELLS}] "
          f"(one column per pressure cell). {_FIX}.")
    if x.shape[0] < 2:
      raise ValueError(f"{path}: data.{field} has {x.shape[0]} rows; at "
                       "least 2 are needed.")
    finite = np.isfinite(x)
    bad = finite & ((x < -_TOLERANCE) | (x > 1 + _TOLERANCE))
    if bad.any():
      row, cell = np.argwhere(bad)[0]
      raise ValueError(
          f"{path}: data.{field} row {row + 1}, cell {cell + 1} is "
          f"{float(x[row, cell])!r}, outside [0, 1]; normalise each cell to "
          "[0, 1] as upstream does (PIN2GPI expects normalised cells).")
    feet[field] = x
  rows = {k: v.shape[0] for k, v in feet.items()}
  if len(set(rows.values())) != 1:
    raise ValueError(f"{path}: data.LeftFoot has {rows['LeftFoot']} rows but "
                     f"data.RightFoot {rows['RightFoot']}; both insoles are "
                     "sampled together, one row per sample.")
  return feet


def stance(pressure: np.ndarray, on: float = STANCE_ON,
           off: float = STANCE_OFF) -> np.ndarray:
  """<int32>[T] 1 stance / 0 swing of one foot from <float>[T, cells].

  The load is the mean over cells. Stance starts at the first frame whose
  load is >= `on` and lasts until the first frame whose load is < `off`
  (swing from that frame). The recording starts in stance iff its first
  load is >= `on`.
  """
  if not 0 <= off <= on:
    raise ValueError(f"stance thresholds need 0 <= off <= on; got on={on}, "
                     f"off={off}.")
  load = np.asarray(pressure, np.float64).mean(axis=1)
  out = np.empty(len(load), np.int32)
  state = False
  for i, value in enumerate(load):
    state = value >= off if state else value >= on
    out[i] = state
  return out


def gait_events(phase: np.ndarray) -> np.ndarray:
  """<int32>[T] 1 heel strike at swing->stance frames, 2 toe off at
  stance->swing frames, 0 elsewhere (never at frame 0)."""
  phase = np.asarray(phase)
  events = np.zeros(len(phase), np.int32)
  change = np.flatnonzero(np.diff(phase) != 0) + 1
  events[change] = np.where(phase[change] == 1, 1, 2)
  return events


def derived_tracks(signals: np.ndarray) -> dict[str, np.ndarray]:
  """The four label tracks from <float>[T, 32] (left cells, then right)."""
  left = stance(signals[:, :CELLS])
  right = stance(signals[:, CELLS:])
  return {"labels": left, "labels_right": right,
          "labels_left_events": gait_events(left),
          "labels_right_events": gait_events(right)}


def make_example(path: epath.Path, rate_hz: float,
                 repairs: dict[str, int]) -> dict:
  """Reads data.mat, puts it on the config's grid, derives the labels."""
  feet = read_insoles(path)
  values = np.concatenate([feet["LeftFoot"], feet["RightFoot"]], axis=1)
  times_s = np.arange(values.shape[0]) / NATIVE_RATE_HZ
  out = resample.resample_to_grid(times_s, values, None, rate_hz,
                                  source=str(path), first_line=1)
  for k, v in out.repairs.items():
    repairs[k] = repairs.get(k, 0) + int(v)
  # Derived on the grid itself, so no event is lost to resampling.
  return {"signals": out.signals, **derived_tracks(out.signals),
          "subject": SUBJECT, "recording": RECORDING}


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for insole_pin2gpi."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: one recording, derived gait "
                            "phases."}
  BUILDER_CONFIGS = [Config(name=name, rate_hz=hz,
                            description=f"2 x 16 pressure cells at {hz:g} Hz")
                     for name, hz in RATES.items()]
  MANUAL_FIND = staticmethod(find_data_dir)
  MANUAL_EXPECTED = FILE_NAME
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Required. Download data.mat from {HOMEPAGE} (or write your own insoles in
  its layout) and point manual_dir at the folder holding it.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    tracks = {k: list(v) for k, v in TRACKS.items()}
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.example_features(len(CHANNEL_NAMES), tracks),
        metadata=tfds.core.MetadataDict(
            channel_names=list(CHANNEL_NAMES),
            class_names=list(PHASES),
            label_tracks=tracks,
            sample_rate_hz=float(self.builder_config.rate_hz),
            units={"pressure": "normalised"},
            modality="pressure",
            labels_derived=True,
            stance_thresholds={"on": STANCE_ON, "off": STANCE_OFF},
            repairs={},
        ),
        homepage=HOMEPAGE,
        license="CC-BY-4.0 (Mobilise-D data; the PIN2GPI repository states "
                "no licence)",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    data_dir = common.manual_data_dir(self, find_data_dir, FILE_NAME)
    if data_dir is None:
      raise FileNotFoundError(
          "insole_pin2gpi cannot be downloaded by the builder; pass "
          f"manual_dir.{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    path = data_dir / FILE_NAME
    read_insoles(path)  # Checked before anything is written.
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    repairs.update(dict.fromkeys(resample.REPAIR_KEYS, 0))
    return {"train": self._generate_examples(path, repairs)}

  def _generate_examples(self, path, repairs):
    example = make_example(path, self.builder_config.rate_hz, repairs)
    yield example["recording"], example
