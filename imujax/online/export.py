r"""A self-contained inference artifact of a fine-tuned run, and its loader.

  python -m imujax.online.export --workdir=/tmp/imujax_default/finetune/masked_reconstruction-s0 \
      --out=/tmp/watch.imujax

writes one zip file:

Owns the artifact's format, writing it (`export_run`, `export_checkpoint`)
and loading it (`Artifact`). The artifact is one zip file:

* `step.jaxexport`: `jax.export` serialization of
  `step(params, state, x) -> (state, outputs)` with the run's normalisation
  inside, so `x` is a raw frame in the run's units. Shapes: `x` is
  <float32>[b, C], `state` the tuple of the leaves of every layer's carry
  (`jax.tree.leaves` of `step.init_state`: (c, h) per layer for an LSTM),
  each <float32>[b, ...]; `outputs` a dict of the run's heads: "probs"
  <float32>[b, K] (classifier), "regression" [b, R] in the targets'
  physical units (un-standardised inside with the training targets' mean
  and sd, `params.npz` target_mean / target_std), "event_probs" [b, E]
  (events; decode them causally with `Artifact.event_decoder`, the online
  `metrics.decode_events`: a detection at most delay_ms after its peak).
  Format /2 (a classifier's step returning probs) still loads; the batch
  `b` is a
  SYMBOLIC dimension: one artifact serves any number of streams. Serialized
  for the CPU platform.
* `params.npz`: the params and the normaliser (`mean`, `std`), keys joined
  by "/" ("model/encoder/layer_0/cell/w_ih").
* `meta.json`: channel names, class names, sample rate, `outputs` (each
  head's track names; regression's units and statistics; the event
  decoder's threshold and delay_ms), the run's whole
  `model_config` (the model's shape, as run.json states it), the state
  leaves' shapes and one stream's initial carry (`initial_state`: the cell's,
  which need not be zeros), the source run and step.

The model's shape comes from the run record when exporting and from
`meta.json` after, never from the params. Loading needs only jax and numpy
(`Artifact.load`; this module imports nothing else at the top, and the test
checks that no training code, cell, Orbax or Flax gets imported): the cell's
step is inside the serialized function. The loaded artifact offers the
interface of `model.Model`, so the live demo and `streamer.Streamer` run it
unchanged.
"""

import dataclasses
import io
import json
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

# /2: the state is any cell's carry leaves, described in meta.json.
# /3: the step returns a dict of outputs (meta.json "outputs"): "probs",
# "regression" (physical units), "event_probs". /2 files still load.
FORMAT = "imujax-stream-artifact/3"
READABLE = ("imujax-stream-artifact/2", FORMAT)


