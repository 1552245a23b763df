"""Sample sources of the live demo: replay, UDP (imujax format), MVN.

Every source is an iterator of `Sample`s and has `.counts` (what it saw) and
`.close()`. See the package docstring for the source specs and the UDP
datagram format.
"""

import json
import socket
import struct
import time
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from imujax.online import mvn_stream

UDP_HEADER_MAGIC = b"IMJH"
UDP_SAMPLE_MAGIC = b"IMJD"
_SAMPLE = struct.Struct(">4sIdH")


class Sample(NamedTuple):
  t: float               # Source clock, seconds.
  channels: tuple        # Names of `values`, in order.
  values: np.ndarray     # <float64>[C]
  arrival: float         # time.perf_counter() when it arrived.


# ------------------------------------------------------------- UDP format
def encode_udp_header(channels: Sequence[str]) -> bytes:
  return UDP_HEADER_MAGIC + json.dumps({"channels": list(channels)}).encode()


def encode_udp_sample(seq: int, t: float, values) -> bytes:
  values = np.asarray(values, ">f4")
  return _SAMPLE.pack(UDP_SAMPLE_MAGIC, seq & 0xFFFFFFFF, float(t),
                      values.size) + values.tobytes()


def decode_udp(data: bytes):
  """-> ("header", channels) or ("sample", (seq, t, values)); ValueError."""
  if data[:4] == UDP_HEADER_MAGIC:
    try:
      channels = json.loads(data[4:].decode("utf-8"))["channels"]
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"Bad imujax UDP header datagram ({e}); expected "
                       "b'IMJH' + a JSON object with a 'channels' list.") from e
    return "header", [str(c) for c in channels]
  if data[:4] == UDP_SAMPLE_MAGIC and len(data) >= _SAMPLE.size:
    _, seq, t, n = _SAMPLE.unpack_from(data)
    if len(data) != _SAMPLE.size + 4 * n:
      raise ValueError(f"imujax UDP sample datagram says {n} values but has "
                       f"{len(data) - _SAMPLE.size} bytes of values.")
    return "sample", (seq, t, np.frombuffer(data, ">f4", n, _SAMPLE.size))
  raise ValueError(f"Not an imujax UDP datagram (starts {data[:4]!r}); see "
                   "the format in `python -m pydoc imujax.online.live`.")


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
  """A UDP socket on 127.0.0.1 that stops when `stop` is set."""

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
  def __init__(self, port: int, default_channels: Sequence[str]):
    self._s = _Socket(port)
    self.port = self._s.port
    self.channels = tuple(default_channels)
    self.counts = {"datagrams": 0, "headers": 0, "lost": 0, "bad": 0}
    self.description = f"udp:127.0.0.1:{self.port}"

  def __iter__(self):
    last_seq = None
    for data in self._s.datagrams():
      arrival = time.perf_counter()
      self.counts["datagrams"] += 1
      try:
        kind, body = decode_udp(data)
      except ValueError:
        self.counts["bad"] += 1
        continue
      if kind == "header":
        self.counts["headers"] += 1
        self.channels = tuple(body)
        continue
      seq, t, values = body
      if last_seq is not None and seq > last_seq + 1:
        self.counts["lost"] += seq - last_seq - 1
      last_seq = seq
      if len(values) != len(self.channels):
        raise ValueError(
            f"{self.description}: a sample datagram has {len(values)} values, "
            f"expected {len(self.channels)} ({list(self.channels)}); send a "
            "header datagram naming the channels.")
      yield Sample(t, self.channels, values.astype(np.float64), arrival)

  def close(self):
    self._s.close()


