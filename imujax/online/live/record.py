"""`--record=FILE`: a live session saved so that `replay:FILE` replays it.

The file is an .npz that is also a replay file (`sources.read_replay`):

  t [T]            each sample's source time, s (as it arrived)
  x [T, C]         <float64> its values, the model's channels in its order
  channels [C]     the model's channel names
  arrival [T]      s since the session started: replay releases the samples
                   at these offsets (`speed` scales them), so the timing is
                   the session's
  restart [T]      a new recording started at the sample
  y [T], classes   the truth (model class indices, -1 none), when known
  out_t [F], out_probs [F, K], out_smoothed [F, K], out_label [F],
  out_reset [F]    the frames the model made (outputs)
  out_done [F]     s since the session start when each frame was ready
  meta             JSON: source, rate_hz, settings, created, counts, drops

A model without a classifier has K = 0 (out_probs, out_smoothed [F, 0],
out_label -1) and, for its heads (`streamer.Output.heads`):

  out_regression [F, R]   <float32> the regression head's traces in the
                          targets' physical units (as the page shows them)
  out_event_probs [F, J]  <float32> the events head's probabilities per track
  out_event_frame [E]     each decided event's peak: a frame index (into
                          out_*), as the page marks it
  out_event_track [E]     its track (index into the events head's names)
  out_event_decided [E]   the frame at which the causal decoder decided it
                          (at most its delay after the peak)
  meta["outputs"]         the heads (`Checkpoint.outputs`): the tracks'
                          names, regression units and target statistics,
                          the events' threshold and delay

(a classifier's file has none of these, `meta` no "outputs").

Only samples that reached the model are saved (dropped packets are counted
in `meta`), so replaying the file feeds the model exactly the same samples
in the same order: the same settings give the same frames (the test checks
it bit for bit). The session is held in memory and written on exit.
"""

import json
import os
import tempfile
import time

import numpy as np


class Recorder:
  """Collects one stream's samples and frames; `save` writes the file."""

  def __init__(self, path: str, model, description: str, settings: dict):
    self.path = path
    self.channels = list(model.channel_names)
    self.classes = list(model.class_names)
    self.meta = {"format": "imujax-live-session/1", "source": description,
                 "rate_hz": float(model.sample_rate_hz),
                 "settings": settings,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    self.start = time.perf_counter()
    self.t, self.x, self.arrival, self.y, self.restart = [], [], [], [], []
    self.out = {k: [] for k in ("t", "probs", "smoothed", "label", "reset",
                                "done")}
    # The heads of a model without a classifier ({} for a classifier: the
    # streamer gives its frames no heads), their rows per frame and the
    # decided events as (peak frame, track, decided at).
    outputs = getattr(model, "outputs", None) or {}
    self.heads = {} if "probs" in outputs else dict(outputs)
    if self.heads:
      self.meta["outputs"] = self.heads
    self.regression, self.event_probs, self.events = [], [], []

  def add(self, sample, x, outs, done: float):
    """A sample (`x` in the model's channel order) and its frames."""
    self.t.append(sample.t)
    self.x.append(np.array(x, np.float64))
    self.arrival.append(sample.arrival - self.start)
    self.y.append(sample.truth)
    self.restart.append(sample.restart)
    for o in outs:
      self.out["t"].append(o.t)
      self.out["probs"].append(np.asarray(o.probs, np.float32))
      self.out["smoothed"].append(np.asarray(o.smoothed, np.float32))
      self.out["label"].append(o.label)
      self.out["reset"].append(o.reset)
      self.out["done"].append(done - self.start)
      if o.heads is not None:
        frame = len(self.out["t"]) - 1
        if "regression" in self.heads:
          self.regression.append(np.asarray(o.heads["regression"],
                                            np.float32))
        if "events" in self.heads:
          self.event_probs.append(np.asarray(o.heads["event_probs"],
                                             np.float32))
          self.events.extend((frame - back, j, frame)
                             for j, back in o.heads["events"])

  def save(self, extra_meta: dict) -> str:
    """Writes the file atomically; returns a one-line description."""
    k, c, n = len(self.classes), len(self.channels), len(self.out["t"])
    arrays = {
        "t": np.asarray(self.t, np.float64),
        "x": (np.stack(self.x) if self.x else np.zeros((0, c))),
        "channels": np.asarray(self.channels, str),
        "arrival": np.asarray(self.arrival, np.float64),
        "restart": np.asarray(self.restart, bool),
        "out_t": np.asarray(self.out["t"], np.float64),
        "out_probs": np.asarray(self.out["probs"], np.float32).reshape(n, k),
        "out_smoothed": np.asarray(self.out["smoothed"],
                                   np.float32).reshape(n, k),
        "out_label": np.asarray(self.out["label"], np.int32),
        "out_reset": np.asarray(self.out["reset"], bool),
        "out_done": np.asarray(self.out["done"], np.float64),
        "meta": np.asarray(json.dumps(dict(self.meta, **extra_meta))),
    }
    if "regression" in self.heads:
      arrays["out_regression"] = _per_frame(self.regression,
                                            self.heads["regression"])
    if "events" in self.heads:
      arrays["out_event_probs"] = _per_frame(self.event_probs,
                                             self.heads["events"])
      ev = np.asarray(self.events, np.int64).reshape(-1, 3)
      arrays.update(out_event_frame=ev[:, 0], out_event_track=ev[:, 1],
                    out_event_decided=ev[:, 2])
    if any(v >= 0 for v in self.y):
      arrays["y"] = np.asarray(self.y, np.int64)
      arrays["classes"] = np.asarray(self.classes, str)
    folder = os.path.dirname(os.path.abspath(self.path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz")
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
      os.replace(tmp, self.path)
    except BaseException:
      if os.path.exists(tmp):
        os.unlink(tmp)
      raise
    events = (f", {len(self.events)} events" if "events" in self.heads
              else "")
    return (f"Recorded {len(self.t)} samples and {n} frames{events} to "
            f"{self.path}; replay it with --source=replay:{self.path}.")


def _per_frame(rows: list, head: dict) -> np.ndarray:
  """<float32>[F, tracks] of a head's per-frame rows ([0, tracks]: none)."""
  if rows:
    return np.stack(rows).astype(np.float32)
  return np.zeros((0, len(head["names"])), np.float32)


def record_path(path: str, stream: int, streams: int) -> str:
  """FILE for one stream; FILE with `.<stream>` before .npz for several."""
  if streams == 1:
    return path
  root, ext = os.path.splitext(path)
  return f"{root}.{stream}{ext or '.npz'}"
