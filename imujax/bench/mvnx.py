"""MVNX reader benchmark: throughput and peak memory against the array bytes.

  python -m imujax.bench.mvnx --file=../shared/data/mvnx_samples/xsens_mvnx_inria_larsen_7x10_kicking003/kicking-003.mvnx
  python -m tests.mvnx_fixtures --out=/tmp/big.mvnx --mb=200 && python -m imujax.bench.mvnx --file=/tmp/big.mvnx
  python -m imujax.bench.mvnx --file=... --fields=all

Throughput is file bytes / best wall time of `--repeats` reads. Memory is
measured twice, in a fresh run each: `tracemalloc` peak (Python objects and
numpy buffers, which numpy reports to tracemalloc; not expat's own buffers)
and the growth of the process's peak RSS (`ru_maxrss`, everything, page
granular) across one read. Both are compared with the bytes of the returned
arrays.
"""

import resource
import time
import tracemalloc

from absl import app
from absl import flags
from etils import epath

from imujax.datasets import mvnx

_FILE = flags.DEFINE_string("file", None, "MVNX file to read.", required=True)
_FIELDS = flags.DEFINE_string(
    "fields", "imu", "'imu' (what the builders read), 'sensor' (all sensor "
    "quantities), 'all', or a comma-separated list of quantities.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed reads; the best counts.")


def _fields(spec: str):
  if spec == "imu":
    return mvnx.IMU_FIELDS
  if spec == "sensor":
    return None
  if spec == "all":
    return "all"
  return spec.split(",")


def _array_bytes(rec: mvnx.Recording) -> int:
  return (sum(v.nbytes for v in rec.fields.values()) + rec.index.nbytes
          + rec.time_ms.nbytes + rec.unix_ms.nbytes)


def _rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB->MiB


def main(argv):
  del argv
  path, fields = epath.Path(_FILE.value), _fields(_FIELDS.value)
  size = path.stat().length
  # RSS first: a fresh process's high-water mark is not yet raised by others.
  rss0 = _rss_mib()
  rec = mvnx.read(path, fields)
  rss_delta = _rss_mib() - rss0
  arrays = _array_bytes(rec) / 2**20
  del rec
  tracemalloc.start()
  rec = mvnx.read(path, fields)
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  del rec
  best = float("inf")
  for _ in range(_REPEATS.value):
    t = time.perf_counter()
    rec = mvnx.read(path, fields)
    best = min(best, time.perf_counter() - t)
    del rec
  rec = mvnx.read(path, fields)
  print(f"file: {path} ({size / 1e6:.1f} MB, MVNX v{rec.version}, "
        f"{len(rec.index)} normal frames, {len(rec.sensor_labels)} sensors)")
  print(f"fields: {sorted(rec.fields)}")
  print(f"throughput: {size / 1e6 / best:.1f} MB/s (best of {_REPEATS.value}: "
        f"{best:.3f} s)")
  print(f"returned arrays: {arrays:.2f} MiB")
  print(f"peak tracemalloc: {peak / 2**20:.2f} MiB = "
        f"{peak / 2**20 / arrays:.2f} x arrays")
  print(f"peak RSS growth (ru_maxrss delta, first read): {rss_delta:.2f} MiB "
        f"= {rss_delta / arrays:.2f} x arrays")


if __name__ == "__main__":
  app.run(main)
