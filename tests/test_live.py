"""Live demo: sources, bad input, HTTP, recording, and the page in a browser.

The models here have random weights (no training): what is tested is the
plumbing, so the whole file runs in well under a minute.
"""

import http.client
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import jax
import numpy as np
import pytest

from imujax import models
from imujax.bench import live as bench_live
from imujax.online import model as model_lib
from imujax.online import mvn_stream
from imujax.online import streamer
from imujax.online.live import __main__ as live
from imujax.online.live import card as card_lib
from imujax.online.live import pipeline as pipeline_lib
from imujax.online.live import record as record_lib
from imujax.online.live import server as server_lib
from imujax.online.live import session as session_lib
from imujax.online.live import sources
from imujax.datasets import mvnx
from imujax.training import run_record
from tests.conftest import REPO as REPO_ROOT
from tests.conftest import subprocess_env
from tests.test_stream import make_checkpoint
import mvnx_fixtures

CHROMIUM = "/usr/bin/chromium"
WRIST = [f"wrist_{s}_{a}" for s in ("acc", "gyr") for a in "xyz"]
CLASSES = ["walk", "<img src=x onerror=\"document.body.dataset.pwned='1'\">",
           'sit & "stand"']
SETTINGS = {"gap_policy": "interpolate", "max_gap_s": 1., "ema": 0.,
            "hysteresis": 0.}


@pytest.fixture(scope="module")
def wrist_model():
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1, num_classes=3)
  params = models.init(jax.random.key(0), cfg)
  return model_lib.Model(make_checkpoint(params, cfg, np.zeros(6), np.ones(6),
                                         WRIST, CLASSES, 50.))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
  path = tmp_path_factory.mktemp("live") / "wrist.imujax"
  return bench_live.random_artifact(str(path), WRIST, CLASSES, 50., hidden=8,
                                    layers=1)


def _start(source, model, recorder=None, settings=SETTINGS):
  session = session_lib.Session(0, model, source, card={})
  pipe = pipeline_lib.Pipeline(source, model, session, settings, recorder)
  pipe.start()
  return session, pipe


def _until(pred, timeout=20.):
  deadline = time.time() + timeout
  while time.time() < deadline and not pred():
    time.sleep(0.02)
  return pred()


def _replay(t, x=None, **kw):
  x = np.sin(np.arange(len(t))[:, None] / 7. + np.arange(6)) if x is None else x
  return sources.Replay(np.asarray(t, np.float64), x, WRIST, **kw)


def _rows(session):
  return json.loads(session.state_json(-1, 10**6))["frames"]


def test_udp_datagram_format_round_trip():
  kind, names = sources.decode_udp(sources.encode_udp_header(["a", "b"]))
  assert (kind, names) == ("header", ["a", "b"])
  gram = sources.encode_udp_sample(7, 12.5, [1., np.nan])
  assert len(gram) == 4 + 4 + 8 + 2 + 2 * 4 and gram[:4] == b"IMJD"
  kind, (seq, t, values) = sources.decode_udp(gram)
  assert (kind, seq, t, values[0]) == ("sample", 7, 12.5, 1.)
  assert np.isnan(values[1])
  for data, kind in ((b"what", "not_imujax"), (gram[:-1], "bad_size"),
                     (gram[:10], "bad_size"), (b"IMJH{\"channels\": 5}",
                                               "bad_header"),
                     (b"IMJHnull", "bad_header"), (b"IMJH[1]", "bad_header"),
                     (b"IMJH{\"channels\": [1]}", "bad_header"),
                     (b"IMJH\xff", "bad_header")):
    with pytest.raises(sources.BadPacket, match="imujax UDP") as e:
      sources.decode_udp(data)
    assert e.value.kind == kind, data


