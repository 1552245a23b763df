r"""K vmapped seeds against K sequential runs: training throughput.

The model of configs/default.py (LSTM 2x64, window 128, batch 32) fine-tuned
on seglearn_watch from scratch. Both arms draw host batches exactly as a run
does (each member its own recordings, normaliser, seed) and time `steps`
training steps after compilation:

  sequential: for each of K seeds, `steps` steps of `train.jit_train_step`;
  vmapped:    `steps` steps of one `multiseed.make_step` over K members;
  looped:     the same with impl="loop" (K steps traced into one program).

Throughput is member-steps per second (K * steps / seconds) in both arms.
Repeats alternate the arms; the median is reported.

  python -m imujax.bench_seeds [--k=8 --steps=40 --repeats=3]

On the project's 2-core CPU (2026-11-28, K=8, 20 steps, 3 repeats, medians,
malloc tuned, machine otherwise idle): sequential 30.6, vmapped 24.6 (0.80x),
looped 27.9 (0.91x) member-steps/s (README, "Vectorised seeds"). The CPU step
is compute-bound — one batch of 256 costs more than 8 batches of 32 — so
batching seeds has nothing to amortise there; on an accelerator, where a
32 x 64 LSTM step is latency-bound, vmapping is what fills the device.
"""

import statistics
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import jax
import jax.numpy as jnp

from imujax import multiseed
from imujax import runtime
from imujax import train

_MEMBERS = flags.DEFINE_integer("k", 8, "K: seeds trained together.")
_STEPS = flags.DEFINE_integer("steps", 40, "Timed steps per member.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repeats.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Config file (with :args) of the members.")


def main(argv):
  del argv
  print(runtime.tune_malloc())  # Both arms, as imujax.main runs them.
  base = _CONFIG.value
  k, steps = _MEMBERS.value, _STEPS.value
  configs = multiseed.member_configs(base, [{"seed": s} for s in range(k)])
  runs = [train.prepare(c, "finetune") for c in configs]
  optimizer = train.phase_optimizer(configs[0], "finetune", runs[0].params)

  def fresh(run):  # Copies: the steps donate their state.
    params = jax.tree.map(jnp.array, run.params)
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "opt_state": optimizer.init(params)}

  single = train.jit_train_step(train.make_mesh(), runs[0].loss_fn, optimizer)
  vmapped = multiseed.make_step(runs[0].loss_fn, optimizer, "vmap")
  looped = multiseed.make_step(runs[0].loss_fn, optimizer, "loop")
  keys = multiseed.step_keys(configs)

  def sequential():
    states = [fresh(r) for r in runs]
    for i, (r, c) in enumerate(zip(runs, configs)):  # Compile, warm up.
      states[i], _ = single(states[i], _one(r, c, 0), keys[i])
    jax.block_until_ready(states)
    t = time.perf_counter()
    for i, (r, c) in enumerate(zip(runs, configs)):
      s = states[i]
      for step in range(1, steps + 1):
        s, _ = single(s, _one(r, c, step), keys[i])
      states[i] = s
    jax.block_until_ready(states)
    return k * steps / (time.perf_counter() - t)

  def together(step_fn):
    state = multiseed.stack([fresh(r) for r in runs])
    state, _ = step_fn(state, multiseed.host_batch(runs, configs, "finetune",
                                                   0), keys)
    jax.block_until_ready(state)
    t = time.perf_counter()
    for step in range(1, steps + 1):
      state, _ = step_fn(state, multiseed.host_batch(runs, configs,
                                                     "finetune", step), keys)
    jax.block_until_ready(state)
    return k * steps / (time.perf_counter() - t)

  seq, vec, loop = [], [], []
  for _ in range(_REPEATS.value):
    seq.append(sequential())
    vec.append(together(vmapped))
    loop.append(together(looped))
  s, v, lp = (statistics.median(x) for x in (seq, vec, loop))
  cfg = runs[0].cfg
  print(f"{cfg.cell.upper()} {cfg.layers}x{cfg.hidden}, window "
        f"{base.data.window}, batch {base.finetune.batch_size}, K={k}, "
        f"{steps} timed steps per member, {jax.devices()[0].platform} "
        f"x{jax.device_count()}")
  print(f"sequential: {s:.1f} member-steps/s (runs {_fmt(seq)})")
  print(f"vmapped:    {v:.1f} member-steps/s (runs {_fmt(vec)})")
  print(f"one program, members looped: {lp:.1f} member-steps/s "
        f"(runs {_fmt(loop)})")
  print(f"speed-up over sequential: vmap {v / s:.2f}x, loop {lp / s:.2f}x")


def _one(run, config, step):
  """One member's batch, as its single run draws it."""
  return {key: val[0] for key, val in multiseed.host_batch(
      [run], [config], "finetune", step).items()}


def _fmt(xs):
  return ", ".join(f"{x:.1f}" for x in xs)


if __name__ == "__main__":
  app.run(main)
