"""Per-class sample-level kappa and event-level F1 (events matched by overlap)
against scikit-learn and a hand-worked case; evaluation reports them for
gaze channels only."""

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from imujax import metrics


def test_kappa_per_class_equals_sklearn_one_vs_rest():
  rng = np.random.default_rng(0)
  k = 4
  y = rng.integers(0, k, 500)
  p = np.where(rng.random(500) < 0.6, y, rng.integers(0, k, 500))
  got = metrics.kappa_per_class(metrics.confusion_matrix(y, p, k))
  want = [cohen_kappa_score(y == c, p == c) for c in range(k)]
  np.testing.assert_allclose(got, want, rtol=1e-12)


def test_kappa_per_class_is_nan_when_undefined():
  # Class 1 never occurs nor is predicted: chance agreement 1.
  y = np.array([0, 0, 2, 2])
  got = metrics.kappa_per_class(metrics.confusion_matrix(y, y, 3))
  assert got[0] == pytest.approx(1.0) and got[2] == pytest.approx(1.0)
  assert np.isnan(got[1])


def test_segments_leave_out_unlabelled_frames():
  runs = metrics.segments(np.array([0, 0, -1, 1, 1, 1, 0, -1, -1]))
  assert runs.tolist() == [[0, 2, 0], [3, 6, 1], [6, 7, 0]]


def test_event_overlap_hand_worked():
  #            t: 0  1  2  3  4  5  6  7  8  9 10 11
  y_true = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0])
  y_pred = np.array([0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
  # Class 0: true events [0,3) [5,8) [11,12); predicted [0,2) [4,6)
  #   [7,12): [0,2)~[0,3), [4,6)~[5,8), [7,12) overlaps [5,8) (taken) and
  #   [11,12): matched -> 3 matches of 3 true, 3 predicted: F1 1.
  # Class 1: true [3,5) [8,11); predicted [2,4) [6,7): [2,4)~[3,5);
  #   [6,7) overlaps nothing -> 1 match, 2 true, 2 predicted: F1 0.5.
  counts = metrics.event_overlap_counts(y_true, y_pred, 3)
  assert counts.tolist() == [[3, 3, 3], [1, 2, 2], [0, 0, 0]]
  s = metrics.event_overlap_scores(counts)
  assert s["event_f1_per_class"][:2] == [1.0, 0.5]
  assert np.isnan(s["event_f1_per_class"][2])
  assert s["event_f1"] == pytest.approx(0.75)


def test_event_overlap_is_one_to_one_and_ignores_unlabelled_truth():
  # One long prediction over two true events matches only the first.
  y_true = np.array([1, 1, 0, 1, 1])
  y_pred = np.array([1, 1, 1, 1, 1])
  assert metrics.event_overlap_counts(y_true, y_pred, 2)[1].tolist() == [
      1, 2, 1]
  # An unlabelled truth frame cuts the prediction in two there.
  y_true = np.array([1, 1, -1, 1, 1])
  assert metrics.event_overlap_counts(y_true, y_pred, 2)[1].tolist() == [
      2, 2, 2]


def test_higher_is_better_knows_the_new_keys():
  assert metrics.higher_is_better("event_f1")
  assert metrics.higher_is_better("kappa")
