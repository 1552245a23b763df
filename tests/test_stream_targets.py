"""Streaming evaluation, stream pool and NumPy model of regression / events /
prediction runs (issue 18): the streamed scores equal the offline ones.

A synthetic run (random params, in-memory recordings) against the offline
evaluation's `predict` + `score`, every kind; the online event decoder
against `metrics.decode_events`; then tiny real fine-tunes (mobilised,
6 steps) through `python -m imujax.online.stream`, against their summary.
"""

import dataclasses
import functools

import jax
import numpy as np
import pytest

from imujax import metrics
from imujax import models
from imujax import objectives
from imujax.data import input_pipeline as ip
from imujax.objectives import events
from imujax.objectives import options
from imujax.online import model as online_model
from imujax.online import numpy_model
from imujax.online import stream
from imujax.online import stream_pool
from imujax.online import stream_targets
from imujax.training import loop
from imujax.training import run_record
from tests import test_targets

RATE = 50.
HEADS = {"regression": "regressor", "events": "event_detector",
         "prediction": "predictor"}


def _recordings(seed=0, n=5, channels=3):
  rng = np.random.default_rng(seed)
  recs = []
  for i in range(n):
    t = int(rng.integers(40, 130))
    track = np.zeros(t, np.int32)
    track[rng.choice(t, 4, replace=False)] = 1
    track[:3] = -1  # Unknown frames.
    target = rng.normal(1., 0.3, t).astype(np.float32)
    target[rng.random(t) < 0.2] = np.nan
    recs.append(ip.Recording(
        rng.normal(2., 3., (t, channels)).astype(np.float32),
        np.zeros(t, np.int32), f"s{i % 2}", f"r{i}",
        tracks={"ic": track}, targets={"speed": target}))
  return recs


def _checkpoint(kind, cell="lstm", channels=3):
  cfg = models.ModelConfig(in_dim=channels, hidden=8, layers=2, cell=cell)
  tracks = "" if kind == "prediction" else ("ic" if kind == "events"
                                           else "speed")
  finetune = {"tracks": tracks, "events": {"threshold": 0.5,
                                           "delay_ms": 60.},
              "prediction": {"horizons_ms": "40,100"}}
  record = run_record.RunRecord(
      phase="finetune", objective=kind, dataset="toy",
      config={"finetune": finetune}, model_config=dataclasses.asdict(cfg),
      splits={"test": ["s0", "s1"]}, labeled_recordings=[],
      channel_names=["a", "b", "c"][:channels], class_names=[],
      sample_rate_hz=RATE,
      normalizer={"mean": [2.] * channels, "std": [3.] * channels,
                  "target_mean": [1.1], "target_std": [0.25]},
      source={})
  opts = stream_targets.target_options(record)
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg),
            **objectives.get(kind).init_heads(jax.random.key(1), cfg, opts)}
  # Spread the event probabilities around the threshold.
  if kind == "events":
    params["event_detector"]["w"] = params["event_detector"]["w"] * 8.
  return online_model.Checkpoint(record, jax.tree.map(np.asarray, params), 6)


def _offline(ckpt, recs):
  """The offline evaluation (training/evaluate.py) of a target run."""
  record, kind = ckpt.record, ckpt.record.objective
  opts = stream_targets.target_options(record)
  norm = ip.Normalizer(ckpt.mean, ckpt.std, record.channel_names)
  stats = {k: np.asarray(record.normalizer[k], np.float32)
           for k in ("target_mean", "target_std")}
  batch = next(ip.whole_recordings(recs, norm, 8, ip.padded_length(recs)))
  obj = objectives.get(kind)
  out = np.asarray(jax.jit(functools.partial(
      obj.predict, cfg=record.model, opts=opts))(
          ckpt.params, {"signals": batch["signals"]}, stats))
  outputs = [out[b, :len(r.labels)] for b, r in enumerate(recs)]
  cut = [{k: v[b, :len(r.labels)] for k, v in batch.items()}
         for b, r in enumerate(recs)]
  return obj.score(outputs, cut, stats, opts)


def _close(streamed, offline, keys):
  for k in keys:
    assert streamed[k] == pytest.approx(offline[k], rel=1e-5, abs=1e-5,
                                        nan_ok=True), k


