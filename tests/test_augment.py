"""Augmentations keep shapes and physical units, and are reproducible."""

import jax
import numpy as np
import pytest

from imujax.objectives import augment as _augment


def _jit(fn, **static):
  """fn jitted once, returning numpy (eager jax ops would compile per op)."""
  jitted = jax.jit(fn, **static)
  return staticmethod(lambda *a, **k: np.asarray(jitted(*a, **k)))


class augment:  # noqa: N801  The functions under test, each jitted once.
  triplets = staticmethod(_augment.triplets)
  random_rotations = _jit(_augment.random_rotations, static_argnums=1)
  rotation = _jit(_augment.rotation, static_argnums=2)
  jitter = _jit(_augment.jitter)
  scaling = _jit(_augment.scaling)
  negate = staticmethod(_augment.negate)
  channel_shuffle = _jit(_augment.channel_shuffle)
  channel_dropout = _jit(_augment.channel_dropout)
  time_warp = _jit(_augment.time_warp, static_argnames="knots")
  time_warp_sources = _jit(_augment.time_warp_sources, static_argnums=(1, 2, 4))
  flip = _jit(_augment.flip)
  permutation = _jit(_augment.permutation, static_argnums=2)


WATCH = ("wrist_acc_x", "wrist_acc_y", "wrist_acc_z",
         "wrist_gyr_x", "wrist_gyr_y", "wrist_gyr_z")


def _x(shape=(4, 32, 6), seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_triplets_group_sensors_by_placement():
  assert augment.triplets(WATCH) == (((0, 1, 2), (3, 4, 5)),)
  names = ("ankle_acc_x", "wrist_acc_x", "ankle_acc_y", "ankle_acc_z",
           "wrist_acc_y", "wrist_temp", "wrist_acc_z", "ankle_gyr_x",
           "ankle_gyr_y", "ankle_gyr_z", "lower_back_acc_x",
           "lower_back_acc_y", "wrist_gyr_x")  # Incomplete ones dropped.
  assert augment.triplets(names) == (((0, 2, 3), (7, 8, 9)), ((1, 4, 6),))
  assert augment.triplets(("a", "b_c")) == ()


def test_rotations_are_proper():
  r = augment.random_rotations(jax.random.key(0), (200,))
  r = np.asarray(r)
  np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2),
                             np.broadcast_to(np.eye(3), r.shape), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(r), 1., atol=1e-5)
  small = augment.random_rotations(jax.random.key(0), (200,), 0.1)
  angle = np.arccos(np.clip((np.trace(small, axis1=-2, axis2=-1) - 1) / 2,
                            -1, 1))
  assert float(angle.max()) <= 0.1 + 1e-3


def test_rotation_keeps_norms_and_turns_acc_and_gyr_together():
  groups = augment.triplets(WATCH)
  acc = _x((4, 32, 3))
  x = np.concatenate([acc, acc], -1)  # The gyro reads what the acc reads.
  y = augment.rotation(jax.random.key(1), x, groups)
  assert y.shape == x.shape and y.dtype == x.dtype
  for idx in groups[0]:
    np.testing.assert_allclose(np.linalg.norm(y[..., list(idx)], axis=-1),
                               np.linalg.norm(x[..., list(idx)], axis=-1),
                               rtol=1e-5)
  # The same rotation for both sensors of the placement...
  np.testing.assert_allclose(y[..., :3], y[..., 3:], atol=1e-5)
  # ...which does rotate, differently per sequence, and reproducibly.
  assert not np.allclose(y, x, atol=1e-2)
  np.testing.assert_array_equal(
      y, augment.rotation(jax.random.key(1), x, groups))
  np.testing.assert_allclose(augment.rotation(jax.random.key(1), x, groups, 0.),
                             x, atol=1e-6)


def test_rotation_is_independent_per_placement():
  names = WATCH + tuple(n.replace("wrist", "ankle") for n in WATCH)
  groups = augment.triplets(names)
  acc = _x((2, 16, 3))
  y = augment.rotation(jax.random.key(3), np.tile(acc, (1, 1, 4)), groups)
  np.testing.assert_allclose(y[..., 0:3], y[..., 3:6], atol=1e-5)
  np.testing.assert_allclose(y[..., 6:9], y[..., 9:12], atol=1e-5)
  assert not np.allclose(y[..., 0:3], y[..., 6:9], atol=1e-2)


