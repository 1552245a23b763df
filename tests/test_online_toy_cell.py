"""A cell registered from this file trains, streams and exports unchanged.

The online code takes the model's shape from the run record (or the
artifact's meta.json) and the cell from `cells.get(cfg.cell)`, so a cell it
has never seen must stream frame by frame exactly as the training-time scan
runs it, and export to an artifact that needs no cell code to load.
"""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imujax import cells
from imujax import models
from imujax.online import model
from imujax.online import numpy_model
from imujax.online import step
from imujax.online import stream
from imujax.online import stream_pool
from imujax.online import streamer
from imujax.training import loop
from imujax.training import run_record
from tests.conftest import REPO
from tests.conftest import subprocess_env

TOY = "toy_diagonal_linear"


def _toy_init(key, in_dim: int, hidden: int) -> cells.Params:
  k_w, k_a = jax.random.split(key)
  return {"w": jax.nn.initializers.lecun_normal()(k_w, (in_dim, hidden)),
          # |a| < 1: a stable recurrence.
          "a": jax.random.uniform(k_a, (hidden,), minval=0.5, maxval=0.95),
          "b": jnp.zeros((hidden,), jnp.float32)}


def _toy_initial_carry(batch: int, hidden: int) -> jax.Array:
  # Not zeros: online code that restarts a stream with zeros instead of the
  # cell's own initial carry disagrees with the scan.
  return jnp.full((batch, hidden), 0.5, jnp.float32)


def _toy_step(params: cells.Params, h: jax.Array, x: jax.Array):
  """h' = a * h + x W + b.  x: [B, C], h: [B, H] -> (h', h')."""
  h = params["a"] * h + x @ params["w"] + params["b"]
  return h, h


@pytest.fixture(scope="module", autouse=True)
def toy_cell():
  cells.register(TOY, cells.Cell(_toy_init, _toy_initial_carry, _toy_step))
  return TOY


@pytest.mark.parametrize("layers,layer_norm,adapter_dim,reconstruct", [
    (1, False, 0, False), (2, True, 0, True), (2, True, 5, False)])
def test_step_frame_by_frame_equals_the_whole_sequence(layers, layer_norm,
                                                       adapter_dim,
                                                       reconstruct):
  cfg = models.ModelConfig(in_dim=6, cell=TOY, hidden=12, layers=layers,
                           layer_norm=layer_norm, adapter_dim=adapter_dim,
                           num_classes=4, reconstruct=reconstruct)
  params = models.init(jax.random.key(0), cfg)
  x = jax.random.normal(jax.random.key(1), (3, 50, 6))
  h, final = models.encode(params["encoder"], cfg, x)
  jitted = jax.jit(step.step, static_argnums=1, donate_argnums=2)
  state, outs = step.init_state(cfg, 3), []
  for t in range(x.shape[1]):
    state, out = jitted(params, cfg, state, x[:, t])
    outs.append(out)
  got = jax.tree.map(lambda *a: jnp.stack(a, axis=1), *outs)
  np.testing.assert_allclose(got["logits"],
                             models.classify_sequence(params, cfg, x),
                             atol=1e-5)
  np.testing.assert_allclose(got["probs"].sum(-1), 1., atol=1e-5)
  if reconstruct:
    np.testing.assert_allclose(got["reconstruction"],
                               models.reconstruct(params, h), atol=1e-5)
  else:
    assert "reconstruction" not in got
  np.testing.assert_allclose(jax.tree.leaves(state), jax.tree.leaves(final),
                             atol=1e-5)
  # The scanned twin agrees too.
  _, scanned = step.scan_steps(params, cfg, x)
  np.testing.assert_allclose(scanned["logits"], got["logits"], atol=1e-5)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, tfds_dir, watch_data):
  """A fine-tuned 2-layer run of the toy cell (configs/test.py, 20 steps)."""
  sys.path.insert(0, str(REPO / "configs"))
  try:
    import test as test_config  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(str(REPO / "configs"))
  config = test_config.get_config()
  config.mode = "finetune"
  config.data.data_dir = tfds_dir
  config.model.cell = TOY
  config.model.layers = 2
  workdir = tmp_path_factory.mktemp("toy_run") / "run"
  loop.train_and_evaluate(config, str(workdir), "finetune")
  return str(workdir)


def _reference_probs(ckpt, raw):
  """Offline probs <float32>[T, K] of raw frames [T, C] (normalised here)."""
  x = ((raw - ckpt.mean) / ckpt.std).astype(np.float32)[None]
  logits = models.classify_sequence(ckpt.params, ckpt.record.model, x)
  return np.asarray(jax.nn.softmax(logits)[0])


