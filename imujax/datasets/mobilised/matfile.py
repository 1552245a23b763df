"""Reads one Mobilise-D `data.mat` (MATLAB v5/v7 file, via scipy.io).

The layout (Palmerini et al., Sci Data 2023; mobgap's loader reads the same):

  data.<TimeMeasure>.<Test>.<Trial>      a trial: the struct holding `SU`
    .SU.LowerBack.Acc [T, 3]             g
    .SU.LowerBack.Gyr [T, 3]             deg/s
    .SU.LowerBack.Fs.{Acc, Gyr}          Hz
    .Standards.<System>.Fs               Hz (INDIP, Stereophoto)
    .Standards.<System>.<BoutType>(i)    1 x n struct array, one per bout:
      Start, End, InitialContact_Event, FinalContact_Event (s),
      InitialContact_LeftRight ('Left' / 'Right'), Stride_InitialContacts
      [m, 2] (s, or samples of the system's Fs: INDIP), Stride_Length (m),
      WalkingSpeed (m/s), ...

The files carry no units. Acc and Gyr are in the format's units (g, deg/s);
an optional `SU.LowerBack.Units.{Acc, Gyr}` text field (not in the TVS files)
overrides them, and must be one of UNITS. Without it, a median |acc| that is
not about 1 g is an error (a file already converted to m/s^2).

Every error is a ValueError naming the file and the MATLAB field
(`data.TimeMeasure1.Test5.Trial1.SU.LowerBack.Gyr`; bouts and events
1-based as in MATLAB: `ContinuousWalkingPeriod(2).InitialContact_Event(3)`).
"""

import dataclasses
import math

from etils import epath
import numpy as np

STANDARD_GRAVITY = 9.80665  # m/s^2 per g.
# Units text -> factor to SI (m/s^2, rad/s), per sensor field.
UNITS = {
    "Acc": {"g": STANDARD_GRAVITY, "m/s^2": 1.0, "m/s2": 1.0},
    "Gyr": {"deg/s": math.pi / 180, "dps": math.pi / 180,
            "rad/s": 1.0},
}
FORMAT_UNITS = {"Acc": "g", "Gyr": "deg/s"}
# Median |acc| over a worn recording is gravity, 1 g; outside this, the
# values are not in g.
G_RANGE = (0.5, 2.0)
SENSOR = ("SU", "LowerBack")
_FIX = ("The file does not follow the Mobilise-D data.mat format: restore "
        "it from the TVS download (Zenodo doi 10.5281/zenodo.13899386).")


@dataclasses.dataclass(frozen=True)
class Bout:
  """One reference walking bout; times in seconds from the recording start.

  Attributes:
    where: the bout's MATLAB field, for messages.
    initial_contact_sides: 'left', 'right' or another text, one per contact.
    strides_s: <float64>[m, 2] start and end initial contact of each stride,
      converted to seconds; NaN where the reference has none.
    stride_lengths: <float64>[m] metres, NaN where missing.
  """
  where: str
  start_s: float
  end_s: float
  walking_speed: float
  initial_contacts_s: np.ndarray
  initial_contact_sides: tuple[str, ...]
  final_contacts_s: np.ndarray
  strides_s: np.ndarray
  stride_lengths: np.ndarray


@dataclasses.dataclass(frozen=True)
class Trial:
  """One recording of the lower-back sensor with its reference.

  Attributes:
    names: the struct levels, e.g. ('TimeMeasure1', 'Test5', 'Trial1').
    where: 'data.TimeMeasure1.Test5.Trial1'.
    acc: <float64>[T, 3] m/s^2. gyr: <float64>[T, 3] rad/s.
    fs: sampling rate in Hz (Fs.Acc, equal to Fs.Gyr).
    units: the units read, {'Acc': 'g', 'Gyr': 'deg/s'}.
    bouts: reference bouts in file order; None when the trial has no
      Standards.<system> or it lists no bout.
  """
  names: tuple[str, ...]
  where: str
  acc: np.ndarray
  gyr: np.ndarray
  fs: float
  units: dict[str, str]
  bouts: list[Bout] | None


def _is_struct(value) -> bool:
  return hasattr(value, "_fieldnames")


def _get(struct, name: str, where: str, path):
  if not _is_struct(struct) or name not in struct._fieldnames:
    raise ValueError(f"{path}: {where}.{name} is missing. {_FIX}")
  return getattr(struct, name)


def _floats(value, where: str, path) -> np.ndarray:
  """<float64>[n] from a MATLAB number, vector or empty []."""
  try:
    return np.asarray(value, np.float64).ravel()
  except (TypeError, ValueError):
    raise ValueError(f"{path}: {where} is not numeric ({type(value).__name__}"
                     f"). {_FIX}") from None


def _scalar(value, where: str, path) -> float:
  """One number; NaN for an empty [] (a value the reference lacks)."""
  values = _floats(value, where, path)
  if values.size > 1:
    raise ValueError(f"{path}: {where} holds {values.size} values, expected "
                     f"one. {_FIX}")
  return float(values[0]) if values.size else math.nan


