"""Stacked causal recurrent encoder and per-frame heads as pure init / apply.

Parameters are plain nested dicts:

  {"encoder": {"layer_0": {"cell": {...}, "norm": {"scale", "bias"}}, ...,
               "adapter": {"w": [C, A], "b": [A]},  # when adapter_dim > 0
               # when modality_projection = d > 0, per distinct modality m
               # (C_m of its channels); the first layer then takes M x d:
               "modality_projection": {m: {"w": [C_m, d], "b": [d],
                                           "norm": {"scale", "bias"}}}},
   "classifier": {"w": [H, K], "b": [K]},        # when num_classes > 0
   "reconstructor": {"w": [H, C], "b": [C]}}     # when reconstruct is True

With `residual`, layers 1, 2, ... add their input to their output before
the layer norm (post-norm, so every layer's output stays normalised as
without it); the parameter tree is the same.

Causal by construction: every layer is a forward recurrence and everything
else (layer norm, dropout, heads) acts on one frame at a time, so outputs at
frame t depend on inputs up to t only. `encoder_step` runs the very same
parameters one frame at a time for streaming.
"""

import dataclasses
import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp

from imujax import cells

Params = dict[str, Any]


# The ModelConfig fields a pre-trained encoder's params and maths depend on
# (besides its input channels): a fine-tune from it must have the same.
ENCODER_FIELDS = ("cell", "hidden", "layers", "layer_norm", "residual",
                  "modality_projection")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Hashable description of a model's shape (a static jit argument)."""
  in_dim: int
  cell: str = "lstm"
  hidden: int = 128
  layers: int = 2
  dropout: float = 0.0     # Between layers, training only.
  layer_norm: bool = True  # Per-frame layer norm on each layer's output.
  num_classes: int = 0     # 0: no classification head.
  reconstruct: bool = False  # Per-frame linear head back to in_dim.
  unroll: int = 1          # lax.scan unroll factor.
  # > 0: a learned per-frame linear map from in_dim input channels to the
  # adapter_dim channels a pre-trained first layer expects (transfer between
  # datasets whose channels differ).
  adapter_dim: int = 0
  # Residual connections around every layer after the first (whose widths
  # always match: hidden -> hidden), as the minGRU / LRU papers stack their
  # cells: h = norm(h + layer(dropout(h))) (norm(...) only if layer_norm).
  # The first layer (input channels -> hidden) never has one, even when
  # in_dim == hidden: no projection, so the params are those without it.
  residual: bool = False
  # Training only (with a dropout rng): per sequence, with this probability,
  # every input channel of ONE modality, drawn uniformly among the distinct
  # `modalities`, is set to 0, the normaliser's mean: the model learns to
  # work on when a modality is missing at run time (the streamer then feeds
  # that modality as 0 too: online/modality_gaps.py). 0 = off.
  modality_dropout: float = 0.0
  modalities: Optional[tuple] = None  # Per input channel (modality.of).
  # d > 0: each modality's channels get their own per-frame linear map to d
  # features and layer norm (`project_modalities`), so 32 pressure cells
  # cannot drown 3 gyro channels; the first layer takes the M x d
  # embeddings concatenated in sorted-modality order. Needs `modalities`.
  # A missing modality still enters as 0 (the mean): its embedding is then
  # the layer norm of the bias, a learned constant. 0 = off (params and
  # program exactly as without it).
  modality_projection: int = 0

  def __post_init__(self):
    if self.modalities is not None:  # A list read back from run.json.
      object.__setattr__(self, "modalities", tuple(self.modalities))
    d = self.modality_projection
    if d < 0:
      raise ValueError(f"model.modality_projection={d} must be >= 0 "
                       "(0: off; d > 0: d features per modality).")
    if d and self.adapter_dim:
      raise ValueError(
          f"modality_projection={d} and adapter_dim={self.adapter_dim} are "
          "both set: an input adapter (a pre-trained encoder on other "
          "channels) and a per-modality projection are two input maps; set "
          "model.modality_projection=0 for a transfer through an adapter.")
    if d and (self.modalities is None or len(self.modalities) != self.in_dim):
      raise ValueError(
          f"modality_projection={d} needs `modalities`, one per input channel "
          f"(in_dim={self.in_dim}; got {self.modalities!r}).")

  @property
  def first_in(self) -> int:
    """The first recurrent layer's input width."""
    if self.modality_projection:
      return len(set(self.modalities)) * self.modality_projection
    return self.adapter_dim or self.in_dim


def drop_modality(rng: jax.Array, x: jax.Array, modalities: tuple,
                  rate: float) -> jax.Array:
  """x <float32>[batch, time, C] with, for each sequence, with probability
  `rate`, all channels of one modality (uniform among the distinct ones in
  `modalities`, one per channel) set to 0 at every frame."""
  kinds = sorted(set(modalities))
  groups = jnp.asarray([[m == k for m in modalities] for k in kinds])
  k_drop, k_which = jax.random.split(rng)
  drop = jax.random.bernoulli(k_drop, rate, (x.shape[0],))
  which = jax.random.randint(k_which, (x.shape[0],), 0, len(kinds))
  zero = groups[which] & drop[:, None]
  return jnp.where(zero[:, None, :], 0., x)


