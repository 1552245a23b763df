"""Streaming reader for Xsens MVN `.mvnx` exports (MVNX versions 3 and 4).

An MVNX file is XML: a header (`<subject frameRate=...>` with `<segments>`,
`<sensors>`, `<joints>`, optional `<ergonomicJointAngles>` and
`<footContactDefinition>`) followed by `<frames>`, one `<frame>` per sample
whose children hold space-separated numbers, one child per quantity:

  <frame time="4" index="1" tc="..." ms="1490374345324" type="normal">
    <orientation>q0 q1 q2 q3 ...</orientation>          segments x 4
    ...
    <sensorFreeAcceleration>ax ay az ...</sensorFreeAcceleration>  sensors x 3
  </frame>

The file is fed to expat in 1 MiB pieces and only the requested quantities are
kept, parsed to float32 every 256 KiB of text into arrays preallocated from the
first frame's size, so memory stays bounded by the returned arrays (plus one
chunk of text) whatever the file size.

What is read (SI units; the file's own units are converted):

* sensor quantities, per sensor `[T, n_sensors, k]`: `sensorFreeAcceleration`
  (m/s^2, global frame, gravity removed), `sensorAcceleration` (m/s^2, sensor
  frame, gravity included; MVNX v3 exports carry this one instead of the free
  acceleration), `sensorAngularVelocity` (rad/s, sensor frame; absent from some
  v4 exports), `sensorMagneticField` (a.u.), `sensorOrientation` (quaternion
  w, x, y, z, sensor to global);
* segment kinematics, per segment `[T, n_segments, k]`: `orientation`
  (quaternion), `position` (m), `velocity` (m/s), `acceleration` (m/s^2),
  `angularVelocity` (rad/s), `angularAcceleration` (rad/s^2);
* joint angles, per joint `[T, n_joints, 3]`: `jointAngle`, `jointAngleXZY`
  (degrees in the file, radians here), per ergonomic angle `jointAngleErgo`,
  `jointAngleErgoXZY` (radians);
* `centerOfMass` `[T, 3 or 9]` (m, m/s, m/s^2) and `footContacts` `[T, 4]`.

`imu_channels` turns a recording into the acc / gyr / quaternion triple the
builders use and says which quantity each came from.

Frames: only `type="normal"` frames are recording samples. Calibration poses
(`identity`, `tpose`, `tpose-isb`, `npose`, ...) are skipped and counted in
`Recording.skipped_frames`. Frame times come from the `index` attribute (frame
number, exact) divided by the frame rate; the `time` attribute (integer ms,
truncated: 0, 4, 8, 12 at 240 Hz) is kept as `time_ms`.

A file cut off before `</mvnx>` (an interrupted export or copy) raises
`MvnxError` naming the file, the line where it stops and the last complete
frame; with `allow_truncated=True` the complete frames are returned and the
repair is counted in `Recording.repairs["truncated_file_tail_dropped"]`. Any other defect (a malformed number, a frame with the
wrong number of values, a missing quantity in one frame) raises `MvnxError`
with the file and line.
"""

import re
import warnings
from typing import Iterable, NamedTuple
from xml.parsers import expat

from etils import epath
import numpy as np

STANDARD_GRAVITY = 9.80665  # m/s^2; MVN's gravity along global +z.

# Values per item of each per-item quantity, and which header list the items
# are counted in.
SENSOR_FIELDS = {
    "sensorFreeAcceleration": 3, "sensorAcceleration": 3,
    "sensorAngularVelocity": 3, "sensorMagneticField": 3,
    "sensorOrientation": 4,
}
SEGMENT_FIELDS = {
    "orientation": 4, "position": 3, "velocity": 3, "acceleration": 3,
    "angularVelocity": 3, "angularAcceleration": 3,
}
JOINT_FIELDS = {"jointAngle": 3, "jointAngleXZY": 3}
ERGO_FIELDS = {"jointAngleErgo": 3, "jointAngleErgoXZY": 3}
FLAT_FIELDS = ("centerOfMass", "footContacts")
ALL_FIELDS = (tuple(SENSOR_FIELDS) + tuple(SEGMENT_FIELDS) + tuple(JOINT_FIELDS)
              + tuple(ERGO_FIELDS) + FLAT_FIELDS)
# What `imu_channels` may need, fallbacks included.
IMU_FIELDS = ("sensorFreeAcceleration", "sensorAcceleration",
              "sensorAngularVelocity", "sensorOrientation", "angularVelocity")
