"""Pretext objectives: options, loss cores, masks, and learning on real data."""

import functools
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from imujax.objectives import augment
from imujax.data import input_pipeline as ip
from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.objectives import masked_reconstruction
from imujax.objectives import transform_prediction
from imujax.objectives import options as pretext_options
from tests.conftest import subprocess_env


# --------------------------------------------------------------------- options
def test_defaults_are_plain_and_complete():
  assert set(objectives.self_supervised()) == set(pretext_options.DEFAULTS)
  for kind, defaults in pretext_options.DEFAULTS.items():
    assert all(type(v) in (int, float, str, bool) for v in defaults.values())
    assert pretext_options.validate(kind, {}) == defaults
    assert pretext_options.validate(kind, defaults) == defaults


def test_pretext_options_imports_nothing_heavy(repo_root):
  code = ("import sys, imujax.objectives.options; "
          "heavy = {'jax', 'numpy'} & set(sys.modules); "
          "assert not heavy, heavy")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root,
                 env=subprocess_env())


@pytest.mark.parametrize("kind, opts, message", [
    ("forecast", {"horizn": 2}, "pretrain.forecast.horizn"),
    ("forecast", {"horizon": 0}, "pretrain.forecast.horizon=0 must be >= 1"),
    ("forecast", {"residual": 1},
     "pretrain.forecast.residual=1 must be a bool"),
    ("masked_reconstruction", {"mask_value": "mean"},
     "pretrain.masked_reconstruction.mask_value='mean' must be one of"),
    ("masked_reconstruction", {"mask_ratio": 0.8, "span_mean": 2.0},
     "pretrain.masked_reconstruction.mask_ratio=0.8 is too high"),
    ("cpc", {"temperature": 0.}, "pretrain.cpc.temperature=0.0 must be > 0"),
    ("simclr", {"projection_dim": 3.5}, "pretrain.simclr.projection_dim=3.5"),
    ("transform_prediction", {"transforms": "noise,warp"},
     "unknown: ['warp']"),
    ("contrastive", {}, "pretrain.objective"),
])
def test_bad_options_name_the_key(kind, opts, message):
  with pytest.raises(ValueError, match=message.replace("[", r"\[")
                     .replace("(", r"\(")):
    pretext_options.validate(kind, opts)


def _abstract_batch(b=4, t=32, c=6):
  return {"signals": jax.ShapeDtypeStruct((b, t, c), jnp.float32),
          "labels": jax.ShapeDtypeStruct((b, t), jnp.int32),
          "valid": jax.ShapeDtypeStruct((b, t), jnp.bool_)}


def _trace(kind, opts, cfg, batch=None, channels=6):
  pretext = objectives.get(kind)
  params = jax.eval_shape(lambda: {
      "encoder": models.init_encoder(jax.random.key(0), cfg),
      **pretext.init_heads(jax.random.key(1), cfg, opts)})
  return jax.eval_shape(functools.partial(pretext.loss, cfg=cfg, opts=opts),
                        params, batch or _abstract_batch(),
                        jax.random.key(0),
                        losses.stats_of(np.zeros(channels), np.ones(channels)))


def test_clear_errors_for_missing_data_options_and_short_windows():
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1)
  with pytest.raises(ValueError, match="channel names"):
    _trace("simclr", {}, cfg)
  with pytest.raises(ValueError,
                     match=r"pretrain.forecast.horizon .*data.window"):
    _trace("forecast", {"horizon": 40}, cfg)
  no_triplets = losses.data_options([f"c{i}" for i in range(6)])
  with pytest.raises(ValueError, match="rotation_deg=0"):
    _trace("simclr", no_triplets, cfg)
  _trace("simclr", {**no_triplets, "rotation_deg": 0.}, cfg)  # Fine.


# ---------------------------------------------------------------------- cores
# Jitted once each: eager dispatch would compile every primitive separately.
masked_mse = jax.jit(losses.masked_mse)
forecast_targets = jax.jit(losses.forecast_targets, static_argnums=(2, 3))
info_nce = jax.jit(losses.info_nce)
nt_xent = jax.jit(losses.nt_xent)
binary_transform_loss = jax.jit(losses.binary_transform_loss)
multiclass_loss = jax.jit(losses.multiclass_loss)


def test_masked_mse_counts_masked_frames_only():
  target = np.random.default_rng(0).normal(size=(2, 10, 3)).astype(np.float32)
  mask = np.zeros((2, 10), bool)
  mask[0, 2:5] = True
  assert float(masked_mse(target, target, mask)) == 0.
  wrong = target + 1.
  np.testing.assert_allclose(masked_mse(wrong, target, mask), 1.,
                             rtol=1e-6)
  unmasked_only = np.where(mask[..., None], target, target + 5.)
  assert float(masked_mse(unmasked_only, target, mask)) == 0.


