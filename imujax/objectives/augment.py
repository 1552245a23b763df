"""IMU augmentations as pure, jittable functions of (rng, x <float32>[B, T, C]).

Units. The batches imujax trains on are standardised per channel
((raw - mean) / std). Additive noise is the same in either space (up to the
per-channel std), and time-axis operations (flip, permutation, time warp)
commute with a per-channel affine map, but rotation, scaling, negation and
channel shuffling do not: rotating standardised axes with different stds, or
negating a gravity-offset accelerometer channel around its mean, has no
physical meaning. So the physical transforms here act on RAW units, and the
objectives call them between `to_raw` and `from_raw` with the training
normaliser's mean and std. Rotations then rotate real acceleration / angular
velocity vectors (gravity included: a rotated device sees gravity elsewhere).

Sensor vectors are found by name (`<placement>_<sensor>_<axis>`, as in
datasets/CONVENTIONS.md) with `triplets`, on the host; the result is a static
argument. Every sensor of one placement (its accelerometer, gyroscope,
magnetometer, ...) gets the SAME rotation, as when the device is turned.

Time-axis transforms take optional `lengths` <int32>[B] (the valid prefix of
each window; padding follows it) and leave the padding in place.

Modalities. Not every channel is an inertial vector: insoles give pressure
cells, eye trackers gaze angles. `objectives/modality.py` reads each channel's
modality from its name, and `layout(channel_names)` says, on the host, which
channels each physical augmentation may touch:

  augmentation        applies to                   never to
  rotation            acc/gyr/mag x/y/z triplets   pressure, force, gaze,
                      of one placement (one          orientation (quat), other
                      rotation per placement)
  gain (scaling)      acc, gyr, mag, pressure        orientation, other
                      (per-cell gain), force, gaze
  negation            acc, gyr, mag                  everything else
  channel shuffle     within a family: inertial      orientation, other
                      (acc+gyr+mag), pressure,
                      force, gaze
  left/right swap     pressure, force: left_<m>_<k>  inertial (a mirror is not
                      <-> right_<m>_<k>              a swap), gaze
  drift               gaze: offset + linear drift    everything else
  noise, dropout,     every channel (normalised units, no physics)
  time warp/flip/perm

A channel set whose every channel takes an augmentation runs exactly the code
it ran before modalities existed (so IMU-only data augment bit for bit as
before; tests/test_modality_augment.py holds the reference). A masked
augmentation draws the same random numbers and leaves the other channels as
they were. Unknown names are "other": only the generic transforms apply.
"""

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from imujax.objectives import modality

Groups = tuple[tuple[tuple[int, int, int], ...], ...]


def triplets(channel_names: Sequence[str]) -> Groups:
  """The (x, y, z) channel indices of each vector sensor, grouped by placement.

  Names are `<placement>_<sensor>_<axis>` with axis x, y or z and a sensor
  whose modality rotates (acc, gyr, mag; `modality.py`); channels that do not
  complete a triplet (e.g. `wrist_temp`, `thigh_quat_x`) are left out.

  Returns:
    One tuple per placement (in order of first appearance), holding one
    (i_x, i_y, i_z) triple per sensor of that placement, e.g.
    (((0, 1, 2), (3, 4, 5)),) for wrist acc + gyr.
  """
  axes: dict[tuple[str, str], dict[str, int]] = {}
  rotates = set(modality.takes(channel_names, modality.ROTATION))
  for i, name in enumerate(channel_names):
    ch = modality.parse(name)
    if i in rotates and ch.placement and ch.axis in ("x", "y", "z"):
      axes.setdefault((ch.placement, ch.sensor), {})[ch.axis] = i
  by_placement: dict[str, list] = {}
  for (placement, _), idx in axes.items():
    if len(idx) == 3:
      by_placement.setdefault(placement, []).append(
          (idx["x"], idx["y"], idx["z"]))
  return tuple(tuple(v) for v in by_placement.values())


def to_raw(x: jax.Array, mean, std) -> jax.Array:
  return x * jnp.asarray(std, jnp.float32) + jnp.asarray(mean, jnp.float32)


def from_raw(x: jax.Array, mean, std) -> jax.Array:
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


# ----------------------------------------------------------- value transforms
def jitter(rng, x: jax.Array, std) -> jax.Array:
  """x + N(0, std^2); `std` a scalar or <float>[C] (per channel)."""
  noise = jax.random.normal(rng, x.shape, x.dtype)
  return x + noise * jnp.asarray(std, x.dtype)