def linear_init(key, in_dim: int, out_dim: int) -> Params:
  w = jax.nn.initializers.lecun_normal()(key, (in_dim, out_dim), jnp.float32)
  return {"w": w, "b": jnp.zeros((out_dim,), jnp.float32)}


def linear(params: Params, x: jax.Array) -> jax.Array:
  return x @ params["w"] + params["b"]


def _layer_norm(params: Params, x: jax.Array, eps: float = 1e-5) -> jax.Array:
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps) * params["scale"] + params["bias"]


def _groups(modalities: tuple) -> list:
  """[(modality, its channel indices)] in sorted-modality order."""
  return [(m, [i for i, k in enumerate(modalities) if k == m])
          for m in sorted(set(modalities))]


def init_projection(key, modalities: tuple, d: int) -> Params:
  """{modality: {"w": [C_m, d], "b": [d], "norm": {"scale", "bias"}}}."""
  return {m: {**linear_init(jax.random.fold_in(key, j), len(idx), d),
              "norm": {"scale": jnp.ones((d,), jnp.float32),
                       "bias": jnp.zeros((d,), jnp.float32)}}
          for j, (m, idx) in enumerate(_groups(modalities))}


def project_modalities(params: Params, modalities: tuple,
                       x: jax.Array) -> jax.Array:
  """Per-modality input projection: <float32>[..., M x d] from x [..., C].

  Each modality's channels (`modalities`: one name per channel) go through
  their own linear map to d features and a layer norm over those d, so
  every embedding has unit scale whatever its channel count; the M
  embeddings are concatenated in sorted-modality order. Pure and per frame:
  `encode` and `encoder_step` both use it (and online/numpy_model.py its
  NumPy twin). A missing modality keeps the convention of the rest of
  imujax: its normalised inputs are 0 (the training mean; modality dropout
  in training, online/modality_gaps.py when streaming), so its embedding is
  norm(b), a learned constant.
  """
  out = []
  for m, idx in _groups(modalities):
    p = params[m]
    lo, hi = idx[0], idx[-1] + 1
    xm = x[..., lo:hi] if hi - lo == len(idx) else x[..., jnp.asarray(idx)]
    out.append(_layer_norm(p["norm"], linear(p, xm)))
  return jnp.concatenate(out, axis=-1)


def init_encoder(key, cfg: ModelConfig) -> Params:
  cell = cells.get(cfg.cell)
  params = {}
  first_in = cfg.first_in
  if cfg.adapter_dim:
    params["adapter"] = linear_init(jax.random.fold_in(key, 1000), cfg.in_dim,
                                     cfg.adapter_dim)
  if cfg.modality_projection:
    params["modality_projection"] = init_projection(
        jax.random.fold_in(key, 2000), cfg.modalities, cfg.modality_projection)
  for i, k in enumerate(jax.random.split(key, cfg.layers)):
    in_dim = first_in if i == 0 else cfg.hidden
    layer = {"cell": cell.init(k, in_dim, cfg.hidden)}
    if cfg.layer_norm:
      layer["norm"] = {"scale": jnp.ones((cfg.hidden,), jnp.float32),
                       "bias": jnp.zeros((cfg.hidden,), jnp.float32)}
    params[f"layer_{i}"] = layer
  return params


@functools.lru_cache(maxsize=None)
def encoder_size(cfg: ModelConfig) -> int:
  """Parameters of `init_encoder(key, cfg)`, from shapes only (nothing is
  computed; cached, as width searches ask for the same sizes again)."""
  shapes = jax.eval_shape(lambda: init_encoder(jax.random.key(0), cfg))
  return sum(math.prod(s.shape) for s in jax.tree.leaves(shapes))


@functools.lru_cache(maxsize=None)
def width_for_size(cfg: ModelConfig, target: int) -> int:
  """The `hidden` of `cfg` whose encoder size is closest to `target`
  parameters (e.g. a parallel cell as large as an LSTM 2x64: the caller
  decides how close is close enough). Sizes grow with the width, so a
  doubling then a bisection finds it in O(log hidden) sizes."""
  def size(hidden: int) -> int:
    return encoder_size(dataclasses.replace(cfg, hidden=hidden))
  lo, hi = 1, 2
  while size(hi) < target:
    lo, hi = hi, 2 * hi
  while hi - lo > 1:
    mid = (lo + hi) // 2
    lo, hi = (mid, hi) if size(mid) < target else (lo, mid)
  return min((lo, hi), key=lambda h: abs(size(h) - target))


def init_classifier(key, cfg: ModelConfig) -> Params:
  return linear_init(key, cfg.hidden, cfg.num_classes)


def init_reconstructor(key, cfg: ModelConfig) -> Params:
  return linear_init(key, cfg.hidden, cfg.in_dim)


