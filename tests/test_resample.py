"""resample_to_grid against analytic references and hand-checked labels."""

import numpy as np
import pytest

from imujax.datasets import resample
from imujax.datasets.resample import ResampleError, resample_to_grid


def _jittered_times(n, rate, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(n) / rate + rng.uniform(-0.2, 0.2, n) / rate
  t[0] = 0.0
  return 1.6e9 + np.sort(t)  # Unix-epoch offsets must not cost precision.


def test_linear_ramp_is_exact_on_irregular_grid():
  t = _jittered_times(500, 100.0)
  x = np.stack([3.0 * (t - t[0]) - 1.0, -2.0 * (t - t[0])], axis=1)
  out = resample_to_grid(t, x, None, 50.0, source="ramp")
  rel = out.timestamps_s - t[0]
  np.testing.assert_allclose(np.diff(rel), 0.02, atol=1e-6)
  assert rel[0] == 0.0 and rel[-1] <= t[-1] - t[0]
  np.testing.assert_allclose(out.signals[:, 0], 3.0 * rel - 1.0, atol=1e-5)
  np.testing.assert_allclose(out.signals[:, 1], -2.0 * rel, atol=1e-5)
  assert out.signals.dtype == np.float32 and out.labels == {}
  assert out.repairs == dict.fromkeys(resample.REPAIR_KEYS, 0)


def test_sine_is_near_exact():
  t = _jittered_times(2000, 100.0, seed=1)
  f = 1.5  # Hz, far below the sample rate: linear interpolation error tiny.
  x = np.sin(2 * np.pi * f * (t - t[0]))[:, None]
  out = resample_to_grid(t, x, None, 30.0, source="sine")
  ref = np.sin(2 * np.pi * f * (out.timestamps_s - t[0]))
  # Bound of linear interpolation: (dt^2 / 8) * max|x''|.
  bound = (np.diff(t).max() ** 2 / 8) * (2 * np.pi * f) ** 2
  assert np.abs(out.signals[:, 0] - ref).max() <= bound + 1e-6


def test_frame_count_and_native_rate():
  t = np.arange(0, 101) * 0.01  # 1.00 s at 100 Hz.
  x = np.zeros((101, 1))
  assert len(resample_to_grid(t, x, None, 50.0, source="s").timestamps_s) == 51
  assert len(resample_to_grid(t, x, None, 30.0, source="s").timestamps_s) == 31
  native = resample_to_grid(t, x, None, None, source="s")
  np.testing.assert_allclose(native.timestamps_s, t, atol=1e-12)
  assert resample.native_rate_hz(t) == pytest.approx(100.0)


def test_label_hold_by_hand():
  t = np.array([0.0, 0.1, 0.25, 0.3, 0.5])
  x = np.zeros((5, 1))
  y = np.array([0, 1, 2, 3, 4])
  out = resample_to_grid(t, x, {"labels": y, "labels_b": -y}, 10.0, source="s")
  # Frames at 0.0 .. 0.5 s; the label in force is that of the last sample <= t.
  # 0.2 s falls between the samples at 0.1 and 0.25 s: sample 1 holds; the
  # sample at 0.25 s is superseded at 0.3 s before any frame sees it.
  np.testing.assert_array_equal(out.labels["labels"], [0, 1, 1, 3, 3, 4])
  np.testing.assert_array_equal(out.labels["labels_b"], [0, -1, -1, -3, -3, -4])
  assert out.labels["labels"].dtype == np.int32


def test_duplicates_keep_last_and_are_counted():
  t = np.array([0.0, 0.1, 0.1, 0.1, 0.2])
  x = np.array([[0.0], [5.0], [6.0], [1.0], [2.0]])
  y = np.array([0, 0, 0, 1, 1])
  out = resample_to_grid(t, x, {"labels": y}, 10.0, source="s")
  np.testing.assert_allclose(out.signals[:, 0], [0.0, 1.0, 2.0])
  np.testing.assert_array_equal(out.labels["labels"], [0, 1, 1])
  assert out.repairs["duplicate_timestamps_dropped"] == 2


def test_short_nonfinite_run_interpolated_and_counted():
  t = np.arange(20) * 0.1
  x = np.stack([t * 2.0, -t], axis=1)
  x[5:8, 0] = np.nan
  x[12, 1] = np.inf
  x[0, 1] = np.nan  # At the edge: held from the first finite neighbour.
  out = resample_to_grid(t, x, None, None, source="s", max_nonfinite_run=3)
  np.testing.assert_allclose(out.signals[:, 0], t * 2.0, atol=1e-6)
  np.testing.assert_allclose(out.signals[1:, 1], -t[1:], atol=1e-6)
  assert out.signals[0, 1] == pytest.approx(-0.1)
  assert out.repairs["nonfinite_samples_interpolated"] == 5


def test_long_nonfinite_run_is_an_error_naming_the_line():
  t = np.arange(30) * 0.01
  x = np.ones((30, 2))
  x[10:25, 1] = np.nan
  with pytest.raises(ResampleError, match=r"rec\.csv:12: 15 consecutive "
                     r"non-finite values in channel 1") as e:
    resample_to_grid(t, x, None, 50.0, source="rec.csv", first_line=2)
  assert e.value.index == 10


def test_all_nan_channel_is_an_error():
  with pytest.raises(ResampleError, match="channel 0 has no finite value"):
    resample_to_grid(np.arange(3.0), np.full((3, 1), np.nan), None, 1.0,
                     source="s")


def test_out_of_order_is_an_error_naming_the_sample():
  t = np.array([0.0, 0.1, 0.2, 0.15, 0.3])
  with pytest.raises(ResampleError, match=r"f\.csv: sample 3: .* earlier .*"
                     r"sort the file by time") as e:
    resample_to_grid(t, np.zeros((5, 1)), None, 10.0, source="f.csv")
  assert e.value.index == 3
  lines = np.array([2, 3, 5, 9, 10])  # A reader that skipped lines says so.
  with pytest.raises(ResampleError, match=r"f\.csv:9: timestamp"):
    resample_to_grid(t, np.zeros((5, 1)), None, 10.0, source="f.csv",
                     first_line=lines)


def test_nonfinite_timestamp_is_an_error():
  with pytest.raises(ResampleError, match="sample 1: timestamp is nan"):
    resample_to_grid(np.array([0.0, np.nan, 1.0]), np.zeros((3, 1)), None,
                     1.0, source="s")


def test_gaps_counted_and_long_gap_is_an_error():
  t = np.concatenate([np.arange(10) * 0.01, 0.5 + np.arange(10) * 0.01])
  x = (t * 4.0)[:, None]
  out = resample_to_grid(t, x, None, 100.0, source="s")
  np.testing.assert_allclose(out.signals[:, 0], 4.0 * (out.timestamps_s),
                             atol=1e-5)
  assert out.repairs["gaps_interpolated"] == 1
  with pytest.raises(ResampleError, match=r"s:11: 0\.410 s since the previous"):
    resample_to_grid(t, x, None, 100.0, source="s", max_gap_s=0.2,
                     first_line=1)


@pytest.mark.parametrize("t,x,labels,match", [
    (np.zeros(1), np.zeros((1, 1)), None, "at least 2"),
    (np.zeros(3), np.zeros((3, 1)), None, "share one timestamp"),
    (np.arange(3.0), np.zeros((4, 1)), None, "one row per timestamp"),
    (np.arange(3.0), np.zeros((3, 1)), {"labels": np.zeros(2)}, "one label"),
])
def test_bad_shapes(t, x, labels, match):
  with pytest.raises(ResampleError, match=match):
    resample_to_grid(t, x, labels, 10.0, source="s")


def test_span_puts_the_grid_on_a_given_interval():
  t = np.arange(0, 101) * 0.01 + 5.0
  x = (t * 2.0)[:, None]
  y = (t >= 5.5).astype(int)
  out = resample_to_grid(t, x, {"labels": y}, 20.0, source="s",
                         span_s=(5.23, 5.9))
  np.testing.assert_allclose(out.timestamps_s, 5.23 + np.arange(14) * 0.05)
  np.testing.assert_allclose(out.signals[:, 0], 2.0 * out.timestamps_s,
                             rtol=1e-6)
  np.testing.assert_array_equal(out.labels["labels"], [0] * 6 + [1] * 8)
  with pytest.raises(ResampleError, match="not inside"):
    resample_to_grid(t, x, None, 20.0, source="s", span_s=(4.0, 5.5))
