"""One stream's pipeline: source -> queue -> streamer -> session (+ record).

Two threads per stream: the reader takes samples from the source as they
arrive (stamping their arrival) into a bounded queue; the worker maps each
sample's channels onto the model's (by name, cached per channel set), pushes
it through the `streamer.Streamer` and adds the frames to the `Session`
(and the `record.Recorder`). Nothing one sample carries stops the stream:
a sample whose channels do not cover the model's, or whose length does not
match its names, is counted and dropped (the first message of each kind is
shown on the page and printed), a full queue drops the newest sample of a
live source (a replay waits instead), and an unexpected error in one sample
is counted as "internal_error" with its traceback printed once.
"""

import queue as queue_lib
import sys
import threading
import time
import traceback

import numpy as np

from imujax.online import streamer as streamer_lib
from imujax.online.live import session as session_lib

_END = object()


class Pipeline:
  """Runs one source into one `Session` (see the module docstring)."""

  def __init__(self, source, model, session, settings: dict, recorder=None,
               queue_s: float = 10.):
    self.source, self.model, self.session = source, model, session
    self.recorder = recorder
    self.streamer = streamer_lib.Streamer(
        model, model.channel_names, source=source.description,
        gap_policy=settings["gap_policy"], max_gap_s=settings["max_gap_s"],
        ema=settings["ema"], hysteresis=settings["hysteresis"])
    session.streamer = self.streamer
    self.queue = queue_lib.Queue(maxsize=max(int(queue_s * model.sample_rate_hz
                                                 ), 1000))
    session.queue = self.queue
    self.stop_event = threading.Event()
    self.fatal = None
    self._index = {}     # Channel names -> indices of the model's, or None.
    self._pending = 0    # Flags of samples that made no frame yet.
    self._said = set()   # Kinds of problem already printed.
    self._threads = [threading.Thread(target=self._read, daemon=True),
                     threading.Thread(target=self._work, daemon=True)]

  def start(self):
    for t in self._threads:
      t.start()

  def stop(self):
    self.stop_event.set()
    self.source.close()

  def join(self, timeout: float):
    for t in self._threads:
      t.join(timeout)

  @property
  def ended(self) -> bool:
    return self.session.ended

  # ------------------------------------------------------------ threads
  def _read(self):
    blocking = getattr(self.source, "blocking", False)
    try:
      for sample in self.source:
        if self.stop_event.is_set():
          break
        if not blocking:
          try:
            self.queue.put_nowait(sample)
          except queue_lib.Full:
            self.session.drop("queue_full")
        else:
          while not self.stop_event.is_set():
            try:
              self.queue.put(sample, timeout=0.1)
              break
            except queue_lib.Full:
              continue
        depth = self.queue.qsize()
        if depth > self.session.queue_max:
          self.session.queue_max = depth
    except Exception as e:  # A source that breaks ends its stream, said.
      self.fatal = e
      self._say("source", f"{self.source.description} stopped: {e}")
      traceback.print_exc()
    finally:
      self.queue.put(_END)

  def _work(self):
    while True:
      sample = self.queue.get()
      if sample is _END or self.stop_event.is_set():
        break
      try:
        self._one(sample)
      except Exception as e:  # One sample never stops the stream.
        self.session.drop("internal_error")
        if "internal" not in self._said:
          traceback.print_exc()
        self._say("internal", f"internal error on one sample (counted, "
                  f"dropped): {type(e).__name__}: {e}")
    self.session.ended = True

  def _say(self, kind: str, message: str):
    """Shows a problem on the page; prints its first of a kind."""
    self.session.error(message)
    if kind not in self._said:
      self._said.add(kind)
      print(f"{self.source.description}: {message}", file=sys.stderr,
            flush=True)

  def _map(self, names: tuple):
    """Indices of the model's channels in `names`, or None (counted)."""
    if names not in self._index:
      try:
        idx = streamer_lib.check_channels(
            self.model.channel_names, names, source=self.source.description,
            reorder=True)
        self._index[names] = None if list(idx) == list(range(len(names))) \
            else idx
      except streamer_lib.ChannelMismatchError as e:
        self._index[names] = e
    return self._index[names]

  def _one(self, sample):
    index = self._map(tuple(sample.channels))
    if isinstance(index, Exception):
      self.session.drop("channel_mismatch")
      self._say("channels", f"samples dropped: {index}")
      return
    x = np.asarray(sample.values, np.float64)
    if x.shape != (len(sample.channels),):
      self.session.drop("bad_sample_shape")
      self._say("values", f"a sample has {x.size} values for "
                f"{len(sample.channels)} channel names: dropped.")
      return
    if index is not None:
      x = x[index]
    st = self.streamer
    before = self._counters()
    if sample.restart:
      st.restart()
    outs = st.push(sample.t, x)
    done = time.perf_counter()
    for (name, a), (_, b) in zip(before, self._counters()):
      if a != b:
        self._pending |= session_lib.FLAGS[session_lib.REPAIR_FLAGS[name]]
    flags = 0
    if outs:
      flags, self._pending = self._pending, 0
    self.session.add(sample, outs, flags, done)
    if self.recorder is not None:
      self.recorder.add(sample, x, outs, done)

  def _counters(self) -> list:
    st = self.streamer
    return (list(st.resampler.repairs.items())
            + list(st.discontinuities.items()))
