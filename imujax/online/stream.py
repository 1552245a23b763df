r"""Streaming evaluation: a run's held-out recordings streamed back to back.

  python -m imujax.online.stream --workdir=RUN --split=test \
      [--ema=0.9 --hysteresis=0.1] [--json=result.json]

Owns the streaming-evaluation command and its metrics. The held-out
recordings of the split are concatenated in recording order and streamed
through the pure `step.step` WITHOUT resetting the state, so every recording
boundary is a label change the model has to detect from its carried state (on
seglearn_watch each recording holds one exercise, so these are the only
changes). The model's shape is the run record's (`run_record.read(RUN)
.model`). Reported with and without smoothing (`--ema`, `--hysteresis`,
`streamer.Smoother`):

* per-frame macro-F1 and accuracy (as `metrics.scores`);
* detection delay, ms: for each true label change, the time from the change
  to the first frame predicting the new label (a change not detected before
  the next change counts as missed and is excluded from the delay statistics);
* switches per minute: predicted-label changes, and "spurious" ones, those
  that switch to a label other than the true label of that frame.

Regression, events and prediction runs are scored by `stream_targets`
(each recording its own stream, as the offline evaluation runs them).

The rest of the online package: `step` (the pure step), `resampler`,
`streamer`, `model` (loading a run; the jitted `Model`), `numpy_model`,
`stream_pool`, `export`, `live`.
"""

import json

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from imujax.online import model
from imujax.online import step
from imujax.online import streamer


def stream_metrics(labels: np.ndarray, pred: np.ndarray, rate_hz: float,
                   num_classes: int) -> dict:
  """Per-frame scores, detection delays and switch rates of one stream.

  Args:
    labels: <int>[T] true labels (-1: unlabelled, ignored by the scores).
    pred: <int>[T] predicted labels.
    rate_hz: frame rate.
    num_classes: K.
  """
  from imujax import metrics  # Scores only; keeps this module light.

  keep = labels >= 0
  conf = metrics.confusion_matrix(labels[keep], pred[keep], num_classes)
  s = metrics.scores(conf)
  changes = np.flatnonzero((labels[1:] != labels[:-1]) & (labels[1:] >= 0)) + 1
  bounds = list(changes[1:]) + [len(labels)]
  delays, missed = [], 0
  for i, end in zip(changes, bounds):
    hit = np.flatnonzero(pred[i:end] == labels[i])
    if hit.size:
      delays.append(hit[0] / rate_hz * 1e3)
    else:
      missed += 1
  switches = np.flatnonzero(pred[1:] != pred[:-1]) + 1
  spurious = int(np.sum(pred[switches] != labels[switches]))
  minutes = len(labels) / rate_hz / 60.
  return {
      "macro_f1": s["macro_f1"], "accuracy": s["accuracy"],
      "frames": int(keep.sum()), "label_changes": int(len(changes)),
      "delay_ms_median": float(np.median(delays)) if delays else float("nan"),
      "delay_ms_mean": float(np.mean(delays)) if delays else float("nan"),
      "delay_ms_p90": (float(np.percentile(delays, 90)) if delays
                       else float("nan")),
      "changes_missed": missed,
      "switches_per_min": len(switches) / minutes,
      "spurious_switches_per_min": spurious / minutes,
      "true_changes_per_min": len(changes) / minutes,
  }


def evaluate_stream(ckpt: model.Checkpoint, recordings, *, ema: float = 0.,
                    hysteresis: float = 0.) -> dict:
  """Streams `recordings` back to back (no state reset) and scores them.

  Args:
    ckpt: the run and its params (`model.load`).
    recordings: raw recordings with the run's channels, in order.
    ema, hysteresis: the `streamer.Smoother` of the "smoothed" scores.

  Returns:
    {"raw": metrics, "smoothed": metrics (when ema or hysteresis),
    "recordings": n, "minutes": m}.
  """
  signals = np.concatenate([r.signals for r in recordings])
  labels = np.concatenate([r.labels for r in recordings])
  x = ((signals - ckpt.mean) / ckpt.std).astype(np.float32)[None]
  cfg, rate = ckpt.record.model, float(ckpt.record.sample_rate_hz)
  _, out = step.scan_steps(jax.tree.map(jnp.asarray, ckpt.params), cfg,
                           jnp.asarray(x))
  probs = np.asarray(out["probs"][0])
  k = cfg.num_classes
  result = {"recordings": len(recordings),
            "minutes": len(labels) / rate / 60.,
            "raw": stream_metrics(labels, probs.argmax(-1), rate, k)}
  if ema or hysteresis:
    result["smoothed"] = stream_metrics(
        labels, streamer.smooth_labels(probs, ema, hysteresis), rate, k)
    result["smoothing"] = {"ema": ema, "hysteresis": hysteresis}
  return result


