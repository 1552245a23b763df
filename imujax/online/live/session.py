"""One stream's session: what its page shows, kept by its pipeline.

Owns `Session`: the frames of the last `keep_s` seconds (each serialised
once, when it is made), the truth-vs-prediction scores of the whole session
(confusion matrix, accuracy, macro-F1, the detection delay of each change of
the true activity) and the stream's health (rates, queue, latency, repairs,
drops by kind, CPU). The pipeline thread writes it; the HTTP threads read it
(`state_json`, `summary`) under its lock.

Time on the page is session time: frame number / the model's rate, so it
only moves forward (a clock that jumps is shown as a mark, not as a jump).
"""

import collections
import itertools
import json
import math
import threading
import time

import numpy as np

from imujax import metrics
from imujax.online.live import card as card_lib

# Marks a frame carries (bits of a row's flags), shown on the page.
FLAGS = {"reset": 1, "gap_interpolated": 2, "gap_held": 4,
         "nonfinite_held": 8, "out_of_order": 16, "clock_jump": 32,
         "new_recording": 64}
# The resampler's and streamer's counters that set each flag.
REPAIR_FLAGS = {"resets": "reset", "gaps_interpolated": "gap_interpolated",
                "gaps_held": "gap_held",
                "nonfinite_values_held": "nonfinite_held",
                "out_of_order_dropped": "out_of_order",
                "duplicate_timestamps": "out_of_order",
                "clock_jumps_back": "clock_jump", "restarts": "new_recording"}
PIPELINE_DROPS = ("channel_mismatch", "bad_sample_shape", "queue_full",
                  "internal_error")
MAX_CHANGES = 50


def finite(v, digits: int = 4):
  """A JSON-safe number: rounded, None for NaN / inf."""
  v = float(v)
  return round(v, digits) if math.isfinite(v) else None


def _row_values(a: np.ndarray, digits: int) -> list:
  a = np.round(np.asarray(a, np.float64), digits)
  if np.isfinite(a).all():
    return a.tolist()
  return [v if math.isfinite(v) else None for v in a.tolist()]