_DEGREE_FIELDS = frozenset(JOINT_FIELDS) | frozenset(ERGO_FIELDS)
# Text is parsed every _CHUNK_CHARS characters and the file read in
# _READ_BYTES pieces: small enough that a short file's peak memory stays near
# its arrays' size, large enough that numpy's parsing dominates the run time.
_CHUNK_CHARS = 1 << 18
_READ_BYTES = 1 << 16


class MvnxError(ValueError):
  """A defect in an MVNX file; the message names the file, line and fix."""


class Recording(NamedTuple):
  """One MVNX file's normal frames.

  Attributes:
    path: the file read.
    version: the `<mvnx version=...>` attribute ("3", "4", ...).
    frame_rate_hz: the `<subject frameRate=...>` attribute.
    sensor_labels / segment_labels / joint_labels / ergo_labels: header order.
    index: <int64>[T] frame numbers (`index` attribute; arange(T) if absent).
    time_ms: <int64>[T] ms since the start (`time` attribute, truncated).
    unix_ms: <int64>[T] wall-clock ms (`ms` attribute; -1 where absent).
    fields: quantity -> <float32>[T, n_items, k] (per-item quantities) or
      [T, D] (`centerOfMass`, `footContacts`), SI units.
    skipped_frames: frame type -> count of non-normal frames skipped.
    repairs: repair name -> count (`truncated_file_tail_dropped`: 1 when a
      cut-off file was read with allow_truncated=True, its partial last frame
      and missing closing tags dropped).
  """
  path: str
  version: str
  frame_rate_hz: float
  sensor_labels: tuple[str, ...]
  segment_labels: tuple[str, ...]
  joint_labels: tuple[str, ...]
  ergo_labels: tuple[str, ...]
  index: np.ndarray
  time_ms: np.ndarray
  unix_ms: np.ndarray
  fields: dict[str, np.ndarray]
  skipped_frames: dict[str, int]
  repairs: dict[str, int]

  @property
  def timestamps_s(self) -> np.ndarray:
    """<float64>[T] seconds since the first normal frame, from `index`."""
    return (self.index - self.index[0]) / self.frame_rate_hz


def _local(name: str) -> str:
  # Tolerates a namespace prefix ("mvnx:frame") though MVN writes none.
  return name.rpartition(":")[2]


def _parse_floats(text: str) -> np.ndarray:
  """Parses space-separated numbers; raises ValueError on any bad token."""
  with warnings.catch_warnings():
    # numpy stops at the first bad token with only a DeprecationWarning.
    warnings.simplefilter("error", DeprecationWarning)
    return np.fromstring(text, dtype=np.float32, sep=" ")


