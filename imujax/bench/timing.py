"""What every training-step benchmark row shares: the optimiser's learning
rate and the clock (median and best of `steps` timed calls after `warmup`
untimed ones)."""

import statistics
import time
from typing import Any, Callable

LEARNING_RATE = 1e-3


def median_ms(run_one: Callable[[], Any], steps: int, warmup: int):
  """(median ms, best ms) of `steps` calls of `run_one` after `warmup`."""
  for _ in range(warmup):
    run_one()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    run_one()
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times), 1e3 * min(times)
