"""Modality-aware augmentation: physics only where the modality has it.

IMU channel sets must augment exactly as before modalities existed (a
pre-registered study runs on them): `REFERENCE` holds the outputs the code
gave before this change, and the IMU test compares bit for bit. Regenerate
only on purpose: `python tests/test_modality_augment.py` (then say why in the
commit).
"""

import pathlib

import jax
import numpy as np

from imujax.objectives import augment
from imujax.objectives import modality
from imujax.objectives import options
from imujax.objectives import simclr
from imujax.objectives import transform_prediction

REFERENCE = pathlib.Path(__file__).parent / "data" / "augment_imu_reference.npz"
WATCH = ("wrist_acc_x", "wrist_acc_y", "wrist_acc_z",
         "wrist_gyr_x", "wrist_gyr_y", "wrist_gyr_z")
BOTH = tuple(n.replace("wrist", "thigh") for n in WATCH) + WATCH  # sp_sw_har
WAIST = tuple(n.replace("wrist", "lower_back") for n in WATCH)


def _batch(names, batch=9, time=24, seed=0):
  rng = np.random.default_rng(seed)
  c = len(names)
  x = rng.normal(size=(batch, time, c)).astype(np.float32)
  valid = np.ones((batch, time), bool)
  valid[1, 17:] = False
  mean = rng.normal(size=c).astype(np.float32) * 3.
  std = (0.5 + rng.uniform(size=c)).astype(np.float32)
  return x, valid, {"mean": mean, "std": std}


def imu_outputs() -> dict:
  """The augmented batches of three IMU channel sets (current code)."""
  out = {}
  for tag, names in (("watch", WATCH), ("both", BOTH), ("waist", WAIST)):
    x, valid, stats = _batch(names)
    opts = {**options.validate("simclr"), "channel_names": names}
    view = jax.jit(lambda k, x, v, s, o=opts: simclr.simclr_view(k, x, v, o, s))
    out[f"simclr_{tag}"] = np.asarray(view(jax.random.key(3), x, valid,
                                           stats))
    opts = {**options.validate("transform_prediction"), "channel_names": names}
    labels = np.arange(9, dtype=np.int32)  # Original + each of 8 transforms.
    tf = jax.jit(lambda k, x, v, l, s, o=opts: transform_prediction
                 .transform_batch(k, x, v, l, o, s))
    out[f"transform_{tag}"] = np.asarray(tf(jax.random.key(4), x, valid,
                                            labels, stats))
  return out


INSOLE = tuple(f"{side}_pressure_{c:02d}" for side in ("left", "right")
               for c in range(16))
GAZE = ("gaze_x_deg", "gaze_y_deg")


def _legacy_triplets(channel_names):
  """augment.triplets before modalities: any <placement>_<sensor>_<x|y|z>."""
  axes = {}
  for i, name in enumerate(channel_names):
    parts = name.rsplit("_", 2)
    if len(parts) == 3 and parts[2] in ("x", "y", "z"):
      axes.setdefault((parts[0], parts[1]), {})[parts[2]] = i
  by_placement = {}
  for (placement, _), idx in axes.items():
    if len(idx) == 3:
      by_placement.setdefault(placement, []).append(
          (idx["x"], idx["y"], idx["z"]))
  return tuple(tuple(v) for v in by_placement.values())


def test_imu_augmentation_unchanged_against_the_recorded_reference():
  # Recorded before modality-aware augmentation existed; equal here to the
  # bit, compared to 1e-6 so that another CPU's XLA code (other vector
  # units, other rounding of sin/cos) does not fail it.
  ref = np.load(REFERENCE)
  got = imu_outputs()
  assert sorted(ref.files) == sorted(got)
  for key in ref.files:
    np.testing.assert_allclose(got[key], ref[key], rtol=1e-6, atol=1e-6,
                               err_msg=key)


def _imu_builder_names():
  # pylint: disable=g-import-not-at-top
  from imujax.datasets.andy import andy_dataset_builder as andy
  from imujax.datasets.ipol_gait import ipol_gait_dataset_builder as ipol
  from imujax.datasets.mobilised import mobilised_dataset_builder as mob
  from imujax.datasets.seglearn_watch import seglearn_watch_dataset_builder \
      as sw
  from imujax.datasets.sp_sw_har import sp_sw_har_dataset_builder as sp
  from imujax.datasets.uci_hapt import uci_hapt_dataset_builder as uci
  return {"andy": andy.channel_names(), "ipol_gait": ipol.CHANNEL_NAMES,
          "mobilised": mob.CHANNEL_NAMES, "seglearn_watch": sw.CHANNEL_NAMES,
          "sp_sw_har": sp.channel_names(("phone", "watch")),
          "uci_hapt": uci.CHANNEL_NAMES}


def test_every_imu_builder_keeps_its_rotation_groups_and_every_augmentation():
  for name, names in _imu_builder_names().items():
    assert augment.triplets(names) == _legacy_triplets(names), name
    assert set(modality.of(names)) <= {"acc", "gyr"}, name
    lay = augment.layout(names)
    everything = tuple(range(len(names)))
    # Every channel takes gain, negation and one shuffle family: the code
    # paths are those of before (scaling, negate, channel_shuffle).
    assert lay.gain == lay.negation == everything, name
    assert lay.shuffle == (everything,), name
    assert not lay.swap and not lay.drift, name


