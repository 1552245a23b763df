"""From a TFDS builder to training windows and evaluation batches.

The IMU datasets imujax targets are small (minutes to hours at 50 Hz), so a
split is held in memory as numpy arrays: random windows are cut on the host
with a generator seeded by (seed, step), which makes every batch a pure
function of the step and a resumed run bit-identical to an uninterrupted one.

Protocol (see DESIGN.md): subjects are split into disjoint train / validation
/ test sets from the seed; normalisation statistics are fitted on the training
subjects only; the label budget picks labelled subjects (or recordings) among
the training subjects, nested across budgets for a given seed.
"""

import json
import types
from typing import Iterator, Mapping, NamedTuple, Optional, Sequence

from etils import epath
import numpy as np

from imujax import configlib

# An empty, read-only mapping: the default of the per-frame track fields.
_NO_TRACKS = types.MappingProxyType({})
LABEL_PREFIX, TARGET_PREFIX = "labels_", "targets_"


class Recording(NamedTuple):
  """One recording in memory.

  `tracks` and `targets` hold the extra per-frame tracks a run asked for
  (`select_tracks`), by short name (the TFDS feature without its "labels_" /
  "targets_" prefix), in the run's order; `load` leaves them empty (it keeps
  every track in `Dataset.per_frame`). Batches carry them only when they are
  not empty, so a run that asks for none draws exactly the batches it drew
  before they existed.
  """
  signals: np.ndarray  # <float32>[time, channels]
  labels: np.ndarray   # <int32>[time], -1 = unlabelled frame
  subject: str
  recording: str
  # Integer tracks (`labels_<name>`): <int32>[time] each, -1 = unknown.
  tracks: Mapping[str, np.ndarray] = _NO_TRACKS
  # Float targets (`targets_<name>`): <float32>[time] each, NaN = no value.
  targets: Mapping[str, np.ndarray] = _NO_TRACKS


class Dataset(NamedTuple):
  """A prepared dataset in memory.

  `fingerprint` identifies exactly what was read: for the `recordings`
  builder the sha256 of its resolved spec, input files (relative paths,
  sizes, mtimes), rate and builder version; for the fixed builders their
  TFDS name, config and version (`sp_sw_har/watch_50hz/1.0.0`).
  """
  name: str
  recordings: list[Recording]
  channel_names: list[str]
  class_names: list[str]
  sample_rate_hz: float
  fingerprint: str = ""
  # Short name -> class names of each extra integer track (metadata
  # "label_tracks"), and short name -> unit of each float target (metadata
  # "regression_targets"); see `Recording`.
  track_classes: Mapping[str, list] = _NO_TRACKS
  target_units: Mapping[str, str] = _NO_TRACKS
  # Recording name -> {feature name ("labels_<x>", "targets_<y>"): array}:
  # every extra per-frame track, for `select_tracks` to attach.
  per_frame: Mapping[str, Mapping[str, np.ndarray]] = _NO_TRACKS


def decode_text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def load(name: str, data_dir: str = "", manual_dir: str = "",
         spec: str = "") -> Dataset:
  """Prepares the TFDS dataset `name` if needed and reads it into memory.

  Args:
    name: a TFDS name such as "seglearn_watch" or "sp_sw_har/watch_50hz".
    data_dir: where TFDS keeps prepared datasets ("" = TFDS's default).
    manual_dir: the folder with manually downloaded raw files, if any.
    spec: the TOML spec of a lab's own files ("recordings/50hz" builder).
  """
  builder = prepare(name, data_dir, manual_dir, spec)
  source = builder.as_data_source()["train"]
  recordings, per_frame = [], {}
  for ex in (source[i] for i in range(len(source))):
    recordings.append(Recording(
        np.asarray(ex["signals"], np.float32),
        np.asarray(ex["labels"], np.int32), decode_text(ex["subject"]),
        decode_text(ex["recording"])))
    per_frame[recordings[-1].recording] = {
        k: np.asarray(v, np.float32 if k.startswith(TARGET_PREFIX)
                      else np.int32)
        for k, v in ex.items()
        if k.startswith(LABEL_PREFIX) or k.startswith(TARGET_PREFIX)}
  recordings.sort(key=lambda r: r.recording)  # Storage order is shuffled.
  meta = builder.info.metadata
  track_classes = {short_name(k, LABEL_PREFIX): list(v) for k, v in
                   dict(meta.get("label_tracks") or {}).items()
                   if k.startswith(LABEL_PREFIX)}
  target_units = {short_name(k, TARGET_PREFIX): str(v) for k, v in
                  dict(meta.get("regression_targets") or {}).items()}
  return Dataset(name, recordings, list(meta["channel_names"]),
                 list(meta["class_names"]), float(meta["sample_rate_hz"]),
                 fingerprint_of(builder), track_classes, target_units,
                 per_frame)


