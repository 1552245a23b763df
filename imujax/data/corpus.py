"""Pooled pre-training corpora: several datasets, one input space, mixed.

`build` reads each member of `pretrain.corpus` one recording at a time,
holds what fits in `memory_budget` and reads the rest from its TFDS data
source on demand; `Corpus.batch` mixes training windows from the members by
their weights. Design and measurements: `imujax/data/CORPUS.md`.

* Rate: members are built at the rate of the run's target (`data.name`);
  another rate is refused, naming both.
* Channels: "canonical" (the default) maps each placement of a member to
  one placement-agnostic unit `CANONICAL` by sensor type and axis (a
  member with three IMUs gives three views of each recording; a sensor a
  view lacks is 0 after normalisation); "union" keeps the names (the input
  is every member's channels, a member's absent ones 0).
* Normalisation: "member" standardises each view (member and placement) on
  its own frames, as a fine-tune standardises its target; "pooled" uses one
  normaliser. Losses see the pooled moments (`Corpus.normalizer`) as the
  physical frame (`stats`); `Corpus.held_out` puts the target there too.
* Mixing, a pure function of (seed, step): each window's member is drawn
  by the weights (`choose_members`), then its window uniformly over the
  valid starts of the member's ACTIVE recordings of the current block of
  BLOCK_STEPS steps. A batch carries each row's `member` and its labels in
  that member's own classes (-1 on unlabelled frames, and on every frame of
  a member of the target's cohort); self-supervised objectives read `valid`,
  which marks every real frame, never the labels.
* Leakage: members of the target's cohort give only the target's training
  subjects; `check_no_leak` refuses a target validation or test subject
  (`corpus_labels`: the subject guards, and the label spaces of supervised
  corpus pre-training).
"""

import hashlib
import json
import re
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from imujax.data import corpus_labels
from imujax.data import input_pipeline

CANONICAL = ("imu_acc_x", "imu_acc_y", "imu_acc_z",
             "imu_gyr_x", "imu_gyr_y", "imu_gyr_z")
CHANNELS = ("canonical", "union")
NORMALIZERS = ("member", "pooled")
MEMORY_BUDGET_BYTES = 2 << 30  # Members beyond it are read on demand.
# A member's windows during a block of BLOCK_STEPS steps come from at most
# ACTIVE recordings of it (a deterministic shuffle buffer): a member read on
# demand reads each of them once per block, whatever its size.
BLOCK_STEPS = 50
ACTIVE = 64
_STREAM = 16  # sample_windows uses streams 0 (training) and 1 (validation).
_BLOCK_STREAM = 17
_SENSOR = re.compile(r"^(.+)_(acc|gyr)_([xyz])$")
# The subject guards live in corpus_labels; these names stay usable here.
LeakError = corpus_labels.LeakError
check_no_leak = corpus_labels.check_no_leak
leave_one_out = corpus_labels.leave_one_out


class _Source(NamedTuple):
  """A member's recordings, readable one at a time."""
  name: str
  fingerprint: str
  channel_names: list
  sample_rate_hz: float
  size: int
  read: Callable[[int], input_pipeline.Recording]
  class_names: Sequence[str] = ()


def _tfds_source(name: str, manual_dir: str, data_dir: str) -> _Source:
  builder = input_pipeline.prepare(name, data_dir, manual_dir)
  data = builder.as_data_source()["train"]
  meta = builder.info.metadata

  def read(i):
    ex = data[i]
    return input_pipeline.Recording(
        np.asarray(ex["signals"], np.float32),
        np.asarray(ex["labels"], np.int32),
        input_pipeline.decode_text(ex["subject"]),
        input_pipeline.decode_text(ex["recording"]))
  return _Source(name, input_pipeline.fingerprint_of(builder),
                 list(meta["channel_names"]), float(meta["sample_rate_hz"]),
                 len(data), read, list(meta.get("class_names") or []))


def _memory_source(data: input_pipeline.Dataset) -> _Source:
  return _Source(data.name, data.fingerprint, list(data.channel_names),
                 data.sample_rate_hz, len(data.recordings),
                 data.recordings.__getitem__, list(data.class_names))