def _texts(value) -> tuple[str, ...]:
  if isinstance(value, str):
    return (value,)
  return tuple(str(v) for v in np.asarray(value, dtype=object).ravel())


def find_trials(struct, names=()):
  """Yields (names, trial struct) for every struct holding SU or Standards."""
  if SENSOR[0] in struct._fieldnames or "Standards" in struct._fieldnames:
    yield tuple(names), struct
    return
  for name in struct._fieldnames:
    value = getattr(struct, name)
    if _is_struct(value):
      yield from find_trials(value, (*names, name))


def _rate(fs, sensor: str, where: str, path) -> float:
  value = _get(fs, sensor, where, path) if _is_struct(fs) else fs
  rate = _scalar(value, f"{where}.{sensor}" if _is_struct(fs) else where,
                 path)
  if not rate > 0:
    raise ValueError(f"{path}: {where} is {rate}, not a sampling rate in Hz. "
                     f"{_FIX}")
  return rate


def _units(sensor_struct, where: str, path) -> dict[str, str]:
  """The units of Acc and Gyr: the optional Units field or the format's."""
  if "Units" not in sensor_struct._fieldnames:
    return dict(FORMAT_UNITS)
  declared = sensor_struct.Units
  units = {}
  for field in ("Acc", "Gyr"):
    text = _texts(_get(declared, field, f"{where}.Units", path))
    unit = text[0].strip() if len(text) == 1 else repr(text)
    if unit not in UNITS[field]:
      raise ValueError(
          f"{path}: {where}.Units.{field} is {unit!r}; this builder knows "
          f"{sorted(UNITS[field])}. Convert {field} to one of them and fix "
          "the field (or remove Units: the format's units are "
          f"{FORMAT_UNITS[field]}).")
    units[field] = unit
  return units


def read_sensor(trial, where: str, path):
  """(acc m/s^2, gyr rad/s, fs, units) of SU.LowerBack."""
  sensor = trial
  for name in SENSOR:
    sensor = _get(sensor, name, where, path)
    where = f"{where}.{name}"
  units = _units(sensor, where, path)
  arrays = {}
  for field in ("Acc", "Gyr"):
    values = _floats(_get(sensor, field, where, path), f"{where}.{field}",
                     path)
    raw = np.asarray(getattr(sensor, field))
    if raw.ndim != 2 or raw.shape[1] != 3 or raw.shape[0] < 2:
      raise ValueError(f"{path}: {where}.{field} has shape {raw.shape}, "
                       f"expected [samples >= 2, 3]. {_FIX}")
    arrays[field] = values.reshape(raw.shape) * UNITS[field][units[field]]
  if arrays["Acc"].shape != arrays["Gyr"].shape:
    raise ValueError(f"{path}: {where}.Acc has {len(arrays['Acc'])} samples "
                     f"but {where}.Gyr {len(arrays['Gyr'])}. {_FIX}")
  fs_struct = _get(sensor, "Fs", where, path)
  fs = _rate(fs_struct, "Acc", f"{where}.Fs", path)
  fs_gyr = _rate(fs_struct, "Gyr", f"{where}.Fs", path)
  if fs != fs_gyr:
    raise ValueError(f"{path}: {where}.Fs.Acc is {fs:g} Hz but {where}.Fs.Gyr"
                     f" {fs_gyr:g} Hz; this builder needs one rate. {_FIX}")
  if units["Acc"] == "g":
    norm = float(np.nanmedian(np.linalg.norm(arrays["Acc"], axis=1)))
    norm /= STANDARD_GRAVITY
    if not G_RANGE[0] <= norm <= G_RANGE[1]:
      raise ValueError(
          f"{path}: {where}.Acc has a median magnitude of {norm:.3g}, but a "
          "worn sensor reads about 1 g. The values are not in g (the "
          "format's unit): declare them in a text field "
          f"{where}.Units.Acc (one of {sorted(UNITS['Acc'])}).")
  return arrays["Acc"], arrays["Gyr"], fs, units


def _sample(t_s: np.ndarray, fs: float) -> np.ndarray:
  """0-based sample index of a time (MATLAB's 1-based round(t * Fs), - 1)."""
  return np.round(t_s * fs) - 1


def _stride_times(bout, ics_s, fs, ref_fs, where, path) -> np.ndarray:
  """Stride_InitialContacts in seconds, whichever unit the system used.

  Stereophoto stores seconds, INDIP samples of its Fs (as mobgap notes); the
  unit whose stride starts are all among the bout's initial contacts wins.
  """
  field = f"{where}.Stride_InitialContacts"
  strides = _floats(_get(bout, "Stride_InitialContacts", where, path), field,
                    path)
  if strides.size % 2:
    raise ValueError(f"{path}: {field} holds {strides.size} values, expected "
                     f"[strides, 2]. {_FIX}")
  strides = strides.reshape(-1, 2)
  starts = strides[np.isfinite(strides).all(axis=1), 0]
  if not starts.size:
    return strides
  contacts = set(_sample(ics_s[np.isfinite(ics_s)], fs).tolist())
  candidates = [("seconds", 1.0)]
  if ref_fs is not None:
    candidates.append((f"samples at {ref_fs:g} Hz", ref_fs))
  for _, per_second in candidates:
    if set(_sample(starts / per_second, fs).tolist()) <= contacts:
      return strides / per_second
  raise ValueError(
      f"{path}: {field} starts at {starts[:3].tolist()}..., which are not "
      f"among {where}.InitialContact_Event in "
      f"{' nor in '.join(c[0] for c in candidates)}. {_FIX}")


