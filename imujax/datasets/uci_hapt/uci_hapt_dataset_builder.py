"""uci_hapt: UCI HAPT raw signals, activities and postural transitions.

Reyes-Ortiz, Oneto, Samà, Parra & Anguita, Neurocomputing 2016 (UCI dataset
341, CC BY 4.0). 30 subjects with a Samsung Galaxy S II on the waist; 61
experiments of accelerometer (g) and gyroscope (rad/s) at 50 Hz. labels.txt
marks segments of 6 activities and 6 postural transitions; samples outside
every segment are unlabelled (-1). One example per experiment (`s01_exp01`
for `acc_exp01_user01.txt`), acc converted to m/s^2.

Configs are rates: `50hz` (default) and `native` keep the 50 Hz samples as
they are; `30hz` and `60hz` resample with `imujax.datasets.resample` (linear
signals, labels held from the previous sample).

labels.txt rows are `experiment user activity start end`, start and end read
as 1-based inclusive sample numbers (upstream does not say; the data cannot
tell, see README.md): `1 1 5 250 1232` labels the file's rows 250..1232,
counted from 1.
"""

import dataclasses
import re

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from imujax.datasets import common
from imujax.datasets import resample

# Upstream activity ids 1..12 in order; class index = id - 1.
CLASS_NAMES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING",
               "STANDING", "LAYING", "STAND_TO_SIT", "SIT_TO_STAND",
               "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND")
CHANNEL_NAMES = tuple(f"waist_{sensor}_{axis}" for sensor in ("acc", "gyr")
                      for axis in "xyz")
NATIVE_RATE_HZ = 50.0
# The first rate is the default.
RATES = common.rates(NATIVE_RATE_HZ)
STANDARD_GRAVITY = 9.80665  # m/s^2 per g; upstream's README uses this value.
# labels.txt number of a file's first row (see the module docstring).
FIRST_SAMPLE = 1
HOMEPAGE = "https://archive.ics.uci.edu/dataset/341"
URL = ("https://archive.ics.uci.edu/static/public/341/smartphone+based+"
       "recognition+of+human+activities+and+postural+transitions.zip")
_ACC_RE = re.compile(r"acc_exp(\d+)_user(\d+)\.txt")
_FIX = ("restore it from the UCI zip (" + HOMEPAGE + ", folder RawData/).")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """One experiment's pair of files in RawData/."""
  experiment: int
  user: int
  acc: epath.Path
  gyro: epath.Path

  @property
  def subject(self) -> str:
    return f"s{self.user:02d}"

  @property
  def recording(self) -> str:
    return f"s{self.user:02d}_exp{self.experiment:02d}"


@dataclasses.dataclass(frozen=True)
class Segment:
  """One row of labels.txt; start and end as in the file (1-based, inclusive).

  Attributes:
    label: class index into CLASS_NAMES (upstream activity id - 1).
    line: line of labels.txt, for messages.
  """
  experiment: int
  user: int
  label: int
  start: int
  end: int
  line: int


@dataclasses.dataclass
class Config(tfds.core.BuilderConfig):
  rate_hz: float = 50.0


def find_data_dir(root: epath.Path) -> epath.Path | None:
  """The folder holding labels.txt or acc_expXX_userYY.txt, at or below root.

  Accepts RawData/ itself, its parent (the extracted UCI zip) or a folder a
  couple of levels above; epath has no recursive glob.
  """
  for depth in range(4):
    for pattern in ("labels.txt", "acc_exp*_user*.txt"):
      found = sorted(root.glob("*/" * depth + pattern))
      if found:
        return found[0].parent
  return None


def list_experiments(data_dir: epath.Path) -> dict[int, Experiment]:
  """Experiment id -> its files, checking that each acc file has its gyro."""
  experiments = {}
  for acc in sorted(data_dir.glob("acc_exp*_user*.txt")):
    m = _ACC_RE.fullmatch(acc.name)
    if not m:
      continue
    exp, user = int(m.group(1)), int(m.group(2))
    gyro = data_dir / f"gyro_exp{m.group(1)}_user{m.group(2)}.txt"
    if not gyro.exists():
      raise FileNotFoundError(f"{gyro} is missing but {acc.name} exists; "
                              f"{_FIX}")
    if exp in experiments:
      raise ValueError(
          f"{acc} and {experiments[exp].acc.name} both claim experiment {exp}; "
          "keep the upstream files only.")
    experiments[exp] = Experiment(exp, user, acc, gyro)
  if not experiments:
    raise FileNotFoundError(
        f"{data_dir}: no acc_expXX_userYY.txt files. Point manual_dir at the "
        "RawData folder of the UCI zip, or at its parent.")
  return experiments


