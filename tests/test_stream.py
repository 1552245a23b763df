"""Streaming: step == scan, online == offline preprocessing, gaps, metrics."""

import dataclasses
import json
import sys

from etils import epath
import jax
import numpy as np
import pytest

from imujax.data import input_pipeline
from imujax import models
from imujax.online import model
from imujax.online import numpy_model
from imujax.online import resampler
from imujax.online import step
from imujax.online import stream
from imujax.online import streamer
from imujax.training import loop
from imujax.training import run_record
from imujax.datasets import resample
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py


def make_run(tmp_path_factory, tfds_dir) -> str:
  """A real fine-tuned run (2-layer LSTM, 10 steps), trained once a session.

  Shared by the stream, export and live tests through the session's base
  temporary folder.
  """
  workdir = tmp_path_factory.getbasetemp() / "stream_run"
  if not (workdir / "summary.json").exists():
    config = test_config.get_config(
        "mode=finetune,data.labeled_subjects=0,model.layers=2,"
        "finetune.steps=10,finetune.warmup_steps=2,log_every=10,"
        "eval_every=10,checkpoint_every=10")
    config.data.data_dir = tfds_dir
    loop.train_and_evaluate(config, str(workdir), "finetune")
  return str(workdir)


def make_checkpoint(params, cfg: models.ModelConfig, mean, std,
                    channel_names, class_names,
                    sample_rate_hz: float) -> model.Checkpoint:
  """An in-memory run (no workdir) of `params`, for the online wrappers."""
  record = run_record.RunRecord(
      phase="finetune", objective="classification", dataset="in_memory",
      config={}, model_config=dataclasses.asdict(cfg), splits={},
      labeled_recordings=[], channel_names=list(channel_names),
      class_names=list(class_names), sample_rate_hz=float(sample_rate_hz),
      normalizer={"mean": np.asarray(mean).tolist(),
                  "std": np.asarray(std).tolist()}, source={})
  return model.Checkpoint(record, jax.tree.map(np.asarray, params), 0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tfds_dir, watch_data):
  return make_run(tmp_path_factory, tfds_dir)


def _probs_offline(params, cfg, x):
  return np.asarray(jax.nn.softmax(models.classify_sequence(params, cfg, x)))


@pytest.mark.parametrize("cell,layers,layer_norm", [
    ("rnn", 1, False), ("lstm", 2, True), ("gru", 2, True)])
def test_step_reproduces_scan_on_a_real_recording(watch_data, cell, layers,
                                                  layer_norm):
  cfg = models.ModelConfig(in_dim=6, cell=cell, hidden=16, layers=layers,
                           layer_norm=layer_norm, num_classes=7)
  params = models.init(jax.random.key(1), cfg)
  norm = input_pipeline.Normalizer.fit(watch_data.recordings,
                                       watch_data.channel_names)
  x = norm(watch_data.recordings[0].signals)[None].astype(np.float32)
  _, out = step.scan_steps(params, cfg, x)
  np.testing.assert_allclose(out["probs"], _probs_offline(params, cfg, x),
                             atol=1e-5)


def test_a_donating_step_takes_a_fresh_lstm_carry():
  """The LSTM's (c, h) are two buffers, so a jitted step may donate both."""
  cfg = models.ModelConfig(in_dim=3, cell="lstm", hidden=8, layers=2,
                           num_classes=2)
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (2, 5, 3))
  ref_h, ref_state = models.encode(params["encoder"], cfg, x)
  encoder_step = jax.jit(models.encoder_step, static_argnums=1,
                         donate_argnums=2)
  online_step = jax.jit(step.step, static_argnums=1, donate_argnums=2)
  for fn, p in ((encoder_step, params["encoder"]), (online_step, params)):
    state = step.init_state(cfg, 2)
    first = state[0][0]
    for t in range(x.shape[1]):
      state, out = fn(p, cfg, state, x[:, t])
    assert first.is_deleted()  # Donated, not copied.
    h = out if fn is encoder_step else out["logits"]
    want = (ref_h[:, -1] if fn is encoder_step
            else models.classify(params, ref_h[:, -1]))
    np.testing.assert_allclose(h, want, atol=1e-5)
    np.testing.assert_allclose(jax.tree.leaves(state),
                               jax.tree.leaves(ref_state), atol=1e-5)
  # The check has teeth: one buffer shared by c and h is refused.
  zeros = jax.numpy.zeros((2, 8))
  shared = [(zeros, zeros), step.init_state(cfg, 2)[1]]
  with pytest.raises(ValueError, match="donate the same buffer"):
    encoder_step(params["encoder"], cfg, shared, x[:, 0])


