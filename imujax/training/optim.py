"""The optimizer of a phase: AdamW, warmup + cosine, clipping, freezing.

`make_optimizer` is pure optax; `phase_optimizer` reads the fine-tune
protocol (linear probe, frozen lower layers, layer-wise decay) from the
config. The learning rate may be a traced value, so that the members of one
vmapped program can each have their own (`imujax.training.multiseed`).
"""

import types

import jax
import ml_collections
import optax


def make_optimizer(phase: ml_collections.ConfigDict, params, *,
                   frozen_layers: int = 0,
                   layer_decay: float = 1.0) -> optax.GradientTransformation:
  """AdamW with linear warmup + cosine decay and global-norm clipping.

  Weight decay applies to matrices only (not biases or norm scales). Fine-tune
  protocols act on the encoder's layers: the lowest `frozen_layers` get no
  updates (all of them: a linear probe), and with `layer_decay` < 1 encoder
  layer i of L learns at `layer_decay ** (L - i)` times the head's rate. The
  input adapter, when there is one, is new and always learns at full rate;
  the per-modality projection (model.modality_projection) counts as layer 0.
  """
  # The shape of the schedule times the rate, so that the rate may be a
  # traced value (imujax.training.multiseed: one rate per member); optax's schedule
  # branches on its peak value in Python.
  shape = optax.warmup_cosine_decay_schedule(
      init_value=0., peak_value=1.,
      warmup_steps=min(phase.warmup_steps, max(phase.steps - 1, 0)),
      decay_steps=max(phase.steps, 1), end_value=0.01)
  schedule = lambda step: phase.learning_rate * shape(step)  # noqa: E731
  # A callable mask: under multi_transform it sees only its own subtree.
  decay_mask = lambda tree: jax.tree.map(lambda p: p.ndim >= 2, tree)  # noqa: E731

  def adamw(scale):
    return optax.adamw(lambda step: scale * schedule(step),
                       weight_decay=phase.weight_decay, mask=decay_mask)

  num_layers = len([k for k in params.get("encoder", {})
                    if k.startswith("layer_")])

  def label(path, _):
    keys = [getattr(p, "key", None) for p in path]
    if keys[:2] == ["encoder", "modality_projection"]:  # Part of layer 0.
      keys[1] = "layer_0"
    if keys[0] != "encoder" or not str(keys[1]).startswith("layer_"):
      return "1.0"
    i = int(keys[1].split("_")[1])
    if i < frozen_layers:
      return "frozen"
    return repr(float(layer_decay ** (num_layers - i)))

  labels = jax.tree_util.tree_map_with_path(label, params)
  groups = set(jax.tree.leaves(labels))
  clip = optax.clip_by_global_norm(phase.grad_clip)
  if groups == {"1.0"}:
    return optax.chain(clip, adamw(1.0))
  transforms = {g: optax.set_to_zero() if g == "frozen" else adamw(float(g))
                for g in groups}
  return optax.chain(clip, optax.multi_transform(transforms, labels))


def phase_optimizer(config, phase: str, params, hparams: dict | None = None
                    ) -> optax.GradientTransformation:
  """The optimizer of `phase`, with the fine-tune protocol's freezing.

  `hparams` replaces numeric keys of config[phase] (e.g. learning_rate,
  weight_decay) with values that may be traced: imujax.training.multiseed builds one
  optimizer per member inside its vmapped step this way.
  """
  pcfg = config[phase]
  if hparams:
    pcfg = types.SimpleNamespace(**{**pcfg.to_dict(), **hparams})
  if phase != "finetune":
    return make_optimizer(pcfg, params)
  layers = config.model.layers
  frozen = {"full": 0, "linear_probe": layers,
            "freeze_lower": pcfg.freeze_layers}[pcfg.protocol]
  if frozen > layers:
    raise ValueError(f"finetune.freeze_layers={frozen} but the encoder has "
                     f"{layers} layers (model.layers).")
  return make_optimizer(pcfg, params, frozen_layers=frozen,
                        layer_decay=pcfg.layer_decay)
