"""Per-cell streaming table of `python -m imujax.bench.stream --cells=all`.

  python -m imujax.bench.stream --cells=all --samples=3000 --reps=50
  python -m imujax.bench.stream --cell=mingru --hidden=64 --layers=2

Random-weight classifiers (`synthetic_checkpoint`) of each cell at one shape
(default 2x64, the README's LSTM): one stream's per-sample latency through
the default lever (`model.Model`: jit + params as constants + donated state)
and through NumPy, the frame-synchronous capacity at --rate_hz
(`stream.bench_capacity`) and, with --cells_pool, the micro-batched pool's
(`stream.bench_pool`: frames at spread phases, the capacity the README
quotes for one model). Imported by `stream.main` after it has pinned the
process to one core and set up JAX's dispatch.
"""

import os

from imujax.bench import stream
from imujax.bench import synthetic


def synthetic_checkpoint(cell: str, hidden: int = 64, layers: int = 2,
                         channels: int = 6, classes: int = 6,
                         rate_hz: float = 50., seed: int = 0):
  """A random-weight classifier run of `cell` (no training, no workdir).

  Latency and capacity do not depend on what the weights learnt; the shape
  is the README's watch model (6 channels at 50 Hz, LSTM 2x64 by default).
  """
  return synthetic.random_checkpoint(
      [f"c{i}" for i in range(channels)], [f"k{i}" for i in range(classes)],
      rate_hz, cell, hidden, layers, seed)

def bench_cells(names, args) -> list[dict]:
  """Per cell (random weights, --hidden x --layers): one-stream latency of
  the default lever and of NumPy, and the frame-synchronous capacity."""
  import jax
  import numpy as np

  rows = []
  for name in names:
    ckpt = synthetic_checkpoint(name, args.hidden, args.layers)
    one = stream.bench_one_stream(ckpt, args.samples,
                                  levers=("jit+const+donate", "numpy"))
    cap = stream.bench_capacity(
        ckpt, [int(s) for s in args.sizes.split(",")], args.rate_hz,
        args.budget_ms, args.reps, args.capacity_stat)
    rows.append({
        "cell": name, "hidden": args.hidden, "layers": args.layers,
        "params": int(sum(np.size(a) for a in jax.tree.leaves(
            ckpt.params["encoder"]))),
        "one_stream": one, "capacity": cap, "load_1min": os.getloadavg()[0]})
    if args.cells_pool:
      rows[-1]["pool"] = stream.bench_pool(
          ckpt, [int(s) for s in args.pool_sizes.split(",")], args.rate_hz,
          args.budget_ms, args.pool_seconds, args.pool_trials)
    r = rows[-1]
    print(f"{name:>8} {r['params']:7d} params  one stream median "
          f"{one['jit+const+donate']['median_us']:7.1f} p99 "
          f"{one['jit+const+donate']['p99_us']:7.1f} us (numpy p99 "
          f"{one['numpy']['p99_us']:7.1f})  streams/core "
          f"{cap['streams_per_core']:6d} batched, "
          f"{cap['unbatched_baseline']['streams_per_core']:5d} unbatched  "
          f"load {r['load_1min']:.2f}" + (
              f"  pool {r['pool']['streams_per_core']}" if "pool" in r
              else ""), flush=True)
  print(f"\n| cell | encoder params | one stream median / p99 (us) | NumPy "
        f"p99 (us) | streams per core at {args.rate_hz:g} Hz (batched, "
        f"{args.capacity_stat} <= "
        f"{args.budget_ms:g} ms) | separate batch-1 steps | batched step "
        "median (us) per N | load |" + (
            " pool: streams per core (p99 <= budget) |" if args.cells_pool
            else "") + "\n|---|---|---|---|---|---|---|---|"
        + ("---|" if args.cells_pool else ""))
  for r in rows:
    one, cap = r["one_stream"]["jit+const+donate"], r["capacity"]
    print(f"| {r['cell']} | {r['params']} | {one['median_us']:.1f} / "
          f"{one['p99_us']:.1f} | {r['one_stream']['numpy']['p99_us']:.1f} | "
          f"{cap['streams_per_core']} | "
          f"{cap['unbatched_baseline']['streams_per_core']} | "
          + ", ".join(f"{b['streams']}: {b['median_us']:.0f}"
                      for b in cap["batched"]) + f" | {r['load_1min']:.2f} |"
          + (f" {r['pool']['streams_per_core']} |" if "pool" in r else ""))
  return rows