def read_bout(bout, fs: float, ref_fs, where: str, path) -> Bout:
  ics = _floats(_get(bout, "InitialContact_Event", where, path),
                f"{where}.InitialContact_Event", path)
  sides = _texts(_get(bout, "InitialContact_LeftRight", where, path))
  if len(sides) != ics.size:
    raise ValueError(
        f"{path}: {where}.InitialContact_LeftRight has {len(sides)} entries "
        f"but {where}.InitialContact_Event {ics.size}. {_FIX}")
  lengths = _floats(_get(bout, "Stride_Length", where, path),
                    f"{where}.Stride_Length", path)
  strides = _stride_times(bout, ics, fs, ref_fs, where, path)
  if lengths.size != len(strides):
    raise ValueError(
        f"{path}: {where}.Stride_Length has {lengths.size} values but "
        f"{where}.Stride_InitialContacts {len(strides)} strides. {_FIX}")
  return Bout(
      where=where,
      start_s=_scalar(_get(bout, "Start", where, path), f"{where}.Start",
                      path),
      end_s=_scalar(_get(bout, "End", where, path), f"{where}.End", path),
      walking_speed=_scalar(_get(bout, "WalkingSpeed", where, path),
                            f"{where}.WalkingSpeed", path),
      initial_contacts_s=ics,
      initial_contact_sides=tuple(s.strip().lower() for s in sides),
      final_contacts_s=_floats(_get(bout, "FinalContact_Event", where, path),
                               f"{where}.FinalContact_Event", path),
      strides_s=strides,
      stride_lengths=lengths)


def read_bouts(trial, system: str, bout_type: str, fs: float, where: str,
               path) -> list[Bout] | None:
  """The trial's bouts of one reference system; None if it has none."""
  if "Standards" not in trial._fieldnames:
    return None
  standards = trial.Standards
  if not _is_struct(standards) or system not in standards._fieldnames:
    return None
  where = f"{where}.Standards.{system}"
  reference = getattr(standards, system)
  ref_fs = None
  if "Fs" in reference._fieldnames:
    ref_fs = _rate(reference.Fs, "", f"{where}.Fs", path)
  bouts = _get(reference, bout_type, where, path)
  if _is_struct(bouts):
    bouts = [bouts]
  elif isinstance(bouts, np.ndarray) and (bouts.size == 0 or all(
      _is_struct(b) for b in bouts.ravel())):
    bouts = list(bouts.ravel())
  else:
    raise ValueError(f"{path}: {where}.{bout_type} is not a struct array of "
                     f"walking bouts. {_FIX}")
  if not bouts:
    return None
  return [read_bout(b, fs, ref_fs, f"{where}.{bout_type}({i})", path)
          for i, b in enumerate(bouts, start=1)]


def load(path: epath.Path, system: str, bout_type: str) -> list[Trial]:
  """Every trial of one data.mat, with the bouts of `system`/`bout_type`."""
  import scipy.io  # pylint: disable=g-import-not-at-top  (only this dataset)
  try:
    with epath.Path(path).open("rb") as f:
      content = scipy.io.loadmat(f, squeeze_me=True, struct_as_record=False,
                                 mat_dtype=True)
  except NotImplementedError as e:  # scipy's answer to a v7.3 (HDF5) file.
    raise ValueError(
        f"{path}: a MATLAB v7.3 (HDF5) file ({e}). This builder reads v5/v7 "
        "MAT files, as the TVS download ships; re-save it in MATLAB with "
        "save(..., '-v7').") from e
  except (ValueError, OSError, TypeError, scipy.io.matlab.MatReadError) as e:
    raise ValueError(f"{path}: not a readable MAT file ({e}). {_FIX}") from e
  if "data" not in content or not _is_struct(content["data"]):
    raise ValueError(f"{path}: no struct variable `data`. {_FIX}")
  trials = []
  for names, trial in find_trials(content["data"], ("data",)):
    where = ".".join(names)
    acc, gyr, fs, units = read_sensor(trial, where, path)
    bouts = read_bouts(trial, system, bout_type, fs, where, path)
    trials.append(Trial(names[1:], where, acc, gyr, fs, units, bouts))
  if not trials:
    raise ValueError(f"{path}: no trial struct (one holding `SU` or "
                     f"`Standards`) anywhere under `data`. {_FIX}")
  return trials
