"""Live demo: sources through the pipeline, and the page in a real browser."""

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from imujax.online import model as model_lib
from imujax.online import streamer
from imujax.online.live import __main__ as live
from imujax.online.live import sources
from tests.conftest import subprocess_env
from tests.test_stream import make_run
import mvnx_fixtures

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tfds_dir, watch_data):
  return make_run(tmp_path_factory, tfds_dir)


def _args(**kw):
  return argparse.Namespace(**{"gap_policy": "interpolate", "max_gap_s": 1.,
                               "ema": 0., "hysteresis": 0., **kw})


def _pipeline(source, model):
  state = live.State(model.class_names, source.description)
  stop = threading.Event()
  stats = {"samples": 0, "latency": [], "error": None}

  def work():
    try:
      live.run_pipeline(source, model, state, _args(), stop, stats)
    except Exception as e:  # Checked by the test.
      stats["error"] = e
  thread = threading.Thread(target=work, daemon=True)
  thread.start()
  return state, stats, stop, thread


def _finish(source, stop, thread, state, until):
  deadline = time.time() + 20
  while time.time() < deadline and not until():
    time.sleep(0.05)
  stop.set()
  source.close()
  thread.join(5)


def test_udp_datagram_format_round_trip():
  kind, names = sources.decode_udp(sources.encode_udp_header(["a", "b"]))
  assert (kind, names) == ("header", ["a", "b"])
  gram = sources.encode_udp_sample(7, 12.5, [1., np.nan])
  assert len(gram) == 4 + 4 + 8 + 2 + 2 * 4 and gram[:4] == b"IMJD"
  kind, (seq, t, values) = sources.decode_udp(gram)
  assert (kind, seq, t, values[0]) == ("sample", 7, 12.5, 1.)
  assert np.isnan(values[1])
  with pytest.raises(ValueError, match="imujax UDP"):
    sources.decode_udp(b"what")


def test_udp_source_through_the_pipeline(run_dir, watch_data):
  ckpt = model_lib.load(run_dir)
  model = model_lib.Model(ckpt)
  names = ckpt.record.channel_names
  src = sources.open_source("udp:0", model)
  state, stats, stop, thread = _pipeline(src, model)
  x = watch_data.recordings[0].signals[:50]
  t = 100. + np.arange(50) / 50.
  sources.udp_sender(src.port, t, x, names, speed=0)
  _finish(src, stop, thread, state, lambda: state.frame + 1 >= 50)
  assert stats["error"] is None
  assert state.frame + 1 == 50 and src.counts["headers"] == 1
  assert state.since(40)["frames"][0]["frame"] == 41

  # A header naming other channels stops the stream with a clear error.
  src = sources.open_source("udp:0", model)
  state, stats, stop, thread = _pipeline(src, model)
  sources.udp_sender(src.port, t[:3], x[:3], names[:-1] + ["wrist_mag_x"],
                     speed=0)
  _finish(src, stop, thread, state, lambda: stats["error"] is not None)
  assert isinstance(stats["error"], streamer.ChannelMismatchError)
  assert "wrist_gyr_z" in str(stats["error"])
  assert "wrist_mag_x" in str(stats["error"])


def test_mvn_source_through_the_pipeline(run_dir, tmp_path):
  from imujax.online import mvn_stream
  model = model_lib.Model(model_lib.load(run_dir))
  path = tmp_path / "take.mvnx"
  mvnx_fixtures.write_mvnx(path, mvnx_fixtures.random_frames(40, version=4),
                           version=4, rate=50.)
  src = sources.open_source("mvn:0,map=wrist:right_hand", model)
  state, stats, stop, thread = _pipeline(src, model)
  mvn_stream.send_mvnx(path, src.port, speed=4, types=("22", "23"))
  _finish(src, stop, thread, state, lambda: state.frame + 1 >= 40)
  assert stats["error"] is None
  assert state.frame + 1 == 40  # 40 frames at the model's 50 Hz.


@pytest.mark.slow
def test_page_updates_in_headless_chromium(run_dir, watch_data, tmp_path):
  if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is absent; install it with "
                "`apt-get install -y chromium` to run the browser test.")
  replay = tmp_path / "replay.npz"
  x = np.concatenate([r.signals for r in watch_data.recordings[:2]])
  np.savez(replay, t=np.arange(len(x)) / 50., x=x,
           channels=np.asarray(watch_data.channel_names))
  proc = subprocess.Popen(
      [sys.executable, "-m", "imujax.online.live", f"--model={run_dir}",
       f"--source=replay:{replay},speed=2", "--http_port=0",
       "--duration=120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True, env=subprocess_env())
  try:
    line = proc.stdout.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, line + proc.stderr.read()
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}",
         "--virtual-time-budget=3000", "--dump-dom", url.group(0)],
        capture_output=True, text=True, timeout=90).stdout
  finally:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
  body = dict(re.findall(r'data-([a-z-]+)="(-?\d+)"',
                         re.search(r"<body[^>]*>", dom).group(0)))
  assert int(body["updates"]) >= 2, dom[:2000]
  assert int(body["last-frame"]) > int(body["first-frame"]) >= 0
  assert int(body["points"]) >= 2
  label = re.search(r'<div id="label">([^<]*)<', dom).group(1)
  assert label in watch_data.class_names
  assert "Latency per sample" in out, out + err
  assert proc.returncode == 0, err
