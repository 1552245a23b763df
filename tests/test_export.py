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
