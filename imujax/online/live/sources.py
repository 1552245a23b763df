"""Sample sources of the live demo: replay, UDP (imujax format), MVN.

Every source is an iterator of `Sample`s with `.description`, `.counts`
(what it saw: kind -> n), `.dropped` (what it dropped and why: kind -> n,
every kind present from the start, shown on the page) and `.close()`. One bad
datagram is counted and dropped, never raised: a live source keeps going.
See the package docstring for the source specs and the UDP datagram format.
"""

import json
import math
import os
import socket
import struct
import time
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from imujax.online import mvn_stream
from imujax.online import streamer as streamer_lib

UDP_HEADER_MAGIC = b"IMJH"
UDP_SAMPLE_MAGIC = b"IMJD"
_SAMPLE = struct.Struct(">4sIdH")
MAX_CHANNELS = 4096


class Sample(NamedTuple):
  t: float               # Source clock, seconds.
  channels: tuple        # Names of `values`, in order.
  values: np.ndarray     # <float64>[C]
  arrival: float         # time.perf_counter() when it arrived.
  truth: int = -1        # True class (the model's index); -1 = unknown.
  restart: bool = False  # A new recording starts here (reset the stream).


class BadPacket(ValueError):
  """A datagram the demo drops; `kind` names the reason on the page."""

  def __init__(self, kind: str, message: str):
    super().__init__(message)
    self.kind = kind


# ------------------------------------------------------------- UDP format
UDP_DROPS = ("not_imujax", "bad_header", "bad_size", "wrong_value_count",
             "lost")


def encode_udp_header(channels: Sequence[str]) -> bytes:
  return UDP_HEADER_MAGIC + json.dumps({"channels": list(channels)}).encode()


def encode_udp_sample(seq: int, t: float, values) -> bytes:
  values = np.asarray(values, ">f4")
  return _SAMPLE.pack(UDP_SAMPLE_MAGIC, seq & 0xFFFFFFFF, float(t),
                      values.size) + values.tobytes()


def decode_udp(data: bytes):
  """-> ("header", channels) or ("sample", (seq, t, values)).

  Raises:
    BadPacket: naming what is wrong (kind "not_imujax", "bad_header" or
      "bad_size").
  """
  if data[:4] == UDP_HEADER_MAGIC:
    try:
      channels = json.loads(data[4:].decode("utf-8"))["channels"]
    except (ValueError, KeyError, TypeError) as e:
      raise BadPacket("bad_header", f"Bad imujax UDP header datagram ({e}); "
                      "expected b'IMJH' + a JSON object with a 'channels' "
                      "list.") from e
    if (not isinstance(channels, list) or not channels
        or len(channels) > MAX_CHANNELS
        or not all(isinstance(c, str) for c in channels)):
      raise BadPacket("bad_header", "imujax UDP header: 'channels' must be "
                      f"a list of 1 to {MAX_CHANNELS} strings, got "
                      f"{str(channels)[:80]}.")
    return "header", channels
  if data[:4] == UDP_SAMPLE_MAGIC:
    if len(data) < _SAMPLE.size:
      raise BadPacket("bad_size", f"imujax UDP sample datagram of {len(data)} "
                      f"bytes; the fixed part alone is {_SAMPLE.size}.")
    _, seq, t, n = _SAMPLE.unpack_from(data)
    if len(data) != _SAMPLE.size + 4 * n:
      raise BadPacket("bad_size", f"imujax UDP sample datagram says {n} "
                      f"values but has {len(data) - _SAMPLE.size} bytes of "
                      "values.")
    return "sample", (seq, t, np.frombuffer(data, ">f4", n, _SAMPLE.size))
  raise BadPacket("not_imujax", f"Not an imujax UDP datagram (starts "
                  f"{data[:4]!r}); see the format in `python -m pydoc "
                  "imujax.online.live`.")