@pytest.mark.parametrize("kind", ["regression", "events", "prediction"])
def test_streamed_scores_equal_the_offline_evaluation(kind):
  recs = _recordings()
  ckpt = _checkpoint(kind)
  got = stream_targets.evaluate_targets(ckpt, recs, ("m/s",))
  want = _offline(ckpt, recs)
  assert got["kind"] == kind and set(got["per_subject"]) == {"s0", "s1"}
  s = got["scores"]
  if kind == "regression":
    _close(s, want, ("mae", "rmse", "r2", "pearson_r", "frames"))
    assert s["per_target"]["speed"]["unit"] == "m/s"
  elif kind == "events":
    assert want["detected"] > 3 and s["matched"] > 0
    _close(s, want, ("precision", "recall", "f1", "timing_error_ms_mean",
                     "delay_ms_mean", "events", "detected", "matched"))
    # Decided at most tolerance + delay after the true event: 40 + 60 ms.
    assert 0 <= s["delay_ms_median"] <= s["delay_ms_p95"] <= (
        s["delay_ms_max"]) <= s["tolerance_ms"] + s["decoder_delay_ms"]
    assert s["decoder_delay_ms"] == 60. and s["tolerance_ms"] == 40.
  else:
    _close(s, want, ("rmse_40ms", "rmse_last_100ms", "rmse_velocity_100ms",
                     "rmse_100ms"))
  assert stream_targets.format_table(got).count("\n") >= 2


def test_online_decoder_matches_decode_events():
  rng = np.random.default_rng(4)
  probs = [np.convolve(rng.random(n), np.ones(4) / 4, "same")[:, None]
           ** 2 * 2.5 for n in (50, 120, 80)]
  probs = [np.concatenate([p, p[::-1]], 1) for p in probs]
  for delay in (0, 3):
    got = stream_targets.decode_online(probs, 0.5, delay)
    for p, rec in zip(probs, got):
      for j in range(2):
        peaks, fired = metrics.decode_events(p[:, j], 0.5, delay)
        np.testing.assert_array_equal(rec[j][0], peaks)
        np.testing.assert_array_equal(rec[j][1], fired)


@pytest.mark.parametrize("kind", ["regression", "events"])
def test_pool_and_numpy_model_stream_target_heads(kind):
  recs = _recordings(1, n=3)
  ckpt = _checkpoint(kind)
  outputs, _ = stream_targets.stream_outputs(ckpt, recs)
  key = "event_probs" if kind == "events" else "regression"
  want = [o[key] for o in outputs]
  if kind == "regression":
    want = [w * 0.25 + 1.1 for w in want]
  pool = stream_pool.StreamPool(ckpt, num_streams=4)
  np_model = numpy_model.NumpyModel(ckpt)
  state = np_model.init_state(len(recs))
  for t in range(max(len(r.labels) for r in recs)):
    live = [i for i, r in enumerate(recs) if t < len(r.labels)]
    frames = np.stack([recs[i].signals[t] for i in live])
    got = pool.step_outputs(np.asarray(live), frames)[key]
    x = np.stack([recs[i].signals[min(t, len(recs[i].labels) - 1)]
                  for i in range(len(recs))])
    state, np_out = np_model.step_outputs(state, x)
    for row, i in enumerate(live):
      np.testing.assert_allclose(got[row], want[i][t], atol=1e-5)
      np.testing.assert_allclose(np_out[key][i], want[i][t], atol=1e-5)
  with pytest.raises(ValueError, match="step_outputs"):
    pool.step([0], recs[0].signals[:1])
  with pytest.raises(ValueError, match="step_outputs"):
    np_model.step(np_model.init_state(1), recs[0].signals[:1])


def test_target_options_are_the_validated_options_with_the_tracks():
  opts = stream_targets.target_options(_checkpoint("events").record)
  assert opts["tracks"] == ("ic",) and opts["delay_ms"] == 60.
  assert set(options.validate("events")) <= set(opts)
  assert events.frames(opts["tolerance_ms"], RATE) == 2


# ------------------------------------------------------- tiny real runs
@pytest.mark.parametrize("target,tracks", [
    ("regression", "walking_speed"), ("events", "initial_contact")])
def test_stream_cli_equals_the_run_test_scores(tmp_path, tfds_dir,
                                               mobilised_args, target,
                                               tracks, capsys):
  config = test_targets._finetune_config(tfds_dir, mobilised_args + (
      f",finetune.target={target},finetune.tracks={tracks}"))
  summary = loop.train_and_evaluate(config, str(tmp_path), "finetune")
  got = stream.main([f"--workdir={tmp_path}", "--split=test",
                     f"--data_dir={tfds_dir}",
                     f"--json={tmp_path / 'stream.json'}"])
  test = summary["test"]
  keys = (("mae", "rmse", "r2", "pearson_r", "frames")
          if target == "regression" else
          ("precision", "recall", "f1", "timing_error_ms_mean",
           "delay_ms_mean", "events", "detected", "matched"))
  _close(got["scores"], test, keys)
  for subject, own in test["per_subject"].items():
    _close(got["per_subject"][subject], own, keys)
  printed = capsys.readouterr().out
  assert ("MAE" in printed) if target == "regression" else (
      "delay median / p95" in printed)
  assert (tmp_path / "stream.json").exists()


mobilised_args = test_targets.mobilised_args
