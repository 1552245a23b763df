"""The benchmark commands: they compare like with like, and they run.

Timings are never asserted (they are the benchmarks' output, not a test):
these tests check that the imujax and flax.linen rows of `imujax.bench` time
the same function, that the ratios reported are the ratios of the rows, and
that `imujax.bench.stream` runs end to end on a real fine-tuned run and writes
self-consistent JSON.
"""

import json
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax.bench import steps as bench
from imujax.bench import torch_baseline
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.test_stream import make_run

C, H, K = 3, 5, 4


def _cat(flax_cell, names, part):
  return jnp.concatenate([flax_cell[n][part] for n in names], axis=-1)


def _port(kind: str, flax_params) -> dict:
  """flax.linen LSTM / GRU params in imujax's (PyTorch) layout."""
  head = {"w": flax_params["Dense_0"]["kernel"],
          "b": flax_params["Dense_0"]["bias"]}
  if kind == "lstm":
    cell = flax_params["OptimizedLSTMCell_0"]
    return {"cell": {"w_ih": _cat(cell, ("ii", "if", "ig", "io"), "kernel"),
                     "w_hh": _cat(cell, ("hi", "hf", "hg", "ho"), "kernel"),
                     "b": _cat(cell, ("hi", "hf", "hg", "ho"), "bias")},
            "head": head}
  cell = flax_params["GRUCell_0"]
  zeros = jnp.zeros((H,), jnp.float32)
  # flax.linen's GRU has no hidden bias on r and z: PyTorch's form with
  # those two set to zero is the same function.
  return {"cell": {"w_ih": _cat(cell, ("ir", "iz", "in"), "kernel"),
                   "w_hh": _cat(cell, ("hr", "hz", "hn"), "kernel"),
                   "b_ih": _cat(cell, ("ir", "iz", "in"), "bias"),
                   "b_hh": jnp.concatenate([zeros, zeros,
                                            cell["hn"]["bias"]])},
          "head": head}


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_imujax_and_flax_rows_are_the_same_network(kind):
  flax_init, flax_apply = bench.flax_model(kind, C, H, K)
  _, imujax_apply = bench.imujax_model(kind, C, H, K)
  flax_params = flax_init(jax.random.key(1))
  xs = jax.random.normal(jax.random.key(2), (2, 7, C))
  want = flax_apply(flax_params, xs)
  got = imujax_apply(_port(kind, flax_params), xs)
  assert got.shape == (2, 7, K)
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_bench_rows_and_ratios():
  rows = bench.run(["lstm", "gru"], ["imujax", "flax"], batch=2, time_=4,
                   channels=C, hidden=H, classes=K, steps=2, warmup=1)
  assert [(r["cell"], r["impl"]) for r in rows] == [
      ("lstm", "imujax"), ("lstm", "flax"), ("gru", "imujax"), ("gru", "flax")]
  for imujax_row, flax_row in (rows[0:2], rows[2:4]):
    assert imujax_row["ms"] > 0 and flax_row["ms"] > 0
    assert imujax_row["speedup_vs_flax"] == pytest.approx(
        flax_row["ms"] / imujax_row["ms"])
    assert imujax_row["frames_per_s"] == pytest.approx(
        2 * 4 / (imujax_row["ms"] / 1e3))
    # Same network, same optimizer: XLA's step memory is the same size.
    assert imujax_row["peak_bytes"] > 0 and flax_row["peak_bytes"] > 0
  assert f"| lstm | imujax | {H} | 2 | 4 |" in bench.markdown(rows)