class _Reader:
  """expat callbacks accumulating the requested quantities of normal frames."""

  def __init__(self, path: str, wanted: frozenset[str]):
    self.path = path
    self.wanted = wanted
    self.version = ""
    self.rate = None
    self.lists = {"sensors": [], "segments": [], "joints": [],
                  "ergonomicJointAngles": []}
    self._list = None  # Which header list is open.
    self.in_frames = False
    self.frame = None  # Attributes of the open normal frame, else None.
    self.frame_line = 0
    self.field = None  # Quantity whose text is being collected.
    self.text = []
    self.current = {}  # Quantity -> text, for the open frame.
    self.field_lines = {}  # Quantity -> line of its tag, for the open frame.
    self.keys = None  # Quantities of the first normal frame.
    self.pending = {}  # Quantity -> [texts] of the current chunk.
    self.pending_lines = []
    self.pending_chars = 0
    self.arrays = {}  # Quantity -> <float32>[capacity, D], rows filled: .rows.
    self.rows = 0
    self.file_bytes = 0
    self.first_frame_bytes = None  # (start byte, bytes) of the first frame.
    self.index, self.time_ms, self.unix_ms = [], [], []
    self.skipped = {}
    self.done = False
    self.last_complete = None  # (index, line) of the last complete frame.
    self.parser = None

  def where(self, line=None) -> str:
    return f"{self.path}:{line if line is not None else self.parser.CurrentLineNumber}"

  def start(self, name, attrs):
    name = _local(name)
    if self.frame is not None:
      if name in self.wanted:
        self.field, self.text = name, []
        self.field_lines[name] = self.parser.CurrentLineNumber
      return
    if name == "frame" and self.in_frames:
      kind = attrs.get("type", "normal")
      if kind != "normal":
        self.skipped[kind] = self.skipped.get(kind, 0) + 1
        return
      self.frame = attrs
      self.frame_line = self.parser.CurrentLineNumber
      self.frame_byte = self.parser.CurrentByteIndex
      self.current = {}
      self.field_lines = {}
    elif name == "frames":
      self.in_frames = True
    elif name == "mvnx":
      self.version = attrs.get("version", "")
    elif name == "subject":
      try:
        self.rate = float(attrs["frameRate"])
      except (KeyError, ValueError):
        raise MvnxError(f"{self.where()}: <subject> has no numeric frameRate "
                        f"attribute ({attrs.get('frameRate')!r}); the file is "
                        "not a valid MVNX export.") from None
    elif name in self.lists:
      self._list = name
    elif self._list and name in ("sensor", "segment", "joint",
                                 "ergonomicJointAngle"):
      self.lists[self._list].append(attrs.get("label", ""))

  def chars(self, data):
    if self.field is not None:
      self.text.append(data)

  def end(self, name):
    name = _local(name)
    if self.field is not None and name == self.field:
      self.current[name] = "".join(self.text)
      self.field = None
    elif name == "frame" and self.frame is not None:
      self._end_frame()
    elif name in self.lists:
      self._list = None
    elif name == "frames":
      self.in_frames = False
    elif name == "mvnx":
      self.done = True

  def _end_frame(self):
    attrs, line = self.frame, self.frame_line
    self.frame = None
    if self.keys is None:
      self.keys = frozenset(self.current)
      self.pending = {k: [] for k in self.keys}
    elif self.keys != frozenset(self.current):
      raise MvnxError(
          f"{self.where(line)}: this frame's quantities differ from the first "
          f"frame's in {sorted(self.keys ^ frozenset(self.current))}; the frame "
          "lost data. Re-export the file from MVN, or delete the frame.")
    for k, v in self.current.items():
      self.pending[k].append(v)
      self.pending_chars += len(v)
    self.pending_lines.append(self.field_lines)
    if self.first_frame_bytes is None:
      self.first_frame_bytes = (
          self.frame_byte, self.parser.CurrentByteIndex - self.frame_byte)
    try:
      self.index.append(int(attrs.get("index", len(self.index))))
      self.time_ms.append(int(attrs.get("time", -1)))
      self.unix_ms.append(int(attrs.get("ms", -1)))
    except ValueError:
      raise MvnxError(f"{self.where(line)}: frame attribute index/time/ms is "
                      f"not an integer ({dict(attrs)}); fix the line.") from None
    self.last_complete = (self.index[-1], line)
    if self.pending_chars >= _CHUNK_CHARS:
      self.flush()

  def _capacity(self) -> int:
    """Frames expected in the file: MVN writes frames of near-equal size."""
    start, size = self.first_frame_bytes
    return int((self.file_bytes - start) / max(size, 1) * 1.02) + 16

  def flush(self):
    """Parses the pending frames' texts into the preallocated arrays."""
    n = len(self.pending_lines)
    if not n:
      return
    for k, texts in self.pending.items():
      try:
        values = _parse_floats(" ".join(texts))
      except ValueError:
        values = None
      if values is None or values.size % n:
        self._locate_bad_frame(k, texts)
      values = values.reshape(n, -1)
      if k not in self.arrays:
        self.arrays[k] = np.empty((self._capacity(), values.shape[1]),
                                  np.float32)
      elif values.shape[1] != self.arrays[k].shape[1]:
        self._locate_bad_frame(k, texts)
      a = self.arrays[k]
      if self.rows + n > a.shape[0]:
        # In place where the allocator can; the estimate was too small.
        a.resize((max(self.rows + n, int(a.shape[0] * 1.25)), a.shape[1]),
                 refcheck=False)
      a[self.rows:self.rows + n] = values
    self.rows += n
    self.pending = {k: [] for k in self.pending}
    self.pending_lines = []
    self.pending_chars = 0

  def _locate_bad_frame(self, k, texts):
    """Re-parses frame by frame to name the line of a malformed quantity."""
    width = self.arrays[k].shape[1] if k in self.arrays else None
    for text, lines in zip(texts, self.pending_lines):
      line = lines[k]
      try:
        v = _parse_floats(text)
      except ValueError:
        raise MvnxError(
            f"{self.where(line)}: <{k}> holds a malformed number "
            f"({_first_bad_token(text)!r}); numbers must use '.' decimals and "
            "spaces between values. Fix the frame or re-export it.") from None
      width = v.size if width is None else width
      if v.size != width:
        raise MvnxError(
            f"{self.where(line)}: <{k}> has {v.size} values where the frames "
            f"before have {width}; the frame is damaged. Re-export the file "
            "or delete the frame.")
    raise MvnxError(f"{self.path}: <{k}> values differ in count between "
                    "frames; re-export the file.")


