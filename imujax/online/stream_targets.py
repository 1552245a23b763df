r"""Streaming evaluation of regression, events and prediction runs.

  python -m imujax.online.stream --workdir=RUN --split=test [--json=out.json]

(`stream.main` hands these kinds here.) Each held-out recording is its own
stream, started from the cell's initial state (as a new stream or a gap
restarts one), and runs frame by frame through the pure `step.step`
(`step.scan_steps`), its raw frames normalised with the run's saved
normaliser. The streamed outputs are scored by the objective's own `score`,
the function the offline evaluation uses (training/evaluate.py: every
recording from a zero state), so the streamed metrics equal the run's test
scores to float rounding (tests/test_stream_targets.py: 1e-5):

* regression: MAE, RMSE, R², r per target in its physical units (the head's
  standardised output times the training targets' sd plus their mean, the
  run record's normalizer target_mean / target_std);
* events: the probabilities decoded online, one frame at a time, by
  `export.EventDecoder` (the decisions of `metrics.decode_events`: each
  detection fires at most delay_ms after its peak); F1 within ±tolerance_ms,
  timing error, and the measured detection delay (the frame a matched
  detection is decided at minus its true event: median, p95 and max in ms,
  never more than tolerance + delay);
* prediction: RMSE per horizon beside the last-value and constant-velocity
  baselines on the same frames (normalised units).
"""

import jax
import jax.numpy as jnp
import numpy as np

from imujax import metrics
from imujax import objectives
from imujax.data import input_pipeline
from imujax.objectives import events
from imujax.objectives import losses
from imujax.objectives import options
from imujax.online import export
from imujax.online import step
from imujax.online import stream

KINDS = ("regression", "events", "prediction")


def target_options(record, units=()) -> dict:
  """The options the run's objective scored with, rebuilt from its record.

  As `training.setup` builds them: the config's options of the kind (with
  any `<key>_s` in seconds turned into frames), the channel names, and the
  tracks (short names, finetune.tracks order), rate and units.
  """
  kind = record.objective
  given = record.config.get("finetune", {}).get(kind) or {}
  opts, _ = options.in_frames(kind, options.validate(kind, dict(given)),
                              float(record.sample_rate_hz), "finetune")
  opts.update(losses.data_options(list(record.channel_names)))
  names = tuple(input_pipeline.short_name(input_pipeline.short_name(
      t, input_pipeline.LABEL_PREFIX), input_pipeline.TARGET_PREFIX)
                for t in options.split_list(
                    record.config["finetune"].get("tracks", "")))
  opts.update({"tracks": names,
               "sample_rate_hz": float(record.sample_rate_hz),
               "units": tuple(units) or ("",) * len(names)})
  return opts


def load_split(record, split: str, data_dir: str = ""):
  """(recordings of `split` carrying the run's tracks, the target units)."""
  data = stream.load_data(record, data_dir)
  opts = target_options(record)
  names = opts.get("tracks", ())
  data = input_pipeline.select_tracks(
      data, tracks=names if record.objective == "events" else (),
      targets=names if record.objective == "regression" else ())
  units = tuple(data.target_units.get(n, "") for n in names)
  return stream.select_split(record, data.recordings, split), units


def stream_outputs(ckpt, recordings) -> tuple[list, list]:
  """Every recording streamed from the initial state, in one padded batch.

  Returns:
    (outputs, batches): per recording the step's outputs [T_i, ...] (heads
    as `step.step` names them) and {"signals" normalised, "valid",
    "targets" / "tracks"} [T_i, ...] as the offline evaluation cuts them.
  """
  record = ckpt.record
  norm = input_pipeline.Normalizer(ckpt.mean, ckpt.std,
                                   list(record.channel_names))
  length = max(len(r.labels) for r in recordings)
  batch = next(input_pipeline.whole_recordings(recordings, norm,
                                               len(recordings), length))
  # Rows are independent streams; each row's padding comes after its end,
  # so it changes none of its outputs (the step is causal).
  _, out = step.scan_steps(jax.tree.map(jnp.asarray, ckpt.params),
                           record.model, jnp.asarray(batch["signals"]))
  out = {k: np.asarray(v) for k, v in out.items()}
  outputs, cut = [], []
  for b, rec in enumerate(recordings):
    n = len(rec.labels)
    outputs.append({k: v[b, :n] for k, v in out.items()})
    cut.append({k: v[b, :n] for k, v in batch.items()})
  return outputs, cut


def decode_online(probs: list, threshold: float, delay: int) -> list:
  """Per recording (peaks, fired) [N_i, E] lists: `export.EventDecoder`.

  All recordings' streams are decoded together, one frame at a time; a
  stream's open candidate is flushed at its last frame (as offline).
  """
  n_tracks = probs[0].shape[-1]
  lengths = [len(p) for p in probs]
  decoder = export.EventDecoder(threshold, delay, (len(probs), n_tracks))
  found = [[([], []) for _ in range(n_tracks)] for _ in probs]
  frame = np.zeros((len(probs), n_tracks))
  for t in range(max(lengths)):
    for i, p in enumerate(probs):
      frame[i] = p[t] if t < lengths[i] else 0.  # Ended: below threshold.
    fired = decoder.push(frame)
    fired += [d for i, n in enumerate(lengths) if n - 1 == t
              for d in decoder.flush(i)]
    for i, j, peak in fired:
      found[i][j][0].append(peak)
      found[i][j][1].append(t)
  return [[tuple(np.asarray(x, np.int64) for x in pf) for pf in rec]
          for rec in found]


