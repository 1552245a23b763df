r"""The live page under an Xsens suit's load: server CPU and page update rate.

  python -m imujax.bench.live [--seconds=20] [--rate_hz=100] \
      [--model=RUN_OR_ARTIFACT] [--mvnx=FILE] [--screenshot=PNG]

Unless `--model` is given, writes a random-weight classifier artifact for the
17 trackers of a full Xsens suit (free acceleration + angular velocity: 102
channels at `--rate_hz`, LSTM 2x64, 6 classes; the weights do not change the
cost). Starts `python -m imujax.online.live --source=mvn:PORT` as its own
process, opens its page in headless chromium (a real tab, in real time, that
reports its own update rate on its polls), then streams the MVN network
protocol to it at `--rate_hz` for `--seconds`: per frame the datagrams of
types 02, 21, 22 and 23 that MVN sends (`mvn_stream.mvnx_datagrams`) of a
synthetic 17-tracker recording, or of `--mvnx=FILE` at its own rate.

Prints, over the streaming interval: the server's CPU time per second of
stream (user + system of the server process, all its threads: UDP reader,
model, HTTP), the browser's (all chromium processes), the page's update rate
(redraws per second, as the page measures them) and poll rate (as the server
counts them), input and model rates, per-sample latency (arrival to
probabilities; median, p99) and drops. `--screenshot=PNG` then replays
similar signals with synthetic activity labels (so the truth ribbon shows)
in real time and saves the page, 25 s in, as a PNG. Timings only; nothing
is asserted.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking",
                  "--disable-component-update", "--hide-scrollbars"]
SUIT_SENSORS = ("Pelvis", "T8", "Head", "RightShoulder", "RightUpperArm",
                "RightForeArm", "RightHand", "LeftShoulder", "LeftUpperArm",
                "LeftForeArm", "LeftHand", "RightUpperLeg", "RightLowerLeg",
                "RightFoot", "LeftUpperLeg", "LeftLowerLeg", "LeftFoot")
CLASSES = ("stand", "walk", "run", "sit", "lie", "cycle")


def suit_channels() -> list[str]:
  """The model's channels: `<placement>_{acc,gyr}_{x,y,z}` per tracker."""
  from imujax.datasets import mvnx
  return [f"{mvnx.sensor_placement(s)}_{q}_{a}" for s in SUIT_SENSORS
          for q in ("acc", "gyr") for a in "xyz"]


def random_artifact(path: str, channels, classes, rate_hz: float,
                    hidden: int = 64, layers: int = 2, seed: int = 0) -> str:
  """Exports a random-weight classifier (no training) to `path`."""
  from imujax.bench import synthetic  # pylint: disable=g-import-not-at-top
  from imujax.online import export  # pylint: disable=g-import-not-at-top
  export.export_checkpoint(synthetic.random_checkpoint(
      channels, classes, rate_hz, "lstm", hidden, layers, seed), path)
  return path

def suit_recording(seconds: float, rate_hz: float, seed: int = 0):
  """A synthetic full-suit `mvnx.Recording`: smooth motion plus noise."""
  from imujax.datasets import mvnx
  from imujax.online import mvn_stream
  rng = np.random.default_rng(seed)
  n, segs, sens = int(seconds * rate_hz), len(mvn_stream.SEGMENTS), 17
  t = np.arange(n)[:, None, None] / rate_hz
  freq = rng.uniform(0.2, 0.8, (1, 1, 3))

  def wave(items, k, scale):
    phase = rng.uniform(0, 6.3, (1, items, k))
    return (scale * np.sin(2 * np.pi * freq[..., :1] * t + phase)
            + 0.01 * scale * rng.normal(size=(n, items, k))).astype(np.float32)
  quat = np.zeros((n, sens, 4), np.float32)
  quat[..., 0] = 1.
  fields = {"sensorFreeAcceleration": wave(sens, 3, 3.),
            "sensorMagneticField": wave(sens, 3, 0.5),
            "sensorOrientation": quat, "orientation": quat[:, :1].repeat(
                segs, 1), "angularVelocity": wave(segs, 3, 1.5),
            "angularAcceleration": wave(segs, 3, 5.),
            "position": wave(segs, 3, 0.3), "velocity": wave(segs, 3, 0.5),
            "acceleration": wave(segs, 3, 2.)}
  return mvnx.Recording(
      "synthetic", "4", float(rate_hz), SUIT_SENSORS, mvn_stream.SEGMENTS,
      (), (), np.arange(n), (np.arange(n) * 1e3 / rate_hz).astype(np.int64),
      np.full(n, -1), fields, {}, {})