def split_recordings(record, split: str, data_dir: str = ""):
  """The recordings of `split` ("train", "val", "test") of the run's data.

  Args:
    record: the run's `run_record.RunRecord`.
    split: a key of its splits.
    data_dir: the TFDS data_dir; the run's when empty.
  """
  return select_split(record, load_data(record, data_dir).recordings, split)


def select_split(record, recordings, split: str):
  """The recordings of the run's `split`, naming the splits it has."""
  from imujax.data import input_pipeline  # Reads TFDS: heavy, CLI only.

  splits = record.splits
  if split not in splits:
    raise ValueError(f"--split={split!r}; the run's splits (run.json: "
                     f"splits) are {sorted(splits)}.")
  return input_pipeline.select(recordings, splits[split])


def load_data(record, data_dir: str = ""):
  """The run's dataset (fingerprint checked) with the run's channels only."""
  from imujax.data import input_pipeline  # Reads TFDS: heavy, CLI only.

  data_cfg = record.config["data"]
  data = input_pipeline.load(record.dataset, data_dir or data_cfg["data_dir"],
                             data_cfg["manual_dir"], data_cfg.get("spec", ""))
  if record.data_fingerprint and data.fingerprint != record.data_fingerprint:
    raise ValueError(
        f"The dataset {record.dataset} changed since this run was trained "
        f"(fingerprint {data.fingerprint[:16]} now, "
        f"{record.data_fingerprint[:16]} in run.json): its recordings are "
        "not the ones the run's splits and scores refer to.")
  # The run may use a selection of the dataset's channels
  # (imujax.training.transfer).
  select = streamer.check_channels(
      record.channel_names, data.channel_names,
      source=f"dataset {data_cfg['name']}", reorder=True)
  return data._replace(recordings=[r._replace(signals=r.signals[:, select])
                                   for r in data.recordings])


def format_table(result: dict) -> str:
  rows = [("raw", result["raw"])]
  if "smoothed" in result:
    sm = result["smoothing"]
    rows.append((f"ema={sm['ema']:g}, hysteresis={sm['hysteresis']:g}",
                 result["smoothed"]))
  lines = ["| output | macro-F1 | accuracy | delay median / p90 (ms) | missed "
           "| switches/min | spurious/min |", "|---|---|---|---|---|---|---|"]
  for name, m in rows:
    lines.append(
        f"| {name} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} | "
        f"{m['delay_ms_median']:.0f} / {m['delay_ms_p90']:.0f} | "
        f"{m['changes_missed']}/{m['label_changes']} | "
        f"{m['switches_per_min']:.1f} | {m['spurious_switches_per_min']:.1f} |")
  return "\n".join(lines)


def main(argv=None):
  import argparse

  p = argparse.ArgumentParser(
      prog="python -m imujax.online.stream",
      description="Streaming evaluation of a run on held-out recordings: a "
      "classifier's streamed back to back without state reset; regression, "
      "events and prediction runs each recording from the initial state "
      "(online/stream_targets.py).")
  p.add_argument("--workdir", required=True, help="A fine-tuned run.")
  p.add_argument("--split", default="test", help="train, val or test.")
  p.add_argument("--ema", type=float, default=0.,
                 help="EMA factor for the probabilities (0 = off).")
  p.add_argument("--hysteresis", type=float, default=0.,
                 help="Probability margin needed to switch label (0 = off).")
  p.add_argument("--data_dir", default="",
                 help="TFDS data_dir (default: the run's).")
  p.add_argument("--json", default="", help="Also write the result here.")
  args = p.parse_args(argv)
  ckpt = model.load(args.workdir)
  if ckpt.record.objective in model.TARGET_HEADS:  # Not a classifier.
    from imujax.online import stream_targets  # pylint: disable=g-import-not-at-top
    recs, units = stream_targets.load_split(ckpt.record, args.split,
                                            args.data_dir)
    result = stream_targets.evaluate_targets(ckpt, recs, units)
    print(f"{args.workdir}: {result['recordings']} {args.split} recordings "
          f"({result['minutes']:.1f} min), each streamed from the initial "
          f"state; {result['kind']} scores.")
    print(stream_targets.format_table(result))
    if args.json:
      epath.Path(args.json).write_text(json.dumps(result, indent=1))
    return result
  recs = split_recordings(ckpt.record, args.split, args.data_dir)
  result = evaluate_stream(ckpt, recs, ema=args.ema,
                           hysteresis=args.hysteresis)
  print(f"{args.workdir}: {result['recordings']} {args.split} recordings, "
        f"{result['minutes']:.1f} min streamed back to back.")
  print(format_table(result))
  if args.json:
    epath.Path(args.json).write_text(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()