def test_bench_stream_command_runs(tmp_path_factory, tfds_dir, watch_data,
                                   tmp_path):
  workdir = make_run(tmp_path_factory, tfds_dir)
  out = tmp_path / "bench_stream.json"
  # A child process: the command pins itself to one core and sets up
  # JAX's dispatch before JAX starts, which must not happen to pytest.
  proc = subprocess.run(
      [sys.executable, "-m", "imujax.bench.stream", f"--workdir={workdir}",
       "--samples=120", "--sizes=1,4", "--reps=5", "--pool_sizes=8,16",
       "--pool_seconds=0.2", "--pool_trials=1", f"--json={out}"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert "synchronous" in result["setup"]
  one = result["one_stream"]
  assert set(one) == {"eager", "jit", "jit+const+donate", "aot", "numpy",
                      "resampler_only"}
  for name, stats in one.items():
    assert stats["n"] == 100, name  # 120 samples less 20 of warm-up.
    assert 0 < stats["median_us"] <= stats["p99_us"], name
  cap = result["capacity"]
  assert [r["streams"] for r in cap["batched"]] == [1, 4]
  base = cap["unbatched_baseline"]
  assert base["streams_per_core"] == int(5e3 // base["median_us"])
  pool = result["pool"]
  for row in pool["rows"]:
    # Every frame of every stream was served: 0.2 s at 30 Hz = 6 per stream.
    assert row["frames"] == 6 * row["streams"]
    assert row["trials"] == 1 and len(row["trial_p99_us"]) == 1
  passed = [r["streams"] for r in pool["rows"] if r["within_budget"]]
  assert pool["streams_per_core"] == (max(passed) if passed else 0)
  assert "Streams per core at 30 Hz" in proc.stdout


def test_parallel_cells_rows_compare_with_the_lstm_rows():
  rows = bench.run(["lstm", "mingru"], ["imujax", "flax"], batch=2, time_=4,
                   channels=C, hidden=H, classes=K, steps=2, warmup=1,
                   scan_kwargs={"method": "associative"})
  # No flax twin of minGRU: its row is imujax's only.
  assert [(r["cell"], r["impl"]) for r in rows] == [
      ("lstm", "imujax"), ("lstm", "flax"), ("mingru", "imujax")]
  lstm, _, mingru = rows
  assert mingru["speedup_vs_imujax_lstm"] == pytest.approx(
      lstm["ms"] / mingru["ms"])
  assert lstm["speedup_vs_imujax_lstm"] == pytest.approx(1.)
  assert "speedup_vs_flax" not in mingru and mingru["peak_bytes"] > 0
  assert "| vs imujax LSTM |" in bench.markdown(rows)


def test_torch_rows_are_measured_or_say_not_installed(monkeypatch):
  import builtins  # pylint: disable=g-import-not-at-top
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
      raise ImportError("No module named 'torch'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_torch)
  rows = bench.run(["lstm", "mingru"], ["imujax", "torch"], batch=2, time_=4,
                   channels=C, hidden=H, classes=K, steps=2, warmup=1)
  assert [(r["cell"], r["impl"]) for r in rows] == [
      ("lstm", "imujax"), ("lstm", "torch"), ("mingru", "imujax")]
  missing = rows[1]
  assert missing["ms"] != missing["ms"]  # NaN: no fake number.
  assert "not installed (pip install torch --index-url" in missing["note"]
  assert "speedup_vs_torch" not in rows[0]
  assert missing["note"] in bench.markdown(rows)
  monkeypatch.undo()
  pytest.importorskip("torch")
  rows = bench.run(["lstm", "gru"], ["imujax", "torch"], batch=2, time_=4,
                   channels=C, hidden=H, classes=K, steps=2, warmup=1)
  by = {(r["cell"], r["impl"]): r for r in rows}
  torch_lstm = by["lstm", "torch"]["ms"]
  assert by["gru", "imujax"]["speedup_vs_torch_lstm"] == pytest.approx(
      torch_lstm / by["gru", "imujax"]["ms"])
  assert by["gru", "torch"]["speedup_vs_torch_lstm"] == pytest.approx(
      torch_lstm / by["gru", "torch"]["ms"])
  assert by["lstm", "imujax"]["speedup_vs_torch"] == pytest.approx(
      torch_lstm / by["lstm", "imujax"]["ms"])


def test_torch_baseline_runs_on_the_gpu_when_there_is_one():
  # A stand-in for the torch module's GPU query: the choice, not PyTorch.
  def fake_torch(gpu):
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: gpu))
  assert torch_baseline.torch_device(fake_torch(False)) == "cpu"
  assert torch_baseline.torch_device(fake_torch(True)) == "cuda"
  assert torch_baseline.torch_device(fake_torch(True), "cpu") == "cpu"
  with pytest.raises(ValueError, match="--torch_device=cuda, but PyTorch "
                     "sees no GPU"):
    torch_baseline.torch_device(fake_torch(False), "cuda")
  with pytest.raises(ValueError, match="choose auto, cpu or cuda"):
    torch_baseline.torch_device(fake_torch(True), "gpu")
  gpu_row = {"cell": "lstm", "impl": "torch", "hidden": H, "batch": 64,
             "time": 128, "ms": 2., "ms_min": 1.9, "frames_per_s": 4096e3,
             "peak_bytes": 2**20, "device": "NVIDIA H200"}
  assert "| lstm | torch (NVIDIA H200) | " in bench.markdown([gpu_row])
  assert "| lstm | torch | " in bench.markdown([{**gpu_row, "device": "cpu"}])


def test_bench_stream_per_cell_table(tmp_path):
  out = tmp_path / "cells.json"
  proc = subprocess.run(
      [sys.executable, "-m", "imujax.bench.stream", "--cells=mingru,lru",
       "--samples=60", "--sizes=1,4", "--reps=3", "--hidden=8",
       "--cells_pool", "--pool_sizes=1,2", "--pool_seconds=0.2",
       "--pool_trials=1", f"--json={out}"],
      cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
      timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = json.loads(out.read_text())["cells"]
  assert [r["cell"] for r in rows] == ["mingru", "lru"]
  for r in rows:
    assert (r["hidden"], r["layers"]) == (8, 2) and r["params"] > 0
    assert set(r["one_stream"]) == {"jit+const+donate", "numpy",
                                    "resampler_only"}
    assert r["one_stream"]["numpy"]["n"] == 40
    assert [b["streams"] for b in r["capacity"]["batched"]] == [1, 4]
    # The pool: each size's trial served every frame (6 per stream).
    assert r["pool"]["rows"][0]["streams"] == 1
    assert r["pool"]["rows"][0]["frames"] == 6
  assert "pool: streams per core" in proc.stdout
  assert "| mingru | " in proc.stdout and "streams per core at 30" in proc.stdout


def test_bench_widths_per_cell_change_the_network_of_that_cell_only():
  rows = bench.run(["lstm", "mingru", "gru"], ["imujax"], batch=2, time_=4,
                   channels=C, hidden=H, classes=K, steps=1, warmup=1,
                   memory_only=True, widths=bench.parse_widths(["mingru:9"]))
  assert [(r["cell"], r["hidden"]) for r in rows] == [
      ("lstm", H), ("mingru", 9), ("gru", H)]
  # XLA's memory follows the width: the 9-unit minGRU's arguments differ
  # from a minGRU of H units.
  again = bench.run(["mingru"], ["imujax"], batch=2, time_=4, channels=C,
                    hidden=H, classes=K, steps=1, warmup=1, memory_only=True)
  assert again[0]["peak_bytes"] != rows[1]["peak_bytes"]
  with pytest.raises(ValueError, match="cell:units"):
    bench.parse_widths(["mingru=9"])


def test_bench_encoder_rows_time_the_training_encoder():
  # --layers / --layer_norm: the imujax rows are models.classify_sequence of
  # that ModelConfig (same logits for the same params), the 1-layer
  # baselines are skipped, and the 1-layer-only scan options are refused.
  from imujax import models  # pylint: disable=g-import-not-at-top
  init, apply = bench.imujax_model("mingru", C, H, K, layers=2,
                                   layer_norm=True)
  params = init(jax.random.key(3))
  cfg = models.ModelConfig(in_dim=C, cell="mingru", hidden=H, layers=2,
                           layer_norm=True, num_classes=K)
  assert params["encoder"]["layer_1"]["norm"]["scale"].shape == (H,)
  xs = jax.random.normal(jax.random.key(4), (2, 7, C))
  np.testing.assert_array_equal(apply(params, xs),
                                models.classify_sequence(params, cfg, xs))
  rows = bench.run(["lstm", "mingru"], ["imujax", "flax"], batch=2, time_=4,
                   channels=C, hidden=H, classes=K, steps=1, warmup=1,
                   memory_only=True, layers=2, layer_norm=True)
  assert [(r["cell"], r["impl"], r["layers"]) for r in rows] == [
      ("lstm", "imujax", 2), ("mingru", "imujax", 2)]
  with pytest.raises(ValueError, match="1-layer bench only"):
    bench.imujax_model("mingru", C, H, K, layers=2, method="associative")
