"""A corpus of H hours (`pretrain.corpus_hours`): a fixed, nested subset.

`pretrain.corpus_hours = H` (0, the default, = the whole corpus) pre-trains
on whole recordings of the corpus adding up to H hours (at least H, less
than H plus one recording; all of them when the corpus is smaller):

* **Fixed**: each member's recordings are ordered by a hash of (`SELECTION`,
  member, recording name), not by the run's seed, so every run at H (every
  seed, fold and objective) sees the same recordings.
* **Nested**: recordings are taken one at a time, always from the member
  furthest below its share (hours taken / its weight); H only says where the
  sequence stops, so the subset for 0.5 h is inside the one for 1 h.
* **Proportional**: a member's share is its `pretrain.corpus_weights`
  weight, or its hours (after the leakage filter) when those are "". A
  member with no recording chosen is left out (small H).

The subject filter (the target's cohort gives its training subjects only)
applies before the choice. The run record's `corpus` entries gain
`corpus_hours` {requested, hours (actual), available, selection}, and
`fingerprint` mixes it into the corpus's hash, so a resume at another H is
refused. With H = 0 nothing here changes a corpus run.
"""

import hashlib
import json
from typing import Optional, Sequence

import numpy as np

from imujax.data import corpus as corpus_lib
from imujax.data import input_pipeline

SELECTION = "corpus_hours/v1"  # Fixed: the order does not depend on seeds.


def order(member: str, recordings: Sequence[str]) -> list[int]:
  """Indices of `recordings` in the member's fixed selection order."""
  key = [hashlib.sha256(f"{SELECTION}:{member}:{r}".encode()).hexdigest()
         for r in recordings]
  return sorted(range(len(recordings)), key=lambda i: (key[i], recordings[i]))


def choose(lengths: Sequence[Sequence[int]], names: Sequence[str],
           recordings: Sequence[Sequence[str]], weights: Sequence[float],
           hours: float, rate_hz: float) -> list[list[int]]:
  """Per member, the indices of its recordings in the subset of `hours`.

  Args:
    lengths: per member, each recording's frames.
    names: the members' names; recordings: their recordings' names.
    weights: the members' shares (any positive scale; 0 = never chosen).
    hours: the subset's size; rate_hz: frames per second.
  """
  w = np.asarray(weights, np.float64)
  queues = [order(n, r) for n, r in zip(names, recordings)]
  taken = np.zeros(len(queues))
  out = [[] for _ in queues]
  total, goal = 0, hours * 3600. * rate_hz
  while total < goal:
    open_ = [k for k, q in enumerate(queues)
             if len(out[k]) < len(q) and w[k] > 0]
    if not open_:
      break
    k = min(open_, key=lambda k: (taken[k] / w[k], k))
    i = queues[k][len(out[k])]
    out[k].append(i)
    taken[k] += lengths[k][i]
    total += lengths[k][i]
  return [sorted(x) for x in out]


def _listing(source, keep: Optional[set]) -> list[tuple[str, int, int]]:
  """(recording, source index, frames) of the source's usable recordings."""
  rows = []
  for i in range(source.size):
    rec = source.read(i)
    if keep is None or rec.subject in keep:
      rows.append((rec.recording, i, len(rec.labels)))
  return sorted(rows)


def build(members: Sequence, target: input_pipeline.Dataset, splits: dict, *,
          hours: float = 0., data_dir: str = "", weights=None,
          **kw) -> corpus_lib.Corpus:
  """`corpus.build` on the subset of `hours` (0: the whole corpus).

  Arguments as `corpus.build`'s; the Corpus gains `budget` (None at 0 h,
  else {requested, hours, available, selection}).
  """
  if hours < 0:
    raise ValueError(f"pretrain.corpus_hours={hours} is negative; give the "
                     "hours of corpus to pre-train on, or 0 for all of it.")
  if not hours:
    pool = corpus_lib.build(members, target, splits, data_dir=data_dir,
                            weights=weights, **kw)
    pool.budget = None
    return pool
  sources = [m if isinstance(m, corpus_lib._Source) else  # pylint: disable=protected-access
             corpus_lib._memory_source(m)  # pylint: disable=protected-access
             if isinstance(m, input_pipeline.Dataset) else
             corpus_lib._tfds_source(m[0], m[1], data_dir)  # pylint: disable=protected-access
             for m in members]
  cohort = input_pipeline.cohort_of(target.name)
  lists = [_listing(s, set(splits["train"])
                    if input_pipeline.cohort_of(s.name) == cohort else None)
           for s in sources]
  frames = [[r[2] for r in rows] for rows in lists]
  shares = (weights if weights is not None else
            [sum(f) for f in frames])
  picked = choose(frames, [s.name for s in sources],
                  [[r[0] for r in rows] for rows in lists], shares, hours,
                  target.sample_rate_hz)
  kept, kept_weights = [], []
  for s, rows, idx, w in zip(sources, lists, picked, shares):
    if idx:
      index = [rows[i][1] for i in idx]
      kept.append(s._replace(size=len(index),
                             read=lambda j, s=s, index=index: s.read(index[j])))
      kept_weights.append(w)
  pool = corpus_lib.build(kept, target, splits, data_dir=data_dir,
                          weights=None if weights is None else kept_weights,
                          **kw)
  available = sum(map(sum, frames)) / target.sample_rate_hz / 3600
  pool.budget = {"requested": float(hours),
                 "hours": round(sum(m.hours for m in pool.members), 4),
                 "available": round(available, 4), "selection": SELECTION}
  return pool


def fingerprint(pool: corpus_lib.Corpus) -> str:
  """The corpus's hash, with its hours budget mixed in when it has one."""
  budget = getattr(pool, "budget", None)
  if not budget:
    return pool.fingerprint
  return hashlib.sha256(json.dumps([pool.fingerprint, budget],
                                   sort_keys=True).encode()).hexdigest()


def describe(pool: corpus_lib.Corpus) -> list[dict]:
  """`Corpus.describe`, each entry with `corpus_hours` when budgeted."""
  entries = pool.describe()
  if getattr(pool, "budget", None):
    for e in entries:
      e["corpus_hours"] = dict(pool.budget)
  return entries


def total_hours(corpus_entries: Sequence[dict]) -> float:
  """The hours a run record's `corpus` entries add up to."""
  return float(sum(e["hours"] for e in corpus_entries))
