"""`python -m imujax.online.live`: see `imujax/online/live/__init__.py`."""

import argparse
import ipaddress
import os
import signal
import sys
import threading
import time

import numpy as np


def load_model(path: str, backend: str = "jax"):
  """A run workdir or an exported artifact file -> (model, run record).

  A workdir's params run in the jitted step (`model.Model`, the fastest) or
  in NumPy (`numpy_model.NumpyModel`, no XLA), both shaped by the workdir's
  run record; an artifact runs its serialised `jax.export` step and has no
  record (None). Either is compiled here, before the first sample arrives.
  """
  if os.path.isfile(path):
    from imujax.online import export
    model, record = export.Artifact.load(path), None
  else:
    from imujax.online import model as model_lib
    from imujax.online import numpy_model
    ckpt = model_lib.load(path)
    record = ckpt.record
    if not record.model.num_classes:  # Regression / events heads stream
      import tempfile  # through their artifact (physical units, decoder).
      from imujax.online import export
      out = os.path.join(tempfile.mkdtemp(prefix="imujax_live_"), "run.imujax")
      export.export_run(path, out)
      model = export.Artifact.load(out)
    else:
      model = (numpy_model.NumpyModel(ckpt) if backend == "numpy"
               else model_lib.Model(ckpt))
  warm_up(model)
  return model, record


def warm_up(model):
  """Compiles the model's step (and `steps`) on zeros, so that the first
  samples do not wait for XLA (an artifact's first step took ~1 s).

  Twice each: from a fresh state and from a step's output, which need not
  hit the same compiled executable (an artifact's second step compiled
  again: 0.7 s).
  """
  from imujax.online import streamer
  zeros = np.zeros((streamer.STEPS_CHUNK, len(model.channel_names)),
                   np.float32)
  state = model.init_state(1)
  step = (model.step if "probs" in (getattr(model, "outputs", None)
                                    or {"probs": 0}) else model.step_outputs)
  for _ in range(2):
    state, _ = step(state, zeros[:1])
  if getattr(model, "steps", None):
    for n in range(2, streamer.STEPS_CHUNK + 1):  # What `Streamer` calls.
      state = model.init_state(1)
      for _ in range(2):
        state, _ = model.steps(state, zeros[:n])


def latency_report(session) -> str:
  h = session.health()
  lines = [f"Stream {session.id} ({session.source.description}): samples "
           f"{h['samples']}, frames {h['frames']}; source counts "
           f"{h['counts']}; dropped {h['dropped']}; repairs {h['repairs']}."]
  lat = np.asarray(session.latencies) * 1e6
  if lat.size:
    lines.append(
        f"Latency per sample, arrival to probabilities (us): median "
        f"{np.median(lat):.0f}, p90 {np.percentile(lat, 90):.0f}, p99 "
        f"{np.percentile(lat, 99):.0f}, max {lat.max():.0f} (n={lat.size}).")
  s = session.scores()
  if s["frames"]:
    lines.append(f"Truth vs prediction: accuracy {s['accuracy']}, macro-F1 "
                 f"{s['macro_f1']} over {s['frames']} frames; median "
                 f"detection delay {s['median_delay_s']} s.")
  return "\n".join(lines)


def _parser():
  p = argparse.ArgumentParser(prog="python -m imujax.online.live",
                              description="Live per-frame classification "
                              "in a local web page (see imujax/online/live).")
  p.add_argument("--model", required=True,
                 help="A fine-tuned run's workdir or an exported artifact.")
  p.add_argument("--source", required=True, action="append",
                 help="replay:PATH[,speed=N] (PATH: an .npz, a --record "
                 "file, an .mvnx, or a dataset name such as seglearn_watch or "
                 "recordings/50hz: its test subjects) | udp:PORT | "
                 "mvn:PORT[,map=..]; repeat for several streams (a page each, "
                 "and an overview).")
  p.add_argument("--backend", default="jax", choices=("jax", "numpy"),
                 help="For a workdir: the jitted step (fastest) or the same "
                 "maths in NumPy (no XLA); the outputs agree to 1e-5.")
  p.add_argument("--http_host", default="127.0.0.1",
                 help="Address to serve on (loopback by default).")
  p.add_argument("--http_port", type=int, default=8765, help="0 = any free.")
  p.add_argument("--ema", type=float, default=0.)
  p.add_argument("--hysteresis", type=float, default=0.)
  p.add_argument("--gap_policy", default="interpolate",
                 choices=("interpolate", "hold", "reset"))
  p.add_argument("--max_gap_s", type=float, default=1.0)
  p.add_argument("--keep_s", type=float, default=60.,
                 help="Seconds of frames the server keeps for the page.")
  p.add_argument("--record", default="",
                 help="Save the session (inputs, outputs, timing) to this "
                 ".npz on exit; replay it with --source=replay:FILE.")
  p.add_argument("--duration", type=float, default=0.,
                 help="Stop after this many seconds (0 = never).")
  p.add_argument("--linger", type=float, default=0.,
                 help="Keep serving this long after every replay ended.")
  return p