def _event_scores(probs, batches, opts) -> dict:
  rate = opts["sample_rate_hz"]
  delay = events.frames(opts["delay_ms"], rate)
  tolerance = events.frames(opts["tolerance_ms"], rate)
  decoded = decode_online(probs, opts["threshold"], delay)
  per_track = {}
  for j, name in enumerate(opts["tracks"]):
    counts = []
    for rec, dec in zip(batches, decoded):
      track = np.where(rec["valid"], rec["tracks"][:, j], -1)
      peaks, fired = dec[j]
      keep = track[peaks] >= 0 if len(peaks) else np.zeros(0, bool)
      counts.append(metrics.event_counts(np.flatnonzero(track > 0),
                                         peaks[keep], fired[keep],
                                         tolerance))
    scores = metrics.event_scores(counts, rate)
    latency = np.asarray([e for c in counts for e in c["latency"]]) * (
        1000. / rate)
    nan = float("nan")
    scores.update({
        "delay_ms_median": float(np.median(latency)) if latency.size else nan,
        "delay_ms_p95": (float(np.percentile(latency, 95)) if latency.size
                         else nan),
        "delay_ms_max": float(latency.max()) if latency.size else nan})
    per_track[name] = scores
  return {**per_track[opts["tracks"][0]],
          "tolerance_ms": tolerance * 1000. / rate,
          "decoder_delay_ms": delay * 1000. / rate, "per_track": per_track}


def evaluate_targets(ckpt, recordings, units=()) -> dict:
  """Streams the recordings (each its own stream) and scores them.

  Returns:
    {"kind", "recordings", "minutes", "scores": the objective's pooled
    scores (events: with the online decoder's delay percentiles),
    "per_subject": each subject's floats}.
  """
  record = ckpt.record
  kind = record.objective
  if kind not in KINDS:
    raise ValueError(f"{record.objective!r} run: stream_targets scores "
                     f"{KINDS}; classifiers stream with stream.evaluate_stream.")
  opts = target_options(record, units)
  outputs, batches = stream_outputs(ckpt, recordings)
  stats = {}
  if kind == "regression":
    norm = record.normalizer
    mean = np.asarray(norm["target_mean"], np.float32)
    sd = np.asarray(norm["target_std"], np.float32)
    heads = [o["regression"] * sd + mean for o in outputs]
    stats = {"target_mean": mean, "target_std": sd}  # The floor's constant.
  elif kind == "events":
    heads = [o["event_probs"] for o in outputs]
  else:
    steps = len(opts["horizons_ms"].split(","))
    heads = []
    for o, b in zip(outputs, batches):
      pred = o["prediction"].reshape(len(b["valid"]), steps, -1)
      if opts["residual"]:
        pred = pred + b["signals"][:, None]
      heads.append(pred.reshape(len(b["valid"]), -1))

  def score(idx):
    if kind == "events":
      return _event_scores([heads[i] for i in idx],
                           [batches[i] for i in idx], opts)
    return objectives.get(kind).score([heads[i] for i in idx],
                                      [batches[i] for i in idx], stats, opts)

  per_subject = {}
  for subject in sorted({r.subject for r in recordings}):
    own = score([i for i, r in enumerate(recordings) if r.subject == subject])
    per_subject[subject] = {k: v for k, v in own.items()
                            if isinstance(v, (int, float))}
  frames = sum(len(r.labels) for r in recordings)
  return {"kind": kind, "recordings": len(recordings),
          "minutes": frames / float(record.sample_rate_hz) / 60.,
          "scores": score(range(len(recordings))),
          "per_subject": per_subject}


def format_table(result: dict) -> str:
  """Markdown of the streamed scores (per target / track / horizon)."""
  s, kind = result["scores"], result["kind"]
  f = lambda x, d=3: "–" if x != x else f"{x:.{d}f}"  # noqa: E731
  if kind == "regression":
    lines = ["| target | unit | MAE | RMSE | R² | r | frames |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {t['unit']} | {f(t['mae'], 4)} | {f(t['rmse'], 4)} "
              f"| {f(t['r2'])} | {f(t['pearson_r'])} | {t['frames']} |"
              for n, t in s["per_target"].items()]
  elif kind == "events":
    lines = [f"Tolerance ±{s['tolerance_ms']:g} ms, decoder delay bound "
             f"{s['decoder_delay_ms']:g} ms.", "",
             "| track | precision | recall | F1 | timing error mean ± sd "
             "(ms) | delay median / p95 / max (ms) | events | detected |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {f(t['precision'])} | {f(t['recall'])} | "
              f"{f(t['f1'])} | {f(t['timing_error_ms_mean'], 1)} ± "
              f"{f(t['timing_error_ms_sd'], 1)} | "
              f"{f(t['delay_ms_median'], 0)} / {f(t['delay_ms_p95'], 0)} / "
              f"{f(t['delay_ms_max'], 0)} | {t['events']} | {t['detected']} |"
              for n, t in s["per_track"].items()]
  else:
    tags = [k[len("rmse_"):] for k in s if k.startswith("rmse_")
            and not k.startswith(("rmse_last", "rmse_velocity"))]
    lines = ["| horizon | RMSE model | RMSE last value | RMSE constant "
             "velocity |", "|---|---|---|---|"]
    lines += [f"| {t} | {f(s['rmse_' + t], 4)} | {f(s['rmse_last_' + t], 4)}"
              f" | {f(s['rmse_velocity_' + t], 4)} |" for t in tags]
  return "\n".join(lines)