def scaling(rng, x: jax.Array, std: float) -> jax.Array:
  """Each (sequence, channel) multiplied by one factor ~ N(1, std^2)."""
  b, _, c = x.shape
  factor = 1. + std * jax.random.normal(rng, (b, 1, c), x.dtype)
  return x * factor


def negate(rng, x: jax.Array) -> jax.Array:
  """-x (raw units: the sensor read upside down on every axis)."""
  del rng
  return -x


def channel_dropout(rng, x: jax.Array, rate: float,
                    value: float = 0.) -> jax.Array:
  """Each (sequence, channel) replaced by `value` with probability `rate`.

  In standardised space the default 0 is the channel's training mean.
  """
  b, _, c = x.shape
  drop = jax.random.bernoulli(rng, rate, (b, 1, c))
  return jnp.where(drop, jnp.asarray(value, x.dtype), x)


def channel_shuffle(rng, x: jax.Array) -> jax.Array:
  """The channels of each sequence in a random order (raw units)."""
  b, _, c = x.shape
  order = jnp.argsort(jax.random.uniform(rng, (b, c)), axis=-1)
  return jnp.take_along_axis(x, order[:, None, :], axis=-1)


# -------------------------------------------------------------------- rotation
def random_rotations(rng, shape: tuple[int, ...],
                     max_angle: float = jnp.pi) -> jax.Array:
  """Rotation matrices <float32>[*shape, 3, 3] about uniformly random axes.

  Angles are uniform in [-max_angle, max_angle] (Rodrigues' formula). With
  max_angle = pi this covers every rotation, though not Haar-uniformly.
  """
  k_axis, k_angle = jax.random.split(rng)
  axis = jax.random.normal(k_axis, (*shape, 3))
  axis = axis / jnp.linalg.norm(axis, axis=-1, keepdims=True).clip(1e-12)
  angle = jax.random.uniform(k_angle, shape, minval=-max_angle,
                             maxval=max_angle)[..., None, None]
  kx, ky, kz = axis[..., 0], axis[..., 1], axis[..., 2]
  zero = jnp.zeros_like(kx)
  cross = jnp.stack([jnp.stack([zero, -kz, ky], -1),
                     jnp.stack([kz, zero, -kx], -1),
                     jnp.stack([-ky, kx, zero], -1)], -2)
  eye = jnp.eye(3, dtype=jnp.float32)
  return eye + jnp.sin(angle) * cross + (1. - jnp.cos(angle)) * (cross @ cross)


def apply_rotations(x: jax.Array, groups: Groups,
                    rotations: jax.Array) -> jax.Array:
  """Rotates every triplet of placement g by rotations[:, g].

  Args:
    x: <float32>[B, T, C] raw signals.
    groups: `triplets(channel_names)`.
    rotations: <float32>[B, len(groups), 3, 3].
  """
  for g, sensors in enumerate(groups):
    r = rotations[:, g]
    for idx in sensors:
      idx = jnp.asarray(idx)
      x = x.at[..., idx].set(jnp.einsum("bij,btj->bti", r, x[..., idx]))
  return x


def rotation(rng, x: jax.Array, groups: Groups,
             max_angle: float = jnp.pi) -> jax.Array:
  """One random rotation per (sequence, placement), shared by its sensors.

  x must be in raw units (see the module docstring); channels outside
  `groups` are unchanged.
  """
  if not groups:
    return x
  r = random_rotations(rng, (x.shape[0], len(groups)), max_angle)
  return apply_rotations(x, groups, r)


# ------------------------------------------------------------ time transforms
def _lengths(x: jax.Array, lengths: Optional[jax.Array]) -> jax.Array:
  if lengths is None:
    return jnp.full((x.shape[0],), x.shape[1], jnp.int32)
  return jnp.asarray(lengths, jnp.int32)


def resample(x: jax.Array, src: jax.Array) -> jax.Array:
  """x read at fractional times src <float>[B, T] by linear interpolation."""
  t_max = x.shape[1] - 1
  src = jnp.clip(src, 0., t_max)
  lo = jnp.floor(src).astype(jnp.int32)
  hi = jnp.minimum(lo + 1, t_max)
  frac = (src - lo)[..., None]
  take = lambda i: jnp.take_along_axis(x, i[..., None], axis=1)  # noqa: E731
  return take(lo) * (1. - frac) + take(hi) * frac


