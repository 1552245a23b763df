"""A cell and an objective defined in this file train end to end by name.

This is the promise of the registries: adding a cell or an objective is one
definition plus one `register` call (or one line in the package's table),
and the config, the loop, checkpoints, resume and fine-tuning pick it up.
"""

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import cells
from imujax import configlib
from imujax import models
from imujax import objectives
from imujax.objectives import losses
from imujax.training import checkpoints
from imujax.training import loop
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "configs"))
import test as test_config  # noqa: E402  configs/test.py


# ------------------------------------------------------------ a toy cell
def _diag_init(key, in_dim: int, hidden: int) -> dict:
  return {"w": jax.random.normal(key, (in_dim, hidden)) / np.sqrt(in_dim),
          "logit_a": jnp.zeros((hidden,), jnp.float32)}


def _diag_carry(batch: int, hidden: int) -> jax.Array:
  return jnp.zeros((batch, hidden), jnp.float32)


def _diag_step(params, h, x):
  """h' = sigmoid(a) * h + x W: a diagonal linear recurrence."""
  h = jax.nn.sigmoid(params["logit_a"]) * h + x @ params["w"]
  return h, h


cells.register("toy_diag", cells.Cell(_diag_init, _diag_carry, _diag_step))


# ------------------------------------------------------- a toy objective
def _energy_heads(key, cfg, opts):
  del opts
  return {"energy_head": losses.linear_init(key, cfg.hidden, 1)}


def _energy_loss(params, batch, rng, stats, *, cfg, opts, dropout=True):
  """Predict each frame's raw signal energy (so `stats` is really used)."""
  raw = batch["signals"] * stats["std"] + stats["mean"]
  target = opts["scale"] * jnp.log1p(jnp.square(raw).sum(-1, keepdims=True))
  h = losses.encode(params, cfg, batch["signals"], rng, dropout)
  pred = losses.linear(params["energy_head"], h)
  loss = losses.masked_mse(pred, target, batch["valid"])
  return loss, {"mse": loss}


objectives.register(objectives.Objective("toy_energy", _energy_heads,
                                         _energy_loss), {"scale": 1.0})


def _config(tfds_dir, arg):
  config = test_config.get_config(arg)
  config.data.data_dir = tfds_dir
  configlib.check(config)
  return config


def test_registered_cell_scans_like_its_step():
  cfg = models.ModelConfig(in_dim=3, cell="toy_diag", hidden=4, layers=2,
                           layer_norm=False)
  params = models.init(jax.random.key(0), cfg)["encoder"]
  x = jax.random.normal(jax.random.key(1), (2, 7, 3))
  h, _ = models.encode(params, cfg, x)
  state = models.initial_state(cfg, 2)
  for t in range(7):
    state, h_t = models.encoder_step(params, cfg, state, x[:, t])
    np.testing.assert_allclose(h_t, h[:, t], atol=1e-6)
  # Hand-computed first layer, frame 0 and 1.
  a = jax.nn.sigmoid(0.)
  w = params["layer_0"]["cell"]["w"]
  h0 = x[:, 0] @ w
  np.testing.assert_allclose(
      models.encode({"layer_0": params["layer_0"]},
                    dataclasses.replace(cfg, layers=1),
                    x[:, :2])[0][:, 1], a * h0 + x[:, 1] @ w, atol=1e-6)


def test_registered_cell_and_objective_train_resume_and_finetune(tmp_path,
                                                                 tfds_dir):
  assert "toy_energy" in configlib.base().pretrain  # Its options, by name.
  config = _config(tfds_dir, "mode=pretrain,model.cell=toy_diag,"
                   "pretrain.objective=toy_energy,pretrain.steps=6,"
                   "eval_every=3,checkpoint_every=3,log_every=3")
  config.pretrain.toy_energy.scale = 2.0
  pre = tmp_path / "pre"
  first = loop.train_and_evaluate(config, str(pre), "pretrain")
  assert first["objective"] == "toy_energy" and np.isfinite(
      first["test"]["loss"])
  params, step = checkpoints.restore_params(pre)
  assert step == 6 and set(params) == {"encoder", "energy_head"}

  # Killed after step 3: the rerun resumes there and ends the same.
  (pre / "summary.json").unlink()
  mngr = checkpoints.manager(pre)
  mngr.delete(6)
  mngr.close()
  again = loop.train_and_evaluate(config, str(pre), "pretrain")
  resumed, _ = checkpoints.restore_params(pre)
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert again["test"]["loss"] == pytest.approx(first["test"]["loss"],
                                                abs=1e-6)

  # Fine-tuning starts from its encoder, with a new classifier head.
  ft = _config(tfds_dir, "mode=finetune,model.cell=toy_diag,"
               "finetune.steps=4,eval_every=2,checkpoint_every=2,log_every=2")
  ft.init_from = str(pre)
  summary = loop.train_and_evaluate(ft, str(tmp_path / "ft"), "finetune")
  assert 0 <= summary["test"]["macro_f1"] <= 1
  tuned, _ = checkpoints.restore_params(tmp_path / "ft")
  assert set(tuned) == {"encoder", "classifier"}


def test_encode_says_which_subtree_it_wants():
  cfg = models.ModelConfig(in_dim=3, hidden=4, layers=1, num_classes=2)
  params = models.init(jax.random.key(0), cfg)
  with pytest.raises(ValueError, match=r'pass params\["encoder"\]'):
    models.encode(params, cfg, jnp.zeros((1, 2, 3)))
