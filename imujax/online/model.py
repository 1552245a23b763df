r"""A trained run loaded for inference, and its jitted per-frame wrapper.

Owns `load` (a workdir -> `Checkpoint`: the run record, whose `.model` is
the one source of the model's shape, and the latest checkpoint's params) and
`Model`: raw frames in, probabilities out, the run's saved normaliser and
`step.step` compiled once with the params as constants and every layer's
carries packed into one donated array. `Model`'s interface (channel_names,
class_names, sample_rate_hz, init_state(batch), step(state, x_raw) and the
optional steps(state, frames)) is the one `streamer.Streamer` and the live
page drive, and the one `numpy_model.NumpyModel` and `export.Artifact` offer.

  ckpt = load("/tmp/imujax_default/finetune/masked_reconstruction-s0")
  model = Model(ckpt)
  state = model.init_state(1)
  state, probs = model.step(state, x_raw)   x_raw <float32>[1, C] -> [1, K]
"""

from typing import NamedTuple

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

from imujax import models
from imujax.online import step
from imujax.training import run_record


# The head each fine-tune target kind adds to the encoder (objectives/).
TARGET_HEADS = {"regression": "regressor", "events": "event_detector",
                "prediction": "predictor"}


class Checkpoint(NamedTuple):
  """A run (its record) and the params of one of its checkpoints."""
  record: run_record.RunRecord
  params: dict  # NumPy arrays, `models.init(key, record.model)` layout.
  step: int     # The training step the params are from.

  @property
  def mean(self) -> np.ndarray:
    """<float32>[C]: the normaliser's mean (training subjects only)."""
    return np.asarray(self.record.normalizer["mean"], np.float32)

  @property
  def std(self) -> np.ndarray:
    """<float32>[C]: the normaliser's standard deviation."""
    return np.asarray(self.record.normalizer["std"], np.float32)

  def outputs(self, units=()) -> dict:
    """What the run's heads output per frame, for an artifact's meta.json.

    {"probs": {"names": classes}} for a classifier; {"regression": {"names",
    "units", "target_mean", "target_std"}} (physical units = standardised
    output * target_std + target_mean, the training targets' statistics);
    {"events": {"names", "threshold", "delay_ms"}} (the causal decoder's
    options, `metrics.decode_events`).
    """
    record, out = self.record, {}
    if record.model.num_classes:
      out["probs"] = {"names": list(record.class_names)}
    ft = record.config.get("finetune", {})
    names = [n.strip().removeprefix("labels_").removeprefix("targets_")
             for n in str(ft.get("tracks", "")).replace("+", ",").split(",")
             if n.strip()]
    if "regressor" in self.params:
      norm = record.normalizer
      out["regression"] = {
          "names": names, "units": list(units) or [""] * len(names),
          "target_mean": [float(v) for v in norm["target_mean"]],
          "target_std": [float(v) for v in norm["target_std"]]}
    if "event_detector" in self.params:
      opts = ft.get("events", {})
      out["events"] = {"names": names,
                       "threshold": float(opts.get("threshold", 0.5)),
                       "delay_ms": float(opts.get("delay_ms", 100.))}
    return out


