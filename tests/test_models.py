"""The stacked encoder is causal, and its streaming step equals its scan."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import models
from imujax.online import numpy_model
from imujax.online import step as online_step
from imujax.training import run_record
from tests import test_stream


def _cfg(cell, **kw):
  return models.ModelConfig(in_dim=5, cell=cell, hidden=8, layers=2,
                            num_classes=4, reconstruct=True, **kw)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_outputs_up_to_t_ignore_inputs_after_t(cell, layer_norm):
  cfg = _cfg(cell, layer_norm=layer_norm)
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (3, 40, 5))
  t = 17
  changed = x.at[:, t + 1:].set(jax.random.normal(jax.random.key(2),
                                                  (3, 40 - t - 1, 5)) * 10)
  a = models.classify_sequence(params, cfg, x)
  b = models.classify_sequence(params, cfg, changed)
  np.testing.assert_array_equal(a[:, :t + 1], b[:, :t + 1])
  # ...and the change does reach the later outputs, so the test can fail.
  assert not np.allclose(a[:, t + 1:], b[:, t + 1:])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_encoder_step_reproduces_encode(cell):
  cfg = _cfg(cell)
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (2, 25, 5))
  h_scan, final_scan = models.encode(params["encoder"], cfg, x)
  state = models.initial_state(cfg, 2)
  step = jax.jit(lambda s, xt: models.encoder_step(params["encoder"], cfg, s, xt))
  frames = []
  for t in range(x.shape[1]):
    state, h = step(state, x[:, t])
    frames.append(h)
  np.testing.assert_allclose(jnp.stack(frames, 1), h_scan, atol=1e-5)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(final_scan)):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_encode_continues_from_a_given_state():
  cfg = _cfg("lstm")
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (2, 30, 5))
  whole, _ = models.encode(params["encoder"], cfg, x)
  first, state = models.encode(params["encoder"], cfg, x[:, :12])
  second, _ = models.encode(params["encoder"], cfg, x[:, 12:], state)
  np.testing.assert_allclose(jnp.concatenate([first, second], 1), whole,
                             atol=1e-5)


def test_dropout_only_with_a_key_and_scaled():
  cfg = models.ModelConfig(in_dim=5, cell="gru", hidden=64, layers=2,
                           dropout=0.5, layer_norm=False, num_classes=3)
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (4, 10, 5))
  plain = models.classify_sequence(params, cfg, x)
  again = models.classify_sequence(params, cfg, x)
  dropped = models.classify_sequence(params, cfg, x,
                                     dropout_rng=jax.random.key(3))
  np.testing.assert_array_equal(plain, again)
  assert not np.allclose(plain, dropped)


def test_layer_norm_normalises_each_frame():
  cfg = _cfg("lstm")
  params = models.init(jax.random.key(0), cfg)
  h, _ = models.encode(params["encoder"], cfg,
                       jax.random.normal(jax.random.key(1), (2, 9, 5)) * 50)
  np.testing.assert_allclose(h.mean(-1), 0., atol=1e-5)
  np.testing.assert_allclose(h.std(-1), 1., atol=1e-2)


def test_heads_follow_the_config():
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=3)
  params = models.init(jax.random.key(0), cfg)
  assert set(params) == {"encoder"}
  assert set(params["encoder"]) == {"layer_0", "layer_1", "layer_2"}
  assert params["encoder"]["layer_0"]["cell"]["w_ih"].shape == (6, 32)
  assert params["encoder"]["layer_1"]["cell"]["w_ih"].shape == (8, 32)


def test_unknown_cell_names_the_config_key():
  with pytest.raises(ValueError, match="model.cell"):
    models.init(jax.random.key(0), models.ModelConfig(in_dim=3, cell="tcn"))


# ------------------------------------------------------ residual connections
def _np_layer_norm(p, h):
  mu = h.mean(-1, keepdims=True)
  var = np.square(h - mu).mean(-1, keepdims=True)
  return (h - mu) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def _np_cell(kind, p, x):
  """Frame-by-frame reference of one layer over x [B, T, C] (float64)."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  h, out = np.zeros((x.shape[0], p["b"].shape[0] // (
      2 if kind == "mingru" else 1))), []
  for t in range(x.shape[1]):
    if kind == "rnn":
      h = np.tanh(x[:, t] @ p["w_ih"] + h @ p["w_hh"] + p["b"])
    else:  # mingru: h = (1 - z) h + z h~, z = sigmoid(k_z).
      k_z, cand = np.split(x[:, t] @ p["w"] + p["b"], 2, axis=-1)
      z = 1. / (1. + np.exp(-k_z))
      h = (1. - z) * h + z * cand
    out.append(h)
  return np.stack(out, axis=1)