def udp_sender(port: int, t, x, channels=None, *, speed: float = 1.0,
               host: str = "127.0.0.1") -> int:
  """Sends samples (t [T], x [T, C]) to host:port in the imujax format."""
  mvn_stream.check_loopback(host)
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    if channels is not None:
      sock.sendto(encode_udp_header(channels), (host, port))
    start = time.perf_counter()
    for i, (ti, xi) in enumerate(zip(t, x)):
      if speed > 0:
        wait = start + (ti - t[0]) / speed - time.perf_counter()
        if wait > 0:
          time.sleep(wait)
      sock.sendto(encode_udp_sample(i, ti, xi), (host, port))
  return len(t)


# ---------------------------------------------------------------- sources
class _Socket:
  """A UDP socket on 127.0.0.1 that stops when closed."""

  def __init__(self, port: int):
    self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Room for bursts while the model steps (the kernel may cap it).
    self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    self.sock.bind(("127.0.0.1", port))
    self.sock.settimeout(0.1)
    self.port = self.sock.getsockname()[1]
    self.stopped = False

  def datagrams(self) -> Iterator[bytes]:
    while not self.stopped:
      try:
        yield self.sock.recv(65536)
      except socket.timeout:
        continue
      except OSError:
        return

  def close(self):
    self.stopped = True
    self.sock.close()


class UdpSource:
  """imujax-format datagrams; bad ones counted in `dropped` by kind."""

  blocking = False  # Samples arrive in real time: never wait for the model.

  def __init__(self, port: int, default_channels: Sequence[str]):
    self._s = _Socket(port)
    self.port = self._s.port
    self.channels = tuple(default_channels)
    self.counts = {"datagrams": 0, "headers": 0, "samples": 0}
    self.dropped = dict.fromkeys(UDP_DROPS, 0)
    self.last_problem = ""
    self.description = f"udp:127.0.0.1:{self.port}"

  def _drop(self, kind: str, message: str, n: int = 1):
    self.dropped[kind] += n
    self.last_problem = message

  def __iter__(self):
    last_seq = None
    for data in self._s.datagrams():
      arrival = time.perf_counter()
      self.counts["datagrams"] += 1
      try:
        kind, body = decode_udp(data)
      except BadPacket as e:
        self._drop(e.kind, str(e))
        continue
      if kind == "header":
        self.counts["headers"] += 1
        self.channels = tuple(body)
        continue
      seq, t, values = body
      if last_seq is not None and 0 < seq - last_seq < 1 << 31:
        if seq > last_seq + 1:
          self._drop("lost", f"sequence jumped {last_seq} -> {seq}",
                     seq - last_seq - 1)
      last_seq = seq
      if len(values) != len(self.channels):
        self._drop("wrong_value_count", f"a sample datagram has {len(values)}"
                   f" values, expected {len(self.channels)} (the channels "
                   "of the last header, or the model's): send a header "
                   "naming the channels, then samples of that length.")
        continue
      self.counts["samples"] += 1
      yield Sample(t, self.channels, values.astype(np.float64), arrival)

  def close(self):
    self._s.close()


class MvnSource:
  """The Xsens MVN network stream (`mvn_stream.MvnAssembler` counts)."""

  blocking = False

  def __init__(self, port: int, mapping: dict[str, str], character: int = 0):
    self._s = _Socket(port)
    self.port = self._s.port
    self.mapping = mapping  # model placement -> MVN placement.
    self.assembler = mvn_stream.MvnAssembler(character_id=character)
    self.counts = self.assembler.counts
    self.dropped = self.assembler.dropped
    self.description = f"mvn:127.0.0.1:{self.port}"
    self._names = {}

  @property
  def last_problem(self) -> str:
    return self.assembler.last_problem

  def _rename(self, names) -> tuple:
    key = tuple(names)
    if key not in self._names:
      out = []
      for n in names:
        for to, frm in self.mapping.items():
          if n.startswith(frm + "_"):
            n = to + n[len(frm):]
            break
        out.append(n)
      self._names[key] = tuple(out)
    return self._names[key]

  def __iter__(self):
    for data in self._s.datagrams():
      arrival = time.perf_counter()
      for s in self.assembler.feed(data):
        yield Sample(s.t, self._rename(s.channels), s.values, arrival)

  def close(self):
    self._s.close()