def time_warp_sources(rng, batch: int, time: int, std: float,
                      knots: int = 4,
                      lengths: Optional[jax.Array] = None) -> jax.Array:
  """Smooth monotone source times <float32>[B, T] of a random time warp.

  The playback speed is exp(N(0, std^2)) at `knots` + 2 evenly spaced knots,
  linearly interpolated in between (so the warp is C1) and integrated; the
  warp is rescaled to map [0, L-1] onto itself. std = 0 is the identity.
  Frames at or beyond a sequence's length L keep their own time.
  """
  lengths = (jnp.full((batch,), time, jnp.int32) if lengths is None
             else jnp.asarray(lengths, jnp.int32))
  log_speed = std * jax.random.normal(rng, (batch, knots + 2))
  t = jnp.arange(time, dtype=jnp.float32)
  span = jnp.maximum(lengths - 1, 1).astype(jnp.float32)[:, None]
  u = jnp.clip(t[None] / span, 0., 1.) * (knots + 1)  # Knot coordinate.
  lo = jnp.floor(u).astype(jnp.int32).clip(0, knots)
  w = u - lo
  speed = jnp.exp(jnp.take_along_axis(log_speed, lo, 1) * (1. - w)
                  + jnp.take_along_axis(log_speed, lo + 1, 1) * w)
  # Trapezoid integral of the speed from frame 0 to frame t.
  steps = 0.5 * (speed[:, 1:] + speed[:, :-1])
  cum = jnp.concatenate([jnp.zeros((batch, 1)), jnp.cumsum(steps, 1)], 1)
  end = jnp.take_along_axis(cum, (lengths - 1).clip(0)[:, None], 1)
  warped = cum * (span / jnp.maximum(end, 1e-12))  # Exact when std = 0.
  return jnp.where(t[None] < lengths[:, None], warped, t[None])


def time_warp(rng, x: jax.Array, std: float, knots: int = 4,
              lengths: Optional[jax.Array] = None) -> jax.Array:
  """x resampled along a smooth random monotone warp (see time_warp_sources)."""
  src = time_warp_sources(rng, x.shape[0], x.shape[1], std, knots, lengths)
  return resample(x, src)


def flip(rng, x: jax.Array, lengths: Optional[jax.Array] = None) -> jax.Array:
  """Time reversal of each sequence's valid prefix ("horizontal flip")."""
  del rng
  n = _lengths(x, lengths)[:, None]
  t = jnp.arange(x.shape[1])[None]
  src = jnp.where(t < n, n - 1 - t, t)
  return jnp.take_along_axis(x, src[..., None], axis=1)


def permutation(rng, x: jax.Array, segments: int = 4,
                lengths: Optional[jax.Array] = None) -> jax.Array:
  """The valid prefix cut into `segments` near-equal pieces, shuffled."""
  b, time, _ = x.shape
  n = _lengths(x, lengths)[:, None]
  bounds = (jnp.arange(segments + 1)[None] * n) // segments  # [B, S+1]
  start, size = bounds[:, :-1], bounds[:, 1:] - bounds[:, :-1]
  order = jnp.argsort(jax.random.uniform(rng, (b, segments)), axis=-1)
  size_out = jnp.take_along_axis(size, order, 1)
  start_out = jnp.cumsum(size_out, 1) - size_out  # Where each lands.
  t = jnp.arange(time)[None]
  # The output segment of frame t: the last one starting at or before t.
  j = (start_out[:, None, :] <= t[..., None]).sum(-1) - 1  # [B, T]
  src_seg = jnp.take_along_axis(order, j, 1)
  src = (jnp.take_along_axis(start, src_seg, 1)
         + t - jnp.take_along_axis(start_out, j, 1))
  src = jnp.where(t < n, src, t)
  return jnp.take_along_axis(x, src[..., None], axis=1)


# ------------------------------------------------------------ modality-aware
class Layout(NamedTuple):
  """Which channels each physical augmentation touches (static, hashable).

  Built on the host by `layout(channel_names)`; each field is a tuple of
  channel indices (or of index tuples / pairs).
  """
  channels: int
  groups: Groups                       # Rotation triplets by placement.
  gain: tuple[int, ...]
  negation: tuple[int, ...]
  shuffle: tuple[tuple[int, ...], ...]  # Families that trade places.
  swap: tuple[tuple[int, int], ...]    # (left, right) channel pairs.
  drift: tuple[int, ...]               # Gaze channels.


