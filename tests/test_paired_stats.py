"""Subject-level paired statistics: intervals that mean what they say."""

import itertools
import math

import numpy as np
import pytest

from imujax.experiments import paired
from imujax.experiments import stats


def _simulate(rng, subjects=15, seeds=3, effect=0., subject_sd=0.05,
              seed_sd=0.02):
  """Differences with a subject random effect and per-seed noise."""
  per_subject = effect + subject_sd * rng.normal(size=subjects)
  return {(f"s{i}", k): per_subject[i] + seed_sd * rng.normal()
          for i in range(subjects) for k in range(seeds)}


def test_hierarchical_interval_covers_a_null_effect_at_its_level():
  rng = np.random.default_rng(0)
  trials = 300
  covered = 0
  for t in range(trials):
    lo, hi = paired.hierarchical_ci(_simulate(rng), samples=1000, seed=t)
    covered += lo <= 0. <= hi
  # 95 % nominal; a percentile bootstrap over 15 subjects runs slightly
  # narrow. 300 trials give a standard error of ~1.3 points.
  assert 0.89 <= covered / trials <= 0.985, covered / trials


def test_seeds_are_not_counted_as_independent_subjects():
  """Many seeds on few subjects must not shrink the interval to nothing."""
  rng = np.random.default_rng(1)
  few_seeds = _simulate(rng, subjects=5, seeds=2, seed_sd=0.)
  many = {(s, k): d for (s, _), d in few_seeds.items() for k in range(50)}
  lo1, hi1 = paired.hierarchical_ci(few_seeds)
  lo2, hi2 = paired.hierarchical_ci(many)
  assert (hi2 - lo2) > 0.7 * (hi1 - lo1)


def test_sign_flip_p_is_exact_for_small_n():
  diffs = {("a", 0): 1., ("b", 0): 2., ("c", 0): 3.}
  # Only all-positive and all-negative reach |mean| = 2: 2 of 8 patterns.
  assert paired.sign_flip_p(diffs) == pytest.approx(2 / 8)
  # Subject means are what is flipped: seeds average first.
  two_seeds = {("a", 0): 0., ("a", 1): 2., ("b", 0): 2., ("c", 0): 3.}
  assert paired.sign_flip_p(two_seeds) == pytest.approx(2 / 8)


def test_a_monte_carlo_sign_flip_p_is_never_zero():
  # 20 subjects (> 16: sampled patterns), all far above 0: no sampled
  # pattern but the observed one reaches |mean|, so p = 1 / (samples + 1).
  diffs = {(f"s{i}", 0): 0.1 + 0.01 * i for i in range(20)}
  assert paired.sign_flip_p(diffs, samples=999) == pytest.approx(1 / 1000)
  # Exact up to 16: the all-positive and all-negative of 2^16 patterns.
  exact = {(f"s{i}", 0): 0.1 for i in range(16)}
  assert paired.sign_flip_p(exact) == pytest.approx(2 / 2 ** 16)
  assert stats.fmt_p(1 / 1000) == "0.001"
  assert stats.fmt_p(2 / 2 ** 16) == "<0.001"
  assert stats.fmt_p(math.nan) == "–"


def test_sign_flip_p_is_uniform_under_the_null():
  rng = np.random.default_rng(2)
  ps = [paired.sign_flip_p(_simulate(rng, subjects=10)) for _ in range(200)]
  assert 0.02 <= np.mean(np.array(ps) < 0.05) <= 0.10


def test_holm_against_a_hand_worked_case():
  adjusted = paired.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
  # Sorted 0.01, 0.03, 0.04 times 3, 2, 1, made monotone.
  assert adjusted["a"] == pytest.approx(0.03)
  assert adjusted["c"] == pytest.approx(0.06)
  assert adjusted["b"] == pytest.approx(0.06)
  assert math.isnan(adjusted["d"])


def test_summary_counts_subjects_seeds_and_pairs():
  diffs = {(s, k): 0.1 for s, k in itertools.product("abcd", range(3))}
  diffs[("a", 0)] = 0.2
  out = paired.summary(diffs)
  assert (out["subjects"], out["seeds"], out["pairs"]) == (4, 3, 12)
  assert out["mean"] == pytest.approx((0.1 * 11 + 0.2) / 12)
  assert out["ci_lo"] > 0 and out["p"] == pytest.approx(2 / 16)
