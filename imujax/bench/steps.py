"""Training-step benchmark: imujax cells against flax.linen and PyTorch.

Times one jitted training step (forward + per-frame softmax cross-entropy +
backward + Adam update, state donated) of a 1-layer recurrent encoder with a
linear per-frame head, for imujax's cells and, in the same process, for
flax.linen's `nn.RNN(nn.OptimizedLSTMCell)` / `nn.RNN(nn.GRUCell)` and
PyTorch's `nn.LSTM` / `nn.GRU` (optional: `pip install -e .[bench]` or the
CPU wheel, `pip install torch --index-url
https://download.pytorch.org/whl/cpu`; without it the torch rows say "not
installed", never a number; `--torch_threads=1` on a loaded machine, where
its spinning OpenMP threads blow up the median). The parallel cells
(mingru, minlstm, lru: `Cell.scan`) have no flax or PyTorch twin; each
imujax row is also compared with the imujax and PyTorch LSTM rows of the
same run (`vs imujax LSTM`, `vs torch LSTM`).

  python -m imujax.bench                          # workload W: B64 T128 C102 H128
  python -m imujax.bench --long                   # the same with T=1024
  python -m imujax.bench --times=128,1024,8192 --cells=lstm,mingru
  python -m imujax.bench --cells=lstm --time=8192 --remat_chunk=256 --impls=imujax
  python -m imujax.bench --json=/tmp/b.json --markdown=/tmp/b.md
  # Equal parameter counts (configs/sweeps/cells.py's widths), its shape:
  python -m imujax.bench --batch=64 --channels=6 --hidden=64 \
      --hidden_per_cell=gru:74,mingru:155,minlstm:126,lru:84 --impls=imujax
  # ... as the studies train them: 2 layers, layer norm (models.encode):
  python -m imujax.bench --batch=64 --channels=6 --hidden=64 --layers=2 \
      --layer_norm --hidden_per_cell=gru:74,mingru:155,minlstm:126,lru:84

Run nothing else heavy on the machine meanwhile: on a 2-core CPU a concurrent
test run changes the numbers by tens of percent.
"""

import json
import os
import resource
import time
from typing import Callable

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from imujax import cells
from imujax import models
from imujax.bench import timing
from imujax.bench import torch_baseline
from imujax.training import runtime

_CELLS = flags.DEFINE_list("cells", ["lstm", "gru", "mingru", "minlstm", "lru"],
                           "Cells to time.")
_IMPLS = flags.DEFINE_list("impls", ["imujax", "flax", "torch"],
                           "Implementations to time (imujax, flax, torch).")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_TIME = flags.DEFINE_integer("time", 128, "Frames per sequence.")
_TIMES = flags.DEFINE_list(
    "times", None, "Several sequence lengths, one after another in the same "
    "process (overrides --time and --long); ratios compare rows of one T.")
_CHANNELS = flags.DEFINE_integer("channels", 102, "Input channels.")
_HIDDEN = flags.DEFINE_integer("hidden", 128, "Hidden units.")
_HIDDEN_PER_CELL = flags.DEFINE_list(
    "hidden_per_cell", [], "cell:units items overriding --hidden for those "
    "cells (every implementation), e.g. the widths at which the cells' "
    "encoders match the LSTM's parameter count.")
_CLASSES = flags.DEFINE_integer("classes", 10, "Per-frame classes.")
_LAYERS = flags.DEFINE_integer(
    "layers", 1, "imujax rows: stacked layers. With > 1 or --layer_norm the "
    "imujax rows time imujax's training encoder (models.encode: layers, "
    "per-frame layer norm) and the 1-layer flax / PyTorch rows are skipped.")
_LAYER_NORM = flags.DEFINE_bool(
    "layer_norm", False, "imujax rows: layer norm on each layer's output, as "
    "models.encode trains (see --layers).")