@pytest.mark.parametrize("residual", [True, False])
def test_forecast_targets_are_the_next_frames(residual):
  ramp = np.broadcast_to(np.arange(10.)[None, :, None], (2, 10, 1))
  valid = np.ones((2, 10), bool)
  valid[1, 7:] = False
  targets, mask = forecast_targets(ramp, valid, 3, residual)
  t, j = np.arange(10)[:, None], np.arange(1, 4)[None]
  expected = np.broadcast_to(j if residual else t + j, (10, 3))
  np.testing.assert_array_equal(
      np.where(mask[0], targets[0, ..., 0], -1), np.where(t + j < 10, expected,
                                                          -1))
  np.testing.assert_array_equal(mask[1], t + j < 7)
  assert float(masked_mse(targets, targets, mask)) == 0.
  assert float(masked_mse(targets + 0.5, targets, mask)) > 0.2


def test_info_nce_perfect_and_wrong():
  target = np.eye(8, dtype=np.float32)
  valid = np.ones(8, bool)
  loss, acc = info_nce(3. * target, target, valid, 0.01)
  assert float(loss) < 1e-6 and float(acc) == 1.
  loss, acc = info_nce(np.roll(target, 1, 0), target, valid, 0.1)
  assert float(loss) > 5. and float(acc) == 0.
  # Invalid rows and columns are ignored: only a real rival hurts.
  valid[1] = False
  rival = target.copy()
  rival[0] = target[2]
  loss, acc = info_nce(rival, target, valid, 0.01)
  assert float(loss) > 10. and float(acc) == pytest.approx(6 / 7)
  rival_target = target.copy()
  rival_target[1] = target[0]  # Now identical to the positive of row 0...
  loss, _ = info_nce(target, rival_target, valid, 0.01)
  assert float(loss) < 1e-6  # ...but row/column 1 is invalid.


def test_nt_xent_perfect_and_wrong():
  z = np.eye(8, dtype=np.float32)[:4]
  loss, acc = nt_xent(z, 2. * z, 0.01)
  assert float(loss) < 1e-6 and float(acc) == 1.
  loss, acc = nt_xent(z, np.roll(z, 1, 0), 0.1)
  assert float(loss) > 5. and float(acc) == 0.


def test_transform_losses_perfect_and_wrong():
  labels = np.array([0, 1, 2, 3, 0, 2])
  n = 3
  onehot = labels[:, None] == np.arange(1, n + 1)[None]
  logits = np.where(onehot, 30., -30.).astype(np.float32)
  loss, acc = binary_transform_loss(logits, labels)
  assert float(loss) < 1e-6 and float(acc) == 1.
  loss, acc = binary_transform_loss(-logits, labels)
  assert float(loss) > 10. and float(acc) == 0.
  mc = np.where(labels[:, None] == np.arange(n + 1)[None], 30., -30.)
  loss, acc = multiclass_loss(mc.astype(np.float32), labels)
  assert float(loss) < 1e-6 and float(acc) == 1.
  loss, acc = multiclass_loss(-mc.astype(np.float32), labels)
  assert float(loss) > 10. and float(acc) == 0.


# ---------------------------------------------------------------------- masks
def test_geometric_masks_ratio_spans_and_determinism():
  make = jax.jit(masked_reconstruction.geometric_span_mask, static_argnums=(1, 2, 3, 4))
  m = np.asarray(make(jax.random.key(0), 256, 256, 0.15, 8.))
  np.testing.assert_array_equal(m, make(jax.random.key(0), 256, 256, 0.15, 8.))
  assert not np.array_equal(m, make(jax.random.key(1), 256, 256, 0.15, 8.))
  assert abs(m.mean() - 0.15) < 0.015
  starts = (m[:, 1:] & ~m[:, :-1]).sum() + m[:, 0].sum()
  assert 7. < m.sum() / starts < 9.  # Mean span length (censored at the end).


def test_fixed_masks_are_spans_of_the_given_length():
  make = jax.jit(masked_reconstruction.span_mask, static_argnums=(1, 2, 3, 4))
  m = np.asarray(make(jax.random.key(0), 64, 40, 0.1, 4))  # One span each.
  np.testing.assert_array_equal(m.sum(1), 4)
  first = m.argmax(1)
  np.testing.assert_array_equal(m[np.arange(64)[:, None],
                                  first[:, None] + np.arange(4)], True)
  np.testing.assert_array_equal(m, make(jax.random.key(0), 64, 40, 0.1, 4))