def views(channel_names: Sequence[str], how: str,
          union: Sequence[str] = ()) -> list[tuple[str, np.ndarray]]:
  """How a dataset's channels fill the corpus channels.

  Returns:
    [(view name, <int64>[corpus channels]: the dataset's column feeding each
    corpus channel, -1 where it has none)]: one view per placement with an
    accelerometer or gyroscope ("canonical"), or one view ("union").
  """
  names = list(channel_names)
  if how == "union":
    return [("all", np.array([names.index(n) if n in names else -1
                              for n in union]))]
  if how != "canonical":
    raise ValueError(f"pretrain.corpus_channels={how!r}; choose one of "
                     f"{CHANNELS}.")
  by_placement = {}
  for i, name in enumerate(names):
    m = _SENSOR.match(name)
    if m:
      by_placement.setdefault(m[1], {})[f"imu_{m[2]}_{m[3]}"] = i
  return [(p, np.array([cols.get(c, -1) for c in CANONICAL]))
          for p, cols in by_placement.items()]


def adapter_init(target_channels: Sequence[str]) -> dict:
  """Input adapter {"w": [C, 6], "b": [6]} from a dataset to `CANONICAL`.

  Each channel feeds its canonical sensor axis with weight 1 / (number of
  placements that have that axis): one IMU is passed through unchanged,
  several are averaged. The fine-tune of a canonical corpus encoder starts
  here (setup.py), with no hand mapping.
  """
  w = np.zeros((len(target_channels), len(CANONICAL)), np.float32)
  for _, index in views(target_channels, "canonical"):
    for j, i in enumerate(index):
      if i >= 0:
        w[i, j] = 1.
  w /= np.maximum(w.sum(0, keepdims=True), 1.)
  return {"w": w, "b": np.zeros((len(CANONICAL),), np.float32)}


def choose_members(weights: np.ndarray, batch_size: int, seed: int,
                   step: int) -> np.ndarray:
  """<int64>[batch]: the member of each window; pure in (seed, step)."""
  rng = np.random.default_rng([seed, _STREAM, step])
  return rng.choice(len(weights), size=batch_size, p=weights)