_STEPS = flags.DEFINE_integer(
    "steps", None, "Timed steps (default 30; 8 from T=1024, 3 from T=8192).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compiling.")
_LONG = flags.DEFINE_bool("long", False, "Long variant: --time=1024.")
_UNROLL = flags.DEFINE_integer("unroll", 1, "imujax scan unroll.")
_REMAT_CHUNK = flags.DEFINE_integer(
    "remat_chunk", None, "imujax: rematerialise the scan in chunks of frames "
    "(parallel cells: chunks run in parallel, one after another).")
_RECURRENCE = flags.DEFINE_enum(
    "recurrence", None, ["associative", "sequential"],
    "Parallel cells: how the element-wise recurrence runs "
    "(cells/parallel.py; default: the backend's faster one).")
_MEMORY_ONLY = flags.DEFINE_bool(
    "memory_only", False,
    "JAX rows: compile and report XLA's memory figures without running.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 0, "PyTorch intra-op threads (0: torch's default, one per "
    "core). 1 keeps its OpenMP threads from spinning on a loaded machine.")
_TORCH_DEVICE = flags.DEFINE_enum(
    "torch_device", "auto", ["auto", "cpu", "cuda"],
    "PyTorch rows' device: auto = cuda (cuDNN) when PyTorch sees a GPU, else "
    "cpu.")
_JSON = flags.DEFINE_string("json", None, "Write the results here as JSON.")
_MARKDOWN = flags.DEFINE_string("markdown", None,
                                "Write the results here as a markdown table.")

TORCH_MISSING = ("not installed (pip install torch --index-url "
                 "https://download.pytorch.org/whl/cpu, or pip install "
                 "-e .[bench])")
# Cells with a flax.linen and a PyTorch twin (the others skip those rows).
BASELINE_CELLS = ("lstm", "gru", "rnn")


# ------------------------------------------------------------------- JAX models
def imujax_model(kind: str, channels: int, hidden: int, classes: int,
                 layers: int = 1, layer_norm: bool = False,
                 **scan_kwargs) -> tuple[Callable, Callable]:
  """An imujax encoder + linear per-frame head as (init, apply).

  1 layer without layer norm: the cell's scan alone (every scan option).
  Otherwise imujax's training encoder, `models.encode` (`unroll` only).
  apply(params, xs <float32>[batch, time, channels]) -> logits
  <float32>[batch, time, classes].
  """
  if layers > 1 or layer_norm:
    unknown = set(scan_kwargs) - {"unroll"}
    if unknown:
      raise ValueError(f"{sorted(unknown)} apply to the 1-layer bench only; "
                       "drop them or use --layers=1 --nolayer_norm.")
    cfg = models.ModelConfig(in_dim=channels, cell=kind, hidden=hidden,
                             layers=layers, layer_norm=layer_norm,
                             num_classes=classes, **scan_kwargs)
    return (lambda key: models.init(key, cfg),
            lambda params, xs: models.classify_sequence(params, cfg, xs))
  cell = cells.get(kind)
  scan_kwargs = dict(scan_kwargs)
  method = scan_kwargs.pop("method", None)
  if cell.scan is not None:  # Parallel over time: unroll does not apply.
    chunk = scan_kwargs.get("remat_chunk")
    scan = lambda params, carry, xs: cell.scan(params, carry, xs, chunk=chunk,
                                               method=method)
  else:
    scan = lambda params, carry, xs: cells.scan(cell.step, params, carry, xs,
                                                **scan_kwargs)

  def init(key):
    k_cell, k_head = jax.random.split(key)
    head = jax.nn.initializers.lecun_normal()(k_head, (hidden, classes))
    return {"cell": cell.init(k_cell, channels, hidden),
            "head": {"w": head, "b": jnp.zeros((classes,), jnp.float32)}}

  def apply(params, xs):
    carry = cell.initial_carry(xs.shape[0], hidden)
    hs, _ = scan(params["cell"], carry, xs)
    return hs @ params["head"]["w"] + params["head"]["b"]

  return init, apply


def flax_model(kind: str, channels: int, hidden: int,
               classes: int) -> tuple[Callable, Callable]:
  """The flax.linen baseline with the same head, as (init, apply)."""
  from flax import linen as nn  # Only the baseline needs Flax.

  class Model(nn.Module):

    @nn.compact
    def __call__(self, xs):
      if kind == "lstm":
        cell = nn.OptimizedLSTMCell(hidden)
      elif kind == "gru":
        cell = nn.GRUCell(hidden)
      else:
        cell = nn.SimpleCell(hidden)
      return nn.Dense(classes)(nn.RNN(cell)(xs))

  model = Model()
  dummy = jnp.zeros((1, 2, channels), jnp.float32)
  return (lambda key: model.init(key, dummy)["params"],
          lambda params, xs: model.apply({"params": params}, xs))


def make_train_step(apply: Callable, tx: optax.GradientTransformation):
  """Jitted step(state, xs, labels) -> (state, loss) with the state donated."""

  def loss_fn(params, xs, labels):
    logits = apply(params, xs)
    return optax.softmax_cross_entropy_with_integer_labels(logits,
                                                           labels).mean()

  def step(state, xs, labels):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params, xs, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  return jax.jit(step, donate_argnums=0)


def time_jax(init: Callable, apply: Callable, batch: int, time_: int,
             channels: int, classes: int, steps: int, warmup: int,
             memory_only: bool = False) -> dict:
  """Compiles and times one training step; returns ms and memory figures.

  peak_bytes is XLA's own figure for the compiled step (arguments + outputs +
  temporaries - donated aliases), i.e. the device memory one step needs.
  """
  rng = np.random.default_rng(0)
  xs = jnp.asarray(rng.standard_normal((batch, time_, channels)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, classes, (batch, time_)), jnp.int32)
  tx = optax.adam(timing.LEARNING_RATE)
  params = init(jax.random.key(0))
  state = (params, tx.init(params))
  step = make_train_step(apply, tx)
  start = time.perf_counter()
  compiled = step.lower(state, xs, labels).compile()
  compile_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  peak = None
  if mem is not None:
    # Arguments + outputs + temporaries, less what the donation aliases.
    peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes -
            mem.alias_size_in_bytes + mem.temp_size_in_bytes)
  if memory_only:
    return {"ms": float("nan"), "ms_min": float("nan"),
            "compile_s": compile_s, "peak_bytes": peak}
  holder = [state]

  def run_one():
    holder[0], loss = compiled(holder[0], xs, labels)
    jax.block_until_ready((holder[0], loss))

  median, best = timing.median_ms(run_one, steps, warmup)
  return {"ms": median, "ms_min": best, "compile_s": compile_s,
          "peak_bytes": peak}