def read_labels(path: epath.Path) -> list[Segment]:
  """Parses labels.txt; errors name `path:line`."""
  if not path.exists():
    raise FileNotFoundError(f"{path} is missing; {_FIX}")
  segments = []
  for lineno, row in enumerate(path.read_text().splitlines(), start=1):
    fields = row.split()
    if not fields:
      continue  # A trailing blank line.
    try:
      values = [int(v) for v in fields]
    except ValueError:
      values = []
    if len(values) != 5:
      raise ValueError(
          f"{path}:{lineno}: expected 5 integers (experiment user activity "
          f"start end), found {row[:80]!r}; {_FIX}")
    exp, user, activity, start, end = values
    if not 1 <= activity <= len(CLASS_NAMES):
      raise ValueError(f"{path}:{lineno}: activity {activity} is not in 1.."
                       f"{len(CLASS_NAMES)}; {_FIX}")
    if not FIRST_SAMPLE <= start <= end:
      raise ValueError(f"{path}:{lineno}: segment {start}..{end} is empty or "
                       f"starts before sample {FIRST_SAMPLE}; {_FIX}")
    segments.append(Segment(exp, user, activity - 1, start, end, lineno))
  return segments


def check_activity_labels(data_dir: epath.Path) -> None:
  """Checks upstream's activity_labels.txt, when present, against CLASS_NAMES.

  It lies beside RawData/ in the UCI zip; a copy of RawData/ alone lacks it.
  """
  for path in (data_dir / "activity_labels.txt",
               data_dir.parent / "activity_labels.txt"):
    if not path.exists():
      continue
    found = {}
    for lineno, row in enumerate(path.read_text().splitlines(), start=1):
      fields = row.split()
      if len(fields) == 2 and fields[0].isdigit():
        found[int(fields[0])] = (fields[1], lineno)
    expected = dict(enumerate(CLASS_NAMES, start=1))
    for activity, (name, lineno) in found.items():
      if expected.get(activity) != name:
        raise ValueError(
            f"{path}:{lineno}: activity {activity} is {name!r}, but this "
            f"builder expects {expected.get(activity)!r}. The upstream "
            "release changed: update CLASS_NAMES in uci_hapt.")
    return


def read_signal(path: epath.Path) -> np.ndarray:
  """<float64>[T, 3] from one acc_/gyro_ file (space-separated x y z)."""
  try:
    with path.open() as f:
      values = np.loadtxt(f, dtype=np.float64, ndmin=2)
  except ValueError as e:
    raise ValueError(f"{path}: {e}; the file is damaged, {_FIX}") from e
  if values.shape[1] != 3 or values.shape[0] < 2:
    raise ValueError(f"{path}: {values.shape[0]} rows of {values.shape[1]} "
                     f"columns, expected at least 2 rows of 3; {_FIX}")
  return values


def sample_labels(segments: list[Segment], num_samples: int,
                  labels_path: epath.Path, acc: epath.Path) -> np.ndarray:
  """<int32>[T] class per sample of one experiment, -1 outside all segments."""
  labels = np.full(num_samples, -1, np.int32)
  previous = None
  for seg in sorted(segments, key=lambda s: s.start):
    if seg.end - FIRST_SAMPLE >= num_samples:
      raise ValueError(
          f"{labels_path}:{seg.line}: segment ends at sample {seg.end}, but "
          f"{acc} has {num_samples} samples; one of the two files is not the "
          f"upstream one, {_FIX}")
    if previous is not None and seg.start <= previous.end:
      raise ValueError(
          f"{labels_path}:{seg.line}: segment {seg.start}..{seg.end} overlaps "
          f"line {previous.line} ({previous.start}..{previous.end}) of "
          f"experiment {seg.experiment}; {_FIX}")
    labels[seg.start - FIRST_SAMPLE:seg.end - FIRST_SAMPLE + 1] = seg.label
    previous = seg
  return labels


def segments_by_experiment(
    segments: list[Segment], experiments: dict[int, Experiment],
    labels_path: epath.Path) -> dict[int, list[Segment]]:
  """Groups labels.txt rows; each must name an experiment that has files."""
  grouped = {exp: [] for exp in experiments}
  for seg in segments:
    exp = experiments.get(seg.experiment)
    if exp is None:
      raise FileNotFoundError(
          f"{labels_path}:{seg.line}: experiment {seg.experiment} (user "
          f"{seg.user}) has no acc_exp{seg.experiment:02d}_user"
          f"{seg.user:02d}.txt in {labels_path.parent}; {_FIX}")
    if exp.user != seg.user:
      raise ValueError(
          f"{labels_path}:{seg.line}: experiment {seg.experiment} is user "
          f"{seg.user} here but user {exp.user} in {exp.acc.name}; {_FIX}")
    grouped[seg.experiment].append(seg)
  return grouped


def _add(total: dict[str, int], repairs: dict[str, int]) -> None:
  for k, v in repairs.items():
    total[k] = total.get(k, 0) + int(v)