class EventDecoder:
  """`metrics.decode_events` one frame at a time, for `b` streams x E tracks.

  push(p) takes <float>[b, E] probabilities of the next frame and returns
  the detections decided at it: a list of (stream, track, peak frame), the
  peak at most `delay` frames back. `flush()` ends the streams (an open
  candidate fires at the last frame, as offline). Same decisions as
  `metrics.decode_events(prob[:, s, e], threshold, delay)`.
  """

  def __init__(self, threshold: float, delay: int, shape: tuple):
    self.threshold, self.delay = float(threshold), int(delay)
    self.best = np.full(shape, -1.)
    self.best_at = np.full(shape, -1, np.int64)
    self.armed = np.ones(shape, bool)
    self.t = -1

  def push(self, prob) -> list:
    p = np.asarray(prob, np.float64)
    self.t += 1
    better = self.armed & (p >= self.threshold) & (p > self.best)
    self.best = np.where(better, p, self.best)
    self.best_at = np.where(better, self.t, self.best_at)
    fire = (self.best_at >= 0) & ((p < self.threshold)
                                  | (self.t - self.best_at >= self.delay))
    out = [(int(i), int(j), int(self.best_at[i, j]))
           for i, j in zip(*np.nonzero(fire))]
    self.best = np.where(fire, -1., self.best)
    self.best_at = np.where(fire, -1, self.best_at)
    self.armed = (self.armed & ~fire) | (p < self.threshold)
    return out

  def flush(self, stream: int | None = None) -> list:
    """Fires the open candidates (of one stream, or all) and resets them."""
    rows = range(self.best.shape[0]) if stream is None else [stream]
    out = [(i, int(j), int(self.best_at[i, j])) for i in rows
           for j in np.flatnonzero(self.best_at[i] >= 0)]
    for i in rows:
      self.best[i], self.best_at[i], self.armed[i] = -1., -1, True
    return out


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
  """An exported step with its params: the `model.Model` interface.

  Attributes:
    meta: meta.json; meta["model_config"] is the model's shape.
    channel_names, class_names, sample_rate_hz: the run's.
  """

  def __init__(self, exported, params: dict, meta: dict):
    self.meta = meta
    self.channel_names = list(meta["channel_names"])
    self.class_names = list(meta["class_names"])
    self.sample_rate_hz = float(meta["sample_rate_hz"])
    # Format /2 artifacts are classifiers whose step returns the probs.
    self.outputs = meta.get("outputs") or {
        "probs": {"names": self.class_names}}
    self.exported = exported
    self.params = jax.tree.map(jnp.asarray, params)
    old = meta["format"] != FORMAT
    # Params as constants of one compiled call: per-frame calls pass only the
    # state and the frame.
    self._step = jax.jit(
        lambda s, x: (lambda r: (r[0], {"probs": r[1]}) if old else r)(
            exported.call(self.params, s, x)), donate_argnums=0)

  @classmethod
  def load(cls, path) -> "Artifact":
    with zipfile.ZipFile(path) as z:
      meta = json.loads(z.read("meta.json"))
      if meta.get("format") not in READABLE:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected "
                         f"one of {READABLE}; re-export it with this "
                         "version's `python -m imujax.online.export`.")
      exported = jax.export.deserialize(bytearray(z.read("step.jaxexport")))
      with np.load(io.BytesIO(z.read("params.npz"))) as f:
        params = _unflatten({k: f[k] for k in f.files})
    return cls(exported, params, meta)

  def init_state(self, batch_size: int = 1) -> tuple:
    """The initial carries of `batch_size` streams: leaves <float32>[b, ...]."""
    return tuple(
        jnp.array(np.broadcast_to(np.asarray(row, np.float32).reshape(shape),
                                  (batch_size, *shape)))
        for row, shape in zip(self.meta["initial_state"],
                              self.meta["state_shapes"]))

  def step(self, state, x_raw):
    """x_raw <float32>[batch, C] raw frames -> (state, probs [batch, K])."""
    if "probs" not in self.outputs:
      raise ValueError(
          f"This artifact has no classifier head (its outputs are "
          f"{sorted(self.outputs)}): call step_outputs(state, x_raw).")
    state, out = self.step_outputs(state, x_raw)
    return state, out["probs"]

  def step_outputs(self, state, x_raw):
    """x_raw <float32>[batch, C] -> (state, {"probs" [b, K], "regression"
    [b, R] in the targets' units, "event_probs" [b, E]}: those it has)."""
    return self._step(state, np.asarray(x_raw, np.float32))

  def event_decoder(self, batch_size: int = 1) -> EventDecoder:
    """The causal decoder of the events head, for `batch_size` streams."""
    ev = self.outputs.get("events")
    if ev is None:
      raise ValueError("This artifact has no events head (meta.json outputs: "
                       f"{sorted(self.outputs)}).")
    delay = int(np.floor(ev["delay_ms"] * self.sample_rate_hz / 1000. + 1e-9))
    return EventDecoder(ev["threshold"], delay,
                        (batch_size, len(ev["names"])))


