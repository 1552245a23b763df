r"""Streaming latency and capacity on one CPU core.

  python -m imujax.bench.stream --workdir=/tmp/imujax_default/finetune/masked_reconstruction-s0
  python -m imujax.bench.stream --cell=mingru      # random weights, 2x64
  python -m imujax.bench.stream --cells=all        # one table, every cell

With --cell / --cells the model is a random-weight classifier of that cell
(6 channels at 50 Hz, --hidden x --layers, default LSTM 2x64's shape) and
only the default lever, NumPy and the capacity (2.) are measured per cell.

Pins itself to one core (`os.sched_setaffinity`) and asks XLA for one
thread before JAX is imported, makes JAX's CPU dispatch synchronous
(`runtime.synchronous_cpu_dispatch`, as the live demo does; `--async_dispatch`
keeps JAX's default, for comparison), then measures:

1. One stream, per sample, preprocessing included (online resampling of a
   jittered 50 Hz sample, channel selection, normalisation, model step,
   probabilities back on the host): median and p99 for each lever
   - `eager`: the baseline, `step.step` un-jitted (op by op);
   - `jit`: `jax.jit(step.step)`, params passed as arguments;
   - `jit+const+donate`: params baked into the compiled step as constants,
     state donated and kept on the device (`model.Model`, the default);
   - `aot`: the same, compiled ahead of time (`.lower().compile()`);
   - `numpy`: the same maths in NumPy (`numpy_model.NumpyModel`, no XLA);
   - `artifact`: the exported artifact (`export.Artifact`), if `--artifact`.
2. Capacity: the batched step (N streams in one call, frames already on the
   grid) for growing N; the largest N whose p99 step time is at most
   `--budget_ms` (5 ms) while N / rate fits in the frame period is the
   number of concurrent streams one core serves at `--rate_hz` (30 Hz).
   Baseline in the same run: N separate batch-1 steps per frame period.
   This is frame-synchronous: all N streams' frames are assumed to arrive at
   the same instant, once per frame period, and only the step time counts.
3. Micro-batched pool (`bench_pool`, `stream_pool.StreamPool`), for growing N
   (`--pool_sizes`): frames arrive at spread phases, stream i's frame k at
   (k + i / N) / rate_hz seconds after the start (so one frame every
   1 / (N * rate_hz) s overall), for `--pool_seconds` of frames; the frames
   are random raw samples (normal * std + mean of the run), precomputed. A
   closed loop on the real clock (`time.perf_counter`) takes every frame that
   has arrived (at most N, i.e. one per stream), steps them in ONE pool call
   (batch padded to a power-of-two bucket, all buckets compiled beforehand)
   and, when nothing has arrived, waits for the next arrival. A frame's
   latency is the time its probabilities are on the host minus its arrival
   time: queueing + one small step. Per N: frames served, median and p99
   latency, mean batch, busy fraction (time inside pool calls / loop time),
   and keeps_up (the last frame's latency is within `--budget_ms`: the loop
   had not fallen behind at the end). Each N runs `--pool_trials` (3) times
   and passes when most of its trials have p99 <= `--budget_ms` and keep
   up (one stall of the machine does not decide alone); its row shows the
   trial with the median p99. Capacity: the largest N that passes; N stops
   growing at the first failure. The
   frame-synchronous capacity (2.) is printed beside it as the same-run
   baseline; note that 2. times one step of all N frames, while 3. times
   each frame from its arrival to its result.

Timings only; nothing is asserted. Results vary with the machine's load.
"""

import argparse
import json
import os
import sys
import time


def _pin(core: int) -> str:
  if "jax" in sys.modules:
    return "jax was imported before pinning: XLA may use several threads"
  os.sched_setaffinity(0, {core})
  flags = os.environ.get("XLA_FLAGS", "")
  os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                             "intra_op_parallelism_threads=1").strip()
  return f"pinned to core {core}, XLA single-threaded"


def _stats(ts) -> dict:
  import numpy as np
  ts = np.asarray(ts) * 1e6
  return {"median_us": float(np.median(ts)), "p99_us": float(
      np.percentile(ts, 99)), "n": int(ts.size)}


