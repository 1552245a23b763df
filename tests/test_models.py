"""The stacked encoder is causal, and its streaming step equals its scan."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import models


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
