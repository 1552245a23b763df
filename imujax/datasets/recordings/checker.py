"""Typed reads out of the spec's TOML tables, collecting every problem.

`schema.load_spec` uses a `SpecChecker` per spec file: each check appends a
message naming the spec key and the fix, so that all problems of a spec are
reported in one error.
"""

import math
import pathlib
import re

import numpy as np

# Placeholders every file pattern may use (`labels.file`, `channels[i].file`);
# the named groups of `key_regex` are the others.
FILE_FIELDS = ("stem", "name")


def plain(value) -> str:
  """A number as users write it (`1.5`, not `np.float64(1.5)`)."""
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    return f"{float(value):g}"
  return repr(value)


def kind(value) -> str:
  """A TOML value's type in words ("an integer", "a table", ...)."""
  return {bool: "a boolean", int: "an integer", float: "a number",
          str: "a string", list: "a list", dict: "a table"}.get(
              type(value), type(value).__name__)


class SpecChecker:
  """Reads typed values out of the TOML tables, collecting every problem."""

  def __init__(self, where: str):
    self.where = where
    self.errors: list[str] = []

  def fail(self, message: str) -> None:
    self.errors.append(message)

  def known(self, table: dict, valid, label: str) -> None:
    for key in table:
      if key not in valid:
        self.fail(f"unknown key {label}{key!r}; valid keys here: "
                  f"{', '.join(valid)}.")

  def get(self, table: dict, key: str, label: str, want: str, default=None):
    """`want`: str | int | number | bool | table | str_list."""
    if key not in table:
      return default
    value = table[key]
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": (isinstance(value, (int, float))
                   and not isinstance(value, bool) and math.isfinite(value)),
        "bool": isinstance(value, bool),
        "table": isinstance(value, dict),
        "str_list": (isinstance(value, list)
                     and all(isinstance(v, str) for v in value)),
    }[want]
    if not ok:
      hint = {"str": f' (quote it: {key} = "{value}")'
                     if isinstance(value, (int, float)) else "",
              "str_list": ' (e.g. ["a", "b"])'}.get(want, "")
      what = {"str": "a string", "int": "an integer", "number": "a number",
              "bool": "true or false", "table": "a table",
              "str_list": "a list of strings"}[want]
      self.fail(f"{label}{key} must be {what}, got {kind(value)} "
                f"{value!r}{hint}.")
      return default
    return value

  def regex(self, pattern: str | None, key: str) -> re.Pattern | None:
    """The compiled pattern, or None (and a problem) if it does not compile."""
    if pattern is None:
      return None
    try:
      return re.compile(pattern)
    except re.error as e:
      self.fail(f"{key} = {pattern!r} does not compile ({e}).")
      return None

  def unique(self, names, key: str) -> None:
    dup = sorted({n for n in names if list(names).count(n) > 1})
    if dup:
      self.fail(f"{key} lists {dup} more than once.")


def check_relative(pattern: str, key: str, c: SpecChecker) -> None:
  """Spec paths stay inside the data folder: relative, no '..'."""
  if pathlib.PurePosixPath(pattern).is_absolute() or re.match(
      r"^[A-Za-z]:[\\/]", pattern) or pattern.startswith("~"):
    c.fail(f"{key} = {pattern!r} is absolute; it must be relative to the "
           "data folder. Set folder (or manual_dir) to the folder and "
           f"{key} to the pattern inside it.")
  elif ".." in re.split(r"[\\/]", pattern):
    c.fail(f"{key} = {pattern!r} leaves the data folder ('..'); point folder "
           "(or manual_dir) at a folder that holds the files instead.")


def check_file_pattern(pattern: str, key: str, fields, c: SpecChecker,
                       need_field: bool = False) -> None:
  """A per-recording file name: relative, only `fields` in braces.

  Args:
    pattern: e.g. "{stem}.labels.csv" or "gyro_exp{exp}_user{user}.txt".
    key: the spec key, for messages.
    fields: the placeholders allowed ({stem}, {name}, key_regex's groups).
    c: collects the problems.
    need_field: the pattern must use a placeholder (else every recording
      would name the same file).
  """
  check_relative(pattern, key, c)
  used = re.findall(r"\{([^{}]*)\}", pattern)
  allowed = ", ".join("{" + f + "}" for f in fields)
  unknown = [f for f in used if f not in fields]
  if unknown:
    c.fail(f"{key} = {pattern!r}: unknown placeholder(s) "
           f"{', '.join('{' + f + '}' for f in unknown)}; only {allowed} "
           "are substituted (the named groups of key_regex are the others).")
  elif re.search(r"[{}]", re.sub(r"\{[^{}]*\}", "", pattern)):
    c.fail(f"{key} = {pattern!r}: unmatched brace; only {allowed} may "
           "appear in braces.")
  elif need_field and not used:
    c.fail(f"{key} = {pattern!r} has no placeholder, so every recording "
           f"would read the same file; use {allowed}, e.g. "
           '"gyro_{key}.txt" with key_regex = "acc_(?P<key>.+)\\\\.txt$".')