def test_a_trained_toy_run_streams_like_its_scan(toy_run, watch_data):
  ckpt = model.load(toy_run)
  cfg = ckpt.record.model
  assert cfg == run_record.read(toy_run).model and cfg.cell == TOY
  raw = watch_data.recordings[3].signals[:120]
  ref = _reference_probs(ckpt, raw)

  # The packed, donated state of the jitted Model, through a Streamer, with
  # a gap that restarts the stream from the cell's initial carry.
  one = streamer.Streamer(model.Model(ckpt), ckpt.record.channel_names,
                          gap_policy="reset")
  rate = ckpt.record.sample_rate_hz
  outs = []
  for i, frame in enumerate(raw):
    outs += one.push(i / rate + (5. if i >= 60 else 0.), frame)
  got = np.stack([o.probs for o in outs])
  assert [i for i, o in enumerate(outs) if o.reset] == [60]
  np.testing.assert_allclose(got[:60], ref[:60], atol=1e-5)
  np.testing.assert_allclose(got[60:], _reference_probs(ckpt, raw[60:]),
                             atol=1e-5)

  # Many streams: a reset slot restarts from the cell's initial carry too.
  pool = stream_pool.StreamPool(ckpt, num_streams=3)
  both = np.stack([raw, raw[::-1]], axis=1).astype(np.float32)  # [T, 2, C]
  rows = []
  for t in range(len(raw)):
    if t == 60:
      pool.reset([2])
    rows.append(pool.step([0, 2], both[t]))
  rows = np.stack(rows, axis=1)  # [2, T, K]
  np.testing.assert_allclose(rows[0], ref, atol=1e-5)
  np.testing.assert_allclose(rows[1, 60:],
                             _reference_probs(ckpt, raw[::-1][60:]),
                             atol=1e-5)

  # Streaming evaluation: recordings back to back, scored from the scan.
  recs = watch_data.recordings[:2]
  result = stream.evaluate_stream(ckpt, recs)
  labels = np.concatenate([r.labels for r in recs])
  offline = _reference_probs(ckpt, np.concatenate([r.signals for r in recs]))
  assert result["raw"] == stream.stream_metrics(
      labels, offline.argmax(-1), rate, cfg.num_classes)

  # The NumPy twin implements the built-in cells only, and says so.
  with pytest.raises(ValueError, match=f"{TOY}.*model.Model"):
    numpy_model.NumpyModel(ckpt)


def test_a_trained_toy_run_exports_and_loads_without_the_cell(
    toy_run, watch_data, tmp_path):
  pytest.importorskip(
      "flatbuffers", reason="jax.export serialization needs flatbuffers "
      "(pinned in requirements.txt); not installed in this environment.")
  from imujax.online import export  # pylint: disable=g-import-not-at-top
  ckpt = model.load(toy_run)
  path = tmp_path / "toy.imujax"
  meta = export.export_run(toy_run, str(path))
  assert meta["model_config"] == ckpt.record.model_config
  raw = watch_data.recordings[4].signals[:40].astype(np.float32)
  x = np.stack([raw, raw * 0.5], axis=1)  # [T, 2 streams, C]
  ref = np.stack([_reference_probs(ckpt, x[:, i]) for i in range(2)], axis=1)

  art = export.Artifact.load(path)
  np.testing.assert_allclose(art.init_state(2), [np.full((2, 16), 0.5)] * 2)
  state, got = art.init_state(2), []
  for frame in x:
    state, probs = art.step(state, frame)
    got.append(np.asarray(probs))
  np.testing.assert_allclose(np.stack(got), ref, atol=1e-5)

  # A fresh process where the toy cell was never registered runs it too.
  frames = tmp_path / "frames.npy"
  np.save(frames, x)
  code = textwrap.dedent(f"""
      import json, sys
      import numpy as np
      from imujax.online import export
      art = export.Artifact.load({str(path)!r})
      state, got = art.init_state(2), []
      for frame in np.load({str(frames)!r}):
        state, probs = art.step(state, frame)
        got.append(np.asarray(probs).tolist())
      assert "imujax.cells" not in sys.modules
      print(json.dumps(got))
      """)
  r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                     text=True, env=subprocess_env(), timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  np.testing.assert_allclose(json.loads(r.stdout.strip().splitlines()[-1]),
                             ref, atol=1e-5)
