"""The parallel-in-time cells (mingru, minlstm, lru) against references.

Each cell's `Cell.scan` (jax.lax.associative_scan over all frames) is checked
against a frame-by-frame NumPy reference of the papers' equations written
here (float64), against a sequential `lax.scan` of the cell's own `step`
(values and gradients), and against central finite differences of the NumPy
reference (gradients, float64). Then the same cells in the encoder: the
online step reproduces the parallel encode, the NumPy streaming model
reproduces it, and `model.cell=mingru` trains through the normal loop.
"""

import functools
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import cells
from imujax import configlib
from imujax import models
from imujax.cells import parallel
from imujax.online import model
from imujax.online import numpy_model
from imujax.online import step
from imujax.training import checkpoints
from imujax.training import loop
from tests.conftest import REPO
from tests.test_stream import make_checkpoint

KINDS = ("mingru", "minlstm", "lru")
TOL = dict(rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------ NumPy reference
def _sigmoid(x):
  return 1. / (1. + np.exp(-x))


def _gelu_tanh(y):
  return 0.5 * y * (1. + np.tanh(np.sqrt(2. / np.pi) * (y + 0.044715 * y**3)))


def _np_step(kind, p, carry, x):
  """One frame of each paper's equations, written out in NumPy (float64)."""
  if kind == "lru":  # Orvieto et al. 2023, complex diagonal.
    lam = np.exp(-np.exp(p["nu_log"])) * np.exp(1j * np.exp(p["theta_log"]))
    w_in = p["w_in_re"] + 1j * p["w_in_im"]
    w_out = p["w_out_re"] + 1j * p["w_out_im"]
    s = lam * (carry[0] + 1j * carry[1]) + np.exp(p["gamma_log"]) * (x @ w_in)
    y = _gelu_tanh(np.real(s @ w_out) + x @ p["w_skip"] + p["b"])
    return (s.real, s.imag), y
  k = x @ p["w"] + p["b"]
  hidden = carry.shape[-1]
  part = lambda j: k[:, j * hidden:(j + 1) * hidden]
  if kind == "mingru":  # Feng et al. 2024, section 3.1.
    z = _sigmoid(part(0))
    h = (1. - z) * carry + z * part(1)
  else:  # minlstm, Feng et al. 2024, section 3.2: normalised gates.
    i, f = _sigmoid(part(0)), _sigmoid(part(1))
    h = f / (f + i) * carry + i / (f + i) * part(2)
  return h, h


def _np_scan(kind, p, carry, xs):
  hs = []
  for t in range(xs.shape[1]):
    carry, h = _np_step(kind, p, carry, xs[:, t])
    hs.append(h)
  return np.stack(hs, axis=1), carry


# ------------------------------------------------------------------- fixtures
def _problem(kind, batch, time, in_dim, hidden, seed=0):
  """Random params (biases too), non-zero initial carry, inputs, weights."""
  rng = np.random.default_rng(seed)
  params = cells.get(kind).init(jax.random.key(seed), in_dim, hidden)
  params = {k: np.asarray(v, np.float64) + 0.1 * rng.standard_normal(v.shape)
            for k, v in params.items()}
  carry = 0.5 * rng.standard_normal((batch, hidden))
  if kind == "lru":
    carry = (carry, 0.5 * rng.standard_normal((batch, hidden)))
  xs = rng.standard_normal((batch, time, in_dim))
  w_hs = rng.standard_normal((batch, time, hidden))
  w_carry = jax.tree.map(lambda a: rng.standard_normal(a.shape), carry)
  return params, carry, xs, w_hs, w_carry


def _loss(hs, carry, w_hs, w_carry, sum_fn):
  terms = [sum_fn(hs * w_hs)]
  terms += [sum_fn(a * w) for a, w in zip(jax.tree.leaves(carry),
                                           jax.tree.leaves(w_carry))]
  return sum(terms)


def _f32(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def _close(got, want, **tol):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **(tol or TOL)),
               got, want)


def _sequential(kind):
  return lambda p, c, x: cells.scan(cells.get(kind).step, p, c, x)


def _parallel(kind, chunk=None, method="associative"):
  return lambda p, c, x: cells.get(kind).scan(p, c, x, chunk=chunk,
                                              method=method)


# ------------------------------------------------------- the cells themselves
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape,chunk,method", [
    ((2, 7, 3, 5), None, "associative"), ((2, 7, 3, 5), None, "sequential"),
    ((4, 33, 6, 8), None, "associative"), ((4, 33, 6, 8), 8, "associative"),
    ((4, 33, 6, 8), 8, "sequential")])
