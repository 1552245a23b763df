"""The README's promises that a test can keep: its example runs, and every
`python -m imujax...` command it (or launch/) names is a module with a CLI."""

import importlib.util
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.conftest import subprocess_env

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
  start = README.index(f"## {title}")
  end = README.find("\n## ", start + 1)
  return README[start:end if end > 0 else None]


def test_the_using_imujax_example_runs_as_written():
  blocks = re.findall(r"```python\n(.*?)```",
                      _section("Using imujax from other code"), re.S)
  assert len(blocks) == 1
  result = subprocess.run([sys.executable, "-c", blocks[0]], cwd=REPO,
                          env=subprocess_env(JAX_PLATFORMS="cpu"),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]


def _commands():
  texts = [README, (REPO / "launch" / "README.md").read_text(),
           *(p.read_text() for p in (REPO / "launch").glob("*.sh")),
           *(p.read_text() for p in (REPO / "configs").rglob("*.py"))]
  return sorted({m for t in texts
                 for m in re.findall(r"python -m (imujax[\w.]*)", t)})


@pytest.mark.parametrize("module", _commands())
def test_every_documented_command_is_a_runnable_module(module):
  spec = importlib.util.find_spec(module)
  assert spec is not None, f"{module} does not exist"
  if spec.submodule_search_locations:  # A package: needs a __main__.
    assert importlib.util.find_spec(f"{module}.__main__"), module
  else:
    assert '__name__ == "__main__"' in open(spec.origin).read(), module


def test_the_own_recordings_spec_is_a_valid_spec(tmp_path):
  from imujax.datasets.recordings import schema  # pylint: disable=g-import-not-at-top
  blocks = re.findall(r"```toml\n(.*?)```", _section("Your own recordings"),
                      re.S)
  assert len(blocks) == 1
  path = tmp_path / "spec.toml"
  path.write_text(blocks[0])
  spec = schema.load_spec(str(path))
  assert spec.name == "phone_and_watch_lab"
  assert [name for _, name, _ in spec.channels][:1] == ["wrist_acc_x"]