class MvnSource:
  def __init__(self, port: int, mapping: dict[str, str], character: int = 0):
    self._s = _Socket(port)
    self.port = self._s.port
    self.mapping = mapping  # model placement -> MVN placement.
    self.assembler = mvn_stream.MvnAssembler(character_id=character)
    self.counts = self.assembler.counts
    self.description = f"mvn:127.0.0.1:{self.port}"
    self._names = {}

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
      try:
        samples = self.assembler.feed(data)
      except mvn_stream.MvnProtocolError:
        self.counts["bad"] = self.counts.get("bad", 0) + 1
        continue
      for s in samples:
        yield Sample(s.t, self._rename(s.channels), s.values, arrival)

  def close(self):
    self._s.close()


class ReplaySource:
  """Samples (t [T], x [T, C]) released at their time / speed."""

  def __init__(self, t, x, channels, speed: float, description: str):
    self.t, self.x = np.asarray(t, np.float64), np.asarray(x, np.float64)
    self.channels = tuple(channels)
    self.speed = speed
    self.description = description
    self.counts = {"samples": 0}
    self.stopped = False

  def __iter__(self):
    start = time.perf_counter()
    for ti, xi in zip(self.t, self.x):
      if self.stopped:
        return
      if self.speed > 0:
        wait = start + (ti - self.t[0]) / self.speed - time.perf_counter()
        if wait > 0:
          time.sleep(wait)
      self.counts["samples"] += 1
      yield Sample(float(ti), self.channels, xi, time.perf_counter())

  def close(self):
    self.stopped = True


def _replay_arrays(path: str, record):
  """(t, x, channels) of a replay PATH (see the package docstring).

  `record`: the model's `run_record.RunRecord`, or None (an artifact): for a
  dataset PATH it gives the data_dir and the test split.
  """
  if path.endswith(".npz"):
    with np.load(path) as f:
      return f["t"], f["x"], [str(c) for c in f["channels"]]
  if path.endswith(".mvnx"):
    from imujax.datasets import mvnx
    rec = mvnx.read(path, mvnx.IMU_FIELDS, allow_truncated=True)
    imu = mvnx.imu_channels(rec)
    names = [f"{mvnx.sensor_placement(s)}_{q}_{a}" for s in rec.sensor_labels
             for q in ("acc", "gyr") for a in "xyz"]
    x = np.concatenate([imu.acc, imu.gyr], axis=2).reshape(len(rec.index), -1)
    return rec.timestamps_s, x, names
  from imujax.data import input_pipeline
  data_dir = (record.config.get("data", {}).get("data_dir", "") if record
              else "")
  data = input_pipeline.load(path, data_dir)
  recs = data.recordings
  if record and "test" in record.splits:
    recs = input_pipeline.select(recs, record.splits["test"])
  x = np.concatenate([r.signals for r in recs])
  return np.arange(len(x)) / data.sample_rate_hz, x, data.channel_names


def _options(rest: str) -> tuple[str, dict]:
  head, *opts = rest.split(",")
  out = {}
  for o in opts:
    k, sep, v = o.partition("=")
    if not sep:
      raise ValueError(f"Source option {o!r} is not key=value.")
    out[k.strip()] = v.strip()
  return head, out


def open_source(spec: str, model, record=None):
  """The source `spec` names (see the package docstring).

  `record`: the model's run record (None for an artifact), for replays.
  """
  kind, sep, rest = spec.partition(":")
  if not sep or kind not in ("replay", "udp", "mvn"):
    raise ValueError(f"--source={spec!r}: expected replay:PATH[,speed=N], "
                     "udp:PORT or mvn:PORT[,map=TO:FROM;...].")
  head, opts = _options(rest)
  if kind == "replay":
    t, x, names = _replay_arrays(head, record)
    return ReplaySource(t, x, names, float(opts.get("speed", 1.)),
                        f"replay:{head}")
  port = int(head)
  if kind == "udp":
    return UdpSource(port, model.channel_names)
  mapping = {}
  for pair in filter(None, opts.get("map", "").split(";")):
    to, _, frm = pair.partition(":")
    mapping[to] = frm
  return MvnSource(port, mapping, int(opts.get("character", 0)))