def short_name(name: str, prefix: str) -> str:
  """A track's name without its feature prefix ("labels_", "targets_")."""
  name = name.strip()
  return name[len(prefix):] if name.startswith(prefix) else name


def select_tracks(data: Dataset, tracks: Sequence[str] = (),
                  targets: Sequence[str] = (), labels_from: str = "",
                  key: str = "finetune.tracks") -> Dataset:
  """`data` whose recordings carry only the named tracks, in that order.

  Args:
    data: as `load` returns it (every track in `data.per_frame`).
    tracks: integer tracks, by short name ("initial_contact") or feature
      name ("labels_initial_contact").
    targets: float targets, likewise ("walking_speed" or
      "targets_walking_speed").
    labels_from: an integer track that replaces `labels` (and
      `class_names`): classification of another label track.
    key: the config key the names came from, for messages.

  Returns:
    The dataset with `Recording.tracks` / `.targets` set (both empty when
    nothing is asked: batches are then exactly as without tracks).

  Raises:
    ValueError: a name the dataset lacks, naming `key` and the choices.
  """
  if not (tracks or targets or labels_from):
    return data._replace(recordings=[
        r._replace(tracks=_NO_TRACKS, targets=_NO_TRACKS)
        for r in data.recordings])
  tracks = [short_name(t, LABEL_PREFIX) for t in tracks]
  targets = [short_name(t, TARGET_PREFIX) for t in targets]
  labels_from = short_name(labels_from, LABEL_PREFIX) if labels_from else ""
  stored = set().union(*map(set, data.per_frame.values()))
  for names, prefix in ((tracks + [labels_from] * bool(labels_from),
                         LABEL_PREFIX), (targets, TARGET_PREFIX)):
    have = sorted(k[len(prefix):] for k in stored if k.startswith(prefix))
    what = f"{prefix}* tracks"
    missing = [n for n in names if n not in have]
    if missing:
      raise ValueError(
          f"{key}={','.join(missing)!r}: dataset {data.name!r} has no such "
          f"track among its {what}: {have or 'none'}. Set {key} to one of "
          "them (or pick another finetune.target).")
  recordings = []
  for r in data.recordings:
    own = data.per_frame.get(r.recording, {})
    rec = r._replace(tracks={t: own[LABEL_PREFIX + t] for t in tracks},
                     targets={t: own[TARGET_PREFIX + t] for t in targets})
    if labels_from:
      rec = rec._replace(labels=own[LABEL_PREFIX + labels_from])
    recordings.append(rec)
  class_names = data.class_names
  if labels_from:
    class_names = list(data.track_classes.get(labels_from) or [])
    if not class_names:
      raise ValueError(f"{key}={labels_from!r}: {data.name!r} names no "
                       "classes for it (metadata label_tracks); classify "
                       "`labels` (finetune.tracks='') or fix the builder.")
  return data._replace(recordings=recordings, class_names=class_names)


def fingerprint_of(builder) -> str:
  """What identifies a prepared dataset's content (see `Dataset`)."""
  return str(builder.info.metadata.get("fingerprint")
             or builder.info.full_name)


