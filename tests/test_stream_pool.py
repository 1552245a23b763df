"""StreamPool: any interleaving of streams' frames == each stream's scan."""

import jax
import numpy as np
import pytest

from imujax import models
from imujax.online import model
from imujax.online import step
from imujax.online import stream_pool
from tests.test_stream import make_checkpoint
from tests.test_stream import make_run


@pytest.fixture(scope="module")
def loaded_run(tmp_path_factory, tfds_dir, watch_data):
  return model.load(make_run(tmp_path_factory, tfds_dir))


def _random_run(cell, layers, layer_norm, adapter_dim=0) -> model.Checkpoint:
  """An initialised (untrained) run with a non-trivial normaliser."""
  cfg = models.ModelConfig(in_dim=6, cell=cell, hidden=16, layers=layers,
                           layer_norm=layer_norm, adapter_dim=adapter_dim,
                           num_classes=5)
  params = models.init(jax.random.key(4), cfg)
  rng = np.random.default_rng(4)
  return make_checkpoint(params, cfg, rng.normal(size=6).astype(np.float32),
                         rng.uniform(0.5, 3., 6).astype(np.float32),
                         [f"c{i}" for i in range(6)],
                         [f"k{i}" for i in range(5)], 50.)


def _scan_probs(run, raw):
  """Per-frame probs of one stream alone: <float32>[T, C] raw -> [T, K]."""
  x = ((raw - run.mean) / run.std).astype(np.float32)[None]
  _, out = step.scan_steps(run.params, run.record.model, x)
  return np.asarray(out["probs"][0])


def _interleave(pool, slots, xs, rng, got):
  """Feeds every stream's frames in random per-call subsets, in order."""
  streams = len(slots)
  nxt = np.zeros(streams, int)
  sizes = []
  while (nxt < len(xs[0])).any():
    live = np.flatnonzero(nxt < len(xs[0]))
    pick = rng.choice(live, size=rng.integers(1, len(live) + 1),
                      replace=False)
    probs = pool.step(slots[pick], np.stack([xs[s][nxt[s]] for s in pick]))
    assert probs.shape == (len(pick), pool.num_classes)
    for row, s in enumerate(pick):
      got[s].append(probs[row])
    nxt[pick] += 1
    sizes.append(len(pick))
  return sizes


@pytest.mark.parametrize("which", ["loaded_lstm", "gru_layer_norm",
                                   "lstm_adapter"])
def test_interleaved_streams_equal_their_scans(which, loaded_run):
  run = {"loaded_lstm": loaded_run,
         "gru_layer_norm": _random_run("gru", 2, True),
         "lstm_adapter": _random_run("lstm", 1, False, adapter_dim=4)}[which]
  rng = np.random.default_rng(0)
  streams, frames, channels = 11, 30, len(run.record.channel_names)
  pool = stream_pool.StreamPool(run, num_streams=16)
  assert pool.warmup(16) == [8, 16]
  # Streams live in scattered slots; slots 16 - 11 = 5 stay idle.
  slots = rng.permutation(16)[:streams]
  xs = (rng.normal(size=(streams, frames, channels)) * run.std
        + run.mean).astype(np.float32)
  got = [[] for _ in range(streams)]
  sizes = _interleave(pool, slots, xs, rng, got)
  # Batches of 1..11 rows: padded to 8 and to 16, some exactly 8.
  assert min(sizes) < 8 < max(sizes)
  for s in range(streams):
    np.testing.assert_allclose(np.stack(got[s]), _scan_probs(run, xs[s]),
                               atol=1e-5)
  # An empty call is a no-op.
  assert pool.step([], np.zeros((0, channels), np.float32)).shape == (
      0, pool.num_classes)


def test_reset_restarts_only_those_streams(loaded_run):
  run = loaded_run
  rng = np.random.default_rng(1)
  pool = stream_pool.StreamPool(run, num_streams=4)
  xs = (rng.normal(size=(4, 40, 6)) * run.std + run.mean).astype(np.float32)
  slots = np.arange(4)
  first = [pool.step(slots, xs[:, t]) for t in range(20)]
  pool.reset([1, 3])
  second = [pool.step(slots, xs[:, t]) for t in range(20, 40)]
  got = np.stack(first + second, axis=1)  # [stream, time, K]
  for s in range(4):
    if s in (1, 3):  # From zero state at frame 20.
      np.testing.assert_allclose(got[s, :20], _scan_probs(run, xs[s, :20]),
                                 atol=1e-5)
      np.testing.assert_allclose(got[s, 20:], _scan_probs(run, xs[s, 20:]),
                                 atol=1e-5)
    else:  # Untouched: one uninterrupted stream.
      np.testing.assert_allclose(got[s], _scan_probs(run, xs[s]), atol=1e-5)


def test_bad_slot_ids_and_frames_raise(loaded_run):
  pool = stream_pool.StreamPool(loaded_run, num_streams=4)
  x = np.zeros((2, 6), np.float32)
  with pytest.raises(ValueError, match=r"slot ids 0\.\.3"):
    pool.step([0, 4], x)  # 4 is the scratch slot: not a stream.
  with pytest.raises(ValueError, match="out of range"):
    pool.step([-1, 0], x)
  for dup in ([2, 2], [2, 0, 2], [0, 1, 2, 3, 1]):  # Also more rows than N.
    with pytest.raises(ValueError, match="repeat a slot"):
      pool.step(dup, np.zeros((len(dup), 6), np.float32))
  with pytest.raises(ValueError, match=r"<int>\[b\]"):
    pool.step([[0, 1]], x)
  with pytest.raises(ValueError, match=r"\[2, 6\].*got shape \[2, 5\]"):
    pool.step([0, 1], np.zeros((2, 5), np.float32))
  with pytest.raises(ValueError, match=r"\[2, 6\].*got shape \[3, 6\]"):
    pool.step([0, 1], np.zeros((3, 6), np.float32))
  with pytest.raises(ValueError, match="out of range"):
    pool.reset([7])


def test_bucket_sizes():
  assert [stream_pool.bucket(b) for b in (0, 1, 7, 8, 9, 16, 17, 1000)] == [
      8, 8, 8, 8, 16, 16, 32, 1024]
