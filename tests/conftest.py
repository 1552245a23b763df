"""Shared fixtures: paths, and one prepared copy of the default dataset."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# XLA:CPU's LLVM backend at optimisation level 0: the suite is mostly
# compilation of small programs, which this makes 10-20% faster end to end
# (561-598 -> 442-502 s on 2 cores). The same HLO and the same float semantics
# (no fast-math either way); only the machine code is less optimised, which
# tests do not time. Benchmarks run outside pytest, at XLA's default.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def pytest_configure(config):
  """Sets FAST_COMPILE before JAX loads, for this process, its xdist workers
  and the programs tests start (they inherit the environment); a caller's
  own level in XLA_FLAGS wins."""
  del config
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_backend_optimization_level" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return REPO


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """`../shared/data`, or a skip saying why."""
  path = SHARED / "data"
  if not path.is_dir():
    pytest.skip(f"{path} is absent: the real-data integration tests need the "
                "developers' shared/ folder beside the repository.")
  return path


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> str:
  """A TFDS data_dir private to this test session."""
  return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture(scope="session")
def watch_data(tfds_dir):
  """The seglearn watch dataset, prepared once per session."""
  from imujax.data import input_pipeline
  return input_pipeline.load("seglearn_watch", data_dir=tfds_dir)


def subprocess_env(**extra) -> dict:
  """Environment for child Python processes that import imujax."""
  env = dict(os.environ)
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  if "XLA_FLAGS" in extra:  # Added to the suite's (FAST_COMPILE), not instead.
    extra["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {extra['XLA_FLAGS']}"
  env.update(extra)
  return env