def left_right_pairs(channel_names: Sequence[str]) -> tuple[tuple[int, int],
                                                              ...]:
  """(i_left, i_right) for each `left_<m>_<k>` with a `right_<m>_<k>`.

  Only modalities that take a left/right swap (pressure, force): a swapped
  pair of inertial sensors would also need a mirror of their axes.
  """
  swaps = set(modality.takes(channel_names, modality.SWAP))
  index = {n: i for i, n in enumerate(channel_names)}
  pairs = []
  for i, name in enumerate(channel_names):
    ch = modality.parse(name)
    if i not in swaps or not (ch.placement == "left"
                              or ch.placement.startswith("left_")):
      continue
    j = index.get("right" + name[len("left"):])
    if j is not None and j in swaps:
      pairs.append((i, j))
  return tuple(pairs)


def layout(channel_names: Sequence[str]) -> Layout:
  """The `Layout` of a channel set (see the module docstring's table)."""
  names = tuple(channel_names)
  families: dict[str, list[int]] = {}
  for i, name in enumerate(names):
    family = modality.MODALITIES[modality.parse(name).modality].shuffle_family
    if family:
      families.setdefault(family, []).append(i)
  return Layout(
      len(names), triplets(names), modality.takes(names, modality.GAIN),
      modality.takes(names, modality.NEGATION),
      tuple(tuple(v) for v in families.values() if len(v) > 1),
      left_right_pairs(names), modality.takes(names, modality.DRIFT))


def _mask(idx: tuple[int, ...], channels: int) -> np.ndarray:
  m = np.zeros((channels,), bool)
  m[list(idx)] = True
  return m


def gain(rng, x: jax.Array, std: float, channels: tuple[int, ...]
         ) -> jax.Array:
  """`scaling` on `channels` only (all of them: exactly `scaling`)."""
  if len(channels) == x.shape[-1]:
    return scaling(rng, x, std)
  if not channels:
    return x
  b, _, c = x.shape
  factor = 1. + std * jax.random.normal(rng, (b, 1, c), x.dtype)
  return x * jnp.where(_mask(channels, c), factor, 1.)


def negate_channels(rng, x: jax.Array, channels: tuple[int, ...]
                    ) -> jax.Array:
  """`negate` on `channels` only (all of them: exactly `negate`)."""
  if len(channels) == x.shape[-1]:
    return negate(rng, x)
  return jnp.where(_mask(channels, x.shape[-1]), -x, x)


def shuffle_within(rng, x: jax.Array,
                   families: tuple[tuple[int, ...], ...]) -> jax.Array:
  """Each family's channels in a random order per sequence; others stay.

  One family holding every channel in order is exactly `channel_shuffle`.
  """
  if len(families) == 1 and families[0] == tuple(range(x.shape[-1])):
    return channel_shuffle(rng, x)
  for f, idx in enumerate(families):
    idx = np.asarray(idx)
    part = channel_shuffle(jax.random.fold_in(rng, f), x[..., idx])
    x = x.at[..., idx].set(part)
  return x


def swap_left_right(rng, x: jax.Array, pairs: tuple[tuple[int, int], ...],
                    rate: float) -> jax.Array:
  """Each sequence's left and right channels traded with probability `rate`.

  Works in any units (a swap commutes with nothing but is exact in raw
  units: call it on raw signals, the two sides having their own statistics).
  """
  if not pairs or rate <= 0:
    return x
  left, right = (np.asarray(p) for p in zip(*pairs))
  swap = jax.random.bernoulli(rng, rate, (x.shape[0], 1, 1))
  order = np.arange(x.shape[-1])
  order[left], order[right] = right, left
  return jnp.where(swap, x[..., order], x)


def drift(rng, x: jax.Array, channels: tuple[int, ...], offset_std: float,
          drift_std: float, lengths: Optional[jax.Array] = None
          ) -> jax.Array:
  """x + offset + slope * t on `channels` (raw units), per sequence/channel.

  The offset ~ N(0, offset_std^2) and the drift over the valid prefix (so
  slope * (L - 1)) ~ N(0, drift_std^2): an eye tracker's calibration error
  and its slow drift. NaN (track loss) stays NaN.
  """
  if not channels or (offset_std <= 0 and drift_std <= 0):
    return x
  b, time, c = x.shape
  k_off, k_drift = jax.random.split(rng)
  offset = offset_std * jax.random.normal(k_off, (b, 1, c), x.dtype)
  total = drift_std * jax.random.normal(k_drift, (b, 1, c), x.dtype)
  span = jnp.maximum(_lengths(x, lengths) - 1, 1).astype(x.dtype)
  ramp = jnp.arange(time, dtype=x.dtype)[None, :, None] / span[:, None, None]
  shift = offset + total * jnp.minimum(ramp, 1.)
  return x + jnp.where(_mask(channels, c), shift, 0.)