def main(argv=None):
  args = _parser().parse_args(argv)
  try:
    loopback = ipaddress.ip_address(args.http_host).is_loopback
  except ValueError:
    loopback = args.http_host == "localhost"
  if not loopback:
    print(f"Warning: --http_host={args.http_host} serves the page beyond "
          "this machine (no authentication).", file=sys.stderr)

  from imujax.online.live import card as card_lib
  from imujax.online.live import pipeline as pipeline_lib
  from imujax.online.live import record as record_lib
  from imujax.online.live import server as server_lib
  from imujax.online.live import session as session_lib
  from imujax.online.live import sources
  from imujax.training import runtime

  print(runtime.synchronous_cpu_dispatch(), file=sys.stderr)  # Per frame.
  model, record = load_model(args.model, args.backend)
  card = card_lib.model_card(args.model, model, record)
  if record is None:
    record = card_lib.record_of_artifact(model)
  settings = {k: getattr(args, k) for k in ("gap_policy", "max_gap_s", "ema",
                                            "hysteresis")}
  srcs = [sources.open_source(spec, model, record) for spec in args.source]
  for src in srcs:
    was = (getattr(getattr(src, "r", None), "meta", None) or {}).get(
        "settings")
    if was and was != settings:
      print(f"Note: {src.description} was recorded with {was}; replayed "
            f"with {settings}, its frames may differ (pass the same flags to "
            "replay it exactly).", file=sys.stderr)
  sessions, pipes = [], []
  for i, src in enumerate(srcs):
    s = session_lib.Session(i, model, src, card, keep_s=args.keep_s)
    rec = (record_lib.Recorder(
        record_lib.record_path(args.record, i, len(srcs)), model,
        src.description, settings) if args.record else None)
    sessions.append(s)
    pipes.append(pipeline_lib.Pipeline(src, model, s, settings, rec))
  server = server_lib.serve(sessions, args.http_host, args.http_port)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  stop = threading.Event()
  print(f"Serving http://{args.http_host}:{server.server_address[1]}/ ; "
        + " ; ".join(f"stream {i}: {s.description}"
                     for i, s in enumerate(srcs)) + " ; Ctrl-C to stop.",
        flush=True)
  signal.signal(signal.SIGTERM, lambda *a: stop.set())
  for p in pipes:
    p.start()
  t0, ended_at, said = time.perf_counter(), None, set()
  try:
    while not stop.is_set():
      time.sleep(0.05)
      now = time.perf_counter()
      if args.duration and now - t0 > args.duration:
        break
      for i, p in enumerate(pipes):
        if p.ended and i not in said:
          said.add(i)
          print(f"Stream {i} ended ({p.source.description}): "
                f"{p.session.frame + 1} frames.", flush=True)
      if len(said) == len(pipes):
        ended_at = ended_at or now
        if now - ended_at >= args.linger:
          break
  except KeyboardInterrupt:
    pass
  for p in pipes:
    p.stop()
  for p in pipes:
    p.join(timeout=2)
  server.shutdown()
  for p, s in zip(pipes, sessions):
    print(latency_report(s), flush=True)
    if p.recorder is not None:
      print(p.recorder.save({"counts": dict(s.source.counts),
                             "dropped": dict(s.source.dropped, **s.dropped)}),
            flush=True)
  fatal = [p.fatal for p in pipes if p.fatal is not None]
  for e in fatal:
    print(f"Stopped by an error: {e}", file=sys.stderr)
  return 1 if fatal else 0


if __name__ == "__main__":
  sys.exit(main())