def test_jitter_std_and_reproducibility():
  x = np.zeros((16, 256, 6))
  std = np.asarray([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
  y = augment.jitter(jax.random.key(0), x, std)
  np.testing.assert_allclose(y.std((0, 1)), std, rtol=0.03)
  np.testing.assert_allclose(y.mean((0, 1)), 0., atol=0.01)
  np.testing.assert_array_equal(y, augment.jitter(jax.random.key(0), x, std))
  assert not np.allclose(y, augment.jitter(jax.random.key(1), x, std))


def test_scaling_one_factor_per_sequence_and_channel():
  x = np.ones((64, 20, 6))
  y = augment.scaling(jax.random.key(0), x, 0.2)
  np.testing.assert_allclose(y, np.broadcast_to(y[:, :1], y.shape))
  np.testing.assert_allclose(y[:, 0].std(), 0.2, rtol=0.15)


def test_negate_and_channel_shuffle_keep_values():
  x = _x()
  np.testing.assert_array_equal(augment.negate(None, x), -x)
  y = augment.channel_shuffle(jax.random.key(0), x)
  np.testing.assert_array_equal(np.sort(y, -1), np.sort(x, -1))
  assert not np.array_equal(y, x)
  # One order per sequence, for all its frames.
  order = np.argmax(y[:, :1, :, None] == x[:, :1, None, :], -1)
  np.testing.assert_array_equal(
      y, np.take_along_axis(x, np.broadcast_to(order, x.shape), -1))


def test_channel_dropout_blanks_whole_channels():
  x = _x((64, 16, 6)) + 5.
  y = augment.channel_dropout(jax.random.key(0), x, 0.3)
  dropped = (y == 0.).all(1)
  kept = (y == x).all(1)
  assert bool((dropped | kept).all())
  assert 0.2 < float(dropped.mean()) < 0.4


def test_time_warp_identity_monotone_and_endpoints():
  x = _x((8, 64, 2))  # One shape: one compile.
  np.testing.assert_array_equal(augment.time_warp(jax.random.key(0), x, 0.),
                                x)
  src = augment.time_warp_sources(jax.random.key(0), 8, 64, 0.5)
  assert bool((np.diff(src, axis=1) > 0).all())
  np.testing.assert_allclose(src[:, 0], 0., atol=1e-4)
  np.testing.assert_allclose(src[:, -1], 63., atol=1e-3)
  assert float(np.abs(src - np.arange(64.)).max()) > 1.  # It does warp.
  ramp = np.broadcast_to(np.arange(64.)[None, :, None], (8, 64, 2))
  np.testing.assert_allclose(
      augment.time_warp(jax.random.key(0), ramp, 0.5)[..., 0], src, atol=1e-4)


def test_time_warp_leaves_padding_in_place():
  lengths = np.asarray([20, 32])
  src = augment.time_warp_sources(jax.random.key(0), 2, 32, 0.5,
                                  lengths=lengths)
  np.testing.assert_allclose(src[0, 19], 19., atol=1e-4)
  np.testing.assert_array_equal(src[0, 20:], np.arange(20., 32.))
  assert float(src[0, :20].max()) <= 19. + 1e-4


def test_flip_reverses_the_valid_prefix():
  x = _x((2, 10, 3))
  y = augment.flip(None, x, np.asarray([10, 6]))
  np.testing.assert_array_equal(y[0], x[0, ::-1])
  np.testing.assert_array_equal(y[1, :6], x[1, 5::-1])
  np.testing.assert_array_equal(y[1, 6:], x[1, 6:])
  np.testing.assert_array_equal(augment.flip(None, y, np.asarray([10, 6])), x)


@pytest.mark.parametrize("length", [32, 27])
def test_permutation_moves_whole_segments(length):
  ramp = np.broadcast_to(np.arange(32.)[None, :, None], (16, 32, 1))
  y = augment.permutation(jax.random.key(0), ramp, 4,
                          np.full((16,), length))[..., 0]
  # Same frames, reordered; padding untouched; within a segment, in order.
  np.testing.assert_array_equal(np.sort(y[:, :length], 1),
                                ramp[:, :length, 0])
  np.testing.assert_array_equal(y[:, length:], ramp[:, length:, 0])
  jumps = (np.diff(y[:, :length], axis=1) != 1).sum(1)
  assert int(jumps.max()) <= 3 and int(jumps.max()) > 0
  np.testing.assert_array_equal(
      y, augment.permutation(jax.random.key(0), ramp, 4,
                             np.full((16,), length))[..., 0])
