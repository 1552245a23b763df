"""The I-VT baseline (gaze_lund2013/ivt.py): labels of a hand-built trace,
scores of a tiny dataset worked by hand, and the real Lund 2013 numbers the
command prints."""

import re
import subprocess
import sys

import numpy as np
import pytest

from imujax.data import input_pipeline
from imujax.datasets.gaze_lund2013 import ivt

from conftest import REPO, subprocess_env

NAMES = ("fixation", "saccade", "pso", "smooth_pursuit", "blink")
F, S, B = 0, 1, 4
NAN = np.nan


def _trace(x):
  return np.stack([np.asarray(x, np.float64), np.zeros(len(x))], 1)


def test_hand_built_trace():
  # 500 Hz: a step of 0.1 deg per sample is 50 deg/s (saccade), of 0.04
  # deg 20 deg/s (fixation).
  x = [0.0, 0.0, 0.0,          # fixation; sample 0 takes sample 1's speed 0
       0.1, 0.2, 0.3,          # saccade, 50 deg/s
       0.34, 0.38,             # drift at 20 deg/s: fixation
       NAN, NAN,               # track loss: blink
       1.0, 1.1,               # after the gap sample 10 takes sample 11's
                               # speed (50): saccade, sample 11 too
       NAN,                    # blink
       2.0,                    # a lone sample between gaps: speed 0
       NAN]
  want = [F, F, F, S, S, S, F, F, B, B, S, S, B, F, B]
  speed = ivt.sample_speed(_trace(x), 500.)
  np.testing.assert_allclose(speed[[0, 3, 6, 10, 11, 13]],
                             [0, 50, 20, 50, 50, 0], atol=1e-9)
  assert np.isnan(speed[[8, 9, 12, 14]]).all()
  assert ivt.ivt_labels(_trace(x), 500., NAMES).tolist() == want
  # The first sample of a recording that starts moving is a saccade.
  assert ivt.ivt_labels(_trace([0.0, 0.2, 0.2]), 500., NAMES).tolist() == [
      S, S, F]
  # Speed is Euclidean over both axes: (0.06, 0.08) per sample = 50 deg/s.
  xy = np.array([[0, 0], [0.06, 0.08]])
  assert ivt.ivt_labels(xy, 500., NAMES).tolist() == [S, S]
  # Without a blink class, track loss is -1 (no decision).
  assert ivt.ivt_labels(_trace([0.0, NAN]), 500., ("fixation", "saccade")
                        ).tolist() == [F, -1]


def test_threshold_is_strict_and_applies_as_given():
  # 1/16 deg per sample at 480 Hz is exactly 30 deg/s: not above 30.
  x = np.arange(4) / 16
  assert ivt.ivt_labels(_trace(x), 480., NAMES, 30.).tolist() == [F] * 4
  assert ivt.ivt_labels(_trace(x), 480., NAMES, 29.).tolist() == [S] * 4
  with pytest.raises(ValueError, match="'saccade'"):
    ivt.ivt_labels(_trace(x), 480., ("fixation", "blink"))
  with pytest.raises(ValueError, match=r"\[T, 2\]"):
    ivt.ivt_labels(np.zeros((4, 3)), 480., NAMES)


def _rec(x, labels, subject, name):
  return input_pipeline.Recording(
      _trace(x).astype(np.float32), np.asarray(labels, np.int32), subject,
      name)


def _tiny():
  # At 1 Hz with threshold 30, a step of 40 deg is a saccade.
  recs = [
      # I-VT: F F F S S F B F (sample 7, after the gap, alone: speed 0)
      _rec([0, 0, 0, 40, 80, 80, NAN, 80], [0, 0, 1, 1, 2, 0, 4, -1],
           "A", "A1"),
      _rec([0, 0, 0, 0], [3, 3, 3, 3], "A", "A2"),          # I-VT: F F F F
      _rec([0, 40, 40, 40, 40], [1, 1, 0, -1, 0], "B", "B1"),  # S S F F F
  ]
  return input_pipeline.Dataset("tiny", recs, ["gaze_x_deg", "gaze_y_deg"],
                                list(NAMES), 1.0)