class Replay(NamedTuple):
  """What a replay file holds (see `read_replay`)."""
  t: np.ndarray                      # <float64>[T] seconds.
  x: np.ndarray                      # [T, C]
  channels: list
  y: Optional[np.ndarray] = None     # <int>[T] indices into `classes`.
  classes: Optional[list] = None
  arrival: Optional[np.ndarray] = None  # [T] s since the session start.
  restart: Optional[np.ndarray] = None  # <bool>[T] a new recording.
  meta: Optional[dict] = None        # A --record file's meta.


class ReplaySource:
  """Samples of a `Replay`, released at their time (or arrival) / speed."""

  blocking = True  # A replay waits for the model rather than drop samples.

  def __init__(self, replay: Replay, speed: float, description: str,
               class_names: Sequence[str]):
    self.r = replay
    self.channels = tuple(replay.channels)
    self.speed = speed
    self.description = description
    self.counts = {"samples": 0}
    self.dropped = {}
    self.last_problem = ""
    self.truth = _truth_indices(replay, class_names)
    self.stopped = False

  def __iter__(self):
    r = self.r
    clock = r.arrival if r.arrival is not None else r.t
    start = time.perf_counter()
    for i in range(len(r.t)):
      if self.stopped:
        return
      if self.speed > 0:
        wait = start + (clock[i] - clock[0]) / self.speed - time.perf_counter()
        if wait > 0:
          time.sleep(wait)
      self.counts["samples"] += 1
      yield Sample(float(r.t[i]), self.channels, r.x[i], time.perf_counter(),
                   int(self.truth[i]),
                   bool(r.restart[i]) if r.restart is not None else False)

  def close(self):
    self.stopped = True


def _truth_indices(r: Replay, class_names: Sequence[str]) -> np.ndarray:
  """The replay's labels as indices into the model's classes (-1: none)."""
  if r.y is None or r.classes is None:
    return np.full(len(r.t), -1, np.int64)
  to_model = np.asarray([list(class_names).index(c) if c in class_names
                         else -1 for c in r.classes] + [-1], np.int64)
  y = np.asarray(r.y, np.int64)
  return to_model[np.where((y >= 0) & (y < len(r.classes)), y, -1)]


def _npz_replay(path: str) -> Replay:
  """An .npz replay or a `--record` session file, checked."""
  try:
    f = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise ValueError(f"--source=replay:{path}: not a readable .npz ({e}); "
                     "write one with np.savez(t=..., x=..., channels=...) or "
                     "record a session with --record.") from e
  with f:
    missing = [k for k in ("t", "x", "channels") if k not in f.files]
    if missing:
      raise ValueError(f"{path} lacks {missing}: a replay .npz holds t [T] "
                       "seconds, x [T, C] and channels [C] (optionally y [T] "
                       "and classes [K] for the truth).")
    get = lambda k: np.asarray(f[k]) if k in f.files else None  # noqa: E731
    t, x = get("t").astype(np.float64), get("x")
    channels = [str(c) for c in get("channels")]
    y, classes = get("y"), get("classes")
    arrival, restart = get("arrival"), get("restart")
    try:
      meta = json.loads(str(f["meta"])) if "meta" in f.files else None
    except ValueError:
      meta = None
  n = len(t)
  problems = []
  if t.ndim != 1 or x.ndim != 2 or x.shape != (n, len(channels)):
    problems.append(f"t {t.shape}, x {x.shape}, channels {len(channels)} "
                    "(want t [T], x [T, C], channels [C])")
  for k, v in (("y", y), ("arrival", arrival), ("restart", restart)):
    if v is not None and v.shape != (n,):
      problems.append(f"{k} {v.shape} (want [{n}])")
  if (y is None) != (classes is None):
    problems.append("y and classes come together")
  if problems:
    raise ValueError(f"{path}: " + "; ".join(problems) + ".")
  return Replay(t, x.astype(np.float64), channels,
                None if y is None else y.astype(np.int64),
                None if classes is None else [str(c) for c in classes],
                arrival, None if restart is None else restart.astype(bool),
                meta if isinstance(meta, dict) else None)


