"""gaze_lund2013: hand-annotated eye-movement events, Lund 2013, 500 Hz.

Andersson, Larsson, Holmqvist, Stridh & Nyström, Behav. Res. Methods 49
(2017) 616-637; data from github.com/richardandersson/EyeMovementDetector
Evaluation (GPL-3.0), folder annotated_data/. An SMI Hi-Speed 1250 recorded
one eye of participants looking at moving dots, images and videos; two expert
raters (MN, RA) labelled every sample: fixation, saccade, post-saccadic
oscillation (PSO), smooth pursuit, blink, or undefined (-1 here).

One example per recording (participant x stimulus, `UH21_img_Rome`), subject
= participant code. Signals `gaze_x_deg`, `gaze_y_deg`: degrees of visual
angle from the screen centre (see reader.py); track loss is NaN. Blink is a
class: the raters marked it, and 57 % of its samples still carry
(eyelid-distorted) gaze that a detector must not call a saccade.

Configs `*_velocity` add three channels derived causally from the positions
on the output grid (`derive_velocity`): `gazevel_x`, `gazevel_y` (deg/s, the
backward difference (p[t] - p[t-1]) * rate, the sample-to-sample input of
gazeNet, Zemblys et al. 2019; NaN where either sample is track loss) and
`track_lost` (1 where the tracker lost the eye, else 0). A live tracker feed
reproduces them with one frame of state.

`labels` is the config's rater (RA, else MN where RA did not code the
recording, for `500hz`); `labels_ra` and `labels_mn` hold each rater's
labels (-1 where that rater did not code the recording).
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import resample
from imujax.datasets.gaze_lund2013 import reader

CLASS_NAMES = reader.CLASS_NAMES
CHANNEL_NAMES = ("gaze_x_deg", "gaze_y_deg")
VELOCITY_CHANNEL_NAMES = ("gazevel_x", "gazevel_y", "track_lost")
NATIVE_RATE_HZ = 500.0
TRACKS = ("labels", "labels_ra", "labels_mn")
REPAIR_KEYS = ("padding_rows_dropped", "labels_corrected_zemblys2018",
               "recordings_rate_corrected", "recordings_left_out_rate",
               "track_loss_samples", "missing_samples_inserted", "nan_frames"
               ) + resample.REPAIR_KEYS


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  """rate_hz: grid; rater: `labels`' rater; fallback: the other rater's
  labels where `rater` did not code a recording (else it is left out);
  subset: upstream folder (reader.SUBSET_DIRS); native_only: leave out the
  recordings whose own rate is not rate_hz (instead of resampling them);
  velocity: add the derived channels VELOCITY_CHANNEL_NAMES."""
  rate_hz: float = NATIVE_RATE_HZ
  rater: str = "RA"
  fallback: bool = True
  subset: str = "original"
  native_only: bool = False
  velocity: bool = False

  @property
  def channel_names(self) -> tuple[str, ...]:
    return CHANNEL_NAMES + VELOCITY_CHANNEL_NAMES * self.velocity

  @property
  def units(self) -> dict[str, str]:
    """The `units` metadata: by modality, and `track_lost` by name."""
    derived = {"gaze_velocity": "deg/s", "track_lost": "1"}
    return {"gaze": "deg", **(derived if self.velocity else {})}


def _config(name, description, **kwargs):
  return Config(name=name, description=description, **kwargs)


CONFIGS = (
    _config("500hz", "all recordings at 500 Hz; labels RA's, else MN's"),
    _config("500hz_ra", "recordings RA coded; labels RA's", fallback=False),
    _config("500hz_mn", "recordings MN coded; labels MN's", rater="MN",
            fallback=False),
    _config("500hz_native", "as 500hz without the recordings made at 200 "
            "Hz", native_only=True),
    _config("250hz", "as 500hz, resampled to 250 Hz", rate_hz=250.0),
    _config("article_500hz", "Andersson et al.'s subset; labels RA's",
            subset="article"),
    _config("article_500hz_mn", "Andersson et al.'s subset; labels MN's",
            subset="article", rater="MN", fallback=False),
    _config("500hz_velocity", "as 500hz, plus gaze velocity (deg/s) and "
            "track loss derived causally", velocity=True),
)


def to_grid(xy: np.ndarray, tracks: dict[str, np.ndarray], native_hz: float,
            rate_hz: float, source: str, repairs: dict[str, int]):
  """Puts one recording on the config's grid; NaN (gaps) stay NaN.

  At the native rate this is the identity. Otherwise the shared resampler
  interpolates the signals with gaps filled, plus a 0/1 gap channel: a frame
  whose interpolation touches a gap sample (gap channel > 0) is NaN. Labels
  are held from the previous sample.

  Args:
    xy: <float64>[N, 2] degrees, NaN in gaps, on the recording's own grid.
    tracks: name -> <int32>[N].
  """
  if native_hz == rate_hz:
    return xy.astype(np.float32), tracks
  gap = ~np.isfinite(xy).all(axis=1)
  if gap.all():
    raise reader.GazeFileError(f"{source}: every sample is track loss; "
                               "drop the recording.")
  ok = np.flatnonzero(~gap)
  filled = np.stack([np.interp(np.arange(len(xy)), ok, xy[ok, c])
                     for c in range(2)], axis=1)
  values = np.concatenate([filled, gap[:, None].astype(np.float64)], axis=1)
  out = resample.resample_to_grid(np.arange(len(xy)) / native_hz, values,
                                  tracks, rate_hz, source=source)
  for k, v in out.repairs.items():
    repairs[k] += v
  signals = out.signals[:, :2].copy()
  signals[out.signals[:, 2] > 0] = np.nan
  return signals, out.labels


def derive_velocity(xy: np.ndarray, rate_hz: float) -> np.ndarray:
  """Causal velocity and track loss of gaze positions on a uniform grid.

  Args:
    xy: <float32>[T, 2] degrees, NaN where the tracker lost the eye.
    rate_hz: the grid's rate.

  Returns:
    <float32>[T, 3]: (x[t] - x[t-1]) * rate_hz, likewise y, in deg/s (NaN at
    t = 0 and wherever either sample is NaN), and 1.0 where xy[t] is NaN
    (else 0.0). Frame t uses frames t-1 and t only.
  """
  xy = np.asarray(xy, np.float64)
  velocity = np.full_like(xy, np.nan)
  velocity[1:] = (xy[1:] - xy[:-1]) * rate_hz
  lost = ~np.isfinite(xy).all(axis=1)
  return np.concatenate([velocity, lost[:, None].astype(np.float64)],
                        axis=1).astype(np.float32)


def make_example(rec: reader.Recording, config: Config,
                 repairs: dict[str, int]) -> dict | None:
  """signals <float32>[T, C] (C: config.channel_names) and the label
  tracks, or None (left out)."""
  rater = config.rater
  if rater not in rec.files:
    if not config.fallback:
      return None
    rater = next(r for r in reader.RATERS if r in rec.files)
  if config.native_only and rec.rate_hz != config.rate_hz:
    repairs["recordings_left_out_rate"] += 1
    return None
  gaze = rec.files[rater]
  slots = reader.sample_slots(gaze, rec.rate_hz)
  n = int(slots[-1]) + 1
  repairs["missing_samples_inserted"] += n - len(slots)
  repairs["track_loss_samples"] += int(gaze.track_loss.sum())
  xy = np.full((n, 2), np.nan)
  xy[slots, 0], xy[slots, 1] = gaze.x_deg, gaze.y_deg
  tracks = {}
  for track, who in (("labels", rater), ("labels_ra", "RA"),
                     ("labels_mn", "MN")):
    tracks[track] = np.full(n, -1, np.int32)
    if who in rec.files:
      tracks[track][slots] = rec.files[who].labels
  signals, tracks = to_grid(xy, tracks, rec.rate_hz, config.rate_hz,
                            str(gaze.path), repairs)
  repairs["nan_frames"] += int(np.isnan(signals).any(axis=1).sum())
  if config.velocity:
    signals = np.concatenate(
        [signals, derive_velocity(signals, config.rate_hz)], axis=1)
  return {"signals": signals, **tracks, "subject": rec.participant,
          "recording": rec.name}


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for gaze_lund2013."""

  # 500hz_velocity was added later without a version bump: it changes no
  # other config's data, and a bump would mark every prepared copy (and the
  # fingerprints finished runs recorded) as stale.
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 96 files, 63 recordings."}
  BUILDER_CONFIGS = list(CONFIGS)
  MANUAL_FIND = staticmethod(reader.find_data_dir)
  MANUAL_EXPECTED = reader.EXPECTED
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Required. Download {reader.HOMEPAGE} (a zip of the repository, or git
  clone; GPL-3.0) and point manual_dir at its annotated_data/ folder, or at
  a folder above it. The builder reads `originally uploaded data/` (configs
  500hz, 500hz_ra, 500hz_mn, 500hz_native, 250hz) or `data used in the
  article/` (article_*), and applies the corrected labels in `fix_by_Zemblys2018/`
  when that folder is present.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    tracks = {t: list(CLASS_NAMES) for t in TRACKS}
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.example_features(
            len(self.builder_config.channel_names), tracks),
        metadata=tfds.core.MetadataDict(
            channel_names=list(self.builder_config.channel_names),
            class_names=list(CLASS_NAMES),
            label_tracks=tracks,
            sample_rate_hz=float(self.builder_config.rate_hz),
            units=self.builder_config.units,
            modality="gaze",
            repairs={},
            stimulus_types={},
            label_raters={},
            native_rates_hz={},
        ),
        homepage=reader.HOMEPAGE,
        license="GPL-3.0 (upstream repository; cite Andersson et al. 2017)",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    data_dir = common.manual_data_dir(self, reader.find_data_dir,
                                      reader.EXPECTED)
    if data_dir is None:
      raise FileNotFoundError(
          "gaze_lund2013 cannot be downloaded by the builder; pass "
          f"manual_dir.{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    # Every file is read and checked before anything is written.
    recordings, found = reader.load_recordings(
        data_dir, self.builder_config.subset)
    meta = self.info.metadata
    repairs = meta["repairs"]
    repairs.clear()
    repairs.update(dict.fromkeys(REPAIR_KEYS, 0))
    repairs.update(found)
    for key in ("stimulus_types", "label_raters", "native_rates_hz"):
      meta[key].clear()
    return {"train": self._generate_examples(recordings, repairs)}

  def _generate_examples(self, recordings, repairs):
    meta = self.info.metadata
    for name, rec in recordings.items():
      example = make_example(rec, self.builder_config, repairs)
      if example is None:
        continue
      meta["stimulus_types"][name] = rec.stimulus_type
      meta["native_rates_hz"][name] = rec.rate_hz
      rater = self.builder_config.rater
      meta["label_raters"][name] = (
          rater if rater in rec.files else
          next(r for r in reader.RATERS if r in rec.files))
      yield name, example