def test_evaluate_on_a_tiny_dataset_worked_by_hand():
  r = ivt.evaluate(_tiny(), 30.)
  # Labelled samples (15; true row, predicted column): fixation 5 -> F;
  # saccade 1 -> F, 3 -> S; pso 1 -> S; pursuit 4 -> F; blink 1 -> B.
  want = np.zeros((5, 5), int)
  want[0, 0], want[1, 0], want[1, 1], want[2, 1] = 5, 1, 3, 1
  want[3, 0], want[4, 4] = 4, 1
  assert np.array_equal(r["confusion"], want)
  assert (r["frames"], r["recordings"], r["subjects"]) == (15, 3, 2)
  assert r["accuracy"] == pytest.approx(9 / 15)
  # One-vs-rest kappa (p_o - p_e) / (1 - p_e), n = 15:
  # fixation tp 5 fn 0 fp 5 tn 5: p_o 10/15, p_e (5*10 + 10*5)/225 -> 0.4;
  # saccade tp 3 fn 1 fp 1 tn 10: p_o 13/15, p_e (4*4 + 11*11)/225 ->
  # 58/88; pso, pursuit never predicted: 0; blink perfect: 1.
  np.testing.assert_allclose(r["kappa_per_class"],
                             [0.4, 58 / 88, 0, 0, 1], atol=1e-12)
  # Events (matched, true, predicted). A1 truth F[0,2) S[2,4) P[4,5) F[5,6)
  # B[6,7) (sample 7 unlabelled), I-VT F[0,3) S[3,5) F[5,6) B[6,7);
  # A2 truth pursuit [0,4), I-VT F[0,4); B1 truth S[0,2) F[2,3) F[4,5),
  # I-VT the same once sample 3 (unlabelled) is cut out.
  assert r["event_counts"] == [[4, 4, 5], [2, 2, 2], [0, 1, 0], [0, 1, 0],
                               [1, 1, 1]]
  np.testing.assert_allclose(r["event_f1_per_class"], [8 / 9, 1, 0, 0, 1])
  assert r["event_f1"] == pytest.approx(26 / 45)
  a, b = r["per_subject"]["A"], r["per_subject"]["B"]
  # A (11 samples): fixation tp 3 fn 0 fp 5 tn 3 -> (6/11 - 48/121) /
  # (73/121) = 18/73; saccade tp 1 fn 1 fp 1 tn 8 -> 14/36; events
  # fixation 2 of 2 true, 3 predicted: F1 4/5.
  assert a["frames"] == 11
  np.testing.assert_allclose(a["kappa_per_class"], [18 / 73, 14 / 36, 0, 0,
                                                    1], atol=1e-12)
  assert a["event_f1"] == pytest.approx((4 / 5 + 1 + 0 + 0 + 1) / 5)
  # B: everything right; classes absent from its truth and predictions: NaN.
  assert b["frames"] == 4 and b["kappa_per_class"][:2] == [1.0, 1.0]
  assert np.isnan(b["kappa_per_class"][2:]).all()
  assert b["event_f1"] == 1.0 and np.isnan(b["event_f1_per_class"][2:]).all()
  # The pooled numbers are the sum of the participants'.
  assert np.array_equal(np.add(a["confusion"], b["confusion"]), want)
  assert "saccade" in ivt.format_ivt(r, "tiny")


def test_evaluate_needs_blink_and_the_gaze_channels():
  data = _tiny()
  with pytest.raises(ValueError, match="blink"):
    ivt.evaluate(data._replace(class_names=list(NAMES[:4])))
  with pytest.raises(ValueError, match="gaze_x_deg"):
    ivt.evaluate(data._replace(channel_names=["a", "b"]))


# What `python -m imujax.datasets.gaze_lund2013 --manual_dir=../shared/data/
# gaze_lund2013 --ivt_deg_s=30` prints (the 500hz config, RA's labels else
# MN's): kappa fixation, saccade, pso, pursuit, blink; event F1.
REAL_KAPPA = {"fixation": 0.130, "saccade": 0.432, "pso": 0.0,
              "smooth_pursuit": 0.0, "blink": 0.581}
REAL_EVENT_F1 = 0.205


def test_real_data(shared_data, tfds_dir):
  raw = shared_data / "gaze_lund2013"
  if not (raw / "annotated_data").is_dir():
    pytest.skip(f"{raw}/annotated_data is absent from the shared folder.")
  data = input_pipeline.load("gaze_lund2013/500hz", data_dir=tfds_dir,
                             manual_dir=str(raw))
  r = ivt.evaluate(data, 30.)
  assert (r["recordings"], r["subjects"], r["frames"]) == (63, 30, 447_508)
  kappa = dict(zip(r["class_names"], r["kappa_per_class"]))
  assert kappa["saccade"] == pytest.approx(REAL_KAPPA["saccade"], abs=0.01)
  for name, want in REAL_KAPPA.items():
    assert kappa[name] == pytest.approx(want, abs=5e-4), name
  assert r["event_f1"] == pytest.approx(REAL_EVENT_F1, abs=5e-4)
  assert len(r["per_subject"]) == 30
  # The command reads the same prepared data through its own loader (the
  # datasets layer may not import imujax.data) and prints these numbers.
  out = subprocess.run(
      [sys.executable, "-m", "imujax.datasets.gaze_lund2013",
       f"--manual_dir={raw}", f"--data_dir={tfds_dir}", "--ivt_deg_s=30"],
      capture_output=True, text=True, cwd=REPO, env=subprocess_env(),
      check=True, timeout=300).stdout
  assert out == ivt.format_ivt(
      r, "gaze_lund2013/500hz (labels: the config's rater)") + "\n"
  assert re.search(r"^  saccade +0\.432 ", out, re.M), out