def _first_bad_token(text: str) -> str:
  for tok in text.split():
    try:
      float(tok)
    except ValueError:
      return tok
  return text[:40]


def _reshape(r: _Reader, k: str, data: np.ndarray) -> np.ndarray:
  """[T, D] -> [T, n_items, k] for per-item quantities, checking D."""
  groups = ((SENSOR_FIELDS, "sensors"), (SEGMENT_FIELDS, "segments"),
            (JOINT_FIELDS, "joints"), (ERGO_FIELDS, "ergonomicJointAngles"))
  for table, header in groups:
    if k in table:
      n_items = len(r.lists[header])
      if n_items and data.shape[1] == n_items * table[k]:
        return data.reshape(data.shape[0], n_items, table[k])
      if not n_items and data.shape[1] % table[k] == 0:
        return data.reshape(data.shape[0], -1, table[k])
      raise MvnxError(
          f"{r.path}: <{k}> has {data.shape[1]} values per frame but the "
          f"header lists {n_items} {header} x {table[k]}; the header and the "
          "frames disagree. Re-export the file from MVN.")
  return data


def read(path, fields: Iterable[str] | str | None = None, *,
         allow_truncated: bool = False) -> Recording:
  """Reads the normal frames of an MVNX file (see module docstring).

  Args:
    path: the `.mvnx` file.
    fields: quantities to keep: None for the sensor quantities
      (`SENSOR_FIELDS`), "all" for `ALL_FIELDS`, or an iterable of names.
      Quantities the file lacks are simply absent from `Recording.fields`.
    allow_truncated: keep the complete frames of a file cut off mid-frame
      (counted in `repairs`) instead of raising.

  Returns:
    A `Recording`; `fields[k]` is <float32>[T, n_items, k] or [T, D].

  Raises:
    MvnxError: malformed or truncated file, naming the file and line.
  """
  path = epath.Path(path)
  if fields is None:
    wanted = frozenset(SENSOR_FIELDS)
  elif fields == "all":
    wanted = frozenset(ALL_FIELDS)
  else:
    wanted = frozenset(fields)
    unknown = wanted - set(ALL_FIELDS)
    if unknown:
      raise ValueError(f"Unknown MVNX quantities {sorted(unknown)}; known: "
                       f"{ALL_FIELDS}.")
  r = _Reader(str(path), wanted)
  r.file_bytes = path.stat().length
  p = expat.ParserCreate()
  p.buffer_text = True
  p.buffer_size = _READ_BYTES
  p.StartElementHandler, p.EndElementHandler = r.start, r.end
  p.CharacterDataHandler = r.chars
  r.parser = p
  truncated = 0
  final = False
  with path.open("rb") as f:
    try:
      while chunk := f.read(_READ_BYTES):
        p.Parse(chunk, False)
      final = True
      p.Parse(b"", True)
    except expat.ExpatError as e:
      # expat only fails on the final call when the input merely stops early.
      if not final or r.done:
        raise MvnxError(f"{path}:{e.lineno}: not well-formed XML ({e}). Fix the "
                        "line or re-export the file from MVN.") from None
      last = ("no complete frame" if r.last_complete is None else
              f"the last complete frame is index {r.last_complete[0]} "
              f"(line {r.last_complete[1]})")
      if not allow_truncated or r.last_complete is None:
        raise MvnxError(
            f"{path}:{e.lineno}: the file ends before </mvnx> (cut off by an "
            f"interrupted export or copy); {last}. Copy or export it again, or "
            "pass allow_truncated=True to keep the complete frames.") from None
      truncated = 1
  if r.rate is None:
    raise MvnxError(f"{path}: no <subject frameRate=...>; not an MVNX file.")
  if not r.index:
    raise MvnxError(f"{path}: no normal frames (skipped {r.skipped}); nothing "
                    "to read. Export the recording with its frames.")
  r.flush()
  out = {}
  for k, data in r.arrays.items():
    data.resize((r.rows, data.shape[1]), refcheck=False)  # Drops spare rows.
    if k in _DEGREE_FIELDS:
      np.deg2rad(data, out=data)
    out[k] = _reshape(r, k, data)
  index = np.asarray(r.index, np.int64)
  if np.any(np.diff(index) <= 0):
    i = int(np.flatnonzero(np.diff(index) <= 0)[0]) + 1
    raise MvnxError(f"{path}: frame index {index[i]} follows {index[i - 1]}; "
                    "frame numbers must increase. Re-export the file.")
  return Recording(
      path=str(path), version=r.version, frame_rate_hz=r.rate,
      sensor_labels=tuple(r.lists["sensors"]),
      segment_labels=tuple(r.lists["segments"]),
      joint_labels=tuple(r.lists["joints"]),
      ergo_labels=tuple(r.lists["ergonomicJointAngles"]),
      index=index, time_ms=np.asarray(r.time_ms, np.int64),
      unix_ms=np.asarray(r.unix_ms, np.int64), fields=out,
      skipped_frames=r.skipped,
      repairs={"truncated_file_tail_dropped": truncated})


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Rotates vectors by unit quaternions (w, x, y, z).

  Args:
    q: <float>[..., 4].
    v: <float>[..., 3].
  Returns:
    <float>[..., 3], v expressed in the frame q maps to.
  """
  w, u = q[..., :1], q[..., 1:]
  t = 2.0 * np.cross(u, v)
  return v + w * t + np.cross(u, t)


class ImuChannels(NamedTuple):
  """Per-sensor IMU channels; each <float32>[T, n_sensors, k].

  Attributes:
    acc: free acceleration, m/s^2, global frame, gravity removed.
    gyr: angular velocity, rad/s.
    quat: sensor orientation quaternion (w, x, y, z).
    sources: channel -> which MVNX quantity (and transform) it came from.
  """
  acc: np.ndarray
  gyr: np.ndarray
  quat: np.ndarray
  sources: dict[str, str]


def imu_channels(rec: Recording) -> ImuChannels:
  """Free acceleration, angular velocity and orientation of every sensor.

  MVN exports differ in what they carry, so each channel falls back:
  acc is `sensorFreeAcceleration`, else `sensorAcceleration` rotated to the
  global frame by `sensorOrientation` minus gravity (verified on the real v3
  file kicking-003: gravity-free to within MVN's filtering); gyr is
  `sensorAngularVelocity` (sensor frame), else the `angularVelocity` of the
  segment each sensor is named after (global frame, the only angular rate such
  exports hold).

  Raises:
    MvnxError: a quantity needed (and its fallback) is missing.
  """
  f = rec.fields
  if "sensorOrientation" not in f:
    raise MvnxError(f"{rec.path}: no <sensorOrientation>; export the file from "
                    "MVN with sensor data enabled.")
  quat = f["sensorOrientation"]
  sources = {"quat": "sensorOrientation"}
  if "sensorFreeAcceleration" in f:
    acc = f["sensorFreeAcceleration"]
    sources["acc"] = "sensorFreeAcceleration"
  elif "sensorAcceleration" in f:
    acc = quat_rotate(quat, f["sensorAcceleration"]).astype(np.float32)
    acc[..., 2] -= STANDARD_GRAVITY
    sources["acc"] = "sensorAcceleration rotated by sensorOrientation - g"
  else:
    raise MvnxError(f"{rec.path}: neither <sensorFreeAcceleration> nor "
                    "<sensorAcceleration>; export with sensor data enabled.")
  if "sensorAngularVelocity" in f:
    gyr = f["sensorAngularVelocity"]
    sources["gyr"] = "sensorAngularVelocity"
  elif "angularVelocity" in f:
    seg = {name: i for i, name in enumerate(rec.segment_labels)}
    missing = [s for s in rec.sensor_labels if s not in seg]
    if missing:
      raise MvnxError(f"{rec.path}: no <sensorAngularVelocity> and sensors "
                      f"{missing} name no segment; export with sensor data.")
    gyr = f["angularVelocity"][:, [seg[s] for s in rec.sensor_labels]]
    sources["gyr"] = "angularVelocity of the sensor's segment (global frame)"
  else:
    raise MvnxError(f"{rec.path}: neither <sensorAngularVelocity> nor segment "
                    "<angularVelocity>; read it with fields='all' or export "
                    "with sensor data enabled.")
  return ImuChannels(acc, gyr, quat, sources)


def sensor_placement(label: str) -> str:
  """'RightUpperArm' -> 'right_upper_arm' (channel-name placement)."""
  return re.sub(r"(?<!^)(?=[A-Z])", "_", label).lower()