def test_frame_by_frame_step_of_a_loaded_run(run_dir, watch_data):
  ckpt = model.load(run_dir)
  record, cfg = ckpt.record, ckpt.record.model
  assert cfg == run_record.read(run_dir).model
  assert (cfg.cell, cfg.layers, cfg.hidden) == ("lstm", 2, 16)
  assert ckpt.step == 10
  assert record.channel_names == watch_data.channel_names
  assert record.class_names == watch_data.class_names
  assert record.sample_rate_hz == watch_data.sample_rate_hz
  rec = watch_data.recordings[1]._replace(
      signals=watch_data.recordings[1].signals[:300])
  x = ((rec.signals - ckpt.mean) / ckpt.std).astype(np.float32)
  ref = _probs_offline(ckpt.params, cfg, x[None])[0]
  jitted = jax.jit(step.step, static_argnums=1)
  state = step.init_state(cfg, 1)
  got = []
  for t in range(len(x)):
    state, out = jitted(ckpt.params, cfg, state, x[t:t + 1])
    got.append(np.asarray(out["probs"][0]))
  np.testing.assert_allclose(np.stack(got), ref, atol=1e-5)

  # The host pipeline on RAW frames: the run's saved normaliser is applied.
  one = streamer.Streamer(model.Model(ckpt), record.channel_names)
  outs = []
  for i, frame in enumerate(rec.signals):
    outs += one.push(i / record.sample_rate_hz, frame)
  np.testing.assert_allclose(np.stack([o.probs for o in outs]),
                             ref[:len(outs)], atol=1e-5)
  assert len(outs) == len(x)


@pytest.mark.parametrize("cell,layers,layer_norm,adapter_dim", [
    ("rnn", 1, False, 0), ("lstm", 2, True, 0), ("lstm", 2, False, 8),
    ("gru", 2, True, 0)])
def test_numpy_model_equals_the_training_scan(watch_data, cell, layers,
                                              layer_norm, adapter_dim):
  cfg = models.ModelConfig(in_dim=6, cell=cell, hidden=16, layers=layers,
                           layer_norm=layer_norm, adapter_dim=adapter_dim,
                           num_classes=7)
  params = models.init(jax.random.key(2), cfg)
  norm = input_pipeline.Normalizer.fit(watch_data.recordings,
                                       watch_data.channel_names)
  raw = watch_data.recordings[2].signals[:400].astype(np.float32)
  ckpt = make_checkpoint(params, cfg, norm.mean, norm.std,
                         watch_data.channel_names, watch_data.class_names,
                         watch_data.sample_rate_hz)
  ref = _probs_offline(params, cfg, ((raw - ckpt.mean) / ckpt.std)[None])[0]
  npm = numpy_model.NumpyModel(ckpt)
  state, got = npm.init_state(1), []
  for frame in raw:
    state, probs = npm.step(state, frame[None])
    got.append(probs[0])
  np.testing.assert_allclose(np.stack(got), ref, atol=1e-5)
  # Frames far outside the training range saturate the gates without
  # overflow warnings or NaN.
  with np.errstate(all="raise"):
    _, probs = npm.step(npm.init_state(1), raw[:1] * 1e4)
  assert np.isfinite(probs).all()


def test_numpy_model_streams_a_loaded_run_like_the_jitted_model(run_dir):
  ckpt = model.load(run_dir)
  rng = np.random.default_rng(3)
  x = rng.normal(size=(60, 6)) * ckpt.std + ckpt.mean
  outs = {}
  for name, m in (("jax", model.Model(ckpt)),
                  ("numpy", numpy_model.NumpyModel(ckpt))):
    s = streamer.Streamer(m, ckpt.record.channel_names, gap_policy="reset")
    outs[name] = []
    for i in range(60):  # A gap after frame 30: both reset their state.
      outs[name] += s.push(i / 50 + (1. if i >= 30 else 0.), x[i])
  assert [o.reset for o in outs["jax"]] == [o.reset for o in outs["numpy"]]
  np.testing.assert_allclose([o.probs for o in outs["numpy"]],
                             [o.probs for o in outs["jax"]], atol=1e-5)


