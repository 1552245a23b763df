"""Lengths in seconds: data.window_s and the `<option>_s` twins."""

import pytest

from imujax import configlib
from imujax import objectives
from imujax.objectives import options
from imujax.training import setup


def test_twins_become_frames_and_disappear():
  opts = options.validate("forecast", {"horizon_s": 0.1})
  out, notes = options.in_frames("forecast", opts, 500.0)
  assert out["horizon"] == 50 and "horizon_s" not in out and not notes
  opts = options.validate("masked_reconstruction", {"span_mean_s": 0.16})
  out, _ = options.in_frames("masked_reconstruction", opts, 100.0)
  assert out["span_mean"] == pytest.approx(16.0)
  assert "span_mean_s" not in out
  # Unset twins: the frame values as given, exactly as before.
  opts = options.validate("cpc", {})
  out, notes = options.in_frames("cpc", opts, 50.0)
  assert out == {k: v for k, v in opts.items() if k != "horizon_s"}
  assert not notes


def test_frames_far_from_50_hz_are_warned_about():
  opts = options.validate("cpc", {})
  _, notes = options.in_frames("cpc", opts, 500.0)
  assert len(notes) == 1 and "pretrain.cpc.horizon=4 frames" in notes[0]
  assert "horizon_s" in notes[0]
  for rate in (30.0, 60.0, 100.0):  # Within 2x of 50 Hz: no warning.
    assert not options.frames_warning("data.window", 128, rate)


def test_window_s_sets_the_window_at_the_rate():
  config = configlib.base()
  config.data.window_s = 2.56
  objective = objectives.get("forecast")
  opts = options.validate("forecast", {"horizon_s": 0.08})
  out, opts = setup._in_frames(config, "pretrain", objective, opts, 500.0)
  assert out.data.window == 1280 and opts["horizon"] == 40
  assert config.data.window == 128  # The given config is not changed.
  same, _ = setup._in_frames(configlib.base(), "pretrain", objective,
                             options.validate("forecast", {}), 50.0)
  assert same.data.window == 128


def test_both_set_is_an_error():
  config = configlib.base()
  config.data.window_s, config.data.window = 2.0, 100
  with pytest.raises(ValueError, match="data.window .* or data.window_s"):
    configlib.check(config)
  with pytest.raises(ValueError, match="pretrain.forecast.horizon .* not both"):
    options.validate("forecast", {"horizon": 8, "horizon_s": 0.1})
  config = configlib.base()
  config.pretrain.objective = "cpc"
  config.pretrain.cpc.horizon, config.pretrain.cpc.horizon_s = 8, 0.1
  with pytest.raises(ValueError, match="not both"):
    configlib.check(config)
  config = configlib.base()
  config.data.window_s = -1.0
  with pytest.raises(ValueError, match="data.window_s"):
    configlib.check(config)