def _cpu_s(pids) -> float:
  """User + system CPU seconds of `pids` (from /proc; 0 for gone ones)."""
  tick, total = os.sysconf("SC_CLK_TCK"), 0.
  for pid in pids:
    try:
      with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      total += (int(fields[11]) + int(fields[12])) / tick
    except (OSError, IndexError, ValueError):
      pass
  return total


def _tree(pid: int) -> list[int]:
  """`pid` and its descendants."""
  children = {}
  for d in os.listdir("/proc"):
    if d.isdigit():
      try:
        with open(f"/proc/{d}/stat") as f:
          ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
      except (OSError, ValueError, IndexError):
        pass
  out, todo = [], [pid]
  while todo:
    p = todo.pop()
    out.append(p)
    todo += children.get(p, [])
  return out


def _start_live(model: str, source: str, *extra):
  proc = subprocess.Popen(
      [sys.executable, "-m", "imujax.online.live", f"--model={model}",
       f"--source={source}", "--http_port=0", *extra],
      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  line = proc.stdout.readline()
  m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
  if not m:
    proc.kill()
    raise RuntimeError(f"the live server did not start: {line!r}")
  stream = re.search(r"mvn:127\.0\.0\.1:(\d+)", line)
  return proc, int(m.group(1)), int(stream.group(1)) if stream else None


def _get(port: int, path: str):
  with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                              timeout=5) as r:
    return json.loads(r.read())


def _send(grams, rate_hz: float, port: int, stop: threading.Event):
  with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    start = time.perf_counter()
    for i, (_, frame) in enumerate(grams):
      if stop.is_set():
        return
      wait = start + i / rate_hz - time.perf_counter()
      if wait > 0:
        time.sleep(wait)
      for g in frame:
        sock.sendto(g, ("127.0.0.1", port))


def measure(args, model: str, tmp: str) -> dict:
  from imujax.datasets import mvnx
  from imujax.online import mvn_stream
  if args.mvnx:
    rec = mvnx.read(args.mvnx, "all", allow_truncated=True)
  else:
    rec = suit_recording(args.seconds + 5, args.rate_hz)
  grams = list(mvn_stream.mvnx_datagrams(rec))
  rate = rec.frame_rate_hz
  proc, http_port, mvn_port = _start_live(model, "mvn:0")
  browser = None
  try:
    if os.access(CHROMIUM, os.X_OK):
      browser = subprocess.Popen(
          [CHROMIUM, *CHROMIUM_FLAGS, "--remote-debugging-port=0",
           f"--user-data-dir={tmp}/chromium", "--window-size=1280,1600",
           f"http://127.0.0.1:{http_port}/"],
          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    sender = threading.Thread(target=_send, args=(grams, rate, mvn_port, stop))
    time.sleep(3.)  # The page loads and starts polling.
    sender.start()
    time.sleep(2.)  # Warm: steady state before measuring.
    pids_b = _tree(browser.pid) if browser else []
    c0, b0, t0 = _cpu_s([proc.pid]), _cpu_s(pids_b), time.perf_counter()
    time.sleep(args.seconds)
    c1, b1, t1 = _cpu_s([proc.pid]), _cpu_s(pids_b), time.perf_counter()
    state = _get(http_port, "/streams")[0]
    health = json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{http_port}/state?since=1000000000&limit=1",
        timeout=5).read())["health"]
    stop.set()
    sender.join()
  finally:
    if browser:
      browser.terminate()
      browser.wait(10)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
  return {"seconds": round(t1 - t0, 2), "rate_hz": rate,
          "channels_streamed": len(rec.sensor_labels) * 13,
          "server_cpu_s_per_s": round((c1 - c0) / (t1 - t0), 3),
          "browser_cpu_s_per_s": round((b1 - b0) / (t1 - t0), 3)
          if browser else None,
          "page_updates_per_s": state["page_fps"],
          "page_polls_per_s": state["polls_per_s"],
          "input_rate": health["input_rate"],
          "model_rate": health["model_rate"],
          "latency_ms": health["latency_ms"],
          "dropped": {k: v for k, v in health["dropped"].items() if v}}