def test_udp_junk_is_counted_and_the_stream_goes_on(wrist_model):
  src = sources.open_source("udp:0", wrist_model)
  session, pipe = _start(src, wrist_model)
  x = np.sin(np.arange(60)[:, None] / 5. + np.arange(6))
  grams = [b"junk", b"IMJH{\"channels\": 5}", b"IMJHnull",
           sources.encode_udp_sample(0, 99.0, np.ones(5)),       # 5 of 6
           sources.encode_udp_sample(1, 99.0, np.ones(6))[:-3],  # truncated
           sources.encode_udp_header(WRIST[:-1] + ["wrist_mag_x"])]
  grams += [sources.encode_udp_sample(2 + i, 99 + i / 50, x[i])
            for i in range(5)]                                   # mismatch
  grams.append(sources.encode_udp_header(WRIST[::-1]))  # Picked by name.
  grams += [sources.encode_udp_sample(10 + i, 100 + i / 50, x[i, ::-1])
            for i in range(50)]                          # seq 7..9 lost
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    for g in grams:
      sock.sendto(g, ("127.0.0.1", src.port))
  assert _until(lambda: session.frame + 1 >= 50), session.health()
  pipe.stop()
  pipe.join(5)
  assert pipe.fatal is None and session.frame + 1 == 50
  dropped = session.health()["dropped"]
  assert dropped == {"not_imujax": 1, "bad_header": 2, "bad_size": 1,
                     # Lost: seq 1 (truncated, never read) and 7 to 9.
                     "wrong_value_count": 1, "lost": 4, "channel_mismatch": 5,
                     "bad_sample_shape": 0, "queue_full": 0,
                     "internal_error": 0}
  (error,) = [e["message"] for e in session.errors]
  assert "missing ['wrist_gyr_z']" in error and "wrist_mag_x" not in error
  # The frames are the model's channels in its order, whatever was sent.
  np.testing.assert_allclose(_rows(session)[0][5], x[0], atol=1e-4)


def test_a_timestamp_far_in_the_future_does_not_freeze_the_stream(
    wrist_model):
  t = np.concatenate([100 + np.arange(50) / 50, [1e9],
                      101 + np.arange(50) / 50])
  src = sources.ReplaySource(_replay(t), 0, "replay:jump", CLASSES)
  session, pipe = _start(src, wrist_model)
  assert _until(lambda: session.ended)
  assert session.frame + 1 == 101  # 50, the odd one's, then 50 again.
  h = session.health()
  assert h["repairs"]["clock_jumps_back"] == 1 and h["repairs"]["resets"] == 1
  flags = [r[3] for r in _rows(session)]
  f = session_lib.FLAGS
  assert flags[50] & f["reset"] and flags[51] & f["clock_jump"]
  assert flags[51] & f["reset"] and not any(flags[52:])


def _mvn_junk_stream(tmp_path):
  """40 MVN samples (right hand tracker), four damaged, plus junk."""
  path = tmp_path / "take.mvnx"
  mvnx_fixtures.write_mvnx(path, mvnx_fixtures.random_frames(40, version=4),
                           version=4, rate=50.)
  rec = mvnx.read(path, "all")
  grams = []
  for i, (_, (g22, g23)) in enumerate(mvn_stream.mvnx_datagrams(
      rec, types=("22", "23"))):
    d22, d23 = mvn_stream.decode(g22), mvn_stream.decode(g23)
    truncated = g23[:-2]
    if i == 10:
      g22 = b""                                   # Lost (and an empty one).
    elif i == 20:                                 # An empty type-23.
      g23 = mvn_stream.encode_items("23", i, d23.header.time_code_ms,
                                    d23.items[:0])[0]
    elif i == 25:                                 # Segment -1 (dropped).
      items = np.concatenate([d23.items, d23.items[:1]])
      items["segment_id"][-1] = -1
      g23 = mvn_stream.encode_items("23", i, d23.header.time_code_ms,
                                    items)[0]
    elif i == 30:                                 # A segment twice.
      items = np.concatenate([d22.items, d22.items[:1]])
      g22 = mvn_stream.encode_items("22", i, d22.header.time_code_ms,
                                    items)[0]
    grams += [g22, g23, b"MXTP", truncated]
  return grams


