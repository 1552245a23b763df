"""A spec channel's declared modality, placement and unit, checked.

`channels[].modality` (and `channels[].placement`) declare what a channel
measures; the NAME must read as the declared modality and placement
(`objectives.modality.parse`), because the name is all the model and the
augmentations see: a channel declared `pressure` but named `left_acc_03`
would be rotated as an accelerometer. So a mismatch is a spec error that
says how to name it; nothing is renamed behind the user's back. A declared
unit must be one the name's modality allows (pressure in m/s^2 is an error
listing the pressure units), whether or not the modality is declared.
"""

from imujax.objectives import modality as modality_lib

# A spec unit -> the unit TFDS holds after the spec's factor (schema.UNITS).
STORED_UNIT = {"g": "m/s^2", "mg": "m/s^2", "m/s2": "m/s^2",
               "deg/s": "rad/s", "dps": "rad/s", "deg": "rad", "T": "uT",
               "mT": "uT", "nT": "uT", "kPa": "Pa", "N/cm^2": "Pa"}


def check(label: str, name: str, unit: str, declared: str | None,
          placement: str | None, fail) -> None:
  """Reports through `fail(message)` what is wrong with one channel.

  Args:
    label: "channels[3]." (the spec key prefix of messages).
    name: the channel's `name`.
    unit: its `unit` ("" = SI, not checked).
    declared: its `modality`, or None.
    placement: its `placement`, or None.
    fail: the spec checker's `fail`.
  """
  try:
    ch = modality_lib.describe(name, modality=declared, unit=unit or None)
  except ValueError as e:
    fix = ""
    if declared in modality_lib.MODALITIES and declared != "other":
      tokens = "|".join(modality_lib.MODALITIES[declared].tokens)
      fix = (f" (channels[].modality = {declared!r} needs a name "
             f"<placement>_<{tokens}>_<axis>, e.g. "
             f"{_example(name, declared, placement)!r})")
    fail(f"{label}{e}{fix}")
    return
  if placement is not None and placement != ch.placement:
    fail(f"{label}placement = {placement!r}, but name {name!r} reads as "
         f"placement {ch.placement!r}; the name carries the placement: name "
         f"it {_example(name, ch.modality, placement)!r}.")


def _example(name: str, modality: str, placement: str | None) -> str:
  ch = modality_lib.parse(name)
  sensor = modality_lib.MODALITIES[modality].tokens[0]
  place = placement if placement is not None else ch.placement
  axis = ch.axis or name.rsplit("_", 1)[-1]
  return "_".join(p for p in (place, sensor, axis) if p)


def stored_units(channels, units) -> dict:
  """{channel name: the unit TFDS holds} for channels with a declared unit."""
  return {name: STORED_UNIT.get(u, u)
          for (_, name, _), u in zip(channels, units) if u}
