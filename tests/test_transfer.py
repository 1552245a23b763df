"""Channel matching, input adapters and fine-tune protocols."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import configlib
from imujax import models
from imujax.training import optim
from imujax.training import transfer

WATCH = ["wrist_acc_x", "wrist_acc_y", "wrist_acc_z",
         "wrist_gyr_x", "wrist_gyr_y", "wrist_gyr_z"]


def test_same_or_superset_channels_are_selected_by_name():
  assert transfer.plan(WATCH, WATCH) == (list(range(6)), False,
                                         "same channels")
  both = ["thigh_acc_x"] + WATCH[::-1]
  p = transfer.plan(WATCH, both)
  assert not p.adapter
  assert [both[i] for i in p.select] == WATCH
  assert "thigh_acc_x" in p.note


def test_missing_channels_need_an_adapter_that_starts_as_selection():
  target = ["wrist_acc_x", "wrist_acc_y", "wrist_acc_z", "chest_acc_x"]
  p = transfer.plan(WATCH, target)
  assert p.adapter and p.select is None
  adapter = transfer.adapter_init(WATCH, target)
  x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
  mapped = x @ adapter["w"] + adapter["b"]
  np.testing.assert_array_equal(mapped[:, :3], x[:, :3])
  np.testing.assert_array_equal(mapped[:, 3:], 0.)
  assert transfer.plan(WATCH, WATCH, "adapter").adapter
  with pytest.raises(ValueError, match="finetune.channels"):
    transfer.plan(WATCH, WATCH, "nearest")


def test_adapter_feeds_the_pretrained_first_layer():
  cfg = models.ModelConfig(in_dim=4, hidden=8, layers=1, num_classes=3,
                           adapter_dim=6)
  params = models.init(jax.random.key(0), cfg)
  assert params["encoder"]["adapter"]["w"].shape == (4, 6)
  assert params["encoder"]["layer_0"]["cell"]["w_ih"].shape == (6, 32)
  x = jax.random.normal(jax.random.key(1), (2, 7, 4))
  h, _ = models.encode(params["encoder"], cfg, x)
  plain = {k: v for k, v in params["encoder"].items() if k != "adapter"}
  adapted = x @ params["encoder"]["adapter"]["w"] + params["encoder"]["adapter"]["b"]
  h_ref, _ = models.encode(plain, models.ModelConfig(in_dim=6, hidden=8,
                                                     layers=1), adapted)
  np.testing.assert_allclose(h, h_ref, atol=1e-6)


def _updates(params, **kw):
  phase = configlib.base().finetune
  phase.unlock()
  phase.warmup_steps = 0
  opt = optim.make_optimizer(phase, params, **kw)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = opt.update(grads, opt.init(params), params)
  return jax.tree.map(lambda u: float(jnp.abs(u).max()), updates)


def test_freeze_lower_layers_and_layer_wise_decay():
  cfg = models.ModelConfig(in_dim=5, hidden=8, layers=3, num_classes=3,
                           adapter_dim=4)
  params = models.init(jax.random.key(0), cfg)
  frozen = _updates(params, frozen_layers=2)
  for i, expect_zero in ((0, True), (1, True), (2, False)):
    b = frozen["encoder"][f"layer_{i}"]["cell"]["b"]
    assert (b == 0) == expect_zero, (i, b)
  assert frozen["encoder"]["adapter"]["b"] > 0  # New: always trained.
  decayed = _updates(params, layer_decay=0.5)
  head = decayed["classifier"]["b"]
  # Adam's first step moves each parameter by its learning rate.
  for i in range(3):
    np.testing.assert_allclose(decayed["encoder"][f"layer_{i}"]["cell"]["b"],
                               head * 0.5 ** (3 - i), rtol=1e-5)
  np.testing.assert_allclose(decayed["encoder"]["adapter"]["b"], head,
                             rtol=1e-5)


def test_streaming_a_model_with_an_adapter_matches_its_scan():
  from imujax.online import step  # pylint: disable=g-import-not-at-top
  cfg = models.ModelConfig(in_dim=4, hidden=8, layers=2, num_classes=3,
                           adapter_dim=6)
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (2, 9, 4))
  _, out = step.scan_steps(params, cfg, x)
  np.testing.assert_allclose(out["logits"],
                             models.classify_sequence(params, cfg, x),
                             atol=1e-5)