def test_mvn_junk_is_counted_and_the_stream_goes_on(wrist_model, tmp_path):
  grams = _mvn_junk_stream(tmp_path)
  src = sources.open_source("mvn:0,map=wrist:right_hand", wrist_model)
  session, pipe = _start(src, wrist_model)
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    for g in grams:
      sock.sendto(g, ("127.0.0.1", src.port))
      time.sleep(0.0005)
  assert _until(lambda: session.frame + 1 >= 40), session.health()
  pipe.stop()
  pipe.join(5)
  h = session.health()
  assert pipe.fatal is None and session.frame + 1 == 40
  d = {k: v for k, v in h["dropped"].items() if v}
  assert d == {"short_datagram": 41, "payload_size": 40, "bad_segment_id": 1,
               "duplicate_segment": 1, "channel_mismatch": 2}, d
  assert h["counts"]["incomplete_samples"] == 1
  assert h["repairs"]["gaps_interpolated"] == 3  # Samples 10, 20, 30.
  assert any("missing" in e["message"] for e in session.errors)


def _get(port, path, host=None):
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
  conn.request("GET", path,
               headers={"Host": host or f"127.0.0.1:{port}"})
  r = conn.getresponse()
  body = r.read().decode()
  conn.close()
  return r.status, dict(r.getheaders()), body


def test_http_bad_requests_answer_400_and_headers_are_strict(wrist_model):
  src = sources.ReplaySource(_replay(np.arange(20) / 50), 0, "replay:<x>.npz",
                             CLASSES)
  session, pipe = _start(src, wrist_model)
  assert _until(lambda: session.ended)
  httpd = server_lib.serve([session])
  port = httpd.server_address[1]
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  try:
    for query in ("since=abc", "since=1e99", "since=-2", "since=",
                  "since=99999999999999999999", "limit=0", "fps=nan",
                  "fps=-1"):
      status, _, body = _get(port, "/state?" + query)
      assert status == 400, query
      assert "expected" in body and query.split("=")[0] in body
    status, _, body = _get(port, "/state?since=5&limit=3&fps=9.5")
    state = json.loads(body)
    assert status == 200 and [f[0] for f in state["frames"]] == [17, 18, 19]
    assert "static" not in state and session.page["fps"] == 9.5
    state = json.loads(_get(port, "/s/0/state?since=-1")[2])
    assert state["static"]["classes"] == CLASSES
    assert _get(port, "/s/1/state")[0] == 404
    assert _get(port, "/nothing")[0] == 404
    assert _get(port, "/", host="evil.example:80")[0] == 403
    status, headers, page = _get(port, "/")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "unsafe" not in csp
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    assert server_lib._hashes(f"<script>{script}</script>", "script") in csp
    assert "innerHTML" not in page and "eval(" not in page
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(_get(port, "/streams")[2])[0]["frames"] == 20
  finally:
    httpd.shutdown()


def test_an_artifact_is_compiled_before_serving(artifact):
  model, record = live.load_model(artifact)
  assert record is None
  compiled = model._step._cache_size()  # pylint: disable=protected-access
  assert compiled >= 1
  st = streamer.Streamer(model, WRIST)
  for i in range(3):
    assert len(st.push(i / 50, np.ones(6))) == 1
  assert model._step._cache_size() == compiled  # Nothing compiled on data.
  card = card_lib.model_card(artifact, model, None)
  assert card["kind"] == "artifact" and card["cell"] == "lstm 1x8"


def test_a_long_gap_compiles_nothing_new(wrist_model):
  live.warm_up(wrist_model)
  # pylint: disable-next=protected-access
  jitted = (wrist_model._step, wrist_model._steps)
  compiled = [f._cache_size() for f in jitted]
  st = streamer.Streamer(wrist_model, WRIST)
  outs = []
  for t in (0., 0.02, 0.04, 0.9, 0.92):  # 0.86 s gap: 43 frames at once.
    outs += st.push(t, np.ones(6))
  assert len(outs) == 47
  assert [f._cache_size() for f in jitted] == compiled