class _Moments:
  """Per-channel sums over frames, for means and standard deviations."""

  def __init__(self, channels: int):
    self.n, self.s, self.ss = (np.zeros(channels) for _ in range(3))

  def add(self, x: np.ndarray, present: np.ndarray) -> None:
    """x <float>[T, P] holds the `present` channels; NaN (a gap, e.g. gaze
    track loss) is left out of the counts, as in input_pipeline.Normalizer."""
    finite = np.isfinite(x)
    x = np.where(finite, x, 0.).astype(np.float64)
    self.n[present] += finite.sum(0)
    self.s[present] += x.sum(0)
    self.ss[present] += np.square(x).sum(0)

  def merge(self, other: "_Moments") -> None:
    self.n, self.s, self.ss = (self.n + other.n, self.s + other.s,
                               self.ss + other.ss)

  def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) <float32>[C]; 0 and 1 where no frame, 1 if constant."""
    n = np.maximum(self.n, 1)
    mean = self.s / n
    std = np.sqrt(np.maximum(self.ss / n - mean ** 2, 0.))
    std = np.where((std > 1e-8) & (self.n > 0), std, 1.)
    return mean.astype(np.float32), std.astype(np.float32)


class Member:
  """One dataset of a corpus: its recordings' names, lengths and views.

  `labelled` False (a member of the target's cohort) withholds its labels:
  its frames are -1 in every batch.
  """

  def __init__(self, source: _Source, keep: Optional[set], union, how: str,
               budget: int, labelled: bool = True):
    self.name, self.fingerprint = source.name, source.fingerprint
    self.class_names = list(source.class_names)
    self.labelled = labelled and bool(self.class_names)
    self.cohort = input_pipeline.cohort_of(source.name)
    self.views = views(source.channel_names, how, union)
    if not self.views:
      raise ValueError(
          f"pretrain.corpus member {source.name!r} has no accelerometer or "
          f"gyroscope channel named <placement>_<acc|gyr>_<x|y|z> "
          f"({source.channel_names}); leave it out of pretrain.corpus.")
    self._read, self.held, held_bytes = source.read, [], 0
    labels = {}  # Recording name -> labels, of held recordings.
    moments = [_Moments(len(v[1])) for v in self.views]
    rows = []  # (recording name, source index, subject, length).
    for i in range(source.size):
      rec = source.read(i)
      if keep is not None and rec.subject not in keep:
        continue
      rows.append((rec.recording, i, rec.subject, len(rec.labels)))
      for (_, index), m in zip(self.views, moments):
        present = index >= 0
        m.add(rec.signals[:, index[present]], present)
      if self.held is not None:
        held_bytes += rec.signals.nbytes
        self.held.append((rec.recording, rec.signals))
        if self.labelled:
          held_bytes += rec.labels.nbytes
          labels[rec.recording] = rec.labels
        if held_bytes > budget:  # Read on demand instead.
          self.held = None
    if not rows:
      raise ValueError(f"pretrain.corpus member {source.name!r} has no "
                       "recording left for pre-training (its subjects are "
                       "the target's validation or test subjects?).")
    rows.sort()  # Storage order is shuffled; recording names are not.
    self.recordings = [r[0] for r in rows]
    self.subjects = sorted({r[2] for r in rows})
    self.lengths = np.array([r[3] for r in rows])
    self._index = [r[1] for r in rows]
    if self.held is not None:
      by_name = dict(self.held)
      self.held = [by_name[name] for name in self.recordings]
      self.held_labels = [labels.get(name) for name in self.recordings]
    self.moments = moments
    self.frames = int(self.lengths.sum())
    self.hours = self.frames / source.sample_rate_hz / 3600
    self.normalizers = [m.mean_std() for m in moments]  # Per view.
    self._block, self._cache = None, {}

  def signals(self, r: int, block) -> np.ndarray:
    """<float32>[time, channels] of recording r (in `recordings` order)."""
    return self.recording(r, block)[0]

  def recording(self, r: int, block) -> tuple:
    """(signals <float32>[time, channels], labels <int32>[time] or None).

    Labels are None when the member is not `labelled`. A member read on
    demand caches the recordings of the current block (`block`: (seed,
    block index)) and drops them when the block changes.
    """
    if self.held is not None:
      return self.held[r], self.held_labels[r]
    if block != self._block:
      self._block, self._cache = block, {}
    if r not in self._cache:
      rec = self._read(self._index[r])
      self._cache[r] = (rec.signals, rec.labels if self.labelled else None)
    return self._cache[r]

  def active(self, starts: np.ndarray, seed: int, block: int,
             k: int) -> np.ndarray:
    """<int64>[<= ACTIVE]: the recordings member k draws from in `block`.

    All of them when there are at most ACTIVE, else ACTIVE drawn without
    replacement with probabilities proportional to their valid starts.
    """
    n = len(starts)
    if n <= ACTIVE:
      return np.arange(n)
    rng = np.random.default_rng([seed, _BLOCK_STREAM, block, k])
    return np.sort(rng.choice(n, size=ACTIVE, replace=False,
                              p=starts / starts.sum()))

  def windows(self, out: np.ndarray, valid: np.ndarray, rows: np.ndarray,
              seed: int, step: int, k: int, labels=None) -> None:
    """Fills out[rows] <float32>[n, window, C] with normalised windows.

    And valid[rows], and labels[rows] (when given and the member is
    `labelled`; the draws do not depend on it).

    Windows start uniformly over the valid starts of the block's active
    recordings (each view equally), as `sample_windows` draws them; k is
    this member's index in the corpus. Pure in (seed, step, k).
    """
    rng = np.random.default_rng([seed, _STREAM, step, k + 1])
    window, n_views = out.shape[1], len(self.views)
    starts = np.maximum(self.lengths - window + 1, 1)
    block = step // BLOCK_STEPS
    active = self.active(starts, seed, block, k)
    p = np.repeat(starts[active] / starts[active].sum() / n_views, n_views)
    for b, j in zip(rows, rng.choice(len(p), size=len(rows), p=p)):
      a, v = divmod(int(j), n_views)
      r = active[a]
      start = rng.integers(starts[r])
      raw, lab = self.recording(r, (seed, block))
      raw = raw[start:start + window]
      if labels is not None and lab is not None:
        labels[b, :len(raw)] = lab[start:start + window]
      index, (mean, std) = self.views[v][1], self.normalizers[v]
      present = np.flatnonzero(index >= 0)
      x = (raw[:, index[present]] - mean[present]) / std[present]
      # A gap enters as the mean (0), as input_pipeline.Normalizer does.
      out[b, :len(raw)][:, present] = np.where(np.isfinite(x), x, 0.)
      valid[b, :len(raw)] = True


class Corpus:
  """Members in one input space, their weights, and the mixed batches."""

  def __init__(self, members: list, channel_names: list, weights,
               channels: str, normalize: str, sample_rate_hz: float):
    self.members, self.channel_names = members, channel_names
    self.channels = channels
    self.normalize, self.sample_rate_hz = normalize, sample_rate_hz
    w = np.array([m.hours for m in members] if weights is None else weights,
                 np.float64)
    self.weights = w / w.sum()
    pooled = _Moments(len(channel_names))
    for m in members:
      for moments in m.moments:
        pooled.merge(moments)
    mean, std = pooled.mean_std()
    self.normalizer = input_pipeline.Normalizer(mean, std, channel_names)
    if normalize == "pooled":
      for m in members:
        m.normalizers = [(mean, std)] * len(m.views)

  def batch(self, window: int, batch_size: int, seed: int,
            step: int) -> dict[str, np.ndarray]:
    """Mixed training windows, a pure function of (seed, step).

    Returns:
      {"signals": <float32>[batch, window, C] (normalised as the member's
       view is), "labels": <int32>[batch, window] (the member's own classes;
       -1 unlabelled, padding, or a member not `labelled`),
       "valid": <bool>[batch, window] (False on padding),
       "member": <int32>[batch] (index into `members`)}
    """
    which = choose_members(self.weights, batch_size, seed, step)
    signals = np.zeros((batch_size, window, len(self.channel_names)),
                       np.float32)
    valid = np.zeros((batch_size, window), bool)
    labels = np.full(valid.shape, -1, np.int32)
    for k in np.unique(which):
      self.members[k].windows(signals, valid, np.flatnonzero(which == k),
                              seed, step, int(k), labels)
    return {"signals": signals, "labels": labels, "valid": valid,
            "member": which.astype(np.int32)}

  def held_out(self, target: input_pipeline.Dataset,
               splits: dict) -> dict[str, list]:
    """The target's "val" and "test" recordings in the corpus's frame.

    Each view of a recording becomes one recording whose values, normalised
    by `normalizer`, are what `batch` gives a member: the view standardised
    on the target's training subjects ("member"), or the pooled normaliser
    ("pooled"). For pretext validation of the corpus run.
    """
    target_views = views(target.channel_names, self.channels,
                         self.channel_names)
    if not any((index >= 0).any() for _, index in target_views):
      raise ValueError(
          f"No channel of data.name={target.name!r} "
          f"({target.channel_names}) is a corpus channel "
          f"(pretrain.corpus_channels={self.channels!r}), so the encoder "
          "could not feed on it. With 'union' add a member with the "
          "target's placement, or set pretrain.corpus_channels=canonical "
          "(matched by sensor type).")
    train = input_pipeline.select(target.recordings, splits["train"])
    norms = []
    for _, index in target_views:
      present = index >= 0
      m = _Moments(len(index))
      for rec in train:
        m.add(rec.signals[:, index[present]], present)
      norms.append(m.mean_std() if self.normalize == "member" else
                   (self.normalizer.mean, self.normalizer.std))
    out = {}
    for split in ("val", "test"):
      out[split] = []
      for rec in input_pipeline.select(target.recordings, splits[split]):
        for (view, index), (mean, std) in zip(target_views, norms):
          x = np.tile(self.normalizer.mean, (len(rec.labels), 1))
          present = np.flatnonzero(index >= 0)
          x[:, present] = ((rec.signals[:, index[present]] - mean[present])
                           / std[present] * self.normalizer.std[present]
                           + self.normalizer.mean[present])
          name = (rec.recording if len(target_views) == 1 else
                  f"{rec.recording}#{view}")
          out[split].append(rec._replace(signals=x.astype(np.float32),
                                         recording=name))
    return out

  def describe(self) -> list[dict]:
    """The run record's `corpus`: one entry per member."""
    return [{"name": m.name, "cohort": m.cohort, "fingerprint": m.fingerprint,
             "hours": round(m.hours, 4), "weight": round(float(w), 6),
             "recordings": len(m.recordings), "subjects": m.subjects,
             "views": [v for v, _ in m.views],
             "in_memory": m.held is not None, "class_names": m.class_names,
             "labelled": m.labelled}
            for m, w in zip(self.members, self.weights)]

  @property
  def fingerprint(self) -> str:
    """sha256 of what the batches depend on: members, subjects, weights."""
    what = [[m.name, m.fingerprint, m.subjects, m.recordings,
             round(float(w), 9)] for m, w in zip(self.members, self.weights)]
    what += [self.channel_names, self.channels, self.normalize]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def build(members: Sequence, target: input_pipeline.Dataset, splits: dict, *,
          data_dir: str = "", channels: str = "canonical",
          normalize: str = "member", weights=None,
          memory_budget: int = MEMORY_BUDGET_BYTES) -> Corpus:
  """Reads the members and assembles the corpus for `target`'s run.

  Args:
    members: (TFDS name, manual_dir) pairs (`configlib.corpus_members`), or
      `input_pipeline.Dataset`s already in memory.
    target: the fine-tune target (`data.name`), whose rate the run has.
    splits: the target's subject split (train / val / test) for the run's
      seed and folds; members of its cohort give its training subjects only.
    data_dir: TFDS data_dir of the members.
    channels, normalize: see the module docstring (`CHANNELS`,
      `NORMALIZERS`).
    weights: one mixing weight per member; None = proportional to hours.
    memory_budget: bytes of raw signals held in memory over all members;
      a member that does not fit is read from its data source on demand
      (holding at most ACTIVE of its recordings at a time).
  """
  if normalize not in NORMALIZERS:
    raise ValueError(f"pretrain.corpus_normalizer={normalize!r}; choose one "
                     f"of {NORMALIZERS}.")
  sources = [m if isinstance(m, _Source) else
             _memory_source(m) if isinstance(m, input_pipeline.Dataset) else
             _tfds_source(m[0], m[1], data_dir) for m in members]
  for s in sources:
    if s.sample_rate_hz != target.sample_rate_hz:
      raise ValueError(
          f"pretrain.corpus member {s.name!r} is at {s.sample_rate_hz:g} Hz "
          f"but the run's data.name={target.name!r} is at "
          f"{target.sample_rate_hz:g} Hz; use that member's build at "
          f"{target.sample_rate_hz:g} Hz (e.g. <dataset>/50hz).")
  union = list(dict.fromkeys(n for s in sources for n in s.channel_names))
  out, left = [], memory_budget
  for s in sources:
    same = input_pipeline.cohort_of(s.name) == input_pipeline.cohort_of(
        target.name)
    member = Member(s, set(splits["train"]) if same else None, union,
                    channels, left, labelled=not same)
    left -= sum(x.nbytes for x in member.held or [])
    out.append(member)
  check_no_leak({m.name: m.subjects for m in out}, target.name, splits)
  names = list(CANONICAL) if channels == "canonical" else union
  return Corpus(out, names, weights, channels, normalize,
                target.sample_rate_hz)
