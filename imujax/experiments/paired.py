"""Paired, subject-level statistics: what a claim "arm beats scratch" rests on.

The unit of comparison is the paired difference (arm − scratch) in test
macro-F1 of one subject under one seed: the same subject, split, labels and
head initialisation, only the encoder's start differs. With cross-validation
over subjects every subject is a test subject once, so a cell (dataset ×
budget × arm) has one difference per (subject, seed).

Subjects are the independent units; seeds repeat the training noise on the
same subjects. So:

* the interval of the mean difference comes from a two-stage (hierarchical)
  bootstrap: resample subjects with replacement, then each chosen subject's
  seeds with replacement (`hierarchical_ci`);
* the p-value from a sign-flip permutation test on the subjects' mean
  differences (exact when 2^n is small, else Monte Carlo) (`sign_flip_p`),
  Holm-adjusted across the arms compared with one scratch (`holm`);
* the effect size is the mean difference over the standard deviation of the
  subjects' mean differences (`effect_size`, a paired Cohen's d_z).

Every result carries n: subjects × seeds.
"""

import math
from typing import Mapping

import numpy as np

SAMPLES = 10_000


def by_subject(diffs: Mapping[tuple, float]) -> dict:
  """{subject: <float64>[seeds]} from {(subject, seed): difference}."""
  out = {}
  for (subject, _), d in sorted(diffs.items()):
    out.setdefault(subject, []).append(d)
  return {s: np.asarray(v, np.float64) for s, v in out.items()}


def hierarchical_ci(diffs: Mapping[tuple, float], level: float = 0.95,
                    samples: int = SAMPLES, seed: int = 0):
  """Percentile interval of the mean paired difference, subjects then seeds.

  Args:
    diffs: {(subject, seed): arm − scratch}.

  Returns:
    (lo, hi); nan with fewer than 3 subjects (no spread to resample).
  """
  groups = list(by_subject(diffs).values())
  if len(groups) < 3:
    return math.nan, math.nan
  rng = np.random.default_rng(seed)
  n = len(groups)
  widest = max(len(g) for g in groups)
  padded = np.full((n, widest), np.nan)
  for i, g in enumerate(groups):
    padded[i, :len(g)] = g
  counts = np.array([len(g) for g in groups])
  subjects = rng.integers(0, n, (samples, n))                  # [S, n]
  picks = (rng.random((samples, n, widest))
           * counts[subjects][..., None]).astype(int)          # [S, n, w]
  values = padded[subjects[..., None], picks]                  # [S, n, w]
  weight = np.arange(widest)[None, None] < counts[subjects][..., None]
  means = np.where(weight, values, 0.).sum((1, 2)) / weight.sum((1, 2))
  lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
  return float(lo), float(hi)


def sign_flip_p(diffs: Mapping[tuple, float], samples: int = SAMPLES,
                seed: int = 0) -> float:
  """Two-sided p of "mean difference = 0", flipping subjects' signs.

  Under the null each subject's mean difference is as likely negative as
  positive; the test keeps subjects (not seeds) as the units. Exact (every
  sign pattern) up to 16 subjects; beyond, `samples` random patterns plus
  the observed one, so p >= 1 / (samples + 1) and never 0 (Phipson & Smyth
  2010: a Monte Carlo p of 0 would claim more than the samples show).
  """
  means = np.array([g.mean() for g in by_subject(diffs).values()])
  n = len(means)
  if n == 0:
    return math.nan
  observed = abs(means.mean())
  if n <= 16:  # Every sign pattern: exact.
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
  else:
    signs = np.random.default_rng(seed).choice([-1., 1.], (samples, n))
  flipped = np.abs((signs * means).mean(1))
  extreme = int(np.sum(flipped >= observed - 1e-12))
  if n <= 16:
    return extreme / len(signs)
  return (extreme + 1) / (samples + 1)


def holm(pvalues: Mapping[str, float]) -> dict:
  """Holm–Bonferroni adjusted p-values (nan entries stay nan)."""
  finite = sorted((p, k) for k, p in pvalues.items() if not math.isnan(p))
  m, running, out = len(finite), 0., {}
  for i, (p, k) in enumerate(finite):
    running = max(running, min(1., (m - i) * p))
    out[k] = running
  return {k: out.get(k, math.nan) for k in pvalues}


def effect_size(diffs: Mapping[tuple, float]) -> float:
  """Mean difference / sd of the subjects' mean differences (d_z)."""
  means = np.array([g.mean() for g in by_subject(diffs).values()])
  if len(means) < 2 or means.std(ddof=1) == 0:
    return math.nan
  return float(means.mean() / means.std(ddof=1))


def summary(diffs: Mapping[tuple, float], seed: int = 0) -> dict:
  """Mean, interval, p, d_z and n (subjects, seeds, pairs) of one cell."""
  groups = by_subject(diffs)
  lo, hi = hierarchical_ci(diffs, seed=seed)
  values = np.array(list(diffs.values()), np.float64)
  return {"mean": float(values.mean()) if len(values) else math.nan,
          "ci_lo": lo, "ci_hi": hi, "p": sign_flip_p(diffs, seed=seed),
          "d_z": effect_size(diffs), "subjects": len(groups),
          "seeds": len({seed for _, seed in diffs}), "pairs": len(values)}
