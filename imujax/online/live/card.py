"""The live page's model card and channel groups.

`model_card` says which model is running: a run workdir (its run.json and,
when present, summary.json) or an exported artifact (its meta.json, and the
run it came from when that workdir is still there). `channel_groups` groups
channel names `<placement>_<sensor>_<axis>` (CONVENTIONS.md) for the input
plot, with the SI unit of each sensor.
"""

import json
import os

# Units by sensor name (datasets store SI units: CONVENTIONS.md).
UNITS = {"acc": "m/s²", "gyr": "rad/s", "mag": "a.u.", "quat": "unit quat.",
         "ori": "unit quat.", "pos": "m", "vel": "m/s", "baro": "hPa",
         "temp": "°C"}


def channel_groups(names) -> list[dict]:
  """[{"placement", "sensor", "unit", "channels": [index], "axes": [...]}].

  Channels named `<placement>_<sensor>_<axis>` are grouped by placement and
  sensor in order of first appearance; any other name is its own group.
  """
  groups, by_key = [], {}
  for i, name in enumerate(names):
    parts = str(name).rsplit("_", 2)
    if len(parts) == 3 and parts[0]:
      placement, sensor, axis = parts
    else:
      placement, sensor, axis = str(name), "", ""
    key = (placement, sensor)
    if key not in by_key:
      by_key[key] = {"placement": placement, "sensor": sensor,
                     "unit": UNITS.get(sensor, ""), "channels": [],
                     "axes": []}
      groups.append(by_key[key])
    by_key[key]["channels"].append(i)
    by_key[key]["axes"].append(axis or str(name))
  return groups


def _read_json(path):
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _scores(summary) -> dict:
  test = (summary or {}).get("test") or {}
  return {k: test[k] for k in ("accuracy", "macro_f1", "frames", "step")
          if isinstance(test.get(k), (int, float))}


def _from_run(run: dict, workdir: str) -> dict:
  """The card's fields that a run.json (and its summary.json) give."""
  source = run.get("source") or {}
  pre = ({"objective": source.get("objective"),
          "dataset": source.get("dataset"), "step": source.get("step"),
          "init_from": source.get("init_from")} if source else None)
  return {"dataset": run.get("dataset"), "phase": run.get("phase"),
          "objective": run.get("objective"), "pretraining": pre,
          "test_scores": _scores(_read_json(
              os.path.join(workdir, "summary.json")))}


def model_card(path: str, model, record=None) -> dict:
  """What the page's model card shows (plain data; the page escapes it).

  Args:
    path: --model, a run workdir or an artifact file.
    model: the loaded model (`channel_names`, `class_names`,
      `sample_rate_hz`; an artifact's `meta`).
    record: the run record of a workdir; None for an artifact.
  """
  card = {"model": str(path), "kind": "artifact" if record is None else "run",
          "channels": list(model.channel_names),
          "classes": list(model.class_names),
          "rate_hz": float(model.sample_rate_hz), "dataset": None,
          "phase": None, "objective": None, "pretraining": None,
          "test_scores": {}, "source_run": None, "step": None}
  if record is not None:
    cfg = record.model_config
    card.update(_from_run(record.to_json(), str(path)))
  else:
    meta = getattr(model, "meta", {})
    cfg = meta.get("model_config", {})
    run_dir = meta.get("source_run") or ""
    card["source_run"], card["step"] = run_dir or None, meta.get("source_step")
    run = _read_json(os.path.join(run_dir, "run.json")) if run_dir else None
    if run:
      card.update(_from_run(run, run_dir))
  card["cell"] = (f"{cfg.get('cell', '?')} {cfg.get('layers', '?')}x"
                  f"{cfg.get('hidden', '?')}" if cfg else None)
  return card


def record_of_artifact(model):
  """The run record of the run an artifact came from, if still there."""
  run_dir = getattr(model, "meta", {}).get("source_run") or ""
  if not run_dir or not os.path.exists(os.path.join(run_dir, "run.json")):
    return None
  from imujax.training import run_record
  try:
    return run_record.read(run_dir)
  except ValueError:
    return None