def export_checkpoint(ckpt, out: str, source: str = "",
                      units=()) -> dict:
  """Writes the artifact of `ckpt` (a `model.Checkpoint`); returns its meta.

  Args:
    ckpt: the run record and params; its record's `model` is the shape.
    out: the artifact file to write.
    source: where the run came from, for meta.json (its workdir).
    units: a regression run's target units, in finetune.tracks order.
  """
  # Exporting needs the model code; loading doesn't.
  from imujax.online import step  # pylint: disable=g-import-not-at-top

  cfg = ckpt.record.model
  outputs = ckpt.outputs(units)
  if not outputs:
    raise ValueError("Only classifier, regression and events runs export "
                     "(run.json: model_config.num_classes is 0 and the "
                     "params hold no regressor or event_detector head).")
  initial, treedef = jax.tree.flatten(step.init_state(cfg, 1))

  def step_fn(params, state: tuple, x):
    """Flat state leaves and raw frames -> (flat state, outputs)."""
    nested = jax.tree.unflatten(treedef, list(state))
    nested, out = step.step(params["model"], cfg, nested,
                            (x - params["mean"]) / params["std"])
    kept = {k: out[k] for k in ("probs", "event_probs") if k in out}
    if "regression" in out:  # Un-standardised: the targets' units.
      kept["regression"] = (out["regression"] * params["target_std"]
                            + params["target_mean"])
    return tuple(jax.tree.leaves(nested)), kept

  params = {"model": ckpt.params, "mean": ckpt.mean, "std": ckpt.std}
  if "regression" in outputs:
    for k in ("target_mean", "target_std"):
      params[k] = np.asarray(outputs["regression"][k], np.float32)
  b, = jax.export.symbolic_shape("b")
  spec = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
  exported = jax.export.export(jax.jit(step_fn), platforms=["cpu"])(
      jax.tree.map(lambda a: spec(*np.shape(a)), params),
      tuple(spec(b, *leaf.shape[1:]) for leaf in initial),
      spec(b, cfg.in_dim))
  record = ckpt.record
  meta = {
      "format": FORMAT, "channel_names": list(record.channel_names),
      "class_names": list(record.class_names),
      "sample_rate_hz": float(record.sample_rate_hz),
      "model_config": dataclasses.asdict(cfg),
      "state_shapes": [list(leaf.shape[1:]) for leaf in initial],
      "initial_state": [np.asarray(leaf[0]).ravel().tolist()
                        for leaf in initial],
      "outputs": outputs,
      "source_run": source, "source_step": int(ckpt.step),
      "batch": "symbolic dimension b",
  }
  buf = io.BytesIO()
  np.savez(buf, **_flatten(params))
  with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("step.jaxexport", bytes(exported.serialize()))
    z.writestr("params.npz", buf.getvalue())
    z.writestr("meta.json", json.dumps(meta, indent=1))
  return meta


def export_run(workdir: str, out: str) -> dict:
  """Writes the artifact of the run in `workdir` to `out`; returns its meta."""
  from imujax.online import model  # pylint: disable=g-import-not-at-top

  ckpt = model.load(workdir)
  units = ()
  if "regressor" in ckpt.params:
    try:  # The units the regression run scored in (its test summary).
      with open(f"{workdir}/summary.json") as f:
        per = json.load(f)["test"]["per_target"]
      units = [per[n]["unit"]
               for n in ckpt.outputs()["regression"]["names"]]
    except (OSError, KeyError, ValueError):
      units = ()
  return export_checkpoint(ckpt, out, source=str(workdir), units=units)


def main(argv=None):
  import argparse

  p = argparse.ArgumentParser(prog="python -m imujax.online.export",
                              description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True, help="A fine-tuned run.")
  p.add_argument("--out", required=True, help="The artifact file to write.")
  args = p.parse_args(argv)
  meta = export_run(args.workdir, args.out)
  cfg = meta["model_config"]
  heads = "; ".join(f"{k} {v['names']}" for k, v in meta["outputs"].items())
  print(f"Wrote {args.out}: {cfg['cell']} {cfg['layers']}x{cfg['hidden']}, "
        f"{len(meta['channel_names'])} channels at {meta['sample_rate_hz']} Hz"
        f", outputs {heads}; batch is symbolic.")


if __name__ == "__main__":
  main()