def test_forward_matches_numpy_and_the_sequential_step(kind, shape, chunk,
                                                       method):
  params, carry, xs, _, _ = _problem(kind, *shape)
  args = _f32((params, carry, xs))
  hs, final = jax.jit(_parallel(kind, chunk, method))(*args)
  ref_hs, ref_final = _np_scan(kind, params, carry, xs)
  assert hs.dtype == jnp.float32 and hs.shape == ref_hs.shape
  _close((hs, final), (ref_hs, ref_final))
  _close(jax.jit(_sequential(kind))(*args), (ref_hs, ref_final))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk,method", [(None, "associative"),
                                          (5, "associative"),
                                          (None, "sequential")])
def test_gradients_equal_the_sequential_scan(kind, chunk, method):
  # time=12: chunks of 5 leave a remainder of 2.
  params, carry, xs, w_hs, w_carry = _problem(kind, 3, 12, 4, 6, seed=1)
  args = _f32((params, carry, xs))

  def grads(scan_fn):
    def loss(a):
      hs, final = scan_fn(*a)
      return _loss(hs, final, w_hs, w_carry, jnp.sum)
    return jax.jit(jax.grad(loss))(args)

  want = grads(_sequential(kind))
  _close(grads(_parallel(kind, chunk, method)), want)
  # And both are the float64 gradient (checked against NumPy below).
  with jax.enable_x64(True):
    exact = jax.tree.map(np.asarray, grads64(kind, (params, carry, xs),
                                             w_hs, w_carry))
  _close(want, exact)


def grads64(kind, args, w_hs, w_carry):
  """jax.grad of the float64 associative scan (under jax.enable_x64)."""
  def loss(a):
    hs, final = cells.get(kind).scan(*a, method="associative")
    return _loss(hs, final, w_hs, w_carry, jnp.sum)
  return jax.jit(jax.grad(loss))(jax.tree.map(jnp.asarray, args))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_match_numpy_finite_differences(kind):
  params, carry, xs, w_hs, w_carry = _problem(kind, 2, 9, 3, 5, seed=2)
  args = (params, carry, xs)
  with jax.enable_x64(True):
    grads = jax.tree.map(np.asarray, grads64(kind, args, w_hs, w_carry))

  def np_loss(a):
    hs, final = _np_scan(kind, *a)
    return _loss(hs, final, w_hs, w_carry, np.sum)

  rng = np.random.default_rng(3)
  eps = 1e-6
  # Random directions over everything at once, then one per leaf, so an
  # error in any single gradient shows.
  directions = [jax.tree.map(lambda a: rng.standard_normal(a.shape), args)
                for _ in range(2)]
  leaves, treedef = jax.tree.flatten(args)
  for k in range(len(leaves)):
    directions.append(jax.tree.unflatten(treedef, [
        rng.standard_normal(a.shape) if j == k else np.zeros_like(a)
        for j, a in enumerate(leaves)]))
  for v in directions:
    plus = jax.tree.map(lambda a, d: a + eps * d, args, v)
    minus = jax.tree.map(lambda a, d: a - eps * d, args, v)
    numeric = (np_loss(plus) - np_loss(minus)) / (2 * eps)
    analytic = sum(float(np.sum(g * d)) for g, d in
                   zip(jax.tree.leaves(grads), jax.tree.leaves(v)))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_long_sequence_with_decays_near_one_stays_accurate(kind):
  """8192 frames, decays from ~1 - 1e-7 to ~0: float32 parallel vs float64."""
  params, carry, xs, _, _ = _problem(kind, 2, 8192, 3, 16, seed=4)
  hidden = 16
  # Gate biases spread over [-16, 4] (minlstm: input gate low, forget high)
  # so some units keep their state for the whole sequence (decay 1 - 1e-7).
  spread = np.linspace(-16., 4., hidden)
  if kind == "mingru":
    params["b"][:hidden] = spread
  else:
    params["b"][:hidden], params["b"][hidden:2 * hidden] = spread, -spread
  ref_hs, _ = _np_scan(kind, params, carry, xs)
  hs, _ = jax.jit(_parallel(kind))(*_f32((params, carry, xs)))
  seq_hs, _ = jax.jit(_sequential(kind))(*_f32((params, carry, xs)))
  assert np.isfinite(hs).all()
  np.testing.assert_allclose(hs, ref_hs, rtol=1e-4, atol=1e-4)
  # No worse than the sequential float32 recurrence (up to rounding).
  err, seq_err = (np.abs(np.asarray(a) - ref_hs).max() for a in (hs, seq_hs))
  assert err <= 2 * seq_err + 1e-6, (err, seq_err)


