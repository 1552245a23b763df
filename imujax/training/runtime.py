"""Process settings that make CPU training steps faster: glibc malloc tuning.

XLA allocates each step's temporaries (tens of MiB for a recurrent training
step) as one block per execution. glibc serves blocks above its dynamic mmap
threshold (at most 32 MiB) with a fresh `mmap` and unmaps them on free, so
every step faults in and zeroes the whole block again: ~15,000 page faults and
~20 % of a CPU step at the README's workload (imujax/bench/NOTES.md). Turning
off mmap for large blocks and raising the trim threshold keeps them in the
heap, where they are recycled from step to step (fully when XLA runs on the
calling thread; with asynchronous dispatch the worker thread's own glibc arena
still returns part of them: 1,500-13,900 instead of ~15,000 faults per step,
imujax/bench/NOTES.md variant 12). The cost: memory freed by
large arrays stays with the process for reuse instead of going back to the OS.

`tune_malloc()` is called by `imujax.main` and the benchmarks; set
IMUJAX_MALLOC_TUNING=0 to keep glibc's defaults.
"""

import ctypes
import ctypes.util
import os
import sys

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 1 << 34  # 16 GiB: never trim the heap's top in practice.


def tune_malloc() -> str:
  """Keeps large allocations in the recycled heap; returns what it did."""
  if os.environ.get("IMUJAX_MALLOC_TUNING", "1") == "0":
    return "malloc tuning off (IMUJAX_MALLOC_TUNING=0)"
  if not sys.platform.startswith("linux"):
    return f"malloc tuning skipped ({sys.platform} is not glibc)"
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return "malloc tuning skipped (no glibc mallopt)"
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  ok = (mallopt(_M_MMAP_MAX, 0) == 1 and
        mallopt(_M_TRIM_THRESHOLD, min(_TRIM_THRESHOLD, 2**31 - 1)) == 1)
  return ("malloc tuned: no mmap for large blocks, no heap trimming" if ok else
          "malloc tuning refused by libc (mallopt returned 0)")


def synchronous_cpu_dispatch() -> str:
  """Runs each jitted CPU computation inline on the calling thread.

  For streaming one frame at a time: JAX's default hands every computation to
  a worker thread and the caller then waits for it, a thread hand-off per
  frame that costs ~10 us and most of the latency tail when the process is
  pinned to one core. Offline training keeps the default (asynchronous
  dispatch overlaps the host's work with the device's). JAX reads the setting
  when it creates the CPU client: call this before the first computation.
  """
  import jax
  from jax._src import xla_bridge  # For the already-started check only.
  if xla_bridge.backends_are_initialized():
    return ("CPU dispatch left asynchronous: JAX was already running "
            "(call runtime.synchronous_cpu_dispatch() first)")
  jax.config.update("jax_cpu_enable_async_dispatch", False)
  return "CPU dispatch synchronous (inline on the calling thread)"


def split_cpu(num_devices: int) -> str:
  """Presents the host CPU to JAX as `num_devices` devices.

  XLA:CPU runs a small recurrent training step on about one core (its ops are
  too small to split across threads); computations placed on different CPU
  devices run in parallel, so vmapped seeds sharded over `num_devices`
  devices (`program.member_mesh`) use that many cores. It changes nothing
  on a GPU or TPU host's accelerators. JAX reads the setting when it creates
  the CPU client: call this before the first computation. 0 leaves JAX's
  default (one CPU device).
  """
  if num_devices < 0:
    raise ValueError(f"cpu_devices={num_devices}; give 0 (JAX's default) or "
                     "a positive number of CPU devices.")
  if num_devices == 0:
    return "CPU devices: JAX's default"
  import jax
  from jax._src import xla_bridge  # For the already-started check only.
  if xla_bridge.backends_are_initialized():
    return (f"CPU devices left at {jax.local_device_count('cpu')}: JAX was "
            "already running (call runtime.split_cpu() first)")
  jax.config.update("jax_num_cpu_devices", num_devices)
  return f"CPU split into {num_devices} devices"
