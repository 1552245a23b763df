"""The progress bar: redraws in place on a terminal, nothing elsewhere."""

import io
import logging

from imujax.training import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


class _Clock:
  def __init__(self):
    self.t = 0.

  def __call__(self):
    return self.t


def _run(stream, total=10):
  clock = _Clock()
  with progress.Progress("[run 2/6 finetune/scratch-s1]", total,
                         stream=stream, min_interval_s=0., clock=clock) as bar:
    clock.t = 30.  # The first step compiles: not in the rate.
    bar.update(1)
    for done in range(2, total + 1):
      clock.t += 0.5
      bar.update(done)
  return clock


def test_not_a_terminal_writes_nothing():
  stream = io.StringIO()
  _run(stream)
  assert stream.getvalue() == ""


def test_terminal_redraws_one_line_in_place(monkeypatch):
  monkeypatch.setenv("COLUMNS", "200")  # The line is cut to the terminal.
  stream = _Terminal()
  _run(stream)
  out = stream.getvalue()
  assert "\n" not in out
  draws = out.split("\r")[1:]
  assert len(draws) == 11  # Ten steps, then the line cleared at the end.
  assert draws[0].startswith("[run 2/6 finetune/scratch-s1] 1/10 [")
  assert "compiling" in draws[0]
  # 2 steps/s measured after the first step: the 30 s compile is left out.
  assert "5/10" in draws[4] and "2.0 steps/s, ETA 0m02s" in draws[4]
  assert all(d.endswith("\033[K") for d in draws)
  assert draws[-1] == "\033[K"


def test_log_lines_clear_the_bar_first():
  stream = _Terminal()
  handler = logging.StreamHandler(stream)
  root = logging.getLogger()
  root.addHandler(handler)
  try:
    bar = progress.Progress("[x]", 4, stream=stream, min_interval_s=0.)
    bar.update(1)
    logging.getLogger("imujax.test").warning("a log line")
    bar.close()
  finally:
    root.removeHandler(handler)
  out = stream.getvalue()
  assert "\r\033[Ka log line\n" in out
  assert not handler.filters  # Removed at close.