def test_record_then_replay_gives_the_same_frames(wrist_model, tmp_path):
  t = np.concatenate([np.arange(40) / 50, 0.9 + np.arange(20) / 50,  # gap
                      [3.], 1.5 + np.arange(20) / 50])                # jump
  restart = np.zeros(len(t), bool)
  restart[70] = True
  replay = _replay(t, y=np.arange(len(t)) // 30 % 2, classes=["x", "walk"],
                   restart=restart)
  path = str(tmp_path / "session.npz")
  rec = record_lib.Recorder(path, wrist_model, "replay:a", SETTINGS)
  src = sources.ReplaySource(replay, 4., "replay:a", CLASSES)
  session, _ = _start(src, wrist_model, rec)
  assert _until(lambda: session.ended)
  rec.save({})
  again = str(tmp_path / "again.npz")
  rec2 = record_lib.Recorder(again, wrist_model, "replay", SETTINGS)
  src2 = sources.open_source(f"replay:{path},speed=1", wrist_model)
  session2, _ = _start(src2, wrist_model, rec2)
  assert _until(lambda: session2.ended)
  rec2.save({})
  a, b = np.load(path), np.load(again)
  for k in ("t", "x", "restart", "y", "out_t", "out_probs", "out_smoothed",
            "out_label", "out_reset"):
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  # "walk" is the model's class 0; "x" is not one of its classes.
  assert list(a["classes"]) == CLASSES and set(a["y"]) == {-1, 0}
  assert a["out_reset"].sum() == 3  # The jump, back, and the restart.
  # Released at the recorded times: never early, late by little.
  late = (b["arrival"] - b["arrival"][0]) - (a["arrival"] - a["arrival"][0])
  assert late.min() > -2e-3 and np.median(late) < 0.05, late
  assert session2.scores() == session.scores()
  meta = json.loads(str(a["meta"]))
  assert meta["settings"] == SETTINGS and meta["source"] == "replay:a"
  # A classifier's file holds what it always did (older replays still load).
  assert sorted(a.files) == sorted(
      ["t", "x", "channels", "arrival", "restart", "y", "classes", "out_t",
       "out_probs", "out_smoothed", "out_label", "out_reset", "out_done",
       "meta"])
  assert sorted(meta) == ["created", "format", "rate_hz", "settings",
                          "source"]


def test_record_then_replay_keeps_regression_and_events(tmp_path):
  """A regression + events model's session: its file holds the traces in
  physical units and the decided events, and replaying it gives them again
  bit for bit."""
  t = np.arange(600) / 50.
  x = np.sin(np.arange(len(t))[:, None] / 7. + np.arange(6))
  art, out, _ = _heads_artifact(tmp_path, x)
  path = str(tmp_path / "heads.npz")
  rec = record_lib.Recorder(path, art, "replay:h", SETTINGS)
  session, _ = _start(sources.ReplaySource(_replay(t, x), 0, "replay:h", []),
                      art, rec)
  assert _until(lambda: session.ended)
  said = rec.save({})
  again = str(tmp_path / "again.npz")
  rec2 = record_lib.Recorder(again, art, "replay", SETTINGS)
  session2, _ = _start(sources.open_source(f"replay:{path},speed=0", art),
                       art, rec2)
  assert _until(lambda: session2.ended)
  rec2.save({})
  a, b = np.load(path), np.load(again)
  assert sorted(a.files) == sorted(b.files)
  for k in ("t", "x", "restart", "out_t", "out_reset", "out_regression",
            "out_event_probs", "out_event_frame", "out_event_track",
            "out_event_decided"):
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  # The traces in the targets' units: the offline scan's, de-standardised.
  want = np.asarray(out["regression"])[0] * 0.2 + 1.5
  assert a["out_regression"].shape == (len(t), 1)
  np.testing.assert_allclose(a["out_regression"], want, atol=2e-4)
  np.testing.assert_allclose(a["out_event_probs"],
                             np.asarray(out["event_probs"])[0], atol=2e-4)
  # The events: those the page showed, (decided at, track, peak frame).
  rows = _rows(session)
  shown = [(r[0], j, f) for r in rows for j, f in r[6][1]]
  assert len(shown) > 3 and said.startswith(
      f"Recorded {len(t)} samples and {len(t)} frames, {len(shown)} events to")
  assert list(zip(
      a["out_event_decided"].tolist(), a["out_event_track"].tolist(),
      a["out_event_frame"].tolist())) == shown
  assert [list(e) for e in session.events] == [[j, f] for _, j, f in shown]
  np.testing.assert_allclose([r[6][0] for r in rows], a["out_regression"],
                             atol=1e-4)  # The page's are rounded.
  assert session2.scores() == session.scores()
  meta = json.loads(str(a["meta"]))
  assert meta["outputs"]["regression"]["units"] == ["s"]
  assert meta["outputs"]["events"]["names"] == ["a"]