def test_minlstm_gates_that_underflow_stay_finite():
  # Both gates' pre-activations near -200: sigmoid is 0 in float32, so
  # f / (f + i) would be 0 / 0; the log-space form is exact (float64 ref).
  params, carry, xs, _, _ = _problem("minlstm", 2, 6, 3, 4, seed=5)
  params["w"][:, :8] = 0.
  params["b"][:4], params["b"][4:8] = -200., -201.
  ref_hs, ref_final = _np_scan("minlstm", params, carry, xs)
  got = jax.jit(_parallel("minlstm"))(*_f32((params, carry, xs)))
  _close(got, (ref_hs, ref_final))


@pytest.mark.parametrize("kind", KINDS)
def test_chunk_values_and_gradients_equal_the_whole_sequence(kind):
  params, carry, xs, w_hs, w_carry = _problem(kind, 2, 12, 3, 4, seed=6)
  args = _f32((params, carry, xs))

  def run(a, chunk):
    hs, final = cells.get(kind).scan(*a, chunk=chunk, method="associative")
    return _loss(hs, final, w_hs, w_carry, jnp.sum), (hs, final)

  value_and_grad = jax.jit(jax.value_and_grad(run, has_aux=True),
                           static_argnums=1)
  want = value_and_grad(args, None)
  for chunk in (4, 5):  # Divides 12; leaves a remainder.
    _close(value_and_grad(args, chunk), want)
  with pytest.raises(ValueError, match="chunk"):
    cells.get(kind).scan(*args, chunk=-3)


@pytest.mark.parametrize("kind", KINDS)
def test_carry_is_float32_and_one_buffer_per_leaf(kind):
  cell = cells.get(kind)
  params = cell.init(jax.random.key(0), 3, 4)
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(params))
  carry = cell.initial_carry(2, 4)
  leaves = jax.tree.leaves(carry)
  assert len({a.unsafe_buffer_pointer() for a in leaves}) == len(leaves)
  xs = jnp.ones((2, 5, 3), jnp.bfloat16)
  for hs, final in (cell.scan(params, carry, xs),
                    cells.scan(cell.step, params, carry, xs)):
    assert hs.dtype == jnp.float32
    assert all(a.dtype == jnp.float32 and a.shape == (2, 4)
               for a in jax.tree.leaves(final))


@pytest.mark.parametrize("method", parallel.METHODS)
def test_linear_recurrence_against_a_loop(method):
  rng = np.random.default_rng(7)
  # Complex decays inside the unit disc, shared by the batch (leading 1).
  a = rng.uniform(0., 1., (1, 10, 3)) * np.exp(2j * rng.uniform(0, 3, (1, 10,
                                                                      3)))
  b = rng.standard_normal((2, 10, 3)) + 1j * rng.standard_normal((2, 10, 3))
  h0 = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
  want = np.stack(_reference_loop(a, b, h0), axis=1)
  pair = lambda z: _f32((z.real, z.imag))
  got = parallel.linear_recurrence(pair(a), pair(b), pair(h0),
                                   multiply=parallel.complex_multiply,
                                   method=method)
  _close(got, (want.real, want.imag))
  got = parallel.linear_recurrence(*_f32((a.real, b.real, h0.real)),
                                   method=method)
  _close(got, np.stack(_reference_loop(a.real, b.real, h0.real), axis=1))
  # Time-major in and out (what the cells' scans use): the same numbers.
  tm = lambda z: np.swapaxes(z, 0, 1)
  got = parallel.linear_recurrence(pair(tm(a)), pair(tm(b)), pair(h0),
                                   multiply=parallel.complex_multiply,
                                   method=method, time_major=True)
  _close(got, (tm(want.real), tm(want.imag)))


def _reference_loop(a, b, h0):
  """[h_0, ..., h_{T-1}] of h_t = a_t h_{t-1} + b_t (a, b: [batch, time, n])."""
  out, h = [], h0
  for t in range(a.shape[1]):
    h = a[:, t] * h + b[:, t]
    out.append(h)
  return out


def test_unknown_recurrence_method_names_the_choices():
  with pytest.raises(ValueError, match="associative"):
    cells.get("mingru").scan(*_f32(_problem("mingru", 1, 3, 2, 2)[:3]),
                             method="blelloch")