# ------------------------------------------------------------------------ report
def parse_widths(items) -> dict:
  """{cell: units} from ["gru:74", ...]; a clear error for a bad item."""
  widths = {}
  for item in items:
    kind, sep, units = item.partition(":")
    if not sep or not units.strip().isdigit() or int(units) < 1:
      raise ValueError(f"--hidden_per_cell item {item!r} is not cell:units "
                       "(e.g. mingru:155).")
    widths[kind.strip()] = int(units)
  return widths


def run(cell_kinds, impls, batch, time_, channels, hidden, classes, steps,
        warmup, scan_kwargs=None, memory_only=False,
        torch_threads: int = 0, widths=None, layers: int = 1,
        layer_norm: bool = False, torch_device: str = "auto") -> list[dict]:
  """Times every (cell, implementation) pair; returns one row per pair.

  `widths` ({cell: units}) overrides `hidden` for the cells it names;
  `layers` / `layer_norm` shape the imujax encoder (`imujax_model`).
  """
  encoder = layers > 1 or layer_norm
  rows = []
  for kind in cell_kinds:
    hidden_of_kind = (widths or {}).get(kind, hidden)
    for impl in impls:
      if impl in ("flax", "torch") and kind not in BASELINE_CELLS:
        print(f"[{kind}] {impl}: skipped (no {impl} twin of this cell; see "
              "the vs LSTM columns).")
        continue
      if impl in ("flax", "torch") and encoder:
        print(f"[{kind}] {impl}: skipped (its baseline is 1 layer without "
              "layer norm; see the vs imujax LSTM column).")
        continue
      if impl == "imujax":
        init, apply = imujax_model(kind, channels, hidden_of_kind, classes,
                                   layers, layer_norm, **(scan_kwargs or {}))
        result = time_jax(init, apply, batch, time_, channels, classes, steps,
                          warmup, memory_only)
      elif impl == "flax":
        init, apply = flax_model(kind, channels, hidden_of_kind, classes)
        result = time_jax(init, apply, batch, time_, channels, classes, steps,
                          warmup, memory_only)
      elif impl == "torch":
        if memory_only:
          continue
        result = torch_baseline.time_torch(
            kind, batch, time_, channels, hidden_of_kind, classes, steps,
            warmup, torch_threads, torch_device)
        if result is None:  # A row that says so, never a number.
          result = {"ms": float("nan"), "ms_min": float("nan"),
                    "compile_s": None, "peak_bytes": None,
                    "note": TORCH_MISSING}
      else:
        raise ValueError(f"Unknown --impls entry {impl!r}; choose from "
                         "imujax, flax, torch.")
      result.update(cell=kind, impl=impl, batch=batch, time=time_,
                    channels=channels, hidden=hidden_of_kind, layers=layers,
                    layer_norm=layer_norm,
                    frames_per_s=batch * time_ / (result["ms"] / 1e3))
      rows.append(result)
      print(_format_row(result), flush=True)
  timed = [r for r in rows if r["ms"] == r["ms"]]  # NaN: memory_only, n/a.
  for row in timed:
    for base in timed:
      if (row["impl"] == "imujax" and base["cell"] == row["cell"]
          and base["impl"] != "imujax"):
        row[f"speedup_vs_{base['impl']}"] = base["ms"] / row["ms"]
      # Every row against the LSTM rows: the speed a new cell must beat.
      if (base["cell"] == "lstm" and base["impl"] in ("imujax", "torch")
          and (row["impl"] == "imujax" or row["impl"] == base["impl"])):
        row[f"speedup_vs_{base['impl']}_lstm"] = base["ms"] / row["ms"]
  for row in timed:
    if "speedup_vs_torch_lstm" in row:
      print(f"{row['cell']:>7} {row['impl']:>7} T={row['time']}: "
            f"{row['ms']:9.2f} ms/step, {row['speedup_vs_torch_lstm']:.2f}x "
            "PyTorch nn.LSTM's speed (same run)")
  return rows