def bench_one_stream(ckpt, samples: int, artifact=None,
                     levers=None) -> dict:
  """Per-sample latency of each lever; see the module docstring.

  Args:
    ckpt: the run (`imujax.online.model.load`).
    samples: samples timed per lever (eager: at most 300).
    artifact: an `export.Artifact` to time too, or None.
    levers: the levers to time (names as in the module docstring); all
      when None.
  """
  import jax
  import numpy as np

  from imujax.online import model as model_lib
  from imujax.online import numpy_model
  from imujax.online import resampler
  from imujax.online import step
  from imujax.online import streamer

  record, cfg = ckpt.record, ckpt.record.model
  rng = np.random.default_rng(0)
  c = len(record.channel_names)
  t = np.cumsum(rng.uniform(0.8, 1.2, samples) / record.sample_rate_hz)
  xs = (rng.normal(size=(samples, c)) * ckpt.std + ckpt.mean)

  class EagerModel(model_lib.Model):
    def __init__(self, ckpt, jit_args: bool):
      super().__init__(ckpt)
      params, mean, std = ckpt.params, ckpt.mean, ckpt.std
      f = jax.jit(step.step, static_argnums=1) if jit_args else step.step

      def raw_step(state, x):
        state, out = f(params, cfg, state, (x - mean) / std)
        return state, out["probs"]
      self._step = raw_step
      self.init_state = lambda batch_size=1: step.init_state(cfg, batch_size)
      self.steps = None  # Frame by frame: the baseline has no scan variant.

  class AotModel(model_lib.Model):
    def __init__(self, ckpt):
      super().__init__(ckpt)
      self._step = self._step.lower(
          self.init_state(1), np.zeros((1, c), np.float32)).compile()

  makers = {"eager": lambda: EagerModel(ckpt, False),
            "jit": lambda: EagerModel(ckpt, True),
            "jit+const+donate": lambda: model_lib.Model(ckpt),
            "aot": lambda: AotModel(ckpt),
            "numpy": lambda: numpy_model.NumpyModel(ckpt)}
  models = {k: make() for k, make in makers.items()
            if levers is None or k in levers}
  if artifact is not None:
    models["artifact"] = artifact
  out = {}
  for name, model in models.items():
    n = min(samples, 300) if name == "eager" else samples
    s = streamer.Streamer(model, record.channel_names)
    for i in range(20):  # Warm-up: compilation, caches.
      s.push(t[i], xs[i])
    ts = []
    for i in range(20, n):
      t0 = time.perf_counter()
      outs = s.push(t[i], xs[i])
      if outs:
        outs[-1].probs.sum()  # On the host.
      ts.append(time.perf_counter() - t0)
    out[name] = _stats(ts)
  # The preprocessing alone, for the record.
  r = resampler.OnlineResampler(record.sample_rate_hz, c)
  ts = []
  for i in range(samples):
    t0 = time.perf_counter()
    r.push(t[i], xs[i])
    ts.append(time.perf_counter() - t0)
  out["resampler_only"] = _stats(ts[20:])
  return out