def load(workdir) -> Checkpoint:
  """The record and latest params of the fine-tuned run `workdir`.

  A classifier, or a regression / events / prediction run (its head,
  TARGET_HEADS, is not in model_config: only the encoder's shapes are
  checked against it; `Checkpoint.outputs` describes the regression and
  events heads, which `export` and `stream_pool` stream;
  `stream_targets` scores all three).

  Args:
    workdir: a fine-tuned classifier run (e.g. `<compare
      workdir>/finetune/<objective>-s<seed>` or `/scratch`), holding
      run.json and checkpoints/.

  Raises:
    FileNotFoundError: no run.json (naming the runs a compare folder holds)
      or no checkpoint.
    ValueError: a run without a classifier, regression or events head, or a
      checkpoint whose shapes are not those of the record's model_config.
  """
  path = epath.Path(workdir)
  if not run_record.path(path).exists():
    arms = sorted(p.name for p in path.iterdir()
                  if run_record.path(p).exists()) if path.is_dir() else []
    hint = (f" It holds the runs {arms}: pass one of them, e.g. "
            f"--workdir={path / arms[0]}." if arms else
            " Point it at the workdir of a finished fine-tuning run.")
    raise FileNotFoundError(f"{path} has no {run_record.FILENAME}.{hint}")
  record = run_record.read(path)
  cfg = record.model
  head = TARGET_HEADS.get(record.objective)
  if not cfg.num_classes and head is None:
    raise ValueError(
        f"{path} is a {record.objective} run without a classifier, "
        f"regression or events head ({run_record.FILENAME}: model_config."
        "num_classes is 0); stream a fine-tuned run (its `pretrained` or "
        "`scratch` sibling).")
  # Orbax is only needed here: the live page on an artifact never loads it.
  from imujax.training import checkpoints  # pylint: disable=g-import-not-at-top
  params, latest = checkpoints.restore_params(path)
  params = jax.tree.map(np.asarray, params)
  want = jax.eval_shape(lambda: models.init(jax.random.key(0), cfg))
  got = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
  if not cfg.num_classes:  # A target kind: its head is not in cfg.
    want, got = want["encoder"], got["encoder"] if head in params else {}
  if jax.tree.structure(got) != jax.tree.structure(want) or any(
      g.shape != w.shape for g, w in zip(jax.tree.leaves(got),
                                         jax.tree.leaves(want))):
    raise ValueError(
        f"The checkpoint at step {latest} in {path / 'checkpoints'} does not "
        f"have the shapes of {run_record.path(path)}'s model_config {cfg}; "
        "the workdir mixes two runs: rerun it into a fresh --workdir.")
  return Checkpoint(record, params, int(latest))


class Model:
  """Raw frames in, probabilities out: a run's normaliser + jitted `step`.

  Attributes:
    channel_names, class_names, sample_rate_hz: the run's.
  """

  def __init__(self, ckpt: Checkpoint):
    record = ckpt.record
    self.channel_names = list(record.channel_names)
    self.class_names = list(record.class_names)
    self.sample_rate_hz = float(record.sample_rate_hz)
    cfg = record.model
    if not cfg.num_classes:
      raise ValueError("Model needs a classifier run (model_config."
                       "num_classes is 0): use step.step for other heads.")
    params = jax.tree.map(jnp.asarray, ckpt.params)
    mean, std = jnp.asarray(ckpt.mean), jnp.asarray(ckpt.std)
    leaves, treedef = jax.tree.flatten(step.init_state(cfg, 1))
    shapes = [leaf.shape[1:] for leaf in leaves]
    splits = np.cumsum([leaf.size for leaf in leaves])[:-1]
    # One stream's initial carries, packed; the cell's, which need not be 0.
    self._init_row = np.concatenate(
        [np.asarray(leaf).reshape(1, -1) for leaf in leaves], axis=-1)

    def raw_step(packed, x):
      b = packed.shape[0]
      parts = jnp.split(packed, splits, axis=-1)
      state = jax.tree.unflatten(
          treedef, [p.reshape((b,) + s) for p, s in zip(parts, shapes)])
      state, out = step.step(params, cfg, state, (x - mean) / std)
      packed = jnp.concatenate(
          [leaf.reshape(b, -1) for leaf in jax.tree.leaves(state)], axis=-1)
      return packed, out["probs"]
    # Params are constants of the compiled step and the carries travel as one
    # packed array: each argument costs dispatch time per call, which is most
    # of a small model's step. The state is donated and stays on the device.
    self._step = jax.jit(raw_step, donate_argnums=0)

    def raw_steps(packed, xs):
      def one(p, x):
        p, probs = raw_step(p, x[None])
        return p, probs[0]
      # Straight-line code for the few frames one sample completes: one
      # dispatch instead of one per frame, and no loop to run.
      return jax.lax.scan(one, packed, xs, unroll=True)
    self._steps = jax.jit(raw_steps, donate_argnums=0)

  def init_state(self, batch_size: int = 1) -> jax.Array:
    """<float32>[batch, sum of carry sizes]: every layer's carries packed."""
    # A fresh device buffer per call: `step` donates it.
    return jnp.array(np.repeat(self._init_row, batch_size, axis=0))

  def step(self, state, x_raw: np.ndarray):
    """x_raw <float32>[batch, C] in the run's units -> (state, probs [B, K])."""
    return self._step(state, x_raw)

  def steps(self, state, frames: np.ndarray):
    """Consecutive frames <float32>[n, C] of ONE stream -> (state, [n, K])."""
    return self._steps(state, frames)
