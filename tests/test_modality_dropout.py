"""model.modality_dropout (training) and the streaming gap policy for a
missing modality (online/modality_gaps.py): off is bit-identical, on zeroes
exactly one modality's channels of the dropped sequences, and streaming with
a modality absent equals the scan with its channels at 0 (normalised)."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from imujax import models
from imujax.objectives import modality
from imujax.online import modality_gaps
from imujax.online import step as step_lib
from imujax.online import streamer as streamer_lib
from imujax.training import input_dropout

NAMES = ("gaze_x_deg", "gaze_y_deg", "left_pressure_01", "left_pressure_02",
         "right_pressure_01")
KINDS = modality.of(NAMES)  # gaze, gaze, pressure, pressure, pressure


def _cfg(p=0.0, **kw):
  extra = {"modality_dropout": p, "modalities": KINDS} if p else {}
  return models.ModelConfig(in_dim=len(NAMES), cell="gru", hidden=8,
                            layers=2, dropout=0.0, num_classes=3,
                            **extra, **kw)


def _x(batch=64, time=12, seed=0):
  return jax.random.normal(jax.random.PRNGKey(seed), (batch, time, len(NAMES)))


def test_off_is_bit_identical():
  params = models.init(jax.random.PRNGKey(1), _cfg())
  x = _x()
  rng = jax.random.PRNGKey(7)
  base = models.classify_sequence(params, _cfg(), x, dropout_rng=rng)
  # The default config and a config that spells 0 explicitly: same program.
  assert models.ModelConfig(in_dim=5, cell="gru", hidden=8, layers=2,
                            dropout=0.0, num_classes=3) == _cfg()
  again = models.classify_sequence(params, _cfg(), x, dropout_rng=rng)
  np.testing.assert_array_equal(np.asarray(base), np.asarray(again))
  # On, but without a dropout rng (evaluation): also identical.
  evaluated = models.classify_sequence(params, _cfg(0.5), x)
  np.testing.assert_array_equal(np.asarray(base), np.asarray(evaluated))


def test_on_zeroes_exactly_one_modality_of_the_dropped_rows():
  x = _x(batch=256) + 3.0  # No input value is 0 by chance.
  out = np.asarray(models.drop_modality(jax.random.PRNGKey(3), x, KINDS, 0.5))
  x = np.asarray(x)
  groups = {k: [i for i, m in enumerate(KINDS) if m == k] for k in set(KINDS)}
  dropped = {"gaze": 0, "pressure": 0}
  for b in range(len(x)):
    zero = np.all(out[b] == 0, axis=0)          # Channels zero at every frame.
    same = np.all(out[b] == x[b], axis=0)       # Channels untouched.
    assert np.all(zero | same)
    hit = [k for k, idx in groups.items() if zero[idx].all()]
    assert len(hit) <= 1
    if hit:
      assert sorted(np.flatnonzero(zero)) == groups[hit[0]]
      dropped[hit[0]] += 1
    else:
      assert same.all()
  n = sum(dropped.values())
  assert 90 < n < 166                     # ~ Binomial(256, 0.5).
  assert min(dropped.values()) > 20       # Both modalities get dropped.


def test_encode_applies_it_in_training_only_and_before_the_adapter():
  cfg = _cfg(0.99)
  params = models.init(jax.random.PRNGKey(1), cfg)
  x = _x(batch=8)
  rng = jax.random.PRNGKey(5)
  h_train, _ = models.encode(params["encoder"], cfg, x, dropout_rng=rng)
  dropped = models.drop_modality(jax.random.fold_in(rng, 1_000_003), x,
                                 KINDS, 0.99)
  h_want, _ = models.encode(params["encoder"], cfg, dropped)
  np.testing.assert_allclose(h_train, h_want, rtol=1e-6, atol=1e-6)


def test_model_config_round_trips_through_json():
  cfg = _cfg(0.3)
  back = models.ModelConfig(**json.loads(json.dumps(
      {f: getattr(cfg, f) for f in cfg.__dataclass_fields__})))
  assert back == cfg and hash(back) == hash(cfg)


def _config(p):
  c = ml_collections.ConfigDict({"model": {"modality_dropout": p}})
  return c


def test_config_check():
  assert input_dropout.model_fields(_config(0.0), NAMES) == {}
  assert input_dropout.model_fields(_config(0.25), NAMES) == {
      "modality_dropout": 0.25, "modalities": KINDS}
  with pytest.raises(ValueError, match=r"model\.modality_dropout=0\.5 drops"
                     r".*'gaze'.*two or more modalities"):
    input_dropout.model_fields(_config(0.5), ("gaze_x_deg", "gaze_y_deg"))
  with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
    input_dropout.model_fields(_config(1.0), NAMES)


class _Model:
  """The streamer's model interface over `online.step`, with a normaliser."""

  def __init__(self, params, cfg, mean, std, rate):
    self.params, self.cfg, self.mean, self.std = params, cfg, mean, std
    self.channel_names, self.class_names = list(NAMES), ["a", "b", "c"]
    self.sample_rate_hz = rate

  def init_state(self, batch=1):
    return step_lib.init_state(self.cfg, batch)

  def step(self, state, x_raw):
    x = (jnp.asarray(x_raw, jnp.float32) - self.mean) / self.std
    state, out = step_lib.step(self.params, self.cfg, state, x)
    return state, out["probs"]


def test_streaming_with_a_modality_absent_equals_the_scan_with_it_zeroed():
  cfg = _cfg()
  params = models.init(jax.random.PRNGKey(2), cfg)
  rate, n = 50.0, 40
  rng = np.random.default_rng(0)
  raw = rng.normal(size=(n, len(NAMES))) * 2 + 1
  mean = np.float32(rng.normal(size=len(NAMES)))
  std = np.float32(rng.uniform(0.5, 2, size=len(NAMES)))
  absent = np.zeros(n, bool)
  absent[10:25] = True              # Pressure missing (late / lost) here.
  sent = raw.copy()
  sent[absent, 2:] = np.nan
  gaps = modality_gaps.ModalityGaps(NAMES, mean)
  stream = streamer_lib.Streamer(_Model(params, cfg, mean, std, rate),
                                 list(NAMES), modality_gaps=gaps)
  probs = []
  for k in range(n):
    probs += [o.probs for o in stream.push(k / rate, sent[k])]
  assert gaps.counts == {"gaze": 0, "pressure": int(absent.sum())}
  x = (np.float32(raw) - mean) / std
  x[absent, 2:] = 0.0
  _, out = step_lib.scan_steps(params, cfg, jnp.asarray(x[None]))
  want = np.asarray(out["probs"])[0]
  assert len(probs) >= n - 1
  np.testing.assert_allclose(np.stack(probs), want[:len(probs)], rtol=1e-5,
                             atol=1e-6)


def test_gap_policy_leaves_partial_gaps_and_single_modalities_alone():
  gaps = modality_gaps.ModalityGaps(NAMES, np.arange(5.0))
  x = np.array([1.0, np.nan, 2.0, np.nan, np.nan])
  out = gaps(x)       # Gaze partly there: an ordinary gap, kept as NaN.
  assert np.isnan(out[1]) and out[0] == 1.0 and out[2] == 2.0
  assert gaps.counts == {"gaze": 0, "pressure": 0}
  single = modality_gaps.ModalityGaps(("gaze_x_deg", "gaze_y_deg"), [0, 0])
  assert np.isnan(single([np.nan, np.nan])).all()