def test_load_errors(run_dir, tmp_path):
  root = tmp_path / "compare"
  (root / "pretrained").mkdir(parents=True)
  (root / "pretrained" / "run.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match="pretrained"):
    model.load(str(root))
  pretext = tmp_path / "pretext"
  pretext.mkdir()
  info = json.loads((epath.Path(run_dir) / "run.json").read_text())
  info["model_config"]["num_classes"] = 0
  info["objective"] = "masked_reconstruction"
  (pretext / "run.json").write_text(json.dumps(info))
  with pytest.raises(ValueError, match="without a classifier"):
    model.load(str(pretext))
  # run.json's shape is the one source: a checkpoint of another shape is
  # refused, naming the file, not silently re-shaped.
  other = tmp_path / "other"
  other.mkdir()
  info = json.loads((epath.Path(run_dir) / "run.json").read_text())
  info["model_config"]["hidden"] = 32
  (other / "run.json").write_text(json.dumps(info))
  (other / "checkpoints").symlink_to(epath.Path(run_dir) / "checkpoints")
  with pytest.raises(ValueError, match="model_config"):
    model.load(str(other))


def _irregular(rec, rate, seed):
  """A real recording's samples at jittered times with drops and NaN runs."""
  rng = np.random.default_rng(seed)
  n = len(rec.signals)
  t = 1.7e9 + (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / rate
  keep = rng.uniform(size=n) > 0.1
  keep[:2] = keep[-1] = True
  t, x = t[keep], rec.signals[keep].astype(np.float64)
  x[40:43, 2] = np.nan
  x[100, :] = np.nan
  return t, x


@pytest.mark.parametrize("seed", [0, 1])
def test_online_resampler_equals_offline_resample_to_grid(watch_data, seed):
  rec = watch_data.recordings[seed]
  t, x = _irregular(rec, 50., seed)
  off = resample.resample_to_grid(t, x, None, 50., source="test")
  r = resampler.OnlineResampler(50., x.shape[1])
  times, frames = [], []
  for ti, xi in zip(t, x):
    tt, ff, reset = r.push(ti, xi)
    assert not reset
    times.append(tt)
    frames.append(ff)
  tt, ff, _ = r.flush()
  times, frames = np.concatenate(times + [tt]), np.concatenate(frames + [ff])
  np.testing.assert_array_equal(times, off.timestamps_s)
  np.testing.assert_array_equal(frames, off.signals)
  assert r.repairs["gaps_interpolated"] > 0


def test_resampler_at_a_lower_model_rate_matches_offline():
  rng = np.random.default_rng(3)
  t = np.cumsum(rng.uniform(0.004, 0.016, 500))
  x = rng.normal(size=(500, 3))
  off = resample.resample_to_grid(t, x, None, 30., source="test")
  r = resampler.OnlineResampler(30., 3)
  frames = [r.push(ti, xi)[1] for ti, xi in zip(t, x)] + [r.flush()[1]]
  np.testing.assert_array_equal(np.concatenate(frames), off.signals)


def test_resampler_online_repairs():
  r = resampler.OnlineResampler(10., 1)
  assert len(r.push(0., [0.])[0]) == 1
  assert len(r.push(0.1, [1.])[0]) == 1
  assert len(r.push(0.05, [9.])[0]) == 0  # Earlier than the last: dropped.
  assert len(r.push(0.1, [2.])[0]) == 0   # Duplicate: replaces the sample.
  _, f, _ = r.push(0.2, [4.])
  np.testing.assert_allclose(f[:, 0], [4.])
  _, f, _ = r.push(0.25, [5.])
  assert r.repairs["out_of_order_dropped"] == 1
  assert r.repairs["duplicate_timestamps"] == 1
  r = resampler.OnlineResampler(10., 1, max_nonfinite_run=2)
  r.push(0., [1.])
  for i in range(1, 5):
    r.push(i / 10, [np.nan])
  assert r.repairs["nonfinite_values_held"] == 2


@pytest.mark.parametrize("policy", resampler.GAP_POLICIES)
def test_gap_policies(policy):
  r = resampler.OnlineResampler(10., 1, gap_policy=policy, max_gap_s=2.)
  for i in range(3):
    r.push(i / 10, [float(i)])          # Frames 0, 1, 2 at 0.0 .. 0.2 s.
  times, frames, reset = r.push(0.6, [6.])  # 0.3 .. 0.5 s are missing.
  if policy == "interpolate":
    np.testing.assert_allclose(frames[:, 0], [3., 4., 5., 6.])
    assert not reset
  elif policy == "hold":
    np.testing.assert_allclose(frames[:, 0], [2., 2., 2., 6.])
    assert not reset and r.repairs["gaps_held"] == 1
  else:
    assert reset and len(frames) == 1 and frames[0, 0] == 6.
    np.testing.assert_allclose(times, [0.6])
  # Beyond max_gap_s every policy restarts the stream.
  times, frames, reset = r.push(5., [1.])
  assert reset and len(frames) == 1 and times[0] == 5.


def test_reset_zeroes_the_model_state(run_dir):
  ckpt = model.load(run_dir)
  m = model.Model(ckpt)
  names = ckpt.record.channel_names
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 6)) * ckpt.std + ckpt.mean
  a = streamer.Streamer(m, names, gap_policy="reset")
  for i in range(20):
    a.push(i / 50, x[i])
  after = []
  for i in range(20, 40):
    after += a.push(1. + i / 50, x[i])  # A 0.6 s gap: reset.
  fresh = streamer.Streamer(m, names)
  ref = []
  for i in range(20, 40):
    ref += fresh.push(i / 50, x[i])
  assert after[0].reset and not any(o.reset for o in after[1:])
  np.testing.assert_allclose([o.probs for o in after], [o.probs for o in ref],
                             atol=1e-6)