def bench_capacity(ckpt, sizes, rate_hz: float, budget_ms: float,
                   reps: int, stat: str = "p99") -> dict:
  """p99 of the batched step per N; the largest N within the budget.

  stat="median" judges N by its median step instead (a machine shared with
  other jobs sets the p99, not the model).
  """
  import numpy as np

  from imujax.online import model as model_lib

  model = model_lib.Model(ckpt)
  c = len(ckpt.record.channel_names)
  rng = np.random.default_rng(0)
  period_ms = 1e3 / rate_hz
  rows, best = [], 0
  for n in sizes:
    x = (rng.normal(size=(n, c)) * ckpt.std + ckpt.mean).astype(np.float32)
    state = model.init_state(n)
    for _ in range(3):
      state, p = model.step(state, x)
      np.asarray(p)
    ts = []
    for _ in range(reps):
      t0 = time.perf_counter()
      state, p = model.step(state, x)
      np.asarray(p)  # Probabilities of every stream on the host.
      ts.append(time.perf_counter() - t0)
    st = _stats(ts)
    t_us = st[f"{stat}_us"]
    ok = t_us <= budget_ms * 1e3 and t_us < period_ms * 1e3
    rows.append({"streams": n, **st, "within_budget": ok})
    if ok:
      best = n
    elif n > 4 * max(best, 1):
      break
  # Baseline: un-batched, one batch-1 step per stream and frame.
  state = model.init_state(1)
  x = np.zeros((1, c), np.float32)
  for _ in range(50):
    state, p = model.step(state, x)
    np.asarray(p)
  ts = []
  for _ in range(reps * 20):
    t0 = time.perf_counter()
    state, p = model.step(state, x)
    np.asarray(p)
    ts.append(time.perf_counter() - t0)
  one = _stats(ts)
  return {"rate_hz": rate_hz, "budget_ms": budget_ms, "stat": stat,
          "batched": rows,
          "streams_per_core": best,
          "unbatched_baseline": {
              **one,
              "streams_per_core": int(budget_ms * 1e3 // one["median_us"])}}


def bench_pool(ckpt, sizes, rate_hz: float, budget_ms: float,
               seconds: float, trials: int = 3) -> dict:
  """Arrival-to-result latency of the micro-batched pool per N (module doc).

  Each N runs `trials` times; it passes when a majority of its trials do, so
  one stall of the machine does not decide the capacity on its own. The row
  reports the trial with the median p99 and every trial's p99.
  """
  import numpy as np

  from imujax.online import stream_pool

  c = len(ckpt.record.channel_names)
  frames = max(1, int(round(seconds * rate_hz)))  # Per stream.
  rows, best = [], 0
  for n in sizes:
    rng = np.random.default_rng(n)
    # Row j = k * n + i: stream i's frame k, in arrival order (arrival
    # j / (n * rate_hz) s after the start).
    xs = (rng.normal(size=(n * frames, c)) * ckpt.std
          + ckpt.mean).astype(np.float32)
    pool = stream_pool.StreamPool(ckpt, n)
    pool.warmup(n)
    results = sorted((_pool_trial(pool, xs, n, rate_hz, budget_ms)
                      for _ in range(trials)), key=lambda r: r["p99_us"])
    passed = sum(r["within_budget"] for r in results)
    ok = 2 * passed > trials
    rows.append({**results[len(results) // 2], "trials_passed": passed,
                 "trials": trials,
                 "trial_p99_us": [r["p99_us"] for r in results],
                 "within_budget": bool(ok)})
    del pool, xs
    if ok:
      best = n
    else:
      break
  return {"rate_hz": rate_hz, "budget_ms": budget_ms, "seconds": seconds,
          "trials": trials,
          "arrivals": "stream i's frame k at (k + i / N) / rate_hz",
          "rows": rows, "streams_per_core": best}


def _pool_trial(pool, xs, n: int, rate_hz: float, budget_ms: float) -> dict:
  """One closed-loop pass of xs' frames through `pool` on the real clock."""
  import numpy as np

  total, per_s, cap = len(xs), n * rate_hz, n
  ends, starts, done = [], [], []  # Per call: last row + 1, clock times.
  nxt = 0
  t_start = time.perf_counter()
  while nxt < total:
    now = time.perf_counter() - t_start
    upto = min(total, int(now * per_s) + 1)  # Rows with arrival <= now.
    if upto <= nxt:
      wait = nxt / per_s - now
      if wait > 3e-4:
        time.sleep(wait - 2e-4)
      continue  # Busy-wait the rest.
    end = min(upto, nxt + cap)
    t0 = time.perf_counter()
    pool.step(np.arange(nxt, end) % n, xs[nxt:end])  # Probs on the host.
    done.append(time.perf_counter() - t_start)
    starts.append(t0 - t_start)
    ends.append(end)
    nxt = end
  ends, done = np.asarray(ends), np.asarray(done)
  batch = np.diff(ends, prepend=0)
  arrival = np.arange(total) / per_s
  lat = np.repeat(done, batch) - arrival
  st = _stats(lat)
  end_lag_ms = float(lat[-1] * 1e3)
  keeps_up = end_lag_ms <= budget_ms
  return {"streams": n, "frames": int(total), **st,
          "mean_batch": float(batch.mean()), "calls": int(batch.size),
          "max_batch": int(batch.max()),
          "busy_fraction": float(np.sum(done - np.asarray(starts)) / done[-1]),
          "end_lag_ms": end_lag_ms, "keeps_up": bool(keeps_up),
          "within_budget": bool(st["p99_us"] <= budget_ms * 1e3 and keeps_up)}


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m imujax.bench.stream",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="", help="A fine-tuned run.")
  p.add_argument("--cell", default="", help="Instead of --workdir: a "
                 "random-weight model of this cell (--hidden x --layers).")
  p.add_argument("--cells", default="", help="Several cells, or 'all' (every "
                 "registered cell), in one table.")
  p.add_argument("--cells_pool", action="store_true",
                 help="--cells: also the micro-batched pool's capacity per "
                 "cell (--pool_sizes; about a minute per cell).")
  p.add_argument("--capacity_stat", default="p99", choices=("p99", "median"),
                 help="--cells: judge a batch size by this step time.")
  p.add_argument("--hidden", type=int, default=64)
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--artifact", default="", help="Also time this artifact.")
  p.add_argument("--core", type=int, default=0)
  # A p99 from n samples rests on its n/100 slowest: 3,000 samples moved it
  # by +-15 us between runs, 20,000 (under a second per model) by a few.
  p.add_argument("--samples", type=int, default=20000,
                 help="Samples of the one-stream latency (eager: 300).")
  p.add_argument("--rate_hz", type=float, default=30.)
  p.add_argument("--budget_ms", type=float, default=5.)
  p.add_argument("--reps", type=int, default=200)
  p.add_argument("--sizes", default="1,64,256,1024,2048,4096,8192,16384,"
                 "32768,65536")
  p.add_argument("--pool_sizes", default="1024,2048,4096,8192,10240,12288,"
                 "16384,24576,32768", help="Stream counts for the micro-batched "
                 "pool (ascending).")
  p.add_argument("--pool_seconds", type=float, default=2.,
                 help="Seconds of frames per pool size and trial.")
  p.add_argument("--pool_trials", type=int, default=3,
                 help="Trials per pool size; a size passes on a majority.")
  p.add_argument("--async_dispatch", action="store_true",
                 help="Keep JAX's default asynchronous CPU dispatch (the "
                 "default here is synchronous, as the live demo runs).")
  p.add_argument("--json", default="", help="Also write the results here.")
  args = p.parse_args(argv)
  pinned = _pin(args.core)

  import jax

  from imujax.training import runtime
  pinned += "; " + ("CPU dispatch asynchronous (JAX's default)"
                    if args.async_dispatch else
                    runtime.synchronous_cpu_dispatch())

  if args.cell or args.cells:
    from imujax import cells
    names = ([args.cell] if args.cell else list(cells.names())
             if args.cells == "all" else args.cells.split(","))
    print(f"{pinned}; jax {jax.__version__}; cells {names}, "
          f"{args.layers}x{args.hidden}, random weights")
    from imujax.bench import stream_cells
    rows = stream_cells.bench_cells(names, args)
    if args.json:
      with open(args.json, "w") as f:
        json.dump({"setup": pinned, "cells": rows}, f, indent=1)
    return rows
  if not args.workdir:
    p.error("pass --workdir=<fine-tuned run>, --cell=<name> or --cells=all")
  from imujax.online import model

  ckpt = model.load(args.workdir)
  artifact = None
  if args.artifact:
    from imujax.online import export
    artifact = export.Artifact.load(args.artifact)
  result = {"setup": pinned, "jax": jax.__version__,
            "model": {k: getattr(ckpt.record.model, k) for k in (
                "cell", "hidden", "layers", "num_classes")},
            "one_stream": bench_one_stream(ckpt, args.samples, artifact),
            "capacity": bench_capacity(
                ckpt, [int(s) for s in args.sizes.split(",")], args.rate_hz,
                args.budget_ms, args.reps),
            "pool": bench_pool(
                ckpt, [int(s) for s in args.pool_sizes.split(",")],
                args.rate_hz, args.budget_ms, args.pool_seconds,
                args.pool_trials)}
  print(f"{args.workdir} ({result['model']}); {pinned}")
  print("One stream, per sample incl. preprocessing (us):")
  for name, s in result["one_stream"].items():
    print(f"  {name:18s} median {s['median_us']:8.1f}  p99 {s['p99_us']:8.1f}")
  cap = result["capacity"]
  print(f"Batched step at {args.rate_hz:g} Hz, p99 <= {args.budget_ms:g} ms:")
  for r in cap["batched"]:
    print(f"  N={r['streams']:6d}  median {r['median_us']:9.1f} us  p99 "
          f"{r['p99_us']:9.1f} us  {'ok' if r['within_budget'] else '-'}")
  base = cap["unbatched_baseline"]
  print(f"Streams per core: {cap['streams_per_core']} batched vs "
        f"{base['streams_per_core']} with separate batch-1 steps "
        f"({base['median_us']:.1f} us each).")
  pool = result["pool"]
  print(f"micro-batched pool: spread arrivals at {args.rate_hz:g} Hz, "
        f"{args.pool_seconds:g} s of frames, latency = result on host - "
        "arrival:")
  for r in pool["rows"]:
    print(f"  N={r['streams']:6d}  median {r['median_us']:9.1f} us  p99 "
          f"{r['p99_us']:9.1f} us  mean batch {r['mean_batch']:7.1f}  busy "
          f"{r['busy_fraction']:4.0%}  end lag {r['end_lag_ms']:7.2f} ms  "
          f"trials ok {r['trials_passed']}/{r['trials']} (p99s "
          f"{', '.join(f'{p / 1e3:.2f}' for p in r['trial_p99_us'])} ms)  "
          f"{'ok' if r['within_budget'] else '-'}")
  print(f"Streams per core at {args.rate_hz:g} Hz, p99 <= {args.budget_ms:g} "
        f"ms: micro-batched pool {pool['streams_per_core']} vs "
        f"{cap['streams_per_core']} frame-synchronous batched (same-run "
        "baseline).")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return result


if __name__ == "__main__":
  main()