def test_session_scores_and_detection_delay(wrist_model):
  src = types.SimpleNamespace(description="s", counts={}, dropped={})
  s = session_lib.Session(0, wrist_model, src, card={})
  truth = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 0]
  pred = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
  for y, p in zip(truth, pred):
    out = streamer.Output(0., np.eye(3)[p], np.eye(3)[p], p, False,
                          np.zeros(6))
    s.add(sources.Sample(0., (), np.zeros(6), 0., y), [out], 0, 0.)
  sc = s.scores()
  assert sc["accuracy"] == round(7 / 12, 4) and sc["frames"] == 12
  assert [(c["t"], c["from"], c["to"], c["delay_s"], c["status"])
          for c in sc["changes"]] == [(0.06, 0, 1, 0.04, "detected"),
                                      (0.14, 1, 2, 0.02, "detected"),
                                      (0.2, 2, 0, None, "waiting")]
  assert sc["median_delay_s"] == 0.03 and sc["missed"] == 0


def test_model_card_of_a_run_and_channel_groups(tmp_path):
  record = run_record.RunRecord(
      phase="finetune", objective="classification", dataset="seglearn_watch",
      config={}, model_config={"cell": "gru", "layers": 2, "hidden": 32},
      splits={}, labeled_recordings=[], channel_names=WRIST,
      class_names=CLASSES, sample_rate_hz=50., normalizer={},
      source={"objective": "cpc", "dataset": "sp_sw_har/watch_50hz",
              "step": 2000, "init_from": "/runs/pre"})
  (tmp_path / "summary.json").write_text(json.dumps(
      {"test": {"accuracy": 0.8, "macro_f1": 0.7, "frames": 100}}))
  model = types.SimpleNamespace(channel_names=WRIST, class_names=CLASSES,
                                sample_rate_hz=50.)
  card = card_lib.model_card(str(tmp_path), model, record)
  assert card["kind"] == "run" and card["cell"] == "gru 2x32"
  assert card["pretraining"]["objective"] == "cpc"
  assert card["test_scores"] == {"accuracy": 0.8, "macro_f1": 0.7,
                                 "frames": 100}
  groups = card_lib.channel_groups(WRIST + ["<b>x</b>", "hip_quat_w"])
  assert [(g["placement"], g["sensor"], g["unit"], g["channels"])
          for g in groups] == [("wrist", "acc", "m/s²", [0, 1, 2]),
                               ("wrist", "gyr", "rad/s", [3, 4, 5]),
                               ("<b>x</b>", "", "", [6]),
                               ("hip", "quat", "unit quat.", [7])]


def _dump(url, tmp_path):
  return subprocess.run(
      [CHROMIUM, *bench_live.CHROMIUM_FLAGS,
       f"--user-data-dir={tmp_path / 'chromium'}",
       "--virtual-time-budget=2500", "--dump-dom", url],
      capture_output=True, text=True, timeout=90).stdout


