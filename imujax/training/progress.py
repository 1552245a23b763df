"""A one-line progress bar on a terminal; plain log lines everywhere else.

When the stream (stderr) is a terminal, `Progress` redraws one line in place
("\\r", then erase to the end of the line): the run's tag (run i/n, phase,
arm and seed), step/total, steps/s and the ETA, both measured from the first
step's end, so that the compile is not in them. Any log record clears the
line before it is written (a filter on the root logger's handlers), so log
lines never carry a bar; the bar is redrawn at the next step. When the
stream is not a terminal (a log file, a pipe, CI) it writes nothing at all:
the loop's periodic log lines (step, loss, steps/s, ETA) are then the only
progress, as before.

Written here rather than with tqdm (installed as a TFDS dependency but not
one of imujax's): the ETA must leave out the first call's compile, the bar
must step aside for absl's log lines, and the non-terminal path must be
exactly "nothing": a few dozen lines, without a dependency imujax does not
declare.
"""

import logging
import shutil
import sys
import time


def is_terminal(stream) -> bool:
  isatty = getattr(stream, "isatty", None)
  try:
    return bool(isatty and isatty())
  except ValueError:  # A closed stream.
    return False


class _ClearFirst(logging.Filter):
  """Clears the bar before a log record is written to the same terminal."""

  def __init__(self, progress):
    super().__init__()
    self.progress = progress

  def filter(self, record):
    self.progress.clear()
    return True


class Progress:
  """`update(done)` after every step; `close()` (or `with`) at the end."""

  def __init__(self, tag: str, total: int, stream=None,
               min_interval_s: float = 0.25, clock=time.monotonic):
    self.stream = sys.stderr if stream is None else stream
    self.live = is_terminal(self.stream)
    self.tag, self.total, self.min_interval_s = tag, total, min_interval_s
    self.clock, self.origin, self.last_draw, self.drawn = clock, None, None, False
    self._filter = _ClearFirst(self)
    self._handlers = list(logging.getLogger().handlers) if self.live else []
    for h in self._handlers:
      h.addFilter(self._filter)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def line(self, done: int, now: float) -> str:
    """The bar's text at step `done` (rate and ETA once two steps are in)."""
    if self.origin is None or done <= self.origin[0]:
      speed = "compiling/first step"
    else:
      rate = (done - self.origin[0]) / max(now - self.origin[1], 1e-9)
      left = int((self.total - done) / max(rate, 1e-9))
      eta = (f"{left // 3600}h{left % 3600 // 60:02d}m" if left >= 3600
             else f"{left // 60}m{left % 60:02d}s")
      speed = f"{rate:.1f} steps/s, ETA {eta}"
    width = 20
    filled = int(width * done / max(self.total, 1))
    return (f"{self.tag} {done}/{self.total} "
            f"[{'#' * filled}{'.' * (width - filled)}] {speed}")

  def update(self, done: int) -> None:
    """Step `done` (1-based) has been dispatched; redraws if it is time."""
    if not self.live:
      return
    now = self.clock()
    if self.origin is None:  # The first step (and its compile) ends here.
      self.origin = (done, now)
    if (self.last_draw is not None and done < self.total
        and now - self.last_draw < self.min_interval_s):
      return
    self.last_draw = now
    columns = shutil.get_terminal_size((100, 24)).columns
    self.stream.write("\r" + self.line(done, now)[:columns - 1] + "\033[K")
    self.stream.flush()
    self.drawn = True

  def clear(self) -> None:
    if self.drawn:
      self.stream.write("\r\033[K")
      self.stream.flush()
      self.drawn = False

  def close(self) -> None:
    self.clear()
    for h in self._handlers:
      h.removeFilter(self._filter)
    self._handlers = []