class Session:
  """What one stream's page shows (see the module docstring)."""

  def __init__(self, stream_id: int, model, source, card: dict,
               keep_s: float = 60.):
    self.lock = threading.Lock()
    self.id = stream_id
    self.source = source
    self.class_names = list(model.class_names)
    self.channel_names = list(model.channel_names)
    self.rate = float(model.sample_rate_hz)
    self.card = card
    self.rows = collections.deque(maxlen=max(int(keep_s * self.rate), 10))
    self.frame = -1
    self.label = -1
    self.truth = -1
    self.samples = 0
    self.has_truth = bool(getattr(source, "truth", None) is not None
                          and (np.asarray(source.truth) >= 0).any())
    k = len(self.class_names)
    self.confusion = np.zeros((k, k), np.int64)
    self.changes = collections.deque(maxlen=MAX_CHANGES)
    self._open = None          # The change waiting for its detection.
    self._prev_truth = -1
    self.latencies = collections.deque(maxlen=4096)
    # A model's heads besides a classifier ({} for a classifier) and the
    # events decoded in this session ([track, peak frame], the last 1000).
    self.outputs = {k: v for k, v in (getattr(model, "outputs", None)
                                      or {}).items() if k != "probs"}
    self.events = collections.deque(maxlen=1000)
    self.dropped = dict.fromkeys(PIPELINE_DROPS, 0)
    self.streamer = None       # Set by the pipeline (its repair counters).
    self.queue = None          # The pipeline's sample queue.
    self.queue_max = 0
    self.errors = collections.deque(maxlen=5)  # Shown on the page.
    self.ended = False
    self.started = time.perf_counter()
    self._rates = collections.deque()  # (time, samples, frames, cpu).
    self.page = {"fps": None, "polls": collections.deque(maxlen=64)}

  # ------------------------------------------------------ pipeline side
  def error(self, message: str):
    with self.lock:
      if not self.errors or self.errors[-1]["message"] != message:
        self.errors.append({"t": round(time.perf_counter() - self.started, 1),
                            "message": message})

  def drop(self, kind: str):
    self.dropped[kind] += 1

  def add(self, sample, outs, flags: int, done: float):
    """One sample and the frames it completed (`streamer.Output`s)."""
    rows = []
    with self.lock:
      self.samples += 1
      if outs:
        self.latencies.append(done - sample.arrival)
      for i, o in enumerate(outs):
        self.frame += 1
        self.label = int(o.label)
        self._score(int(sample.truth), self.label)
        row = [self.frame, self.label, int(sample.truth),
               (flags | FLAGS["reset"] * bool(o.reset)) if i == 0 else 0,
               _row_values(o.smoothed, 3), _row_values(o.frame, 4)]
        if o.heads is not None:  # [regression [R], [[track, peak frame]]].
          row.append([_row_values(o.heads.get("regression", []), 4),
                      [[j, self.frame - back]
                       for j, back in o.heads.get("events", [])]])
          self.events.extend(row[-1][1])
        rows.append((self.frame, json.dumps(row, separators=(",", ":"))))
      self.rows.extend(rows)

  def _score(self, truth: int, pred: int):
    self.truth = truth
    if truth < 0 or not self.class_names:
      return
    self.confusion[truth, pred] += 1
    f = self.frame
    if self._prev_truth >= 0 and truth != self._prev_truth:
      if self._open is not None:
        self._open["status"] = "missed"
      self._open = {"t": round(f / self.rate, 3), "frame": f,
                    "from": self._prev_truth, "to": truth, "delay_s": None,
                    "status": "waiting"}
      self.changes.append(self._open)
    self._prev_truth = truth
    if self._open is not None and pred == self._open["to"]:
      self._open["delay_s"] = round((f - self._open["frame"]) / self.rate, 3)
      self._open["status"] = "detected"
      self._open = None

  # ------------------------------------------------------- server side
  def static(self) -> dict:
    """What does not change during the session (sent on the first poll)."""
    return {"stream": self.id, "source": self.source.description,
            "classes": self.class_names, "channels": self.channel_names,
            "groups": card_lib.channel_groups(self.channel_names),
            "rate_hz": self.rate, "flags": FLAGS, "card": self.card,
            "has_truth": self.has_truth, "outputs": self.outputs}

  def scores(self) -> dict:
    if not self.class_names:  # Regression / events: no confusion matrix.
      return {"accuracy": None, "macro_f1": None, "frames": 0, "changes": [],
              "median_delay_s": None, "missed": 0,
              "events": len(self.events)}
    s = metrics.scores(self.confusion)
    detected = [c["delay_s"] for c in self.changes
                if c["status"] == "detected"]
    return {"accuracy": finite(s["accuracy"]),
            "macro_f1": finite(s["macro_f1"]), "frames": s["frames"],
            "changes": [{k: v for k, v in c.items() if k != "frame"}
                        for c in self.changes],
            "median_delay_s": (finite(np.median(detected), 3) if detected
                               else None),
            "missed": sum(c["status"] == "missed" for c in self.changes)}

  def _rate(self, now: float) -> dict:
    """Input / model rates and CPU share over the last ~2 s."""
    snap = (now, self.samples, self.frame + 1, time.process_time())
    if not self._rates or now - self._rates[-1][0] >= 0.25:
      self._rates.append(snap)
    while len(self._rates) > 2 and now - self._rates[1][0] >= 2.:
      self._rates.popleft()
    t0, s0, f0, c0 = self._rates[0]
    dt = now - t0
    if dt < 0.2:
      return {"input_rate": None, "model_rate": None, "cpu": None}
    return {"input_rate": finite((snap[1] - s0) / dt, 1),
            "model_rate": finite((snap[2] - f0) / dt, 1),
            "cpu": finite((snap[3] - c0) / dt, 3)}

  def health(self) -> dict:
    now = time.perf_counter()
    lat = np.asarray(self.latencies) * 1e3
    st = self.streamer
    repairs = dict(st.resampler.repairs, **st.discontinuities) if st else {}
    q = self.queue.qsize() if self.queue is not None else 0
    self.queue_max = max(self.queue_max, q)
    polls = self.page["polls"]
    return dict(
        self._rate(now), nominal_rate=self.rate, samples=self.samples,
        frames=self.frame + 1, queue=q, queue_max=self.queue_max,
        latency_ms={"median": finite(np.median(lat), 2) if lat.size else None,
                    "p99": (finite(np.percentile(lat, 99), 2) if lat.size
                            else None), "n": int(lat.size)},
        repairs=repairs, dropped=dict(self.source.dropped, **self.dropped),
        counts=dict(self.source.counts), uptime_s=round(now - self.started, 1),
        ended=self.ended, page_fps=self.page["fps"],
        polls_per_s=(finite((len(polls) - 1) / (polls[-1] - polls[0]), 1)
                     if len(polls) > 1 and polls[-1] > polls[0] else None))

  def state_json(self, since: int, limit: int, fps=None) -> bytes:
    """The page's poll: frames after `since` (at most `limit`) and the rest."""
    with self.lock:
      self.page["polls"].append(time.perf_counter())
      if fps is not None:
        self.page["fps"] = fps
      first = self.rows[0][0] if self.rows else self.frame + 1
      start = max(since + 1 - first, 0, len(self.rows) - limit)
      rows = [r for _, r in itertools.islice(self.rows, start, None)]
      rest = {"frame": self.frame, "first": first,
              "label": self.label, "truth": self.truth,
              "scores": self.scores(), "health": self.health(),
              "errors": list(self.errors),
              "problem": getattr(self.source, "last_problem", "")}
    if since < 0:
      rest["static"] = self.static()
    return ('{"frames":[' + ",".join(rows) + "],"
            + json.dumps(rest)[1:]).encode()

  def summary(self) -> dict:
    """One row of the overview of several streams."""
    with self.lock:
      h, s = self.health(), self.scores()
      return {"stream": self.id, "source": self.source.description,
              "label": (self.class_names[self.label] if self.label >= 0
                        else ""), "frames": self.frame + 1,
              "input_rate": h["input_rate"], "model_rate": h["model_rate"],
              "latency_p99_ms": h["latency_ms"]["p99"],
              "dropped": sum(h["dropped"].values()),
              "accuracy": s["accuracy"] if s["frames"] else None,
              "ended": self.ended, "page_fps": h["page_fps"],
              "polls_per_s": h["polls_per_s"], "cpu": h["cpu"]}