def test_transform_batch_applies_each_labelled_transform(watch_data):
  norm = ip.Normalizer.fit(watch_data.recordings, watch_data.channel_names)
  batch = ip.sample_windows(watch_data.recordings, norm, 32, 9, 0, 0)
  valid = batch["valid"].copy()
  valid[3, 20:] = False  # Padding must stay 0 and in place.
  x = np.where(valid[..., None], batch["signals"], 0.)
  opts = pretext_options.validate(
      "transform_prediction",
      losses.data_options(watch_data.channel_names))
  stats = losses.stats_of(norm.mean, norm.std)
  names = opts["transforms"].split(",")
  labels = np.arange(9, dtype=np.int32)  # Row j: transform j (0: original).
  fn = jax.jit(lambda k: transform_prediction.transform_batch(
      k, x, valid, labels, opts, stats))
  out = np.asarray(fn(jax.random.key(0)))
  assert out.shape == x.shape
  np.testing.assert_array_equal(out, fn(jax.random.key(0)))
  np.testing.assert_array_equal(out[0], x[0])
  np.testing.assert_array_equal(out[~valid], 0.)
  for j, name in enumerate(names, start=1):
    assert not np.allclose(out[j][valid[j]], x[j][valid[j]], atol=1e-3), name
  raw = x * norm.std + norm.mean
  neg = names.index("negation") + 1
  np.testing.assert_allclose(out[neg], (-raw[neg] - norm.mean) / norm.std,
                             rtol=1e-4, atol=1e-4)
  flip = names.index("flip") + 1
  np.testing.assert_array_equal(out[flip], x[flip, ::-1])
  rot = names.index("rotation") + 1
  raw_out = out[rot] * norm.std + norm.mean
  for idx in augment.triplets(watch_data.channel_names)[0]:
    np.testing.assert_allclose(np.linalg.norm(raw_out[:, list(idx)], axis=-1),
                               np.linalg.norm(raw[rot][:, list(idx)], axis=-1),
                               rtol=1e-4)
  counts = np.bincount(transform_prediction.transform_labels(jax.random.key(0), 32, 8,
                                                   0.5), minlength=9)
  assert counts[0] == 16 and set(counts[1:]) == {2}


# ---------------------------------------------------------- learning, for real
# One variant per objective (non-default options where they add parameters or
# code paths), cells mixed so the LSTM's tuple carry is covered too.
CASES = {
    "masked_reconstruction": ("gru", {"mask_value": "learned"}),
    "forecast": ("rnn", {}),
    "autoencoder": ("lstm", {"denoise_std": 0.1, "decoder_input": "previous"}),
    "cpc": ("gru", {"horizon": 2, "anchors": 4}),
    "simclr": ("gru", {}),
    # All eight transforms are checked by test_transform_batch_...; four here
    # keep the compile short.
    "transform_prediction": ("lstm", {
        "transforms": "noise,rotation,negation,flip"}),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_few_adam_steps_on_real_data_lower_the_loss(watch_data, kind):
  cell, extra = CASES[kind]
  cfg = models.ModelConfig(in_dim=6, cell=cell, hidden=16, layers=1)
  norm = ip.Normalizer.fit(watch_data.recordings, watch_data.channel_names)
  batch = ip.sample_windows(watch_data.recordings, norm, 32, 8, 0, 0)
  opts = {**extra, **losses.data_options(watch_data.channel_names)}
  stats = losses.stats_of(norm.mean, norm.std)
  pretext = objectives.get(kind)
  k_enc, k_heads = jax.random.split(jax.random.key(0))
  heads = pretext.init_heads(k_heads, cfg, opts)
  assert heads and not {"encoder", "classifier"} & set(heads)
  params = {"encoder": models.init_encoder(k_enc, cfg), **heads}
  loss_fn = functools.partial(pretext.loss, cfg=cfg, opts=opts)
  opt = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state, rng):
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch, rng, stats)
    updates, opt_state = opt.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss, metrics

  eval_rng = jax.random.key(99)  # The same masks / views before and after.
  new, opt_state, before, metrics = step(params, opt.init(params), eval_rng)
  assert np.isfinite(before) and before > 0
  assert all(np.isfinite(v) and np.ndim(v) == 0 for v in metrics.values())
  for i in range(20):
    new, opt_state, _, _ = step(new, opt_state, jax.random.key(i))
  _, _, after, _ = step(new, opt_state, eval_rng)
  assert after < 0.9 * before, (kind, float(before), float(after))
  unchanged = [jax.tree_util.keystr(path) for path, a, b in zip(
      *zip(*jax.tree_util.tree_leaves_with_path(params)),
      jax.tree.leaves(new)) if np.allclose(a, b)]
  assert not unchanged, f"{kind}: parameters without a gradient: {unchanged}"