def test_channel_check_names_missing_extra_and_order():
  names = ["a", "b", "c"]
  np.testing.assert_array_equal(
      streamer.check_channels(names, names, source="s"), [0, 1, 2])
  with pytest.raises(streamer.ChannelMismatchError, match=r"missing \['c'\]"):
    streamer.check_channels(names, ["a", "b"], source="s")
  with pytest.raises(streamer.ChannelMismatchError, match=r"extra \['d'\]"):
    streamer.check_channels(names, ["a", "b", "c", "d"], source="s")
  with pytest.raises(streamer.ChannelMismatchError, match="order"):
    streamer.check_channels(names, ["b", "a", "c"], source="s")
  np.testing.assert_array_equal(
      streamer.check_channels(names, ["d", "c", "a", "b"], source="s",
                            reorder=True), [2, 3, 1])


def test_smoothing_and_stream_metrics():
  # Two true segments at 10 Hz; the prediction flickers once then switches
  # 0.3 s after the change.
  labels = np.array([0] * 10 + [1] * 10)
  pred = np.array([0] * 4 + [1] + [0] * 8 + [1] * 7)
  m = stream.stream_metrics(labels, pred, 10., 2)
  assert m["label_changes"] == 1 and m["changes_missed"] == 0
  assert m["delay_ms_median"] == pytest.approx(300.)
  minutes = 2 / 60
  assert m["switches_per_min"] == pytest.approx(3 / minutes)
  # Only the flicker's first switch goes to a wrong label.
  assert m["spurious_switches_per_min"] == pytest.approx(1 / minutes)
  probs = np.eye(2)[pred] * 0.6 + 0.2
  smoothed = streamer.smooth_labels(probs, ema=0.5, hysteresis=0.1)
  assert smoothed[4] == 0  # The one-frame flicker is gone.
  assert (np.diff(smoothed) != 0).sum() == 1


@pytest.mark.slow
def test_streaming_evaluation_command(run_dir, watch_data, tmp_path):
  out = tmp_path / "result.json"
  result = stream.main([f"--workdir={run_dir}", "--split=test", "--ema=0.9",
                        "--hysteresis=0.1", f"--json={out}"])
  saved = json.loads(out.read_text())
  assert saved["recordings"] == result["recordings"] > 1
  raw, sm = result["raw"], result["smoothed"]
  # Recordings are streamed back to back: every boundary is a change.
  assert raw["label_changes"] >= 1
  assert 0 <= raw["macro_f1"] <= 1 and raw["frames"] > 0
  assert sm["switches_per_min"] <= raw["switches_per_min"]


def test_interp_rows_equals_np_interp_per_channel():
  rng = np.random.default_rng(7)
  for m in (1, 2, 3, 7):
    ts = np.sort(rng.uniform(0, 1, m))
    xs = rng.normal(size=(m, 5))
    grid = np.concatenate([ts, rng.uniform(ts[0] - .1, ts[-1] + .1, 20)])
    want = np.stack([np.interp(grid, ts, xs[:, c]) for c in range(5)], -1)
    np.testing.assert_array_equal(resampler._interp_rows(grid, ts, xs), want)