def _rotate_only(names, x, stats, seed=0):
  opts = {**options.validate("simclr"), "channel_names": names,
          "scale_std": 0., "time_warp_std": 0., "jitter_std": 0.,
          "channel_dropout": 0., "gaze_offset_std": 0., "gaze_drift_std": 0.}
  valid = np.ones(x.shape[:2], bool)
  return np.asarray(jax.jit(lambda k: simclr.simclr_view(
      k, x, valid, opts, stats))(jax.random.key(seed)))


def test_rotation_never_touches_pressure_gaze_or_quaternions():
  # Names that WOULD complete x/y/z triplets by the old rule.
  other = ("sole_pressure_x", "sole_pressure_y", "sole_pressure_z",
           "eye_gaze_x", "eye_gaze_y", "eye_gaze_z",
           "wrist_quat_x", "wrist_quat_y", "wrist_quat_z", "wrist_temp_x",
           "wrist_temp_y", "wrist_temp_z")
  names = WATCH + other + INSOLE[:3] + GAZE
  assert augment.triplets(names) == (((0, 1, 2), (3, 4, 5)),)
  x, _, stats = _batch(names, batch=4, time=16)
  raw = np.asarray(jax.jit(augment.rotation, static_argnums=2)(
      jax.random.key(0), x, augment.layout(names).groups))
  np.testing.assert_array_equal(raw[..., 6:], x[..., 6:])  # Untouched.
  assert not np.allclose(raw[..., :6], x[..., :6], atol=1e-2)  # Rotated.
  # Through simclr (raw units and back: float round-off only).
  y = _rotate_only(names, x, stats)
  np.testing.assert_allclose(y[..., 6:], x[..., 6:], atol=1e-5)
  assert not np.allclose(y[..., :6], x[..., :6], atol=1e-2)


def test_insole_and_gaze_take_simclr_without_rotation_errors():
  for names in (INSOLE, GAZE, INSOLE + GAZE):
    x, valid, stats = _batch(names, batch=4, time=16)
    opts = {**options.validate("simclr"), "channel_names": names}
    v = np.asarray(jax.jit(lambda k, o=opts: simclr.simclr_view(
        k, x, valid, o, stats))(jax.random.key(0)))
    assert v.shape == x.shape and np.isfinite(v).all()
    assert not np.allclose(v, x)
    # Rotation alone is the identity here (up to raw-unit round-off).
    np.testing.assert_allclose(_rotate_only(names, x, stats), x, atol=1e-5)


def test_insole_left_right_swap_swaps_the_matching_cells():
  names = WATCH + INSOLE
  pairs = augment.left_right_pairs(names)
  assert pairs == tuple((6 + c, 22 + c) for c in range(16))
  assert augment.left_right_pairs(("left_acc_x", "right_acc_x")) == ()
  x = _batch(names, batch=6, time=8)[0]
  swap = jax.jit(augment.swap_left_right, static_argnums=(2, 3))
  y = np.asarray(swap(jax.random.key(0), x, pairs, 1.))
  np.testing.assert_array_equal(y[..., :6], x[..., :6])
  np.testing.assert_array_equal(y[..., 6:22], x[..., 22:])
  np.testing.assert_array_equal(y[..., 22:], x[..., 6:22])
  half = np.asarray(swap(jax.random.key(1), x, pairs, .5))
  kept = [np.array_equal(half[b], x[b]) for b in range(6)]
  swapped = [np.array_equal(half[b], y[b]) for b in range(6)]
  assert all(k != s for k, s in zip(kept, swapped))  # Whole sequences.


def test_gain_and_drift_touch_only_their_modalities():
  names = WATCH + INSOLE[:2] + GAZE + ("wrist_quat_w", "wrist_temp")
  lay = augment.layout(names)
  assert lay.gain == tuple(range(10))  # Not the quaternion, not "other".
  assert lay.negation == tuple(range(6))  # Inertial only.
  assert lay.drift == (8, 9)
  assert lay.shuffle == (tuple(range(6)), (6, 7), (8, 9))
  x = _batch(names, batch=4, time=12)[0]
  x[0, 3, 8] = np.nan  # Track loss stays track loss.
  g = np.asarray(jax.jit(augment.gain, static_argnums=(2, 3))(
      jax.random.key(0), x, .3, lay.gain))
  np.testing.assert_array_equal(g[..., 10:], x[..., 10:])
  d = np.asarray(jax.jit(augment.drift, static_argnums=(2, 3, 4))(
      jax.random.key(0), x, lay.drift, 1., 1.))
  np.testing.assert_array_equal(d[..., :8], x[..., :8])
  np.testing.assert_array_equal(d[..., 10:], x[..., 10:])
  assert np.isnan(d[0, 3, 8]) and np.isfinite(np.delete(d, 8, -1)).all()
  step = np.diff(d[1:, :, 8:10] - x[1:, :, 8:10], axis=1)  # Linear drift.
  np.testing.assert_allclose(step, step[:, :1].repeat(11, 1), atol=1e-5)
  neg = np.asarray(augment.negate_channels(None, x, lay.negation))
  np.testing.assert_array_equal(neg[..., :6], -x[..., :6])
  np.testing.assert_array_equal(neg[..., 6:], x[..., 6:])
  sh = np.asarray(jax.jit(augment.shuffle_within, static_argnums=2)(
      jax.random.key(2), x, lay.shuffle))
  np.testing.assert_array_equal(sh[..., 10:], x[..., 10:])
  for fam in lay.shuffle:  # Values only move within their family.
    np.testing.assert_allclose(np.sort(sh[..., list(fam)], -1),
                               np.sort(x[..., list(fam)], -1))


if __name__ == "__main__":
  np.savez_compressed(REFERENCE, **imu_outputs())
  print("wrote", REFERENCE)
