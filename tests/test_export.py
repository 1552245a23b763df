"""The exported artifact round-trips and matches `step.step`."""

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from imujax.online import model
from imujax.online import step
from tests.conftest import subprocess_env
from tests.test_stream import make_run

pytest.importorskip(
    "flatbuffers", reason="jax.export serialization needs flatbuffers "
    "(pinned in requirements.txt); not installed in this environment.")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tfds_dir, watch_data):
  from imujax.online import export
  run_dir = make_run(tmp_path_factory, tfds_dir)
  out = tmp_path_factory.mktemp("export") / "run.imujax"
  export.main([f"--workdir={run_dir}", f"--out={out}"])
  return run_dir, out


def test_artifact_matches_stream_step(artifact, watch_data):
  from imujax.online import export
  run_dir, path = artifact
  ckpt = model.load(run_dir)
  record, cfg = ckpt.record, ckpt.record.model
  art = export.Artifact.load(path)
  assert art.channel_names == record.channel_names
  assert art.class_names == record.class_names
  assert art.sample_rate_hz == record.sample_rate_hz
  assert art.meta["model_config"] == record.model_config
  assert art.meta["source_step"] == ckpt.step
  raw = watch_data.recordings[2].signals[:60]
  jitted = jax.jit(step.step, static_argnums=1)
  for batch in (1, 3):  # The batch dimension is symbolic.
    x = np.repeat(raw[:, None], batch, axis=1).astype(np.float32)
    x[:, -1] *= 0.5  # Streams differ.
    s_art = art.init_state(batch)
    s_ref = step.init_state(cfg, batch)
    for t in range(len(x)):
      s_art, p_art = art.step(s_art, x[t])
      s_ref, out = jitted(ckpt.params, cfg, s_ref,
                          (x[t] - ckpt.mean) / ckpt.std)
      np.testing.assert_allclose(p_art, out["probs"], atol=1e-5)
    np.testing.assert_allclose(s_art, jax.tree.leaves(s_ref), atol=1e-5)


def test_artifact_loads_without_training_code(artifact):
  _, path = artifact
  code = textwrap.dedent(f"""
      import sys
      import numpy as np
      from imujax.online import export
      art = export.Artifact.load({str(path)!r})
      s, p = art.step(art.init_state(2), np.zeros((2, 6), np.float32))
      assert p.shape == (2, 7), p.shape
      heavy = sorted(m for m in sys.modules if m.split(".")[0] in (
          "flax", "optax", "orbax", "tensorflow_datasets", "tensorflow")
          or m.startswith(("imujax.training", "imujax.cells"))
          or m in ("imujax.models", "imujax.online.stream",
                   "imujax.online.step", "imujax.online.model"))
      assert not heavy, heavy
      print("ok")
      """)
  r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                     text=True, env=subprocess_env(), timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.strip().endswith("ok")


def test_wrong_format_is_a_clear_error(tmp_path):
  import json
  import zipfile
  from imujax.online import export
  bad = tmp_path / "bad.imujax"
  with zipfile.ZipFile(bad, "w") as z:
    z.writestr("meta.json", json.dumps({"format": "other/0"}))
  with pytest.raises(ValueError, match="re-export"):
    export.Artifact.load(bad)


# ------------------------------------ regression and events heads (issue 18)
def _target_checkpoint(kind, watch_data, tracks=("a", "b")):
  """An in-memory regression or events run on the watch channels."""
  import dataclasses
  from imujax import models
  from imujax.data import input_pipeline as ip
  from imujax.objectives import events
  from imujax.objectives import regression
  from imujax.training import run_record
  cfg = models.ModelConfig(in_dim=6, hidden=16, layers=2, cell="lstm")
  opts = {"tracks": tracks}
  head = regression if kind == "regression" else events
  params = {"encoder": models.init_encoder(jax.random.key(0), cfg),
            **head.OBJECTIVE.init_heads(jax.random.key(1), cfg, opts)}
  norm = ip.Normalizer.fit(watch_data.recordings, watch_data.channel_names)
  normalizer = {"mean": norm.mean.tolist(), "std": norm.std.tolist()}
  finetune = {"tracks": "+".join(tracks)}
  if kind == "regression":
    normalizer.update(target_mean=[1.2, -3.], target_std=[0.25, 4.])
  else:
    finetune["events"] = {"threshold": 0.5, "delay_ms": 100.}
  record = run_record.RunRecord(
      phase="finetune", objective=kind, dataset="in_memory",
      config={"finetune": finetune}, model_config=dataclasses.asdict(cfg),
      splits={}, labeled_recordings=[],
      channel_names=list(watch_data.channel_names), class_names=[],
      sample_rate_hz=float(watch_data.sample_rate_hz),
      normalizer=normalizer, source={})
  return model.Checkpoint(record, jax.tree.map(np.asarray, params), 7), norm


def _whole_recording(watch_data, norm):
  raw = watch_data.recordings[0].signals
  return raw, norm(raw)[None].astype(np.float32)


