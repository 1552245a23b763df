"""`python -m imujax.online.live`: see `imujax/online/live/__init__.py`."""

import argparse
import collections
import http.server
import json
import os
import pathlib
import signal
import sys
import threading
import time
import urllib.parse

import numpy as np

PAGE = pathlib.Path(__file__).with_name("page.html")


class State:
  """What the page shows; written by the pipeline, read by the server."""

  def __init__(self, class_names, source: str, keep: int = 600):
    self.lock = threading.Lock()
    self.class_names = list(class_names)
    self.source = source
    self.frames = collections.deque(maxlen=keep)
    self.frame = -1
    self.label = ""

  def add(self, out):
    with self.lock:
      self.frame += 1
      self.label = self.class_names[out.label]
      self.frames.append({"frame": self.frame, "t": out.t,
                          "probs": [round(float(p), 4) for p in out.smoothed],
                          "label": out.label})

  def since(self, frame: int) -> dict:
    with self.lock:
      return {"classes": self.class_names, "source": self.source,
              "label": self.label, "frame": self.frame,
              "frames": [f for f in self.frames if f["frame"] > frame]}


def make_handler(state: State):
  page = PAGE.read_bytes()

  class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server's name)
      url = urllib.parse.urlparse(self.path)
      if url.path == "/":
        body, kind = page, "text/html; charset=utf-8"
      elif url.path == "/state":
        q = urllib.parse.parse_qs(url.query)
        since = int(q.get("since", ["-1"])[0])
        body, kind = json.dumps(state.since(since)).encode(), "application/json"
      else:
        self.send_error(404)
        return
      self.send_response(200)
      self.send_header("Content-Type", kind)
      self.send_header("Cache-Control", "no-store")
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):  # Quiet: one line per poll otherwise.
      pass

  return Handler


def load_model(path: str, backend: str = "jax"):
  """A run workdir or an exported artifact file -> (model, run record).

  A workdir's params run in the jitted step (`model.Model`, the fastest) or
  in NumPy (`numpy_model.NumpyModel`, no XLA), both shaped by the workdir's
  run record; an artifact runs its serialised `jax.export` step and has no
  record (None).
  """
  if os.path.isfile(path):
    from imujax.online import export
    return export.Artifact.load(path), None
  from imujax.online import model as model_lib
  from imujax.online import numpy_model
  ckpt = model_lib.load(path)
  model = (numpy_model.NumpyModel(ckpt) if backend == "numpy"
           else model_lib.Model(ckpt))
  # Compile before the first sample arrives, not on it.
  zeros = np.zeros((2, len(model.channel_names)), np.float32)
  model.step(model.init_state(1), zeros[:1])
  if getattr(model, "steps", None):
    model.steps(model.init_state(1), zeros)
  return model, ckpt.record


def latency_report(latencies_s, frames: int, samples: int, counts: dict,
                   repairs: dict) -> str:
  lat = np.asarray(latencies_s) * 1e6
  lines = [f"Samples {samples}, frames {frames}; source counts {counts}; "
           f"resampler repairs {repairs}."]
  if lat.size:
    lines.append(
        f"Latency per sample, arrival to probabilities (us): median "
        f"{np.median(lat):.0f}, p90 {np.percentile(lat, 90):.0f}, p99 "
        f"{np.percentile(lat, 99):.0f}, max {lat.max():.0f} (n={lat.size}).")
  return "\n".join(lines)


def run_pipeline(source, model, state: State, args, stop: threading.Event,
                 stats: dict):
  from imujax.online import streamer as streamer_lib

  streamer, names = None, None
  for sample in source:
    if stop.is_set():
      break
    if sample.channels != names:
      names = sample.channels
      streamer = streamer_lib.Streamer(
          model, names, source=source.description,
          reorder=source.description.startswith("mvn"),
          gap_policy=args.gap_policy, max_gap_s=args.max_gap_s,
          ema=args.ema, hysteresis=args.hysteresis)
      stats["streamer"] = streamer
    outs = streamer.push(sample.t, sample.values)
    for o in outs:
      state.add(o)
    stats["samples"] += 1
    if outs:
      stats["latency"].append(time.perf_counter() - sample.arrival)


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m imujax.online.live",
                              description="Live per-frame classification "
                              "in a local web page (see imujax/online/live).")
  p.add_argument("--model", required=True,
                 help="A fine-tuned run's workdir or an exported artifact.")
  p.add_argument("--source", required=True,
                 help="replay:PATH[,speed=N] | udp:PORT | mvn:PORT[,map=..]")
  p.add_argument("--backend", default="jax", choices=("jax", "numpy"),
                 help="For a workdir: the jitted step (fastest) or the same "
                 "maths in NumPy (no XLA); the outputs agree to 1e-5.")
  p.add_argument("--http_port", type=int, default=8765, help="0 = any free.")
  p.add_argument("--ema", type=float, default=0.)
  p.add_argument("--hysteresis", type=float, default=0.)
  p.add_argument("--gap_policy", default="interpolate",
                 choices=("interpolate", "hold", "reset"))
  p.add_argument("--max_gap_s", type=float, default=1.0)
  p.add_argument("--duration", type=float, default=0.,
                 help="Stop after this many seconds (0 = never).")
  p.add_argument("--linger", type=float, default=0.,
                 help="Keep serving this long after a replay ends.")
  args = p.parse_args(argv)

  from imujax.online.live import sources

  from imujax.training import runtime
  print(runtime.synchronous_cpu_dispatch(), file=sys.stderr)  # Per frame.
  model, record = load_model(args.model, args.backend)
  source = sources.open_source(args.source, model, record)
  state = State(model.class_names, source.description)
  server = http.server.ThreadingHTTPServer(("127.0.0.1", args.http_port),
                                           make_handler(state))
  server.daemon_threads = True
  threading.Thread(target=server.serve_forever, daemon=True).start()
  stop = threading.Event()
  stats = {"samples": 0, "latency": [], "error": None}

  def work():
    try:
      run_pipeline(source, model, state, args, stop, stats)
    except Exception as e:  # Reported by the main thread.
      stats["error"] = e
    stats["ended"] = time.perf_counter()

  worker = threading.Thread(target=work, daemon=True)
  print(f"Serving http://127.0.0.1:{server.server_address[1]}/ ; source "
        f"{source.description} ; Ctrl-C to stop.", flush=True)
  signal.signal(signal.SIGTERM, lambda *a: stop.set())
  worker.start()
  t0 = time.perf_counter()
  try:
    while not stop.is_set():
      time.sleep(0.05)
      if args.duration and time.perf_counter() - t0 > args.duration:
        break
      ended = stats.get("ended")
      if ended is not None and time.perf_counter() - ended >= args.linger:
        break
  except KeyboardInterrupt:
    pass
  stop.set()
  source.close()
  server.shutdown()
  worker.join(timeout=2)
  streamer = stats.get("streamer")
  print(latency_report(stats["latency"], state.frame + 1, stats["samples"],
                       source.counts,
                       streamer.resampler.repairs if streamer else {}),
        flush=True)
  if stats["error"] is not None:
    print(f"Stopped by an error: {stats['error']}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
