"""What a channel measures, read from its name: modality, placement, axis.

A channel's name is its declaration (datasets/CONVENTIONS.md): the objectives
see only `channel_names` (a static option that shapes the program), so the
modality must be readable from the name alone. The rule: the RIGHTMOST token
(split on "_") that names a modality (`MODALITIES[m].tokens`) gives the
modality; the tokens before it are the placement, the tokens after it the
axis (or cell), less a trailing unit the modality allows:

  wrist_acc_x        -> acc,      placement "wrist",     axis "x"
  lower_back_gyr_z   -> gyr,      placement "lower_back", axis "z"
  thigh_quat_w       -> orientation, "thigh",            axis "w"
  left_pressure_03   -> pressure, placement "left",      axis "03"
  gaze_x_deg         -> gaze,     placement "",          axis "x", unit "deg"
  gazevel_x          -> gaze_velocity, placement "",     axis "x"
  wrist_temp         -> other (no token: no augmentation that assumes physics)

`describe` also checks what a builder or a spec declares beside the name (a
modality, a unit) and fails naming the channel and the allowed values. It is
pure and light (no JAX), so builders and the recordings spec can call it.

Which augmentations a modality takes is `Modality.augmentations`; the
objectives apply an augmentation only to the channels whose modality lists it
(see objectives/augment.py). "noise", "dropout" and "time" (time warp, flip,
permutation) act in normalised units and assume no physics: every modality,
"other" included, takes them.
"""

from typing import Mapping, NamedTuple, Optional, Sequence

# Augmentations with physical meaning, by name (objectives/augment.py).
ROTATION = "rotation"        # 3-D rotation of x/y/z triplets of a placement.
GAIN = "gain"                # One factor per (sequence, channel): scaling.
NEGATION = "negation"        # Sign flip (the sensor read upside down).
SHUFFLE = "shuffle"          # Channel order shuffled within a family.
SWAP = "left_right_swap"     # left_<m>_<k> <-> right_<m>_<k>.
DRIFT = "drift"              # Offset + linear drift in raw units.
GENERIC = frozenset({"noise", "dropout", "time"})
_INERTIAL = GENERIC | {ROTATION, GAIN, NEGATION, SHUFFLE}


class Modality(NamedTuple):
  name: str
  tokens: tuple[str, ...]   # Name tokens that declare it (lower case).
  units: tuple[str, ...]    # Allowed units; () = any. First: what TFDS holds.
  augmentations: frozenset
  shuffle_family: str = ""  # Channels of one family may trade places.


MODALITIES = {m.name: m for m in (
    Modality("acc", ("acc", "accel", "accelerometer", "acceleration"),
             ("m/s^2", "m/s2", "g", "mg"), _INERTIAL, "inertial"),
    Modality("gyr", ("gyr", "gyro", "gyroscope"), ("rad/s", "deg/s", "dps"),
             _INERTIAL, "inertial"),
    Modality("mag", ("mag", "magn", "magnetometer"),
             ("uT", "T", "mT", "nT", "a.u."), _INERTIAL, "inertial"),
    Modality("pressure", ("pressure", "fsr"),
             ("normalised", "Pa", "kPa", "N/cm^2", "a.u."),
             GENERIC | {GAIN, SHUFFLE, SWAP}, "pressure"),
    Modality("force", ("force", "grf"), ("N", "N/kg", "BW", "normalised",
                                         "a.u."),
             GENERIC | {GAIN, SHUFFLE, SWAP}, "force"),
    Modality("gaze", ("gaze",), ("deg", "rad", "px", "normalised"),
             GENERIC | {GAIN, DRIFT}, "gaze"),
    # Derived from gaze positions (gaze_lund2013/*_velocity): scaling the
    # positions scales it; an offset or drift of the positions does not move
    # it (a drift adds a constant far below saccadic speeds), so no DRIFT.
    Modality("gaze_velocity", ("gazevel",), ("deg/s", "rad/s"),
             GENERIC | {GAIN}, "gaze_velocity"),
    # A unit quaternion: rotating its x/y/z part as a vector, scaling or
    # negating one component has no physical meaning.
    Modality("orientation", ("quat", "quaternion", "ori", "orientation"),
             ("1", ""), GENERIC),
    Modality("other", (), (), GENERIC),
)}
_BY_TOKEN = {t: m.name for m in MODALITIES.values() for t in m.tokens}


