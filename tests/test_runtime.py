"""The malloc tuning really stops large blocks from being re-faulted."""

import os
import subprocess
import sys

import pytest

_PROBE = r"""
import ctypes, resource
from imujax.training import runtime
print(runtime.tune_malloc())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
size = 64 * 2**20  # Above glibc's largest mmap threshold, as XLA's temps.
faults = []
for _ in range(6):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(size)
  ctypes.memset(block, 1, size)  # Touch every page, as a step does.
  libc.free(block)
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[2:]))
"""


def _probe(tuning: str):
  env = {**os.environ, "IMUJAX_MALLOC_TUNING": tuning}
  out = subprocess.run([sys.executable, "-c", _PROBE], env=env, check=True,
                       capture_output=True, text=True).stdout.split("\n")
  return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tuned_malloc_recycles_large_blocks():
  said, faults = _probe("1")
  assert said.startswith("malloc tuned"), said
  # 4 blocks of 64 MiB (as XLA's step temporaries) = 65,536 pages if
  # each were freshly mapped; recycled, none.
  assert faults < 2000, faults
  said, faults = _probe("0")
  assert "off" in said
  assert faults > 30000, faults  # The default: every block faults again.


_DISPATCH_PROBE = r"""
import jax
import numpy as np
from imujax.training import runtime
print(runtime.synchronous_cpu_dispatch())
print(jax.config.values["jax_cpu_enable_async_dispatch"])
assert float(jax.jit(lambda x: x + 1.)(np.float32(1.))) == 2.
print(runtime.synchronous_cpu_dispatch())  # JAX is running now: too late.
"""


def test_synchronous_dispatch_is_set_before_jax_starts_and_refused_after():
  # What it buys (latency) is measured by `python -m imujax.bench.stream`;
  # here, that it takes effect only where JAX reads it, and says so.
  said, flag, late = subprocess.run(
      [sys.executable, "-c", _DISPATCH_PROBE], check=True,
      capture_output=True, text=True).stdout.splitlines()
  assert said.startswith("CPU dispatch synchronous") and flag == "False"
  assert "already running" in late


_SPLIT_PROBE = r"""
import jax
from imujax.training import runtime
print(runtime.split_cpu(3))
print(jax.local_device_count())
print(runtime.split_cpu(2))  # JAX is running now: too late.
"""


def test_split_cpu_before_jax_starts_and_refused_after():
  said, count, late = subprocess.run(
      [sys.executable, "-c", _SPLIT_PROBE], check=True, capture_output=True,
      text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout.splitlines()
  assert said == "CPU split into 3 devices" and count == "3"
  assert late.startswith("CPU devices left at 3") and "already running" in late
  with pytest.raises(ValueError, match="cpu_devices=-1"):
    from imujax.training import runtime  # pylint: disable=g-import-not-at-top
    runtime.split_cpu(-1)
