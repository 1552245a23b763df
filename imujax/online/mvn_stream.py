r"""Xsens MVN real-time network streaming protocol: datagrams, and a sender.

MVN Analyze/Animate's Network Streamer sends UDP datagrams (default port
9763) in network byte order (big-endian), following Xsens' "MVN real-time
network streaming protocol specification" (revision N, 2018). Every datagram
is a 24-byte header and a payload of `items` fixed-size items:

  header  6s  ID string "MXTP" + 2-digit message type, e.g. b"MXTP23"
          u32 sample counter (one per sampling instant)
          u8  datagram counter: bits 0-6 index of this datagram within the
              sample, bit 7 set on the sample's last datagram (0x80 = only one)
          u8  number of items in this datagram
          u32 time code, ms since the start of the recording
          u8  character ID          u8 number of body segments (23)
          u8  number of props       u8 number of finger tracking segments
          2x  reserved              u16 payload size (bytes after the header)

Message types decoded here (item layouts; segment IDs are 1-based, Pelvis = 1,
in the order of `SEGMENTS`; floats are IEEE float32):

  01 pose, Euler       i4 segment, 3f position (cm, Y-up), 3f rotation (deg)
  02 pose, quaternion  i4 segment, 3f position (cm, Z-up), 4f quaternion (w,x,y,z)
  03 point positions   i4 point (256 * segment + local point), 3f position
  05 pose, Unity3D     as 02 (relative, Unity segment order)
  20 joint angles      i4 parent point, i4 child point, 3f angles
  21 linear segment kinematics   i4 segment, 3f position, 3f velocity,
                                 3f acceleration (global)
  22 angular segment kinematics  i4 segment, 4f quaternion, 3f angular
                                 velocity, 3f angular acceleration (global)
  23 motion tracker kinematics   i4 segment the tracker is on, 4f quaternion,
                                 3f free acceleration (global),
                                 3f magnetic field (local); trackers only
  24 center of mass     3f position
  25 time code          12-byte string "HH:MM:SS.mmm"
  12 meta data          UTF-8 text, "tag:value" lines (name, xmid, color)

Type 13 (scale information) and unknown types are returned undecoded (their
payload size lets a receiver skip them). The specification gives units for
the pose position (cm) and Euler angles (degrees) only; for types 21-23 this
module sends, and the receiver assumes, SI units: m, m/s, m/s^2, rad/s (what
`imujax.datasets.mvnx` reads from MVNX files).

What the live demo needs (`MvnAssembler`): per sampling instant, the free
acceleration and orientation of each tracker (type 23) and the angular
velocity of the segment it is on (type 22), as channels
`<placement>_acc_{x,y,z}`, `<placement>_gyr_{x,y,z}`,
`<placement>_quat_{w,x,y,z}`, `<placement>_mag_{x,y,z}` with the placement
named after the segment (`RightForeArm` -> `right_fore_arm`), as the MVNX
builders name them (gyr: the segment's global angular velocity, the same
fallback `mvnx.imu_channels` uses when an export has no sensor angular
velocity).

`send_mvnx` replays an MVNX file as MVN would stream it (types 02, 21, 22, 23
per frame), to a loopback address only:

  python -m imujax.online.mvn_stream --mvnx=FILE --port=9763 [--speed=1]
"""

import socket
import struct
import time
from typing import Iterator, NamedTuple, Optional

import numpy as np

DEFAULT_PORT = 9763
HEADER = struct.Struct(">6sIBBIBBBB2xH")
assert HEADER.size == 24
# Largest payload per datagram: a 1500-byte Ethernet MTU minus IP (20), UDP
# (8) and MVN (24) headers.
MAX_PAYLOAD = 1500 - 20 - 8 - HEADER.size
SEGMENTS = ("Pelvis", "L5", "L3", "T12", "T8", "Neck", "Head", "RightShoulder",
            "RightUpperArm", "RightForeArm", "RightHand", "LeftShoulder",
            "LeftUpperArm", "LeftForeArm", "LeftHand", "RightUpperLeg",
            "RightLowerLeg", "RightFoot", "RightToe", "LeftUpperLeg",
            "LeftLowerLeg", "LeftFoot", "LeftToe")