class Channel(NamedTuple):
  """One channel, as its name reads."""
  name: str
  modality: str   # A key of MODALITIES.
  placement: str  # "" when the name gives none.
  axis: str       # "x", "y", "z", "w", a cell ("03"), or "".
  sensor: str     # The token that named the modality ("acc"), or "".
  unit: str = ""  # A unit the name ends with ("gaze_x_deg"), else "".


def parse(name: str) -> Channel:
  """The modality, placement and axis of a channel name (see module doc)."""
  tokens = name.split("_")
  hits = [i for i, t in enumerate(tokens) if t.lower() in _BY_TOKEN]
  if not hits:
    return Channel(name, "other", "", "", "")
  i = hits[-1]
  modality = _BY_TOKEN[tokens[i].lower()]
  rest, unit = tokens[i + 1:], ""
  if len(rest) > 1 and rest[-1] in MODALITIES[modality].units:
    rest, unit = rest[:-1], rest[-1]
  return Channel(name, modality, "_".join(tokens[:i]), "_".join(rest),
                 tokens[i], unit)


def describe(name: str, modality: Optional[str] = None,
             unit: Optional[str] = None) -> Channel:
  """`parse(name)`, checked against a declared modality and unit.

  Args:
    name: the channel name (`<placement>_<sensor>_<axis>`).
    modality: the modality a builder or spec declares, if any; it must be a
      key of MODALITIES and the one the name reads as.
    unit: the unit of the channel's values, if declared; it must be one its
      modality allows ("other" allows any).

  Raises:
    ValueError: naming the channel, the bad value and the allowed ones.
  """
  ch = parse(name)
  if modality is not None:
    if modality not in MODALITIES:
      raise ValueError(
          f"Channel {name!r}: unknown modality {modality!r}; use one of "
          f"{sorted(MODALITIES)}.")
    if modality != ch.modality:
      tokens = "|".join(MODALITIES[modality].tokens) or "<no modality token>"
      raise ValueError(
          f"Channel {name!r} is declared {modality!r} but its name reads as "
          f"{ch.modality!r}; the name carries the modality: name it "
          f"<placement>_<{tokens}>_<axis> (datasets/CONVENTIONS.md).")
  allowed = MODALITIES[ch.modality].units
  for what, value in (("unit", unit), ("unit in the name", ch.unit or None)):
    if value is not None and allowed and value not in allowed:
      raise ValueError(
          f"Channel {name!r} ({ch.modality}): {what} {value!r} is not a "
          f"{ch.modality} unit; use one of {list(allowed)}.")
  if unit is not None and ch.unit and unit != ch.unit:
    raise ValueError(f"Channel {name!r}: its name says {ch.unit!r} but the "
                     f"declared unit is {unit!r}; make them agree.")
  return ch


def describe_all(names: Sequence[str],
                 units: Optional[Mapping[str, str]] = None
                 ) -> tuple[Channel, ...]:
  """Every channel, checked against a builder's `units` metadata.

  `units` is keyed by channel name, by sensor token ("acc") or by modality
  ("pressure"), as builders write it (`units={"acc": "m/s^2"}`); a channel
  no key covers is not checked.
  """
  units = dict(units or {})
  out = []
  for name in names:
    ch = parse(name)
    unit = next((units[k] for k in (name, ch.sensor, ch.modality)
                 if k and k in units), None)
    out.append(describe(name, unit=unit))
  return tuple(out)


def of(names: Sequence[str]) -> tuple[str, ...]:
  """The modality of each channel name."""
  return tuple(parse(n).modality for n in names)


def takes(names: Sequence[str], augmentation: str) -> tuple[int, ...]:
  """Indices of the channels whose modality takes `augmentation`."""
  return tuple(i for i, n in enumerate(names)
               if augmentation in MODALITIES[parse(n).modality].augmentations)