def _texts(dom, pattern):
  return re.findall(pattern, dom, re.S)


@pytest.mark.slow
def test_page_in_headless_chromium(artifact, tmp_path):
  """Two replays (one labelled, one with gaps): the overview, a stream's
  ribbon, input plot, health panel and model card, and markup in class and
  file names rendered as text."""
  if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is absent; install it with "
                "`apt-get install -y chromium` to run the browser test.")
  n = 900
  y = (np.arange(n) // 200) % 3
  x = np.sin(np.arange(n)[:, None] / 9. + np.arange(6))
  labelled = tmp_path / "<b>labelled.npz"
  np.savez(labelled, t=np.arange(n) / 50., x=x, channels=np.asarray(WRIST),
           y=y, classes=np.asarray(CLASSES))
  gappy = tmp_path / "gappy.npz"
  t = np.arange(n) / 50.
  t[300:] += 0.5    # A gap.
  t[600] = t[598]   # Out of order: dropped, a second (short) gap.
  np.savez(gappy, t=t, x=x, channels=np.asarray(WRIST))
  proc = subprocess.Popen(
      [sys.executable, "-m", "imujax.online.live", f"--model={artifact}",
       f"--source=replay:{labelled},speed=0", f"--source=replay:{gappy},"
       "speed=0", "--http_port=0", "--linger=60", "--duration=80"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=subprocess_env())
  try:
    line = proc.stdout.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, line + proc.stderr.read()
    assert "Stream" in proc.stdout.readline()
    assert "Stream" in proc.stdout.readline()  # Both replays are done.
    overview = _dump(url.group(0), tmp_path)
    dom = _dump(url.group(0) + "s/0/", tmp_path)
    dom1 = _dump(url.group(0) + "s/1/", tmp_path)
  finally:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
  assert proc.returncode == 0, err
  assert 'data-mode="overview"' in overview
  assert _texts(overview, r'<a href="(/s/\d/)">') == ["/s/0/", "/s/1/"]
  assert (f"<td>replay:{labelled}</td>".replace("<b>", "&lt;b&gt;")
          in overview)
  body = re.search(r"<body[^>]*>", dom).group(0)
  assert 'data-mode="stream"' in body and 'data-last-frame="899"' in body
  # What the model says, offline, on the same samples.
  model, _ = live.load_model(artifact)
  st = streamer.Streamer(model, WRIST)
  labels = np.asarray([o.label for i in range(n)
                       for o in st.push(i / 50., x[i])])
  assert _texts(dom, r'id="accuracy">([^<]*)<') == [
      f"{(labels == y).mean():.3f}"]
  # The ribbon: the last 10 s (500 frames) of truth, then of predictions.
  truth_runs = [CLASSES[k] for k, _ in itertools.groupby(
      y[-500:])]
  rects = _texts(dom, r'<rect [^>]*data-row="(\w+)" data-class="([^"]*)"')
  assert [c for r, c in rects if r == "truth"] == [
      c.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
      .replace('"', "&quot;") for c in truth_runs]
  pred_runs = len(list(itertools.groupby(labels[-500:])))
  assert sum(r == "prediction" for r, _ in rects) == pred_runs
  # The input plot: one figure per placement and sensor, with units.
  assert _texts(dom, r'<figure data-group="([^"]*)" data-unit="([^"]*)"') == [
      ("wrist acc", "m/s²"), ("wrist gyr", "rad/s")]
  # The health panel.
  health = dict(_texts(dom, r'<tr data-key="(\w+)"><th>[^<]*</th>'
                       r'<td class="num">([^<]*)<'))
  assert health["samples"] == "900 / 900"
  assert health["latency"].startswith("median ")
  assert set(health) >= {"input_rate", "model_rate", "queue", "resets",
                         "gaps", "cpu", "page_fps", "status"}
  assert "data-kind=\"internal_error\"" in dom
  assert "lstm 1x8" in dom  # The model card.
  # Markup from data is text: no element made from it, nothing ran.
  assert "<img" not in dom and "pwned" not in body and "<b>" not in dom
  assert "&lt;img src=x onerror=" in dom
  # The second stream: its gap is marked and counted.
  health1 = dict(_texts(dom1, r'<tr data-key="(\w+)"><th>[^<]*</th>'
                        r'<td class="num">([^<]*)<'))
  assert health1["gaps"] == "2 / 0" and health1["out_of_order"] == "1 / 0"
  assert 'data-truth-runs="0"' in dom1
  assert "Latency per sample" in out, out + err


def _heads_artifact(tmp_path, x):
  """A random model with a regression and an events head (one track "a", in
  s; targets standardised with mean 1.5 and std 0.2), exported and warmed
  up, and its offline scan of `x` [T, 6]: (artifact, scan outputs, event
  threshold: the 70% quantile of the scan's event probabilities)."""
  import dataclasses
  from imujax.objectives import events
  from imujax.objectives import regression
  from imujax.online import export
  from imujax.online import step
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1)
  opts = {"tracks": ("a",)}
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg),
            **regression.OBJECTIVE.init_heads(jax.random.key(1), cfg, opts),
            **events.OBJECTIVE.init_heads(jax.random.key(2), cfg, opts)}
  _, out = step.scan_steps(params, cfg, np.asarray(x, np.float32)[None])
  threshold = float(np.quantile(np.asarray(out["event_probs"])[0, :, 0], 0.7))
  record = run_record.RunRecord(
      phase="finetune", objective="regression", dataset="in_memory",
      config={"finetune": {"tracks": "a", "events": {
          "threshold": threshold, "delay_ms": 60.}}},
      model_config=dataclasses.asdict(cfg), splits={}, labeled_recordings=[],
      channel_names=WRIST, class_names=[], sample_rate_hz=50.,
      normalizer={"mean": [0.] * 6, "std": [1.] * 6, "target_mean": [1.5],
                  "target_std": [0.2]}, source={})
  path = tmp_path / "heads.imujax"
  export.export_checkpoint(model_lib.Checkpoint(
      record, jax.tree.map(np.asarray, params), 3), path, units=("s",))
  art = export.Artifact.load(path)
  live.warm_up(art)
  return art, out, threshold


