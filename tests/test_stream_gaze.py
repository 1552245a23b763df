"""bench/stream_gaze.py: the 500 Hz gaze streaming table, tiny."""

from imujax.bench import stream_gaze


def test_gaze_bench_reports_p50_p99_and_the_2ms_verdict():
  rows = stream_gaze.bench(["lstm"], samples=60, hidden=8, layers=1)
  assert [(r["cell"], r["lever"]) for r in rows] == [
      ("lstm", "jit+const+donate"), ("lstm", "numpy")]
  for r in rows:
    assert 0 < r["p50_us"] <= r["p99_us"]
    assert r["p99_under_2ms"] == (r["p99_us"] < 2000)
  ckpt = stream_gaze.gaze_checkpoint("mingru", hidden=8, layers=1)
  assert ckpt.record.channel_names == ["gaze_x_deg", "gaze_y_deg"]
  assert ckpt.record.sample_rate_hz == 500
