"""imujax.cells against a step-by-step NumPy reference written here.

Forward: every hidden state and the final carry against NumPy in float64.
Gradients: jax.grad (params, initial carry and inputs, float64) against central
finite differences of the NumPy reference along random directions, so neither
side shares code with the scan or with JAX's autodiff.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import cells

CELL_KINDS = ("rnn", "lstm", "gru")
# (batch, time, in_dim, hidden), unroll: each cell meets both shapes and both
# unrolls, with unroll 3 not dividing time 7.
CASES = [(kind, (2, 7, 3, 5), 3) for kind in ("rnn", "lstm", "gru")] + [
    (kind, (4, 12, 6, 8), 1) for kind in ("rnn", "lstm", "gru")]


# ------------------------------------------------------------ NumPy reference
def _sigmoid(x):
  return 1. / (1. + np.exp(-x))


def _np_step(kind, p, carry, x):
  """One step of the PyTorch-layout cells, written out in NumPy."""
  if kind == "rnn":
    h = np.tanh(x @ p["w_ih"] + carry @ p["w_hh"] + p["b"])
    return h, h
  if kind == "lstm":
    c, h = carry
    hidden = h.shape[-1]
    z = x @ p["w_ih"] + h @ p["w_hh"] + p["b"]
    i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    return (c, h), h
  h = carry
  hidden = h.shape[-1]
  gi = x @ p["w_ih"] + p["b_ih"]
  gh = h @ p["w_hh"] + p["b_hh"]
  part = lambda a, k: a[:, k * hidden:(k + 1) * hidden]
  r = _sigmoid(part(gi, 0) + part(gh, 0))
  z = _sigmoid(part(gi, 1) + part(gh, 1))
  n = np.tanh(part(gi, 2) + r * part(gh, 2))
  h = (1. - z) * n + z * h
  return h, h


def _np_scan(kind, p, carry, xs, reverse=False):
  order = range(xs.shape[1])
  hs = [None] * xs.shape[1]
  for t in (reversed(order) if reverse else order):
    carry, hs[t] = _np_step(kind, p, carry, xs[:, t])
  return np.stack(hs, axis=1), carry


# ------------------------------------------------------------------- fixtures
def _problem(kind, batch, time, in_dim, hidden, seed=0):
  """Random params (biases too), non-zero initial carry, inputs, loss weights."""
  rng = np.random.default_rng(seed)
  params = cells.get(kind).init(jax.random.key(seed), in_dim, hidden)
  params = {k: np.asarray(v, np.float64) + 0.1 * rng.standard_normal(v.shape)
            for k, v in params.items()}
  leaves = 2 if kind == "lstm" else 1
  carry = [0.5 * rng.standard_normal((batch, hidden)) for _ in range(leaves)]
  carry = tuple(carry) if kind == "lstm" else carry[0]
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


# ---------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind,shape,unroll", CASES)
def test_forward_matches_numpy(kind, shape, unroll):
  params, carry, xs, _, _ = _problem(kind, *shape)
  cell = cells.get(kind)
  hs, final = jax.jit(lambda p, c, x: cells.scan(cell.step, p, c, x,
                                                 unroll=unroll))(
                                                     _f32(params), _f32(carry),
                                                     _f32(xs))
  ref_hs, ref_final = _np_scan(kind, params, carry, xs)
  assert hs.shape == xs.shape[:2] + (shape[3],)
  np.testing.assert_allclose(hs, ref_hs, rtol=2e-5, atol=2e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5,
                                                       atol=2e-5),
               final, ref_final)


@pytest.mark.parametrize("kind,shape,unroll", CASES)
def test_gradients_match_numpy_finite_differences(kind, shape, unroll):
  params, carry, xs, w_hs, w_carry = _problem(kind, *shape, seed=1)
  cell = cells.get(kind)

  def jax_loss(args):
    hs, final = cells.scan(cell.step, args[0], args[1], args[2],
                           unroll=unroll)
    return _loss(hs, final, w_hs, w_carry, jnp.sum)

  def np_loss(args):
    hs, final = _np_scan(kind, *args)
    return _loss(hs, final, w_hs, w_carry, np.sum)

  args = (params, carry, xs)
  with jax.enable_x64(True):
    grads = jax.jit(jax.grad(jax_loss))(jax.tree.map(jnp.asarray, args))
    grads = jax.tree.map(np.asarray, grads)
  rng = np.random.default_rng(2)
  eps = 1e-6
  # Random directions over params, initial carry and inputs at once, then
  # one direction per leaf, so an error in any single gradient shows.
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


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_carry_is_float32_for_bfloat16_inputs(kind):
  cell = cells.get(kind)
  params = cell.init(jax.random.key(0), 3, 4)
  xs = jnp.ones((2, 5, 3), jnp.bfloat16)
  hs, final = cells.scan(cell.step, params, cell.initial_carry(2, 4), xs)
  assert hs.dtype == jnp.float32
  for leaf in jax.tree.leaves(cell.initial_carry(2, 4)) + jax.tree.leaves(
      final):
    assert leaf.dtype == jnp.float32


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_initial_carry_is_honoured(kind):
  params, carry, xs, _, _ = _problem(kind, 2, 4, 3, 5)
  cell = cells.get(kind)
  zero = cell.initial_carry(2, 5)
  hs_given, _ = cells.scan(cell.step, _f32(params), _f32(carry), _f32(xs))
  hs_zero, _ = cells.scan(cell.step, _f32(params), zero, _f32(xs))
  _, h0 = _np_step(kind, params, carry, xs[:, 0])
  np.testing.assert_allclose(hs_given[:, 0], h0, rtol=2e-5, atol=2e-5)
  assert not np.allclose(hs_given[:, 0], hs_zero[:, 0], atol=1e-3)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_reverse_matches_reversed_inputs(kind):
  params, carry, xs, _, _ = _problem(kind, 3, 6, 4, 5)
  cell = cells.get(kind)
  params, carry, xs = _f32(params), _f32(carry), _f32(xs)
  hs_rev, final_rev = cells.scan(cell.step, params, carry, xs, reverse=True)
  hs_flip, final_flip = cells.scan(cell.step, params, carry, xs[:, ::-1])
  np.testing.assert_allclose(hs_rev, hs_flip[:, ::-1], rtol=1e-6, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-6),
               final_rev, final_flip)


@pytest.mark.parametrize("kind,remat_chunk,reverse", [
    ("rnn", 4, True), ("lstm", 4, True), ("lstm", 16, False),
    ("gru", 4, False), ("gru", 5, True)])
def test_remat_chunk_matches_plain_scan(kind, remat_chunk, reverse):
  # time=10: chunks of 4 leave a remainder, 5 divides it, 16 exceeds it.
  params, carry, xs, w_hs, w_carry = _problem(kind, 2, 10, 3, 4)
  params, carry, xs = _f32(params), _f32(carry), _f32(xs)
  step = cells.get(kind).step

  def run(args, chunk):
    hs, final = cells.scan(step, *args, reverse=reverse, remat_chunk=chunk)
    return _loss(hs, final, w_hs, w_carry, jnp.sum), (hs, final)

  (_, want), want_grads = jax.value_and_grad(run, has_aux=True)(
      (params, carry, xs), None)
  (_, got), got_grads = jax.jit(
      jax.value_and_grad(run, has_aux=True), static_argnums=1)(
          (params, carry, xs), remat_chunk)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  jax.tree.map(close, got, want)
  jax.tree.map(close, got_grads, want_grads)


def test_remat_chunk_must_be_positive():
  cell = cells.get("gru")
  with pytest.raises(ValueError, match="remat_chunk"):
    cells.scan(cell.step, cell.init(jax.random.key(0), 3, 4),
               cell.initial_carry(2, 4), jnp.ones((2, 5, 3)), remat_chunk=-2)


def test_cell_scan_is_optional():
  # The sequential cells have no parallel scan; a Cell built from three
  # functions (a registered cell's usual form) still works.
  for kind in CELL_KINDS:
    assert cells.get(kind).scan is None
  cell = cells.get("gru")
  assert cells.Cell(cell.init, cell.initial_carry, cell.step).scan is None
  assert callable(cells.get("mingru").scan)
  assert {"mingru", "minlstm", "lru"} <= set(cells.names())


def test_unknown_cell_names_the_choices():
  with pytest.raises(ValueError, match="model.cell"):
    cells.get("transformer")