def init(key, cfg: ModelConfig) -> Params:
  """Returns the parameters of the encoder and of the heads `cfg` asks for."""
  k_enc, k_cls, k_rec = jax.random.split(key, 3)
  params = {"encoder": init_encoder(k_enc, cfg)}
  if cfg.num_classes:
    params["classifier"] = init_classifier(k_cls, cfg)
  if cfg.reconstruct:
    params["reconstructor"] = init_reconstructor(k_rec, cfg)
  return params


def initial_state(cfg: ModelConfig, batch: int) -> list:
  """Zero carries, one per layer (float32 pytrees, leaves [batch, hidden])."""
  cell = cells.get(cfg.cell)
  return [cell.initial_carry(batch, cfg.hidden) for _ in range(cfg.layers)]


def _check_encoder_tree(params: Params, caller: str) -> None:
  """`encode`/`encoder_step` take params["encoder"]; say so if given more."""
  if "layer_0" not in params:
    given = sorted(params)[:6]
    hint = (' pass params["encoder"]' if "encoder" in params else
            " pass the encoder's parameters (models.init(...)['encoder'])")
    raise ValueError(
        f"models.{caller} takes the encoder's subtree (keys layer_0, "
        f"layer_1, ...), not a tree with keys {given}:{hint}. "
        "classify_sequence and the heads take the whole tree.")


def _adapt(params: Params, cfg: ModelConfig, x: jax.Array) -> jax.Array:
  """The first layer's input: x through the adapter or the projection."""
  if cfg.modality_projection:
    return project_modalities(params["modality_projection"], cfg.modalities,
                              x)
  return linear(params["adapter"], x) if "adapter" in params else x


def encode(params: Params, cfg: ModelConfig, x: jax.Array,
           state: Optional[list] = None, *,
           dropout_rng: Optional[jax.Array] = None):
  """Runs the stacked encoder over whole sequences.

  Args:
    params: the encoder's parameters (`init(...)["encoder"]`).
    cfg: the model config.
    x: <float32>[batch, time, in_dim] normalised inputs.
    state: per-layer initial carries; zeros when None.
    dropout_rng: enables dropout between layers when given and cfg.dropout > 0
      (and modality dropout of the inputs when cfg.modality_dropout > 0).

  Returns:
    (h, state): h <float32>[batch, time, hidden], the top layer's per-frame
    features; state, the per-layer carries after the last frame.
  """
  _check_encoder_tree(params, "encode")
  cell = cells.get(cfg.cell)
  if state is None:
    state = initial_state(cfg, x.shape[0])
  if dropout_rng is not None and cfg.modality_dropout > 0:
    x = drop_modality(jax.random.fold_in(dropout_rng, 1_000_003), x,
                      cfg.modalities, cfg.modality_dropout)
  h, final = _adapt(params, cfg, x), []
  for i in range(cfg.layers):
    layer = params[f"layer_{i}"]
    skip = h
    if i > 0 and dropout_rng is not None and cfg.dropout > 0:
      keep = jax.random.bernoulli(jax.random.fold_in(dropout_rng, i),
                                  1. - cfg.dropout, h.shape)
      h = jnp.where(keep, h / (1. - cfg.dropout), 0.)
    if cell.scan is not None:  # Parallel over time (minGRU, LRU, ...).
      h, carry = cell.scan(layer["cell"], state[i], h)
    else:
      h, carry = cells.scan(cell.step, layer["cell"], state[i], h,
                            unroll=cfg.unroll)
    if cfg.residual and i > 0:
      h = skip + h
    if cfg.layer_norm:
      h = _layer_norm(layer["norm"], h)
    final.append(carry)
  return h, final


def encoder_step(params: Params, cfg: ModelConfig, state: list,
                 x_t: jax.Array):
  """One frame through the encoder: the streaming twin of `encode`.

  Args:
    params: the encoder's parameters.
    cfg: the model config.
    state: per-layer carries.
    x_t: <float32>[batch, in_dim], one normalised frame.

  Returns:
    (state, h_t): the new carries and <float32>[batch, hidden] features.
  """
  _check_encoder_tree(params, "encoder_step")
  cell = cells.get(cfg.cell)
  h, new_state = _adapt(params, cfg, x_t), []
  for i in range(cfg.layers):
    layer = params[f"layer_{i}"]
    carry, out = cell.step(layer["cell"], state[i], h)
    h = h + out if cfg.residual and i > 0 else out
    if cfg.layer_norm:
      h = _layer_norm(layer["norm"], h)
    new_state.append(carry)
  return new_state, h


def classify(params: Params, h: jax.Array) -> jax.Array:
  """Per-frame logits <float32>[..., num_classes] from features h [..., H]."""
  return linear(params["classifier"], h)


def reconstruct(params: Params, h: jax.Array) -> jax.Array:
  """Per-frame reconstruction <float32>[..., in_dim] from features h."""
  return linear(params["reconstructor"], h)


def classify_sequence(params: Params, cfg: ModelConfig, x: jax.Array,
                      *, dropout_rng: Optional[jax.Array] = None) -> jax.Array:
  """Logits <float32>[batch, time, num_classes] for x [batch, time, in_dim]."""
  h, _ = encode(params["encoder"], cfg, x, dropout_rng=dropout_rng)
  return classify(params, h)