def _impl_label(row: dict) -> str:
  """The row's implementation, with its device when not the CPU ("torch
  (NVIDIA H200)": a GPU baseline must say so)."""
  device = row.get("device", "cpu")
  return row["impl"] if device == "cpu" else f"{row['impl']} ({device})"


def _format_row(row: dict) -> str:
  if row.get("note"):
    return f"{row['cell']:>5} {row['impl']:>7}  {row['note']}"
  peak = row.get("peak_bytes")
  peak_s = f"{peak / 2**20:8.1f} MiB" if peak else "     n/a    "
  return (f"{row['cell']:>5} {_impl_label(row):>7}  "
          f"{row['ms']:8.2f} ms/step "
          f"(min {row['ms_min']:7.2f})  {row['frames_per_s']:10.0f} frames/s  "
          f"peak {peak_s}")


def markdown(rows: list[dict]) -> str:
  lines = ["| cell | impl | H | B | T | ms/step (median) | frames/s | peak "
           "MiB | imujax speedup vs flax | vs torch | vs imujax LSTM "
           "| vs torch LSTM |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if r.get("note"):
      lines.append(f"| {r['cell']} | {r['impl']} | {r['hidden']} | "
                   f"{r['batch']} | {r['time']} | {r['note']} "
                   "|  |  |  |  |  |  |")
      continue
    peak = f"{r['peak_bytes'] / 2**20:.1f}" if r.get("peak_bytes") else "n/a"
    vs = [f"{r[k]:.2f}x" if k in r else "" for k in
          ("speedup_vs_flax", "speedup_vs_torch", "speedup_vs_imujax_lstm",
           "speedup_vs_torch_lstm")]
    timed = r["ms"] == r["ms"]  # NaN: --memory_only compiled, never ran.
    ms, rate = ((f"{r['ms']:.2f}", f"{r['frames_per_s']:.0f}") if timed
                else ("– (memory only)", "–"))
    lines.append(f"| {r['cell']} | {_impl_label(r)} | {r['hidden']} | "
                 f"{r['batch']} | {r['time']} | {ms} | {rate} | {peak} "
                 f"| {' | '.join(vs)} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  times = ([int(t) for t in _TIMES.value] if _TIMES.value else
           [1024 if _LONG.value else _TIME.value])
  scan_kwargs = {"unroll": _UNROLL.value}
  if _REMAT_CHUNK.value:
    scan_kwargs["remat_chunk"] = _REMAT_CHUNK.value
  if _RECURRENCE.value:
    scan_kwargs["method"] = _RECURRENCE.value
  try:
    widths = parse_widths(_HIDDEN_PER_CELL.value)
    imujax_model("lstm", 1, 1, 1, _LAYERS.value, _LAYER_NORM.value,
                 **scan_kwargs)  # Refuses options the encoder lacks.
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if "torch" in _IMPLS.value:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      pass  # Its rows say "not installed".
    else:
      try:
        print(f"torch {torch.__version__} on "
              f"{torch_baseline.torch_device(torch, _TORCH_DEVICE.value)}")
      except ValueError as e:
        raise app.UsageError(str(e)) from None
  malloc = runtime.tune_malloc()  # As imujax.main does; before any step.
  load_before = os.getloadavg()[0]
  print(f"{malloc}; IMUJAX_MALLOC_TUNING=0 to compare without.")
  rows = []
  for time_ in times:
    steps = _STEPS.value or (30 if time_ < 1024 else 8 if time_ < 8192 else 3)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} "
          f"({jax.devices()[0].device_kind}); "
          f"B={_BATCH.value} T={time_} C={_CHANNELS.value} H={_HIDDEN.value} "
          f"classes={_CLASSES.value} layers={_LAYERS.value} layer_norm="
          f"{_LAYER_NORM.value}; {steps} timed steps, scan {scan_kwargs}")
    rows += run(_CELLS.value, _IMPLS.value, _BATCH.value, time_,
                _CHANNELS.value, _HIDDEN.value, _CLASSES.value, steps,
                _WARMUP.value, scan_kwargs, _MEMORY_ONLY.value,
                _TORCH_THREADS.value, widths, _LAYERS.value,
                _LAYER_NORM.value, _TORCH_DEVICE.value)
  # Linux reports ru_maxrss in KiB: the whole process, every row together.
  max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  load_after = os.getloadavg()[0]
  # This run itself adds about one per busy core; more means other work ran
  # meanwhile and the numbers (PyTorch's most) are not to be trusted.
  print(f"1-min load average {load_before:.2f} before, {load_after:.2f} after"
        f" on {os.cpu_count()} CPUs")
  print(f"process peak RSS (all rows, incl. Python and compilers): "
        f"{max_rss:.2f} GiB")
  print()
  print(markdown(rows))
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(rows, f, indent=1)
  if _MARKDOWN.value:
    with open(_MARKDOWN.value, "w") as f:
      f.write(markdown(rows))


if __name__ == "__main__":
  app.run(main)