def _items(*fields) -> np.dtype:
  return np.dtype([(n, ">i4") if k == 0 else (n, ">f4", (k,)) if k > 1 else
                   (n, ">f4") for n, k in fields])


ITEM_TYPES = {
    "01": _items(("segment_id", 0), ("position", 3), ("euler", 3)),
    "02": _items(("segment_id", 0), ("position", 3), ("quaternion", 4)),
    "03": _items(("point_id", 0), ("position", 3)),
    "05": _items(("segment_id", 0), ("position", 3), ("quaternion", 4)),
    "20": _items(("parent_point_id", 0), ("child_point_id", 0),
                 ("angles", 3)),
    "21": _items(("segment_id", 0), ("position", 3), ("velocity", 3),
                 ("acceleration", 3)),
    "22": _items(("segment_id", 0), ("quaternion", 4),
                 ("angular_velocity", 3), ("angular_acceleration", 3)),
    "23": _items(("segment_id", 0), ("quaternion", 4),
                 ("free_acceleration", 3), ("magnetic_field", 3)),
    "24": _items(("position", 3)),
}
assert [ITEM_TYPES[k].itemsize for k in ("01", "02", "03", "20", "21", "22",
                                         "23", "24")] == [
                                             28, 32, 16, 20, 40, 44, 44, 12]


class MvnProtocolError(ValueError):
  """A datagram off the MVN protocol; `kind`: one of `PROTOCOL_ERRORS`."""

  def __init__(self, message: str, kind: str = "malformed"):
    super().__init__(message)
    self.kind = kind


PROTOCOL_ERRORS = ("short_datagram", "not_mxtp", "payload_size", "item_size")


class Header(NamedTuple):
  message_type: str   # "01", "02", ... "25".
  sample_counter: int
  datagram_index: int
  last: bool          # The sample's last datagram of this type.
  items: int
  time_code_ms: int
  character_id: int = 0
  body_segments: int = 23
  props: int = 0
  finger_segments: int = 0
  payload_size: int = 0


class Datagram(NamedTuple):
  header: Header
  items: Optional[np.ndarray]  # Structured array (ITEM_TYPES) or None.
  payload: bytes               # Undecoded payload (types 12, 13, 25, ...).


def encode(header: Header, payload: bytes) -> bytes:
  """One datagram: header (its payload_size set from `payload`) + payload."""
  h = header._replace(payload_size=len(payload))
  counter = (h.datagram_index & 0x7F) | (0x80 if h.last else 0)
  return HEADER.pack(b"MXTP" + h.message_type.encode("ascii"),
                     h.sample_counter, counter, h.items, h.time_code_ms,
                     h.character_id, h.body_segments, h.props,
                     h.finger_segments, h.payload_size) + payload