def prepare(name: str, data_dir: str = "", manual_dir: str = "",
            spec: str = ""):
  """The TFDS builder of `name`, prepared (array_record) if it was not.

  A named `manual_dir` that is missing or lacks the builder's files is an
  immediate FileNotFoundError naming it, never a download. With `spec` (the
  recordings builder) the files are read from `manual_dir` if given, else
  from the spec's folder, and the build is keyed on their fingerprint.
  """
  import tensorflow_datasets as tfds  # Heavy: imported only when data is read.
  import imujax.datasets  # noqa: F401  Registers imujax's builders.
  from imujax.datasets import common  # pylint: disable=g-import-not-at-top

  if spec:
    # Built directly, not through tfds.builder, whose wrapper would prefix a
    # spec or folder error with its own "Failed to construct dataset" line.
    # pylint: disable-next=g-import-not-at-top
    from imujax.datasets.recordings import recordings_dataset_builder as rb
    dataset, _, config = name.partition("/")
    if dataset != "recordings":
      raise ValueError(f"A spec (data.spec, --spec) is for the recordings "
                       f"builder (data.name='recordings/50hz'), not {name!r}.")
    builder = rb.Builder(spec=spec, config=config or "50hz",
                         manual_dir=manual_dir or None,
                         data_dir=data_dir or None,
                         file_format="array_record")
  else:
    try:
      builder = tfds.builder(name, data_dir=data_dir or None,
                             file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError as e:
      raise ValueError(
          f"Unknown dataset {name!r} (config key data.name). imujax's "
          f"builders: {imujax.datasets.NAMES}.") from e
  if not builder.is_prepared():
    common.check_builder_manual_dir(builder, manual_dir)
  download_config = tfds.download.DownloadConfig(
      manual_dir=manual_dir or None)
  builder.download_and_prepare(download_config=download_config)
  return builder


def split_subjects(subjects: Sequence[str], seed: int, num_val: int,
                   num_test: int, num_folds: int = 0, fold: int = 0,
                   fold_seed: int = 0) -> dict[str, list[str]]:
  """Deterministic subject-disjoint split: {"train", "val", "test"} -> ids.

  num_folds = 0: `num_test` test and `num_val` validation subjects drawn
  with `seed`. num_folds = k > 0: cross-validation over subjects — the
  subjects are dealt into k folds by a permutation of `fold_seed` (the same
  for every seed, so fold f means the same test subjects in every arm and
  seed) and fold `fold` is the test set, so over the k folds every subject
  is a test subject exactly once; `num_val` validation subjects are then
  drawn from the other folds with `seed`, and `num_test` is not used.
  num_val = num_test = 0 (no folds): every subject trains.
  """
  unique = sorted(set(subjects))
  if num_folds:
    if not 0 <= fold < num_folds <= len(unique):
      raise configlib.ConfigError(
          f"data.fold={fold} with data.num_folds={num_folds}: the fold must "
          f"be in 0..{num_folds - 1}, and {len(unique)} subjects allow at "
          f"most {len(unique)} folds.")
    dealt = np.random.default_rng(fold_seed).permutation(len(unique))
    test = sorted(unique[i] for i in dealt[fold::num_folds])
    rest = [s for s in unique if s not in set(test)]
    if num_val >= len(rest):
      raise configlib.ConfigError(
          f"Fold {fold} of {num_folds} leaves {len(rest)} subjects; "
          f"data.val_subjects={num_val} leaves none for training.")
    order = [rest[i] for i in np.random.default_rng(seed).permutation(
        len(rest))]
    return {"test": test, "val": sorted(order[:num_val]),
            "train": sorted(order[num_val:])}
  if num_val + num_test >= len(unique):
    raise configlib.ConfigError(
        f"The dataset has {len(unique)} subjects; data.val_subjects={num_val} "
        f"plus data.test_subjects={num_test} leave none for training. "
        "Lower them (both 0, mode=pretrain: pre-train on every subject).")
  permutation = np.random.default_rng(seed).permutation(len(unique))
  order = [unique[i] for i in permutation]
  return {"test": sorted(order[:num_test]),
          "val": sorted(order[num_test:num_test + num_val]),
          "train": sorted(order[num_test + num_val:])}


def cohort_of(name: str) -> str:
  """The people behind a TFDS name: views and rates of one cohort agree.

  "sp_sw_har/watch_50hz" and "sp_sw_har/phone_30hz" record the same
  subjects, so subject identity (leakage guards) is compared by cohort, not
  by TFDS name. A builder may name its cohort in its metadata ("cohort");
  otherwise it is the dataset part of the name.
  """
  return name.partition("/")[0]


def select(recordings: Sequence[Recording], subjects: Sequence[str]):
  keep = set(subjects)
  return [r for r in recordings if r.subject in keep]


def label_budget(recordings: Sequence[Recording], seed: int, *,
                 subjects: int = 0, recordings_budget: int = 0):
  """The labelled subset of the training recordings.

  Subjects (or recordings) are ranked by a permutation drawn from the seed and
  the first `subjects` (or `recordings_budget`) are kept, so a smaller budget
  is always a subset of a larger one. 0 for both keeps everything.
  """
  if subjects and recordings_budget:
    raise ValueError("Set only one of data.labeled_subjects and "
                     "data.labeled_recordings (the other must be 0).")
  rng = np.random.default_rng([seed, 1])  # Independent of the split's draw.
  if subjects:
    ids = sorted({r.subject for r in recordings})
    if subjects > len(ids):
      raise ValueError(f"data.labeled_subjects={subjects} but the training "
                       f"split has only {len(ids)} subjects.")
    chosen = {ids[i] for i in rng.permutation(len(ids))[:subjects]}
    return [r for r in recordings if r.subject in chosen]
  if recordings_budget:
    if recordings_budget > len(recordings):
      raise ValueError(f"data.labeled_recordings={recordings_budget} but the "
                       f"training split has only {len(recordings)}.")
    chosen = sorted(rng.permutation(len(recordings))[:recordings_budget])
    return [recordings[i] for i in chosen]
  return list(recordings)


class Normalizer(NamedTuple):
  """Per-channel standardisation, fitted on training subjects only.

  NaN (a gap, e.g. gaze track loss; CONVENTIONS.md) is left out of the fit
  and enters the model as 0 after normalisation (the channel mean).
  """
  mean: np.ndarray  # <float32>[channels]
  std: np.ndarray   # <float32>[channels]
  channel_names: list[str]

  @classmethod
  def fit(cls, recordings: Sequence[Recording], channel_names):
    x = np.concatenate([r.signals for r in recordings]).astype(np.float64)
    if not np.isfinite(x).all():  # Gaps: fit on the finite values only.
      x = np.ma.masked_invalid(x)
    std = np.ma.filled(x.std(0), 0.)
    # A constant channel would divide by zero; leave it unscaled.
    std = np.where(std > 1e-8, std, 1.)
    return cls(np.ma.filled(x.mean(0), 0.).astype(np.float32),
               std.astype(np.float32), list(channel_names))

  def __call__(self, signals: np.ndarray) -> np.ndarray:
    out = (signals - self.mean) / self.std
    return out if np.isfinite(out).all() else np.where(
        np.isfinite(out), out, 0.).astype(out.dtype)

  def save(self, path: epath.Path) -> None:
    path.write_text(json.dumps({"channel_names": self.channel_names,
                                "mean": self.mean.tolist(),
                                "std": self.std.tolist()}, indent=1))

  @classmethod
  def load(cls, path: epath.Path):
    d = json.loads(path.read_text())
    return cls(np.asarray(d["mean"], np.float32),
               np.asarray(d["std"], np.float32), list(d["channel_names"]))


def sample_windows(recordings: Sequence[Recording], normalizer: Normalizer,
                   window: int, batch_size: int, seed: int, step: int,
                   stream: int = 0) -> dict[str, np.ndarray]:
  """A batch of random windows, a pure function of (seed, stream, step).

  `stream` separates independent uses of the same seed (0: training batches,
  1: fixed validation windows).

  Windows start uniformly over all valid positions of all recordings (longer
  recordings are drawn more often). A recording shorter than `window` is
  padded and its padding marked invalid.

  Returns:
    {"signals": <float32>[batch, window, C], "labels": <int32>[batch, window],
     "valid": <bool>[batch, window]}, and when the recordings carry them
    (`select_tracks`) "tracks": <int32>[batch, window, E] (-1 on padding) and
    "targets": <float32>[batch, window, R] (NaN on padding), in the order of
    `Recording.tracks` / `.targets`.
  """
  rng = np.random.default_rng([seed, stream, step])
  lengths = np.array([len(r.labels) for r in recordings])
  starts_per_rec = np.maximum(lengths - window + 1, 1)
  which = rng.choice(len(recordings), size=batch_size,
                     p=starts_per_rec / starts_per_rec.sum())
  channels = recordings[0].signals.shape[1]
  signals = np.zeros((batch_size, window, channels), np.float32)
  labels = np.full((batch_size, window), -1, np.int32)
  valid = np.zeros((batch_size, window), bool)
  extra = _Extra(recordings, batch_size, window)
  for b, i in enumerate(which):
    start = rng.integers(starts_per_rec[i])
    rec = recordings[i]
    piece = slice(start, start + window)
    n = len(rec.labels[piece])
    signals[b, :n] = normalizer(rec.signals[piece])
    labels[b, :n] = rec.labels[piece]
    valid[b, :n] = True
    extra.fill(b, rec, piece, n)
  return {"signals": signals, "labels": labels, "valid": valid,
          **extra.arrays()}


class _Extra:
  """The "tracks" / "targets" arrays of one batch, when the run has any."""

  def __init__(self, recordings: Sequence[Recording], batch: int,
               length: int):
    # select_tracks gives every recording the same names in the same order.
    self.tracks = tuple(recordings[0].tracks)
    self.targets = tuple(recordings[0].targets)
    self.track_array = np.full((batch, length, len(self.tracks)), -1,
                               np.int32)
    self.target_array = np.full((batch, length, len(self.targets)), np.nan,
                                np.float32)

  def fill(self, b: int, rec: Recording, piece: slice, n: int) -> None:
    for j, name in enumerate(self.tracks):
      self.track_array[b, :n, j] = rec.tracks[name][piece]
    for j, name in enumerate(self.targets):
      self.target_array[b, :n, j] = rec.targets[name][piece]

  def arrays(self) -> dict:
    out = {}
    if self.tracks:
      out["tracks"] = self.track_array
    if self.targets:
      out["targets"] = self.target_array
    return out


def padded_length(recordings: Sequence[Recording], multiple: int = 256) -> int:
  """The longest recording rounded up, so evaluation compiles one shape."""
  longest = max(len(r.labels) for r in recordings)
  return -(-longest // multiple) * multiple


def whole_recordings(recordings: Sequence[Recording], normalizer: Normalizer,
                     batch_size: int, length: Optional[int] = None
                     ) -> Iterator[dict[str, np.ndarray]]:
  """Yields fixed-shape batches of whole recordings for causal evaluation.

  Every batch is [batch_size, length]; padding frames and padding recordings
  are marked invalid, so metrics count each real frame exactly once. Tracks
  and targets come as in `sample_windows`.
  """
  length = length or padded_length(recordings)
  channels = recordings[0].signals.shape[1]
  for first in range(0, len(recordings), batch_size):
    chunk = recordings[first:first + batch_size]
    signals = np.zeros((batch_size, length, channels), np.float32)
    labels = np.full((batch_size, length), -1, np.int32)
    valid = np.zeros((batch_size, length), bool)
    extra = _Extra(recordings, batch_size, length)
    for b, rec in enumerate(chunk):
      n = min(len(rec.labels), length)
      signals[b, :n] = normalizer(rec.signals[:n])
      labels[b, :n] = rec.labels[:n]
      valid[b, :n] = True
      extra.fill(b, rec, slice(0, n), n)
    yield {"signals": signals, "labels": labels, "valid": valid,
           **extra.arrays()}