def test_regression_and_events_models_stream_to_the_page(tmp_path):
  """A run with regression and events heads: traces in physical units and
  decoded events reach the page's rows as the offline decoder finds them."""
  from imujax import metrics
  t = np.arange(600) / 50.
  x = np.sin(np.arange(len(t))[:, None] / 7. + np.arange(6))
  art, out, threshold = _heads_artifact(tmp_path, x)
  prob = np.asarray(out["event_probs"])[0, :, 0]
  session, _ = _start(sources.ReplaySource(_replay(t, x), 0, "replay:h", []),
                      art)
  assert _until(lambda: session.ended)
  state = json.loads(session.state_json(-1, 10**6))
  assert state["static"]["outputs"]["regression"]["units"] == ["s"]
  rows = state["frames"]
  assert len(rows) == len(t) and all(len(r) == 7 for r in rows)
  want = np.asarray(out["regression"])[0, :, 0] * 0.2 + 1.5
  np.testing.assert_allclose([r[6][0][0] for r in rows], want, atol=2e-4)
  shown = sorted(f for r in rows for _, f in r[6][1])
  peaks, fired = metrics.decode_events(prob, threshold, 3)  # 60 ms: 3 frames.
  # The last open candidate fires only when the stream ends (offline: at its
  # last frame); the page shows what was decided while streaming.
  assert shown == peaks[fired < len(t) - 1].tolist() and len(shown) > 3
  decided = [r[0] - f for r in rows for _, f in r[6][1]]
  assert 0 <= min(decided) and max(decided) <= 3
  assert session.scores()["events"] == len(shown)
  page = (REPO_ROOT / "imujax/online/live/page.html").read_text()
  assert "function drawHeads" in page and 'id="heads"' in page
