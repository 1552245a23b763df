"""The package's shape: imports only go down the layers, files stay small.

imujax/README.md draws the layers; this test is what keeps the drawing true.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "imujax"

# Layer of each top-level part of the package (higher may import lower).
LAYERS = {
    "cells": 0,
    "models": 1, "metrics": 1,
    "objectives": 2,
    "configlib": 3,
    "datasets": 4,
    "data": 5,
    "training": 6,
    "online": 7,
    "experiments": 8, "bench": 8,
    "main": 9,
}
# Files allowed past MAX_LINES, and why.
LONG_FILES = {
    "datasets/mvnx.py": "one streaming XML parser with its channel mapping",
    "configlib.py": "the whole config schema (a commented line per key) and "
                    "its checks, which must not import JAX or the data layer",
}
MAX_LINES = 450


def _part(path: pathlib.Path) -> str:
  rel = path.relative_to(PACKAGE)
  return rel.parts[0].removesuffix(".py")


def _imported_parts(path: pathlib.Path):
  """(line, imported part of imujax) for every import in `path`."""
  tree = ast.parse(path.read_text())
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == "imujax":
        names = [a.name for a in node.names]
      elif node.module.startswith("imujax."):
        names = [node.module.split(".")[1]]
    elif isinstance(node, ast.Import):
      names = [a.name.split(".")[1] for a in node.names
               if a.name.startswith("imujax.")]
    for name in names:
      yield node.lineno, name


def _modules():
  return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
                or p.parent != PACKAGE)


def test_imports_only_go_down_the_layers():
  upward = []
  for path in _modules():
    own = LAYERS[_part(path)]
    for line, name in _imported_parts(path):
      if name in LAYERS and LAYERS[name] > own:
        upward.append(f"{path.relative_to(PACKAGE)}:{line} imports "
                      f"imujax.{name}")
  assert not upward, "\n".join(upward)


def test_every_part_has_a_layer():
  parts = {_part(p) for p in _modules()}
  assert parts <= set(LAYERS), parts - set(LAYERS)


@pytest.mark.parametrize("path", _modules(),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_files_stay_small(path):
  rel = str(path.relative_to(PACKAGE))
  lines = len(path.read_text().splitlines())
  if rel not in LONG_FILES:
    assert lines <= MAX_LINES, (
        f"{rel} has {lines} lines; split it by concern (or justify it in "
        "LONG_FILES)")
