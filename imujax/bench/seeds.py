r"""K vmapped seeds against K sequential runs: training throughput.

The model of configs/default.py (LSTM 2x64, window 128, batch 32) fine-tuned
on seglearn_watch from scratch. Every arm draws host batches exactly as a run
does (each member its own recordings, normaliser, seed) and times `steps`
training steps after two warm-up steps (the second call of a jitted step can
compile again when the first one's outputs are placed differently from its
inputs; each arm's inputs are placed as its outputs are, and warm-up covers
the rest):

  sequential:  for each of K seeds, `steps` steps of `program.jit_train_step`
               on one device, as K separate runs would;
  vmap:        `steps` steps of one `program.make_members_step` over K members on
               one device;
  vmap/split:  the same with the member axis split over every device (on a
               CPU: `--cpu_devices`, default K: one member per device);
  loop:        impl="loop" (K steps traced into one program), one device.

It first times what decides the outcome on a CPU: a chain of 128 dependent
`tanh([32, 64] @ [64, 256])` steps (one member's recurrent matmuls) against
the same chain for K members stacked (a batched dot per step), on one device.
If stacking costs K times one chain, batching members has nothing to amortise
and only more devices (cores) can help.

Throughput is member-steps per second (K * steps / seconds) in every arm;
each arm also prints its minor page faults per timed step (last repeat; a
step of K members counts once) and, for the one-program arms, the XLA
temporaries of its compiled step (split: summed over devices).
Repeats alternate the arms; the median is reported, with each arm's ratio to
the sequential arm of the same run.

  python -m imujax.bench.seeds [--k=8 --steps=40 --repeats=3 --cpu_devices=8]

The README ("Vectorised seeds") has the numbers measured on the project's
2-core CPU and what explains them.
"""

import resource
import statistics
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import jax
import jax.numpy as jnp

from imujax.training import multiseed
from imujax.training import runtime
from imujax.training import setup
from imujax.training import optim
from imujax.training import program

_MEMBERS = flags.DEFINE_integer("k", 8, "K: seeds trained together.")
_STEPS = flags.DEFINE_integer("steps", 40, "Timed steps per member.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternating repeats.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", None,
    "CPU devices the vmap/split arm shares the members over (default: K, one "
    "member per device; 0: JAX's default). The other arms use one device.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/default.py", "Config file (with :args) of the members.")


