"""What a `recordings` build is keyed on: the fingerprint of its inputs.

The resolved spec (without where it lives), each input file's path relative
to the folder, size and mtime (label, sibling and segment-table files
included, a missing one too), the rate and the builder's version; see
README.md ("Prepared data is keyed on its inputs").
"""

import dataclasses
import hashlib
import json
import os
import pathlib

from imujax.datasets.recordings import paths
from imujax.datasets.recordings import schema

Spec = schema.Spec


# Spec fields added with reader 3 (`Spec` lists them last) and later.
_LATER_FIELDS = ("comment", "skip_rows", "csv_columns", "key_regex",
                 "channel_files", "label_from_name", "segments",
                 "segment_columns", "segment_unit", "segment_first",
                 "segment_end_inclusive", "label_from_header")


def spec_record(spec: Spec) -> dict:
  """The resolved spec as JSON values, without where it lives.

  The spec's own path and the absolute folder are left out so that the same
  files and spec give the same fingerprint on another machine (copied with
  their mtimes, e.g. `rsync -a`).
  """
  out = {}
  for field in dataclasses.fields(Spec):
    if field.name in ("path", "folder", "channel_units"):
      continue  # channel_units: metadata only (the factors are in channels).
    value = getattr(spec, field.name)
    if field.name in _LATER_FIELDS and value == field.default:
      continue  # A key added later, at its default: the same fingerprint.
    if isinstance(value, frozenset):
      value = sorted(value)
    elif isinstance(value, tuple):
      value = json.loads(json.dumps(value))
    out[field.name] = value
  return out


def input_manifest(folder, spec: Spec, files, rate: str, version: str) -> dict:
  """What a build depends on: spec, each input's path, size and mtime.

  `version`: the builder's and reader's versions, e.g. "1.1.0+r3".
  """
  folder = pathlib.Path(folder)
  entries = {}
  tables = [folder / spec.segments] if spec.segments else []
  for p in list(files) + tables:
    inputs = [pathlib.Path(p)]
    if p not in tables:
      inputs += [pathlib.Path(q) for q in paths.companions(spec, p)]
    for q in inputs:
      rel = q.relative_to(folder).as_posix()
      try:
        st = os.stat(q)
        entries[rel] = [st.st_size, st.st_mtime_ns]
      except FileNotFoundError:
        entries[rel] = None  # A missing label file is an input too.
  return {"builder": version, "rate": rate,
          "spec": spec_record(spec), "files": entries}


def fingerprint(manifest: dict) -> str:
  """sha256 hex of a manifest from `input_manifest`."""
  text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()


def manifest_diff(old: dict, new: dict) -> str:
  """What changed between two manifests, in words (for the rebuild log)."""
  parts = []
  if old.get("builder") != new.get("builder"):
    parts.append(f"builder {old.get('builder')} -> {new.get('builder')}")
  spec_old, spec_new = old.get("spec", {}), new.get("spec", {})
  changed = sorted(k for k in set(spec_old) | set(spec_new)
                   if spec_old.get(k) != spec_new.get(k))
  if changed:
    parts.append(f"spec changed ({', '.join(changed)})")
  f_old, f_new = old.get("files", {}), new.get("files", {})
  for what, names in (
      ("added", sorted(set(f_new) - set(f_old))),
      ("removed", sorted(set(f_old) - set(f_new))),
      ("modified", sorted(k for k in set(f_old) & set(f_new)
                          if f_old[k] != f_new[k]))):
    if names:
      parts.append(f"{len(names)} file(s) {what}: {', '.join(names[:5])}" +
                   (", ..." if len(names) > 5 else ""))
  return "; ".join(parts) or "no difference found"