def test_streamed_regression_equals_the_scan_in_physical_units(tmp_path,
                                                               watch_data):
  import jax.numpy as jnp
  from imujax.objectives import regression
  from imujax.online import export
  ckpt, norm = _target_checkpoint("regression", watch_data)
  meta = export.export_checkpoint(ckpt, tmp_path / "r.imujax",
                                  units=("m/s", "s"))
  assert meta["format"] == export.FORMAT
  art = export.Artifact.load(tmp_path / "r.imujax")
  assert art.outputs["regression"]["names"] == ["a", "b"]
  assert art.outputs["regression"]["units"] == ["m/s", "s"]
  raw, x = _whole_recording(watch_data, norm)
  stats = {k: jnp.asarray(ckpt.record.normalizer[k])
           for k in ("target_mean", "target_std")}
  scanned = np.asarray(regression.predict(
      ckpt.params, {"signals": x}, stats, cfg=ckpt.record.model,
      opts={}))[0]
  state, got = art.init_state(1), []
  for frame in raw:
    state, out = art.step_outputs(state, frame[None])
    got.append(np.asarray(out["regression"])[0])
  got = np.asarray(got)
  print(f"regression: {len(raw)} frames, max |stream - scan| = "
        f"{np.abs(got - scanned).max():.2e}")
  np.testing.assert_allclose(got, scanned, atol=1e-5)
  assert abs(got[:, 1].std() - scanned[:, 1].std()) < 1e-5
  with pytest.raises(ValueError, match="no classifier head.*step_outputs"):
    art.step(art.init_state(1), raw[:1])


def test_exported_events_decode_online_as_offline(tmp_path, watch_data):
  from imujax import metrics
  from imujax.objectives import events
  from imujax.online import export
  ckpt, norm = _target_checkpoint("events", watch_data)
  raw, x = _whole_recording(watch_data, norm)
  prob = np.asarray(events.predict(ckpt.params, {"signals": x}, {},
                                   cfg=ckpt.record.model, opts={}))[0]
  # Random heads: put the threshold where a random head makes events.
  threshold = float(np.quantile(prob[:, 0], 0.8))
  ckpt.record.config["finetune"]["events"]["threshold"] = threshold
  export.export_checkpoint(ckpt, tmp_path / "e.imujax")
  art = export.Artifact.load(tmp_path / "e.imujax")
  ev = art.outputs["events"]
  assert ev["names"] == ["a", "b"] and ev["threshold"] == threshold
  delay = events.frames(ev["delay_ms"], art.sample_rate_hz)
  decoder = art.event_decoder(1)
  assert decoder.delay == delay == 5  # 100 ms at 50 Hz.
  state, online, streamed = art.init_state(1), [], []
  for t, frame in enumerate(raw):
    state, out = art.step_outputs(state, frame[None])
    streamed.append(np.asarray(out["event_probs"])[0])
    online += [(j, peak, t) for _, j, peak in decoder.push(
        out["event_probs"])]
  online += [(j, peak, len(raw) - 1) for _, j, peak in decoder.flush()]
  np.testing.assert_allclose(np.asarray(streamed), prob, atol=1e-5)
  for j in range(2):
    peaks, fired = metrics.decode_events(prob[:, j], threshold, delay)
    mine = sorted((p, t) for k, p, t in online if k == j)
    assert [p for p, _ in mine] == peaks.tolist()
    assert [t for _, t in mine] == fired.tolist()
    lag = np.asarray([t - p for p, t in mine])
    assert (lag >= 0).all() and (lag <= delay).all()
  assert len(online) >= 8
  print(f"events: {len(online)} detections online == offline, delay <= "
        f"{delay} frames")


def test_format_2_artifacts_still_load(tmp_path, watch_data):
  """A classifier artifact as the previous version wrote it (probs out)."""
  import io
  import json
  import zipfile
  from imujax import models
  from imujax.online import export
  cfg = models.ModelConfig(in_dim=6, hidden=8, layers=1, cell="gru",
                           num_classes=3)
  params = {"model": jax.tree.map(np.asarray,
                                  models.init(jax.random.key(2), cfg)),
            "mean": np.zeros(6, np.float32), "std": np.ones(6, np.float32)}
  initial, treedef = jax.tree.flatten(step.init_state(cfg, 1))

  def step_fn(p, state, x):
    nested, out = step.step(p["model"], cfg,
                            jax.tree.unflatten(treedef, list(state)), x)
    return tuple(jax.tree.leaves(nested)), out["probs"]
  b, = jax.export.symbolic_shape("b")
  spec = lambda *s: jax.ShapeDtypeStruct(s, np.float32)  # noqa: E731
  exported = jax.export.export(jax.jit(step_fn), platforms=["cpu"])(
      jax.tree.map(lambda a: spec(*a.shape), params),
      tuple(spec(b, *leaf.shape[1:]) for leaf in initial), spec(b, 6))
  buf = io.BytesIO()
  np.savez(buf, **export._flatten(params))  # pylint: disable=protected-access
  meta = {"format": "imujax-stream-artifact/2", "channel_names": list("abcdef"),
          "class_names": ["x", "y", "z"], "sample_rate_hz": 50.,
          "model_config": {}, "state_shapes": [[8]],
          "initial_state": [np.zeros(8).tolist()]}
  with zipfile.ZipFile(tmp_path / "old.imujax", "w") as z:
    z.writestr("step.jaxexport", bytes(exported.serialize()))
    z.writestr("params.npz", buf.getvalue())
    z.writestr("meta.json", json.dumps(meta))
  art = export.Artifact.load(tmp_path / "old.imujax")
  x = np.ones((2, 6), np.float32)
  _, probs = art.step(art.init_state(2), x)
  _, ref = step.step(params["model"], cfg, step.init_state(cfg, 2), x)
  np.testing.assert_allclose(probs, ref["probs"], atol=1e-6)
  assert art.outputs == {"probs": {"names": ["x", "y", "z"]}}