def main(argv):
  del argv
  print(runtime.tune_malloc())  # Every arm, as imujax.main runs them.
  base = _CONFIG.value
  k, steps = _MEMBERS.value, _STEPS.value
  print(runtime.split_cpu(k if _CPU_DEVICES.value is None
                          else _CPU_DEVICES.value))
  configs = multiseed.member_configs(base, [{"seed": s} for s in range(k)])
  runs = [setup.prepare(c, "finetune") for c in configs]
  optimizer = optim.phase_optimizer(configs[0], "finetune", runs[0].params)
  loss_fn = runs[0].loss_fn
  one_device = jax.local_devices()[:1]

  def fresh(run):  # Copies: the steps donate their state.
    params = jax.tree.map(jnp.array, run.params)
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "opt_state": optimizer.init(params)}

  single_mesh = program.make_mesh(one_device)
  single = program.jit_train_step(single_mesh, loss_fn, optimizer)
  replicated = jax.sharding.NamedSharding(single_mesh,
                                          jax.sharding.PartitionSpec())
  keys = program.step_keys([c.seed for c in configs])

  faults = {}  # Arm -> minor page faults per timed step, last repeat.

  def timed(arm, run_steps, num_steps):
    """Member-steps/s of `run_steps()`; records its page faults per step."""
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter()
    run_steps()
    seconds = time.perf_counter() - t
    faults[arm] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                   - f0) / num_steps
    return k * steps / seconds

  def sequential():
    states = [jax.device_put(fresh(r), replicated) for r in runs]
    for i, (r, c) in enumerate(zip(runs, configs)):  # Compile, warm up.
      for step in range(2):
        states[i], _ = single(states[i], _one(r, c, step), keys[i],
                              r.stats)
    jax.block_until_ready(states)

    def run_steps():
      for i, (r, c) in enumerate(zip(runs, configs)):
        s = states[i]
        for step in range(2, steps + 2):
          s, _ = single(s, _one(r, c, step), keys[i], r.stats)
        states[i] = s
      jax.block_until_ready(states)
    return timed("sequential", run_steps, k * steps)

  def together(arm, impl, mesh):
    step_fn = program.make_members_step(loss_fn, optimizer, impl, mesh)
    members = program.member_sharding(mesh)
    state = jax.device_put(program.stack([fresh(r) for r in runs]), members)
    member_keys = jax.device_put(keys, members)
    stats = jax.device_put(program.stack([r.stats for r in runs]), members)

    def batch(step):
      return multiseed.host_batch(runs, configs, "finetune", step)

    for step in range(2):
      state, _ = step_fn(state, batch(step), member_keys, stats)
    jax.block_until_ready(state)
    temp_mib[arm] = step_fn.lower(state, batch(0), member_keys, stats).compile(
        ).memory_analysis().temp_size_in_bytes / 2**20

    def run_steps():
      nonlocal state
      for step in range(2, steps + 2):
        state, _ = step_fn(state, batch(step), member_keys, stats)
      jax.block_until_ready(state)
    return timed(arm, run_steps, steps)

  one_mesh, split_mesh = (program.member_mesh(k, one_device),
                          program.member_mesh(k))
  split = f"vmap/split over {split_mesh.size} devices"
  temp_mib = {}  # Arm -> XLA temporaries of its compiled step, MiB.
  arms = {"sequential": sequential,
          "vmap": lambda: together("vmap", "vmap", one_mesh),
          split: lambda: together(split, "vmap", split_mesh),
          "loop": lambda: together("loop", "loop", one_mesh)}
  one, stacked = _dot_chains(k, one_device[0])
  print(f"dot chain (128 x tanh([32,64]@[64,256])): one member {one:.2f} ms, "
        f"{k} stacked {stacked:.2f} ms ({stacked / one:.1f}x one)")
  results = {name: [] for name in arms}
  for _ in range(_REPEATS.value):
    for name, arm in arms.items():
      results[name].append(arm())
  cfg = runs[0].cfg
  print(f"{cfg.cell.upper()} {cfg.layers}x{cfg.hidden}, window "
        f"{base.data.window}, batch {base.finetune.batch_size}, K={k}, "
        f"{steps} timed steps per member, {_REPEATS.value} repeats, "
        f"{jax.devices()[0].platform} x{jax.device_count()}")
  baseline = statistics.median(results["sequential"])
  for name, runs_ in results.items():
    median = statistics.median(runs_)
    temp = (f", step temporaries {temp_mib[name]:.0f} MiB"
            if name in temp_mib else "")
    print(f"{name + ':':32s} {median:6.1f} member-steps/s  "
          f"{median / baseline:4.2f}x  (runs {_fmt(runs_)}; "
          f"{faults[name]:.0f} page faults per step{temp})")


def _dot_chains(k: int, device, batch=32, hidden=64, length=128, reps=20):
  """Milliseconds of one member's recurrent dot chain and of K stacked."""
  def chain(w, h):  # w: [..., H, 4H], h: [..., B, H]
    def body(h, _):
      z = jnp.einsum("...bh,...hg->...bg", h, w)
      return jnp.tanh(z)[..., :hidden], None
    return jax.lax.scan(body, h, None, length=length)[0]
  key = jax.random.key(0)
  w = jax.device_put(jax.random.normal(key, (k, hidden, 4 * hidden)) * .1,
                     device)
  h = jax.device_put(jax.random.normal(key, (k, batch, hidden)), device)
  fn = jax.jit(chain)

  def ms(*args):
    fn(*args).block_until_ready()
    t = time.perf_counter()
    for _ in range(reps):
      out = fn(*args)
    out.block_until_ready()
    return (time.perf_counter() - t) / reps * 1e3
  return ms(w[0], h[0]), ms(w, h)


def _one(run, config, step):
  """One member's batch, as its single run draws it."""
  return {key: val[0] for key, val in multiseed.host_batch(
      [run], [config], "finetune", step).items()}


def _fmt(xs):
  return ", ".join(f"{x:.1f}" for x in xs)


if __name__ == "__main__":
  app.run(main)