@pytest.mark.parametrize("cell", ["rnn", "mingru"])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_residual_encoder_equals_a_numpy_reference(cell, layer_norm):
  cfg = models.ModelConfig(in_dim=5, cell=cell, hidden=8, layers=3,
                           layer_norm=layer_norm, residual=True)
  params = models.init_encoder(jax.random.key(3), cfg)
  x = np.asarray(jax.random.normal(jax.random.key(4), (2, 30, 5)), np.float64)
  h = x
  for i in range(3):  # norm(h + layer(h)) from the second layer on.
    layer = params[f"layer_{i}"]
    out = _np_cell(cell, layer["cell"], h)
    h = h + out if i > 0 else out
    if layer_norm:
      h = _np_layer_norm({k: np.asarray(v) for k, v in layer["norm"].items()},
                         h)
  got, _ = models.encode(params, cfg, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(got, h, atol=1e-5)
  plain, _ = models.encode(params, dataclasses.replace(cfg, residual=False),
                           jnp.asarray(x, jnp.float32))
  assert not np.allclose(plain, got, atol=1e-3)  # It does change the model.


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru", "minlstm", "lru"])
def test_residual_streaming_equals_the_scan(cell):
  cfg = models.ModelConfig(in_dim=6, cell=cell, hidden=8, layers=3,
                           num_classes=4, residual=True, adapter_dim=5)
  params = models.init(jax.random.key(5), cfg)
  rng = np.random.default_rng(6)
  mean, std = rng.standard_normal(6), rng.uniform(0.5, 2., 6)
  raw = (rng.standard_normal((120, 6)) * std + mean).astype(np.float32)
  x = ((raw - mean.astype(np.float32)) / std.astype(np.float32))[None]
  ref = np.asarray(jax.nn.softmax(models.classify_sequence(params, cfg, x)))
  # The jitted per-frame step (online/step.py, what export serialises).
  state, out = online_step.scan_steps(params, cfg, jnp.asarray(x))
  np.testing.assert_allclose(out["probs"], ref, atol=1e-5)
  # The NumPy streaming model (its own layer loop).
  ckpt = test_stream.make_checkpoint(params, cfg, mean, std,
                                     [f"c{i}" for i in range(6)],
                                     [f"k{i}" for i in range(4)], 50.)
  npm = numpy_model.NumpyModel(ckpt)
  state, got = npm.init_state(1), []
  for frame in raw:
    state, probs = npm.step(state, frame[None])
    got.append(probs[0])
  np.testing.assert_allclose(np.stack(got), ref[0], atol=1e-5)


def test_residual_through_the_exported_artifact(tmp_path):
  pytest.importorskip("flatbuffers", reason="jax.export needs flatbuffers")
  from imujax.online import export  # pylint: disable=g-import-not-at-top
  cfg = models.ModelConfig(in_dim=4, cell="mingru", hidden=8, layers=2,
                           num_classes=3, residual=True)
  params = models.init(jax.random.key(7), cfg)
  ckpt = test_stream.make_checkpoint(params, cfg, np.zeros(4), np.ones(4),
                                     list("abcd"), list("xyz"), 50.)
  export.export_checkpoint(ckpt, str(tmp_path / "r.imujax"))
  art = export.Artifact.load(tmp_path / "r.imujax")
  assert art.meta["model_config"]["residual"] is True
  x = np.random.default_rng(8).standard_normal((40, 2, 4)).astype(np.float32)
  ref = jax.nn.softmax(models.classify_sequence(params, cfg,
                                                np.swapaxes(x, 0, 1)))
  state, got = art.init_state(2), []
  for frame in x:
    state, probs = art.step(state, frame)
    got.append(np.asarray(probs))
  np.testing.assert_allclose(np.stack(got, axis=1), ref, atol=1e-5)


def test_runs_recorded_before_residual_existed_still_resume(tmp_path):
  cfg = models.ModelConfig(in_dim=4, cell="lstm", hidden=8, layers=2)
  record = test_stream.make_checkpoint(
      models.init(jax.random.key(0), cfg), cfg, np.zeros(4), np.ones(4),
      list("abcd"), list("xyz"), 50.).record
  old = record.to_json()
  del old["model_config"]["residual"]  # A run.json written before the key.
  run_record.path(tmp_path).write_text(json.dumps(old))
  assert run_record.check_compatible(tmp_path, record) == {}
  changed = dataclasses.replace(record, model_config={
      **record.model_config, "residual": True})
  with pytest.raises(run_record.IncompatibleRunError, match="residual"):
    run_record.check_compatible(tmp_path, changed)


def test_config_key_model_residual_reaches_the_model_config():
  import types  # pylint: disable=g-import-not-at-top
  from imujax import configlib  # pylint: disable=g-import-not-at-top
  from imujax.training import setup  # pylint: disable=g-import-not-at-top
  config = configlib.base()
  assert config.model.residual is False  # Existing configs: unchanged.
  ns = types.SimpleNamespace
  args = (ns(channel_names=list("abc"), class_names=list("xy")),
          ns(uses_labels=True), None, ns(adapter=False))
  assert setup._model_config(config, *args).residual is False
  config = configlib.apply_args(config, "model.residual=true")
  assert setup._model_config(config, *args).residual is True