# ------------------------------------------------------ in the encoder online
def test_encode_uses_the_cells_parallel_scan():
  calls = []
  mingru = cells.get("mingru")

  def counted_scan(params, carry, xs):
    calls.append(xs.shape)
    return mingru.scan(params, carry, xs)

  cells.register("counted_mingru", mingru._replace(scan=counted_scan))
  cfg = models.ModelConfig(in_dim=3, cell="counted_mingru", hidden=4,
                           layers=2)
  params = models.init(jax.random.key(0), cfg)["encoder"]
  models.encode(params, cfg, jnp.ones((2, 7, 3)))
  assert calls == [(2, 7, 3), (2, 7, 4)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", [None, "associative"])
def test_online_step_equals_the_parallel_encode(kind, method):
  name = kind
  if method:  # The encoder takes the backend's default: force the other.
    name = f"{kind}_{method}"
    cell = cells.get(kind)
    cells.register(name, cell._replace(
        scan=functools.partial(cell.scan, method=method)))
  cfg = models.ModelConfig(in_dim=6, cell=name, hidden=12, layers=2,
                           adapter_dim=5, num_classes=4, reconstruct=True)
  params = models.init(jax.random.key(0), cfg)
  x = 2. * jax.random.normal(jax.random.key(1), (3, 600, 6))
  # Jitted, as training runs them (eagerly, each op of the scan dispatches).
  h, final = jax.jit(models.encode, static_argnums=1)(params["encoder"], cfg, x)
  logits = jax.jit(models.classify_sequence, static_argnums=1)(params, cfg, x)
  # The scanned step over the whole sequence.
  state, out = jax.jit(step.scan_steps, static_argnums=1)(params, cfg, x)
  np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
  np.testing.assert_allclose(out["reconstruction"],
                             models.reconstruct(params, h), atol=1e-5)
  _close(state, final, atol=1e-5, rtol=0)
  # Frame by frame, jitted with the state donated, on a stretch of it.
  jitted = jax.jit(step.step, static_argnums=1, donate_argnums=2)
  state, outs = step.init_state(cfg, 3), []
  for t in range(100):
    state, o = jitted(params, cfg, state, x[:, t])
    outs.append(o["logits"])
  np.testing.assert_allclose(jnp.stack(outs, axis=1), logits[:, :100],
                             atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_model_equals_the_parallel_encode(kind):
  cfg = models.ModelConfig(in_dim=6, cell=kind, hidden=16, layers=2,
                           num_classes=5)
  params = models.init(jax.random.key(2), cfg)
  rng = np.random.default_rng(8)
  mean, std = rng.standard_normal(6), rng.uniform(0.5, 2., 6)
  ckpt = make_checkpoint(params, cfg, mean, std, [f"c{i}" for i in range(6)],
                         [f"k{i}" for i in range(5)], 50.)
  raw = (rng.standard_normal((300, 6)) * std + mean).astype(np.float32)
  x = ((raw - ckpt.mean) / ckpt.std)[None]
  ref = np.asarray(jax.nn.softmax(models.classify_sequence(params, cfg, x)))
  npm = numpy_model.NumpyModel(ckpt)
  state, got = npm.init_state(1), []
  for frame in raw:
    state, probs = npm.step(state, frame[None])
    got.append(probs[0])
  np.testing.assert_allclose(np.stack(got), ref[0], atol=1e-5)
  with np.errstate(all="raise"):  # Far outside the training range.
    _, probs = npm.step(npm.init_state(1), raw[:1] * 1e4)
  assert np.isfinite(probs).all()


@pytest.mark.parametrize("kind", ["minlstm", "lru"])
def test_exported_artifact_equals_the_parallel_encode(kind, tmp_path):
  pytest.importorskip(
      "flatbuffers", reason="jax.export serialization needs flatbuffers "
      "(pinned in requirements.txt); not installed in this environment.")
  from imujax.online import export  # pylint: disable=g-import-not-at-top
  cfg = models.ModelConfig(in_dim=4, cell=kind, hidden=8, layers=2,
                           num_classes=3)
  params = models.init(jax.random.key(3), cfg)
  ckpt = make_checkpoint(params, cfg, np.zeros(4), np.ones(4),
                         ["a", "b", "c", "d"], ["x", "y", "z"], 50.)
  path = tmp_path / f"{kind}.imujax"
  export.export_checkpoint(ckpt, str(path))
  x = np.random.default_rng(10).standard_normal((60, 2, 4)).astype(np.float32)
  ref = jax.nn.softmax(models.classify_sequence(params, cfg,
                                                np.swapaxes(x, 0, 1)))
  art = export.Artifact.load(path)
  state, got = art.init_state(2), []
  for frame in x:
    state, probs = art.step(state, frame)
    got.append(np.asarray(probs))
  np.testing.assert_allclose(np.stack(got, axis=1), ref, atol=1e-5)


# --------------------------------------------------------------- training
def test_mingru_trains_through_the_loop_and_streams(tmp_path, tfds_dir):
  sys.path.insert(0, str(REPO / "configs"))
  try:
    import test as test_config  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(str(REPO / "configs"))
  config = test_config.get_config(
      "mode=finetune,model.cell=mingru,model.layers=2,finetune.steps=6,"
      "eval_every=3,checkpoint_every=3,log_every=3")
  config.data.data_dir = tfds_dir
  configlib.check(config)
  workdir = tmp_path / "ft"
  summary = loop.train_and_evaluate(config, str(workdir), "finetune")
  assert 0 <= summary["test"]["macro_f1"] <= 1
  assert np.sum(summary["test"]["confusion"]) == summary["test"]["frames"] > 0
  params, at = checkpoints.restore_params(workdir)
  assert at == 6 and set(params["encoder"]["layer_0"]["cell"]) == {"w", "b"}
  assert all(np.isfinite(a).all() for a in jax.tree.leaves(params))
  # Trained params: the jitted online Model reproduces the parallel encode.
  ckpt = model.load(str(workdir))
  assert ckpt.record.model.cell == "mingru"
  rng = np.random.default_rng(9)
  raw = (rng.standard_normal((80, len(ckpt.mean))) * ckpt.std +
         ckpt.mean).astype(np.float32)
  ref = jax.nn.softmax(models.classify_sequence(
      ckpt.params, ckpt.record.model, ((raw - ckpt.mean) / ckpt.std)[None]))
  online = model.Model(ckpt)
  state, got = online.init_state(1), []
  for frame in raw:
    state, probs = online.step(state, frame[None])
    got.append(np.asarray(probs)[0])
  np.testing.assert_allclose(np.stack(got), ref[0], atol=1e-5)


# ------------------------------------------------- configs/sweeps/cells.py
def test_cells_sweep_variants_expand_at_matched_parameter_counts(tmp_path):
  from imujax.experiments import jobs  # pylint: disable=g-import-not-at-top
  path = str(REPO / "configs" / "sweeps" / "cells.py")
  sizes = {"full": (150, 1800), "readme": (100, 200),
           "readme_scratch": (0, 100), "readme_simclr": (100, 100),
           "smoke": (10, 20)}  # Last: `points` below are smoke's.
  plans = {}
  for variant, (pre, fine) in sizes.items():
    config, points = jobs.load_sweep(f"{path}:variant={variant},data_root=/d")
    expanded = jobs.expand(points, config, str(tmp_path))
    assert (sum(j.mode == "pretrain" for j in expanded),
            sum(j.mode == "finetune" for j in expanded)) == (pre, fine)
    assert {p["model.cell"] for p in points} == set(KINDS) | {"lstm", "gru"}
    plans[variant] = [json.dumps(p, sort_keys=True) for p in points]
    if variant.startswith("readme_"):
      assert {p["objective"] for p in points} == {variant[7:]}
    else:
      assert {p["objective"] for p in points} == {"scratch", "simclr"}
  # The two halves are readme's runs, no more, no fewer.
  assert sorted(plans["readme_scratch"] + plans["readme_simclr"]) == sorted(
      plans["readme"])
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("cells_sweep", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for ref_hidden, layers in ((64, 2), (16, 1)):
    target = module.encoder_params("lstm", 6, ref_hidden, layers)
    # The search finds the reference itself: an LSTM as large as the LSTM.
    assert models.width_for_size(models.ModelConfig(
        in_dim=6, cell="lstm", hidden=1, layers=layers), target) == ref_hidden
    for cell in module.CELLS:
      hidden = module.matched_hidden(cell, 6, ref_hidden, layers)
      count = module.encoder_params(cell, 6, hidden, layers)
      assert abs(count - target) <= 0.05 * target, (cell, hidden, count)
      # The count the runs will have, from a real (not traced) init; 1
      # layer only, as an eager init costs a second or two per cell.
      if layers == 1:
        cfg = models.ModelConfig(in_dim=6, cell=cell, hidden=hidden,
                                 layers=layers)
        assert count == sum(a.size for a in jax.tree.leaves(
            models.init_encoder(jax.random.key(0), cfg)))
  smoke = {p["model.cell"]: p["set"]["model.hidden"] for p in points}
  assert smoke["lstm"] == 16 and smoke["mingru"] > 16
  _, points = jobs.load_sweep(f"{path}:variant=smoke,residual=true")
  assert all(p["model.residual"] is True for p in points)
  with pytest.raises(ValueError, match="variant"):
    jobs.load_sweep(f"{path}:variant=nope")