def read_replay(path: str, record=None) -> Replay:
  """The `Replay` of PATH (see the package docstring).

  `record`: the model's `run_record.RunRecord`, or None (an artifact): for a
  dataset PATH it gives the data_dir and the test split.
  """
  if path.endswith(".npz"):
    return _npz_replay(path)
  if path.endswith(".mvnx"):
    from imujax.datasets import mvnx
    rec = mvnx.read(path, mvnx.IMU_FIELDS, allow_truncated=True)
    imu = mvnx.imu_channels(rec)
    names = [f"{mvnx.sensor_placement(s)}_{q}_{a}" for s in rec.sensor_labels
             for q in ("acc", "gyr") for a in "xyz"]
    x = np.concatenate([imu.acc, imu.gyr], axis=2).reshape(len(rec.index), -1)
    return Replay(rec.timestamps_s, x, names)
  if os.path.exists(path) or path.endswith(os.sep):
    raise ValueError(f"--source=replay:{path}: expected an .npz, an .mvnx or "
                     "a TFDS dataset name such as seglearn_watch.")
  from imujax.data import input_pipeline
  data_dir = (record.config.get("data", {}).get("data_dir", "") if record
              else "")
  data = input_pipeline.load(path, data_dir)
  recs = data.recordings
  if record and "test" in record.splits:
    recs = input_pipeline.select(recs, record.splits["test"])
  x = np.concatenate([r.signals for r in recs])
  restart = np.zeros(len(x), bool)
  restart[np.cumsum([len(r.signals) for r in recs])[:-1]] = True
  return Replay(np.arange(len(x)) / data.sample_rate_hz, x,
                data.channel_names, np.concatenate([r.labels for r in recs]),
                data.class_names, None, restart)


def _options(rest: str) -> tuple[str, dict]:
  head, *opts = rest.split(",")
  out = {}
  for o in opts:
    k, sep, v = o.partition("=")
    if not sep:
      raise ValueError(f"Source option {o!r} is not key=value.")
    out[k.strip()] = v.strip()
  return head, out


def _number(spec: str, what: str, text: str, kind=float):
  try:
    v = kind(text)
  except ValueError:
    v = None
  if v is None or not math.isfinite(v) or v < 0:
    raise ValueError(f"--source={spec!r}: {what}={text!r} is not a "
                     "non-negative number.")
  return v


def open_source(spec: str, model, record=None):
  """The source `spec` names (see the package docstring).

  `record`: the model's run record (None for an artifact), for replays. A
  replay whose channels do not cover the model's fails here, before serving.
  """
  kind, sep, rest = spec.partition(":")
  if not sep or kind not in ("replay", "udp", "mvn"):
    raise ValueError(f"--source={spec!r}: expected replay:PATH[,speed=N], "
                     "udp:PORT or mvn:PORT[,map=TO:FROM;...].")
  head, opts = _options(rest)
  if kind == "replay":
    replay = read_replay(head, record)
    streamer_lib.check_channels(model.channel_names, replay.channels,
                                source=f"--source=replay:{head}",
                                reorder=True)
    return ReplaySource(replay, _number(spec, "speed", opts.get("speed", "1")),
                        f"replay:{head}", model.class_names)
  port = _number(spec, "port", head, int)
  if kind == "udp":
    return UdpSource(port, model.channel_names)
  mapping = {}
  for pair in filter(None, opts.get("map", "").split(";")):
    to, _, frm = pair.partition(":")
    mapping[to] = frm
  return MvnSource(port, mapping,
                   _number(spec, "character", opts.get("character", "0"), int))