def _read_png_rgb(path: str) -> np.ndarray:
  """<uint8>[H, W, 3] of an 8-bit RGB(A), non-interlaced PNG (chromium's)."""
  with open(path, "rb") as f:
    data = f.read()
  pos, idat, head = 8, [], None
  while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body, pos = data[pos + 8:pos + 8 + n], pos + 12 + n
    if kind == b"IHDR":
      head = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
      idat.append(body)
  w, h, depth, kind, _, _, interlace = head
  if depth != 8 or kind not in (2, 6) or interlace:
    raise ValueError(f"{path}: not an 8-bit RGB(A) PNG; left as it is.")
  bpp = 3 if kind == 2 else 4
  raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(
      h, 1 + w * bpp)
  out, prev = np.zeros((h, w * bpp), np.uint8), np.zeros(w * bpp, np.int64)
  for y in range(h):  # Undo each row's filter (PNG spec, section 9).
    f, row = raw[y, 0], raw[y, 1:].astype(np.int64)
    if f == 0:
      cur = row
    elif f == 1:
      cur = row.reshape(-1, bpp).cumsum(0).ravel() % 256
    elif f == 2:
      cur = (row + prev) % 256
    else:
      cur, up = row.tolist(), prev.tolist()
      for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b, c = up[i], up[i - bpp] if i >= bpp else 0
        if f == 3:
          pred = (a + b) // 2
        else:
          pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
          pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
        cur[i] = (cur[i] + pred) % 256
      cur = np.asarray(cur, np.int64)
    out[y], prev = cur, cur
  return out.reshape(h, w, bpp)[..., :3]


def shrink_png(path: str, colors: int = 256) -> int:
  """Rewrites a screenshot as a palette PNG (its most frequent colours,
  the rest mapped to the nearest); returns the new size in bytes."""
  img = _read_png_rgb(path)
  h, w, _ = img.shape
  key = (img[..., 0].astype(np.int64) << 16 | img[..., 1].astype(np.int64)
         << 8 | img[..., 2]).ravel()
  uniq, inverse, counts = np.unique(key, return_inverse=True,
                                    return_counts=True)
  rgb = lambda k: np.stack([k >> 16, k >> 8 & 255, k & 255], -1)  # noqa: E731
  palette = rgb(uniq[np.argsort(-counts)[:colors]])
  nearest = np.concatenate([
      ((rgb(uniq[i:i + 4096])[:, None] - palette[None]) ** 2).sum(-1)
      .argmin(1) for i in range(0, len(uniq), 4096)])
  rows = nearest[inverse].reshape(h, w).astype(np.uint8)

  def chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body)))
  png = (b"\x89PNG\r\n\x1a\n"
         + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
         + chunk(b"PLTE", palette.astype(np.uint8).tobytes())
         + chunk(b"IDAT", zlib.compress(np.concatenate(
             [np.zeros((h, 1), np.uint8), rows], 1).tobytes(), 9))
         + chunk(b"IEND", b""))
  with open(path, "wb") as f:
    f.write(png)
  return len(png)


def screenshot(args, model: str, tmp: str, channels) -> str:
  """A labelled replay of the suit signals, its page saved as a PNG."""
  from imujax.datasets import mvnx
  rec = suit_recording(40, args.rate_hz, seed=1)
  imu = mvnx.imu_channels(rec)
  x = np.concatenate([imu.acc, imu.gyr], axis=2).reshape(len(rec.index), -1)
  n = len(x)
  y = (np.arange(n) // int(6 * args.rate_hz)) % len(CLASSES)
  path = os.path.join(tmp, "labelled_suit.npz")
  np.savez(path, t=rec.timestamps_s, x=x, channels=np.asarray(channels),
           y=y, classes=np.asarray(CLASSES))
  proc, http_port, _ = _start_live(model, f"replay:{path}", "--linger=60")
  try:
    time.sleep(25.)  # In real time: 25 s of the 40 s replay.
    subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/chromium2",
         "--window-size=1100,1400", "--virtual-time-budget=1500",
         f"--screenshot={os.path.abspath(args.screenshot)}",
         f"http://127.0.0.1:{http_port}/"],
        capture_output=True, timeout=120, check=False)
  finally:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
  shrink_png(args.screenshot)
  return args.screenshot


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m imujax.bench.live",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--seconds", type=float, default=20.)
  p.add_argument("--rate_hz", type=float, default=100.)
  p.add_argument("--model", default="",
                 help="A run or artifact with the suit's channels (default: "
                 "a random-weight artifact).")
  p.add_argument("--mvnx", default="", help="Stream this file instead.")
  p.add_argument("--screenshot", default="", help="Save the page here.")
  args = p.parse_args(argv)
  tmp = tempfile.mkdtemp(prefix="imujax_bench_live_")
  try:
    channels = suit_channels()
    model = args.model or random_artifact(
        os.path.join(tmp, "suit.imujax"), channels, CLASSES, args.rate_hz)
    out = measure(args, model, tmp)
    print(f"CPU: {os.cpu_count()} cores seen, load average "
          f"{os.getloadavg()[0]:.2f} (shared machine).")
    print(json.dumps(out, indent=1))
    if args.screenshot:
      if not os.access(CHROMIUM, os.X_OK):
        print(f"No {CHROMIUM}: no screenshot.")
      else:
        path = screenshot(args, model, tmp, channels)
        print(f"Saved {path} ({os.path.getsize(path)} bytes).")
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  main()
