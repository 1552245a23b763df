r"""A self-contained inference artifact of a classifier run, and its loader.

  python -m imujax.online.export --workdir=/tmp/imujax_default/pretrained \
      --out=/tmp/watch.imujax

writes one zip file:

* `step.jaxexport`: `jax.export` serialization of
  `step(params, state, x) -> (state, probs)` with the run's normalisation
  inside, so `x` is a raw frame in the run's units. Shapes: `x` is
  <float32>[b, C], `state` a tuple of <float32>[b, H] arrays (one per layer,
  (c, h) pairs flattened for an LSTM), `probs` <float32>[b, K]; the batch `b`
  is a SYMBOLIC dimension: one artifact serves any number of streams.
  Serialized for the CPU platform.
* `params.npz`: the params and the normaliser (`mean`, `std`), keys joined
  by "/" ("model/encoder/layer_0/cell/w_ih").
* `meta.json`: channel names, class names, sample rate, state size, the
  source run and step.

Loading needs only jax and numpy (`Artifact.load`; this module imports
nothing else at the top, and the test checks that no training code, Orbax or
Flax gets imported). The loaded artifact offers the interface of
`stream.Model`, so the live demo and `stream.Streamer` run it unchanged.
"""

import io
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = "imujax-stream-artifact/1"


def _flatten(tree, prefix="") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    else:
      out[prefix + k] = np.asarray(v)
  return out


def _unflatten(flat: dict) -> dict:
  tree = {}
  for key, v in flat.items():
    *path, leaf = key.split("/")
    node = tree
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


class Artifact:
  """An exported step with its params: the `stream.Model` interface."""

  def __init__(self, exported, params: dict, meta: dict):
    self.meta = meta
    self.channel_names = list(meta["channel_names"])
    self.class_names = list(meta["class_names"])
    self.sample_rate_hz = float(meta["sample_rate_hz"])
    self.exported = exported
    self.params = jax.tree.map(jnp.asarray, params)
    # Params as constants of one compiled call: per-frame calls pass only the
    # state and the frame.
    self._step = jax.jit(lambda s, x: exported.call(self.params, s, x),
                         donate_argnums=0)

  @classmethod
  def load(cls, path) -> "Artifact":
    with zipfile.ZipFile(path) as z:
      meta = json.loads(z.read("meta.json"))
      if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected "
                         f"{FORMAT!r}; re-export it with this version's "
                         "`python -m imujax.online.export`.")
      exported = jax.export.deserialize(bytearray(z.read("step.jaxexport")))
      with np.load(io.BytesIO(z.read("params.npz"))) as f:
        params = _unflatten({k: f[k] for k in f.files})
    return cls(exported, params, meta)

  def init_state(self, batch_size: int = 1) -> tuple:
    return tuple(jnp.zeros((batch_size, self.meta["hidden"]), jnp.float32)
                 for _ in range(self.meta["state_arrays"]))

  def step(self, state, x_raw):
    """x_raw <float32>[batch, C] raw frames -> (state, probs [batch, K])."""
    return self._step(state, np.asarray(x_raw, np.float32))


def _step_fn(params, state: tuple, x):
  """The exported function: flat state, raw frames, probabilities."""
  from imujax.online import stream

  model = params["model"]
  cfg = stream.model_config(model)
  per = 2 if cfg.cell == "lstm" else 1
  nested = [tuple(state[i * per:(i + 1) * per]) if per == 2 else state[i]
            for i in range(cfg.layers)]
  nested, out = stream.step(model, nested,
                            (x - params["mean"]) / params["std"])
  flat = tuple(a for c in nested for a in (c if per == 2 else (c,)))
  return flat, out["probs"]


def export_run(workdir: str, out: str) -> dict:
  """Writes the artifact of the run in `workdir` to `out`; returns its meta."""
  from imujax.online import stream  # Exporting needs the model code; loading doesn't.

  run = stream.load_run(workdir)
  cfg = run.config
  params = {"model": run.params, "mean": run.mean, "std": run.std}
  state_arrays = cfg.layers * (2 if cfg.cell == "lstm" else 1)
  b, = jax.export.symbolic_shape("b")
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
  exported = jax.export.export(jax.jit(_step_fn), platforms=["cpu"])(
      jax.tree.map(lambda a: spec(*a.shape), params),
      tuple(spec(b, cfg.hidden) for _ in range(state_arrays)),
      spec(b, cfg.in_dim))
  meta = {
      "format": FORMAT, "channel_names": run.channel_names,
      "class_names": run.class_names, "sample_rate_hz": run.sample_rate_hz,
      "hidden": cfg.hidden, "state_arrays": state_arrays,
      "model_config": {k: getattr(cfg, k) for k in (
          "in_dim", "cell", "hidden", "layers", "layer_norm", "num_classes")},
      "source_run": str(workdir), "source_step": run.step,
      "batch": "symbolic dimension b",
  }
  buf = io.BytesIO()
  np.savez(buf, **_flatten(params))
  with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("step.jaxexport", bytes(exported.serialize()))
    z.writestr("params.npz", buf.getvalue())
    z.writestr("meta.json", json.dumps(meta, indent=1))
  return meta


def main(argv=None):
  import argparse

  p = argparse.ArgumentParser(prog="python -m imujax.online.export",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="A fine-tuned run.")
  p.add_argument("--out", required=True, help="The artifact file to write.")
  args = p.parse_args(argv)
  meta = export_run(args.workdir, args.out)
  print(f"Wrote {args.out}: {meta['model_config']}, "
        f"{len(meta['channel_names'])} channels at {meta['sample_rate_hz']} Hz"
        f", classes {meta['class_names']}; batch is symbolic.")


if __name__ == "__main__":
  main()