def encode_items(message_type: str, sample_counter: int, time_code_ms: int,
                 items: np.ndarray, **header) -> list[bytes]:
  """Datagrams of one sample's items, split to fit the MTU."""
  items = np.asarray(items, ITEM_TYPES[message_type])
  per = max(MAX_PAYLOAD // items.dtype.itemsize, 1)
  chunks = [items[i:i + per] for i in range(0, max(len(items), 1), per)]
  return [encode(Header(message_type, sample_counter, i, i == len(chunks) - 1,
                        len(c), time_code_ms, **header), c.tobytes())
          for i, c in enumerate(chunks)]


def decode(data: bytes) -> Datagram:
  """Parses one datagram; raises `MvnProtocolError` naming the defect."""
  if len(data) < HEADER.size:
    raise MvnProtocolError(f"{len(data)}-byte datagram; an MVN datagram has a "
                           f"{HEADER.size}-byte header.", "short_datagram")
  (ident, sample, counter, n, tc, char, segs, props, fingers,
   size) = HEADER.unpack_from(data)
  if ident[:4] != b"MXTP":
    raise MvnProtocolError(f"ID string {ident!r} does not start with b'MXTP': "
                           "not an MVN network stream datagram.", "not_mxtp")
  mtype = ident[4:].decode("ascii", "replace")
  payload = bytes(data[HEADER.size:])
  if size != len(payload):
    raise MvnProtocolError(f"MXTP{mtype}: header says {size} payload bytes, "
                           f"the datagram has {len(payload)} (truncated?).",
                           "payload_size")
  header = Header(mtype, sample, counter & 0x7F, bool(counter & 0x80), n, tc,
                  char, segs, props, fingers, size)
  dtype = ITEM_TYPES.get(mtype)
  if dtype is None:
    return Datagram(header, None, payload)
  if n * dtype.itemsize != len(payload):
    raise MvnProtocolError(
        f"MXTP{mtype}: {n} items of {dtype.itemsize} bytes expected, payload "
        f"is {len(payload)} bytes.", "item_size")
  return Datagram(header, np.frombuffer(payload, dtype, n), payload)


def decode_meta(payload: bytes) -> dict[str, str]:
  """Type 12 payload -> {tag: value}."""
  out = {}
  for line in payload.decode("utf-8", "replace").splitlines():
    tag, sep, value = line.partition(":")
    if sep:
      out[tag.strip()] = value.strip()
  return out


def placement(segment_id: int) -> str:
  """1-based MVN segment ID -> channel placement ('right_fore_arm')."""
  from imujax.datasets import mvnx
  if not 1 <= segment_id <= len(SEGMENTS):
    return f"segment_{segment_id}"
  return mvnx.sensor_placement(SEGMENTS[segment_id - 1])


class Sample(NamedTuple):
  t: float                 # Time code, seconds.
  sample_counter: int
  channels: list[str]
  values: np.ndarray       # <float64>[len(channels)]


LATE_WINDOW = 1000  # Samples; a counter further back: a restarted sender.
ASSEMBLER_DROPS = PROTOCOL_ERRORS + ("late", "duplicate_datagram",
                                     "bad_segment_id", "duplicate_segment")


class MvnAssembler:
  """Collects a character's datagrams into one sample per sampling instant.

  A sample is complete when every type in `expected` has delivered its last
  datagram (bit 7 of the datagram counter), or, failing that, when a later
  sample counter arrives (what arrived of the earlier one is used, counted in
  `counts["incomplete_samples"]`: a datagram was lost).

  What UDP and senders do wrong is counted in `dropped` (kind -> n, all of
  `ASSEMBLER_DROPS`) and never raised: a malformed datagram (the
  `PROTOCOL_ERRORS`); a datagram of a sample already finished or older than
  the one being collected ("late"); a datagram received twice
  ("duplicate_datagram"); items whose segment ID is not one of the header's
  segments, props or finger segments ("bad_segment_id": those items); a
  segment twice in one sample's type ("duplicate_segment": the whole sample).
  A sample counter more than `LATE_WINDOW` back is a restarted sender
  (`counts["counter_restarts"]`). `last_problem` describes the last drop.
  """

  def __init__(self, expected=("22", "23"), character_id: int = 0):
    self.expected = frozenset(expected)
    self.character_id = character_id
    self._sample, self._last_done = None, None  # Collecting; last finished.
    self._parts: dict[str, list[np.ndarray]] = {}
    self._seen: set[tuple[str, int]] = set()
    self._done: set[str] = set()
    self._tc = 0
    self.counts = {"datagrams": 0, "samples": 0, "other_character": 0,
                   "undecoded": 0, "incomplete_samples": 0,
                   "counter_restarts": 0}
    self.dropped, self.last_problem = dict.fromkeys(ASSEMBLER_DROPS, 0), ""
    placement(1)  # Imports the naming now, not on the first sample (~1 s).

  def _drop(self, kind: str, message: str, n: int = 1) -> list:
    self.dropped[kind] += n
    self.last_problem = message
    return []

  def feed(self, data: bytes) -> list[Sample]:
    """One datagram -> the samples it completes (0, 1 or 2)."""
    self.counts["datagrams"] += 1
    try:
      d = decode(data)
    except MvnProtocolError as e:
      return self._drop(e.kind, str(e))
    h = d.header
    if h.character_id != self.character_id:
      self.counts["other_character"] += 1
      return []
    if d.items is None or h.message_type not in self.expected:
      self.counts["undecoded"] += 1
      return []
    out = []
    # How far behind what is being collected (or was last finished) it is.
    behind = (self._sample - h.sample_counter if self._sample is not None
              else self._last_done - h.sample_counter + 1
              if self._last_done is not None else 0)
    if behind > 0:
      if behind <= LATE_WINDOW:
        return self._drop("late", f"MXTP{h.message_type} of sample "
                          f"{h.sample_counter} arrived late.")
      self.counts["counter_restarts"] += 1
      out += self._finish()
      self._last_done = None
    elif self._sample is not None and h.sample_counter != self._sample:
      out += self._finish()
    key = (h.message_type, h.datagram_index)
    if self._sample is not None and key in self._seen:
      return out + self._drop("duplicate_datagram", f"MXTP{h.message_type} "
                              f"datagram {h.datagram_index} of sample "
                              f"{h.sample_counter} arrived twice.")
    self._sample, self._tc = h.sample_counter, h.time_code_ms
    self._seen.add(key)
    items = d.items
    limit = (h.body_segments + h.props + h.finger_segments) or len(SEGMENTS)
    ok = (items["segment_id"] >= 1) & (items["segment_id"] <= limit)
    if not ok.all():
      self._drop("bad_segment_id", f"MXTP{h.message_type}: segment IDs "
                 f"{items['segment_id'][~ok][:5].tolist()} outside 1..{limit}"
                 " dropped.", int((~ok).sum()))
      items = items[ok]
    self._parts.setdefault(h.message_type, []).append(items)
    if h.last:
      self._done.add(h.message_type)
    if self._done >= self.expected:
      out += self._finish()
    return out

  def _finish(self) -> list[Sample]:
    parts = {k: np.concatenate(v) for k, v in self._parts.items()}
    sample, tc, done = self._sample, self._tc, self._done
    self._sample, self._parts, self._done, self._seen = None, {}, set(), set()
    if sample is None:
      return []
    self._last_done = sample
    if not done >= self.expected:
      self.counts["incomplete_samples"] += 1
    for k, p in parts.items():
      if len(np.unique(p["segment_id"])) != len(p):
        return self._drop("duplicate_segment", f"MXTP{k} of sample {sample} "
                          "names a segment twice; sample dropped.")
    names, values = [], []
    if "23" in parts:
      p = parts["23"]
      for i, sid in enumerate(p["segment_id"]):
        pl = placement(int(sid))
        names += [f"{pl}_acc_{a}" for a in "xyz"]
        names += [f"{pl}_quat_{a}" for a in "wxyz"]
        names += [f"{pl}_mag_{a}" for a in "xyz"]
        values += [p["free_acceleration"][i], p["quaternion"][i],
                   p["magnetic_field"][i]]
    if "22" in parts:
      p = parts["22"]
      for i, sid in enumerate(p["segment_id"]):
        names += [f"{placement(int(sid))}_gyr_{a}" for a in "xyz"]
        values.append(p["angular_velocity"][i])
    if not values:
      return []
    self.counts["samples"] += 1
    return [Sample(tc / 1e3, sample, names,
                   np.concatenate(values).astype(np.float64))]


# -------------------------------------------------------------- the sender
def mvnx_datagrams(rec, types=("02", "21", "22", "23"),
                   character_id: int = 0) -> Iterator[tuple[float, list[bytes]]]:
  """(time s, datagrams) per normal frame of an `mvnx.Recording` read with
  fields="all", as MVN streams them; positions of type 02 in cm."""
  f = rec.fields
  seg_ids = np.asarray([SEGMENTS.index(s) + 1 if s in SEGMENTS else i + 1
                        for i, s in enumerate(rec.segment_labels)], np.int32)
  sensor_ids = np.asarray([SEGMENTS.index(s) + 1 if s in SEGMENTS else 0
                           for s in rec.sensor_labels], np.int32)
  nseg, nsen = len(seg_ids), len(sensor_ids)
  t_s = rec.timestamps_s
  zeros3 = lambda n: np.zeros((n, 3), np.float32)  # noqa: E731
  header = {"character_id": character_id, "body_segments": nseg}
  for i in range(len(t_s)):
    tc = int(round(t_s[i] * 1e3))
    grams = []
    for mt in types:
      dt = ITEM_TYPES[mt]
      if mt in ("21", "22", "02"):
        items = np.zeros(nseg, dt)
        items["segment_id"] = seg_ids
      else:
        items = np.zeros(nsen, dt)
        items["segment_id"] = sensor_ids
      if mt == "02":
        items["position"] = f["position"][i] * 100. if "position" in f else 0.
        items["quaternion"] = f["orientation"][i] if "orientation" in f else 0.
      elif mt == "21":
        for k, src in (("position", "position"), ("velocity", "velocity"),
                       ("acceleration", "acceleration")):
          items[k] = f[src][i] if src in f else zeros3(nseg)
      elif mt == "22":
        for k, src in (("quaternion", "orientation"),
                       ("angular_velocity", "angularVelocity"),
                       ("angular_acceleration", "angularAcceleration")):
          if src in f:
            items[k] = f[src][i]
      elif mt == "23":
        for k, src in (("quaternion", "sensorOrientation"),
                       ("free_acceleration", "sensorFreeAcceleration"),
                       ("magnetic_field", "sensorMagneticField")):
          if src in f:
            items[k] = f[src][i]
      grams += encode_items(mt, i, tc, items, **header)
    yield float(t_s[i]), grams


def check_loopback(host: str) -> str:
  """Raises unless `host` is a loopback address (this tool never leaves it)."""
  import ipaddress
  try:
    ok = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
  except (OSError, ValueError):
    ok = False
  if not ok:
    raise ValueError(f"host {host!r} is not a loopback address; imujax's live "
                     "tools only send to and listen on 127.0.0.1.")
  return host


def send_mvnx(path, port: int, *, speed: float = 1.0, host: str = "127.0.0.1",
              types=("02", "21", "22", "23"), frames: int = 0) -> int:
  """Replays an MVNX file over UDP to host:port in (scaled) real time.

  Returns the number of datagrams sent. speed <= 0 sends as fast as possible.
  """
  from imujax.datasets import mvnx

  check_loopback(host)
  rec = mvnx.read(path, "all", allow_truncated=True)
  sent = 0
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    start = time.perf_counter()
    for n, (t, grams) in enumerate(mvnx_datagrams(rec, types)):
      if frames and n >= frames:
        break
      if speed > 0:
        wait = start + t / speed - time.perf_counter()
        if wait > 0:
          time.sleep(wait)
      for g in grams:
        sock.sendto(g, (host, port))
        sent += 1
  return sent


def main(argv=None):
  import argparse
  p = argparse.ArgumentParser(prog="python -m imujax.online.mvn_stream",
                              description="Replay an MVNX file as an MVN "
                              "network stream to a loopback UDP port.")
  p.add_argument("--mvnx", required=True)
  p.add_argument("--port", type=int, default=DEFAULT_PORT)
  p.add_argument("--host", default="127.0.0.1")
  p.add_argument("--speed", type=float, default=1.0)
  p.add_argument("--frames", type=int, default=0, help="0 = all.")
  args = p.parse_args(argv)
  n = send_mvnx(args.mvnx, args.port, speed=args.speed, host=args.host,
                frames=args.frames)
  print(f"Sent {n} datagrams to {args.host}:{args.port}.")


if __name__ == "__main__":
  main()
