"""model.modality_projection and eval.missing_modalities, against references.

The projection is checked against a NumPy reference (per-modality matmul,
layer norm, concatenation in sorted-modality order); off it leaves the params
and outputs exactly as before; streaming (encoder_step, the NumPy model, an
exported artifact) equals the scan; the missing-modality test scores equal
scoring inputs whose channels were zeroed by hand; bad configs fail naming
the key.
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from imujax import configlib
from imujax import metrics
from imujax import models
from imujax.data import input_pipeline
from imujax.objectives import modality
from imujax.online import numpy_model
from imujax.training import evaluate
from imujax.training import input_dropout
from imujax.training import optim
from tests.test_stream import make_checkpoint

# Interleaved modalities (acc and gyr alternate), so the gather path is used;
# pressure's two cells are contiguous (the slice path).
NAMES = ("wrist_acc_x", "wrist_gyr_x", "wrist_acc_y", "wrist_gyr_y",
         "wrist_acc_z", "left_pressure_01", "left_pressure_02")
KINDS = modality.of(NAMES)
D = 4


def _cfg(cell="lstm", d=D, **kw):
  extra = {"modalities": KINDS, "modality_projection": d} if d else {}
  return models.ModelConfig(in_dim=len(NAMES), cell=cell, hidden=8, layers=2,
                            num_classes=3, **extra, **kw)


def _x(batch=3, time=6, seed=0):
  return jax.random.normal(jax.random.key(seed), (batch, time, len(NAMES)))


def _np_projection(proj: dict, x: np.ndarray) -> np.ndarray:
  """The reference: per modality, x[..., its channels] @ w + b, layer norm
  over the d features, concatenated in sorted-modality order."""
  out = []
  for m in sorted(set(KINDS)):
    idx = [i for i, k in enumerate(KINDS) if k == m]
    p = jax.tree.map(np.asarray, proj[m])
    z = x[..., idx].astype(np.float64) @ p["w"] + p["b"]
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True)
                                                  + 1e-5)
    out.append(z * p["norm"]["scale"] + p["norm"]["bias"])
  return np.concatenate(out, -1)


def _randomised(params):
  """Params with random norm scales and biases (init has 1 and 0)."""
  rng = np.random.default_rng(99)
  return jax.tree.map(lambda a: jnp.asarray(
      a + 0.3 * rng.standard_normal(a.shape), jnp.float32), params)


def test_projection_layout_and_numpy_reference():
  params = _randomised(models.init(jax.random.key(1), _cfg()))
  proj = params["encoder"]["modality_projection"]
  assert sorted(proj) == ["acc", "gyr", "pressure"]
  shapes = {m: (p["w"].shape, p["b"].shape, p["norm"]["scale"].shape)
            for m, p in proj.items()}
  assert shapes == {"acc": ((3, D), (D,), (D,)), "gyr": ((2, D), (D,), (D,)),
                    "pressure": ((2, D), (D,), (D,))}
  # The first layer takes 3 modalities x D.
  assert params["encoder"]["layer_0"]["cell"]["w_ih"].shape[0] == 3 * D
  x = _x()
  got = models.project_modalities(proj, KINDS, x)
  np.testing.assert_allclose(got, _np_projection(proj, np.asarray(x)),
                             rtol=1e-5, atol=1e-5)
  # Each embedding has unit scale before its norm's affine (what stops 32
  # pressure cells from drowning 3 gyro channels).
  unit = jax.tree.map(lambda a: a, proj)
  for m in unit:
    unit[m]["norm"] = {"scale": jnp.ones(D), "bias": jnp.zeros(D)}
  z = np.asarray(models.project_modalities(unit, KINDS, x * 100.))
  np.testing.assert_allclose(z.reshape(*z.shape[:-1], 3, D).std(-1), 1.,
                             atol=1e-3)
  # encode feeds exactly that to the first layer: the same layers without a
  # projection, on the projected inputs, give the same features.
  plain = models.ModelConfig(in_dim=3 * D, cell="lstm", hidden=8, layers=2)
  layers = {k: v for k, v in params["encoder"].items()
            if k.startswith("layer_")}
  h, _ = models.encode(params["encoder"], _cfg(), x)
  want, _ = models.encode(layers, plain, jnp.asarray(_np_projection(
      proj, np.asarray(x)), jnp.float32))
  np.testing.assert_allclose(h, want, rtol=1e-5, atol=1e-5)


def test_off_leaves_params_and_outputs_as_before():
  before = models.ModelConfig(in_dim=len(NAMES), cell="lstm", hidden=8,
                              layers=2, num_classes=3)
  off = _cfg(d=0)
  assert off == before  # modality_projection=0 is the default.
  a = models.init(jax.random.key(1), before)
  b = models.init(jax.random.key(1), off)
  # With modalities given (modality_dropout on) but d = 0: still the same.
  c = models.init(jax.random.key(1), dataclasses.replace(
      before, modality_dropout=0.3, modalities=KINDS))
  for other in (b, c):
    assert jax.tree.structure(other) == jax.tree.structure(a)
    jax.tree.map(np.testing.assert_array_equal, other, a)
  assert "modality_projection" not in a["encoder"]
  np.testing.assert_array_equal(
      models.classify_sequence(a, before, _x()),
      models.classify_sequence(b, off, _x()))


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_encoder_step_equals_encode(cell):
  cfg = _cfg(cell, residual=True)
  params = _randomised(models.init(jax.random.key(2), cfg))["encoder"]
  x = _x(batch=2, time=13, seed=3)
  want, final = models.encode(params, cfg, x)
  state, got = models.initial_state(cfg, 2), []
  step = jax.jit(lambda s, xt: models.encoder_step(params, cfg, s, xt))
  for t in range(x.shape[1]):
    state, h = step(state, x[:, t])
    got.append(h)
  np.testing.assert_allclose(np.stack(got, 1), want, rtol=1e-5, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
               state, final)


def test_numpy_model_and_artifact_equal_the_scan(tmp_path):
  cfg = _cfg("mingru")
  params = _randomised(models.init(jax.random.key(4), cfg))
  rng = np.random.default_rng(5)
  mean, std = rng.standard_normal(7), rng.uniform(0.5, 2., 7)
  ckpt = make_checkpoint(params, cfg, mean, std, NAMES, ["a", "b", "c"], 50.)
  raw = (rng.standard_normal((40, 7)) * std + mean).astype(np.float32)
  raw[20:, 1] = raw[20:, 3] = ckpt.mean[1]  # gyr missing: at its mean.
  x = ((raw - ckpt.mean) / ckpt.std)[None]
  ref = np.asarray(jax.nn.softmax(models.classify_sequence(params, cfg, x)))[0]
  npm = numpy_model.NumpyModel(ckpt)
  state, got = npm.init_state(1), []
  for frame in raw:
    state, probs = npm.step(state, frame[None])
    got.append(probs[0])
  np.testing.assert_allclose(np.stack(got), ref, atol=1e-5)
  pytest.importorskip("flatbuffers", reason="jax.export serialization needs "
                      "flatbuffers (pinned in requirements.txt).")
  from imujax.online import export  # pylint: disable=g-import-not-at-top
  export.export_checkpoint(ckpt, str(tmp_path / "p.imujax"))
  art = export.Artifact.load(tmp_path / "p.imujax")
  assert art.meta["model_config"]["modality_projection"] == D
  state, got = art.init_state(1), []
  for frame in raw:
    state, probs = art.step(state, frame[None])
    got.append(np.asarray(probs)[0])
  np.testing.assert_allclose(np.stack(got), ref, atol=1e-5)


def test_linear_probe_freezes_the_projection():
  params = models.init(jax.random.key(0), _cfg())
  phase = types.SimpleNamespace(steps=10, warmup_steps=0, learning_rate=1e-2,
                                weight_decay=0., grad_clip=1.)
  tx = optim.make_optimizer(phase, params, frozen_layers=2)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  frozen = updates["encoder"]["modality_projection"]
  assert all(not np.any(a) for a in jax.tree.leaves(frozen))
  assert np.any(updates["classifier"]["w"])


# ------------------------------------------------ eval.missing_modalities
def _evaluator(objective, missing="gyr"):
  cfg = _cfg(d=0)
  params = models.init(jax.random.key(6), cfg)
  rng = np.random.default_rng(7)
  recs = [input_pipeline.Recording(
      (rng.standard_normal((n, 7)) * 2 + 1).astype(np.float32),
      rng.integers(0, 3, n).astype(np.int32), subject, f"{subject}-{n}")
          for subject, n in (("s1", 30), ("s1", 45), ("s2", 37))]
  norm = input_pipeline.Normalizer.fit(recs, list(NAMES))
  run = types.SimpleNamespace(
      objective=objective, data=types.SimpleNamespace(
          recordings=recs, channel_names=list(NAMES)),
      by_split={"val": recs, "test": recs}, normalizer=norm, cfg=cfg,
      opts={}, stats={}, loss_fn=lambda *a, **k: None,
      record=types.SimpleNamespace(phase="finetune"))
  config = configlib.base()
  config.eval.missing_modalities = missing
  config.data.eval_batch_size = 2
  return evaluate.Evaluator(run, config, 4, None, None), params, recs, norm


def test_missing_modality_scores_equal_hand_zeroed_inputs():
  ev, params, recs, norm = _evaluator(types.SimpleNamespace(
      uses_labels=True, predict=None, score=None))
  out = ev(params, "test")
  gyr = [i for i, k in enumerate(KINDS) if k == "gyr"]
  conf = {True: np.zeros((3, 3), np.int64), False: np.zeros((3, 3), np.int64)}
  for rec in recs:  # By hand: one recording at a time, no batching.
    for zero in (True, False):
      x = norm(rec.signals)
      if zero:
        x[:, gyr] = 0.
      pred = np.asarray(models.classify_sequence(params, ev.run.cfg,
                                                 x[None]).argmax(-1))[0]
      conf[zero] += metrics.confusion_matrix(rec.labels, pred, 3)
  for key, value in metrics.scores(conf[True]).items():
    assert out["test_without_gyr/" + key] == pytest.approx(value)
  for key, value in metrics.scores(conf[False]).items():
    assert out[key] == pytest.approx(value)
  assert out["test_without_gyr/confusion"] == conf[True].tolist()
  assert set(out["test_without_gyr/per_subject"]) == {"s1", "s2"}
  assert not (conf[True] == conf[False]).all()  # Zeroing changed something.
  assert not any(k.startswith("test_without") for k in ev(params, "val"))


def test_missing_modality_for_a_target_kind_zeroes_inputs_not_targets():
  seen = {}

  def score(outputs, cut, stats, opts):
    seen["cut"] = cut
    return {"mean_out": float(np.mean([o.mean() for o in outputs]))}

  objective = types.SimpleNamespace(
      uses_labels=False, score=score,
      predict=lambda params, batch, stats, cfg, opts: batch["signals"][
          ..., 1] + 10.)  # Channel 1 (gyr) + 10: 10 when it is zeroed.
  ev, params, recs, _ = _evaluator(objective)
  out = ev(params, "test")
  assert out["test_without_gyr/mean_out"] == pytest.approx(10.)
  assert out["mean_out"] != pytest.approx(10.)
  assert np.any(seen["cut"][0]["signals"][:, 1] != 0)  # Inputs kept.


# ------------------------------------------------------------ config errors
def _model_config(d=0, p=0.0):
  return ml_collections.ConfigDict({"model": {
      "modality_dropout": p, "modality_projection": d}})


def test_model_fields_and_config_errors():
  assert input_dropout.model_fields(_model_config(), NAMES) == {}
  assert input_dropout.model_fields(_model_config(16), NAMES) == {
      "modality_projection": 16, "modalities": KINDS}
  with pytest.raises(ValueError, match=r"model\.modality_projection=16 .*"
                     r"'acc'.*model\.modality_projection=0.*two or more"):
    input_dropout.model_fields(_model_config(16),
                               ("wrist_acc_x", "wrist_acc_y"))
  for bad in (-1, 1):
    with pytest.raises(ValueError, match=r"model\.modality_projection="):
      input_dropout.model_fields(_model_config(bad), NAMES)
  config = configlib.base()
  config.model.modality_projection = -2
  with pytest.raises(ValueError, match=r"model\.modality_projection=-2"):
    configlib.check(config)
  with pytest.raises(ValueError, match=r"modality_projection.*>= 0"):
    _cfg(d=-3)
  with pytest.raises(ValueError, match=r"modality_projection=4 and "
                     r"adapter_dim=6"):
    _cfg(adapter_dim=6)


def test_missing_modalities_errors_name_the_key_and_the_modalities():
  config = configlib.base()
  config.eval.missing_modalities = "gyr"
  assert input_dropout.missing_channels(config, NAMES) == (
      "test_without_gyr/", [1, 3])
  config.eval.missing_modalities = "mag"  # A modality, not this dataset's.
  with pytest.raises(ValueError, match=r"eval\.missing_modalities='mag'.*"
                     r"\['acc', 'gyr', 'pressure'\]"):
    input_dropout.missing_channels(config, NAMES)
  configlib.check(config)  # A known modality name passes the config check.
  config.eval.missing_modalities = "gyro"
  with pytest.raises(ValueError, match=r"eval\.missing_modalities='gyro'"):
    configlib.check(config)
  config.eval.missing_modalities = "gyr, pressure"
  assert input_dropout.missing_channels(config, NAMES) == (
      "test_without_gyr+pressure/", [1, 3, 5, 6])
  config.eval.missing_modalities = ""
  assert input_dropout.missing_channels(config, NAMES) == ("", [])