def make_example(exp: Experiment, segments: list[Segment], rate_hz: float,
                 labels_path: epath.Path, repairs: dict[str, int]) -> dict:
  """Reads one experiment, in SI units, on the config's grid.

  Returns:
    signals <float32>[T', 6] (acc m/s^2, gyro rad/s) and labels <int32>[T'].
  """
  acc, gyro = read_signal(exp.acc), read_signal(exp.gyro)
  if acc.shape[0] != gyro.shape[0]:
    raise ValueError(
        f"{exp.acc} has {acc.shape[0]} samples but {exp.gyro} has "
        f"{gyro.shape[0]}; both are sampled together, {_FIX}")
  labels = sample_labels(segments, acc.shape[0], labels_path, exp.acc)
  values = np.concatenate([acc * STANDARD_GRAVITY, gyro], axis=1)
  # Rows are consecutive 50 Hz samples; upstream stores no timestamps. At
  # 50 Hz the grid is these times, so values and labels pass through exactly.
  times_s = np.arange(acc.shape[0]) / NATIVE_RATE_HZ
  out = resample.resample_to_grid(times_s, values, {"labels": labels},
                                  rate_hz, source=str(exp.acc), first_line=1)
  _add(repairs, out.repairs)
  return {"signals": out.signals, "labels": out.labels["labels"]}


def manual_data_dir(manual_dir: epath.Path) -> epath.Path:
  """RawData/ in or at the user's manual_dir; an error naming what is absent."""
  if not manual_dir.is_dir():
    raise FileNotFoundError(
        f"manual_dir {manual_dir} does not exist or is not a folder. Point "
        "it at the extracted UCI HAPT zip (the folder holding RawData/) or "
        f"at RawData/ itself, or leave it unset to download from {HOMEPAGE}.")
  data_dir = find_data_dir(manual_dir)
  if data_dir is None:
    raise FileNotFoundError(
        f"manual_dir {manual_dir}: no RawData/labels.txt or RawData/"
        "acc_expXX_userYY.txt in it or below it. Point it at the extracted "
        f"UCI HAPT zip (from {HOMEPAGE}) or at its RawData/ folder.")
  if not (data_dir / "labels.txt").exists():
    raise FileNotFoundError(f"{data_dir / 'labels.txt'} is missing; {_FIX}")
  return data_dir


class Builder(common.RemembersManualDir,
              tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for uci_hapt."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 61 experiments, 30 subjects."}
  BUILDER_CONFIGS = [
      Config(name=name, rate_hz=hz, description=f"waist phone at {hz:g} Hz")
      for name, hz in RATES.items()
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Optional. Without manual_dir the builder downloads the UCI zip
  ({URL}). Otherwise download "Smartphone-Based Recognition of Human
  Activities and Postural Transitions" from {HOMEPAGE}, extract it, and point
  manual_dir at the extracted folder (holding RawData/) or at RawData/ itself:
  labels.txt, acc_expXX_userYY.txt and gyro_expXX_userYY.txt.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    tracks = {"labels": list(CLASS_NAMES)}
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.example_features(len(CHANNEL_NAMES), tracks),
        metadata=tfds.core.MetadataDict(
            channel_names=list(CHANNEL_NAMES),
            class_names=list(CLASS_NAMES),
            label_tracks=tracks,
            sample_rate_hz=float(self.builder_config.rate_hz),
            units={"acc": "m/s^2", "gyr": "rad/s"},
            repairs={},
        ),
        homepage=HOMEPAGE,
        license="CC-BY-4.0",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = self.given_manual_dir
    if manual_dir is not None:
      data_dir = manual_data_dir(manual_dir)
    else:
      data_dir = self._download(dl_manager)
    # Everything but the signal files is checked before anything is written.
    check_activity_labels(data_dir)
    experiments = list_experiments(data_dir)
    labels_path = data_dir / "labels.txt"
    segments = segments_by_experiment(read_labels(labels_path), experiments,
                                      labels_path)
    # Filled while examples are generated; written with the dataset info.
    repairs = self.info.metadata["repairs"]
    repairs.clear()
    _add(repairs, dict.fromkeys(resample.REPAIR_KEYS, 0))
    return {"train": self._generate_examples(experiments, segments,
                                             labels_path, repairs)}

  def _download(self, dl_manager) -> epath.Path:
    try:
      root = dl_manager.download_and_extract(URL)
    # TFDS reports a failed download as one of many types (requests,
    # urllib3, DownloadError, checksum errors); all get the same advice.
    except Exception as e:  # pylint: disable=broad-except
      raise RuntimeError(
          f"Could not download {URL} ({type(e).__name__}: {e}). Download the "
          f"zip by hand from {HOMEPAGE}, extract it and pass manual_dir=<the "
          "folder holding RawData/>.") from e
    root = epath.Path(root)
    data_dir = find_data_dir(root)
    if data_dir is None:  # Older releases nest "HAPT Data Set.zip".
      for inner in [z for depth in range(3)
                    for z in sorted(root.glob("*/" * depth + "*.zip"))]:
        data_dir = data_dir or find_data_dir(
            epath.Path(dl_manager.extract(inner)))
    if data_dir is None:
      raise FileNotFoundError(
          f"{root}: the download holds no RawData/labels.txt. Download the "
          f"zip by hand from {HOMEPAGE} and pass manual_dir.")
    return data_dir

  def _generate_examples(self, experiments, segments, labels_path, repairs):
    for exp_id, exp in experiments.items():
      example = make_example(exp, segments[exp_id],
                             self.builder_config.rate_hz, labels_path, repairs)
      example["subject"] = exp.subject
      example["recording"] = exp.recording
      yield exp.recording, example

