"""Default options of every self-supervised pretext objective, and their checks.

Plain Python only (no jax, no numpy): config files import this module to build
`config.pretrain.<kind>` from `DEFAULTS`, so every value is an int, float, str
or bool. `validate(kind, opts)` fills missing keys with the defaults and
rejects unknown keys, wrong types and out-of-range values, naming the config
key (`pretrain.<kind>.<key>`).

Besides these options, objectives that augment in physical units (`simclr`,
`transform_prediction`) read the dataset's `channel_names`, which the trainer
adds to their options (`DATA_KEYS`): names shape the program (which channels
rotate together). The normaliser's statistics are values, passed to every loss
as its `stats` argument (see `imujax.objectives`).

An objective without options (classification) has no entry here; one
registered with `objectives.register` gets its entry then.
"""

DEFAULTS = {
    # Span masking; MSE on masked valid frames (objectives.py).
    "masked_reconstruction": {
        "mask_ratio": 0.15,       # Fraction of frames masked (expected).
        "span_dist": "geometric",  # "fixed" | "geometric" span lengths.
        "span_mean": 8.0,         # Frames per span (fixed: rounded length).
        "mask_value": "zero",     # "zero" (channel mean) | "noise" | "learned".
    },
    # From h_t predict frames t+1..t+horizon.
    "forecast": {
        "horizon": 4,             # k: frames ahead, 1 = next-step only.
        "residual": True,         # Predict x[t+j] - x[t] instead of x[t+j].
    },
    # Final state -> recurrent decoder -> the whole window.
    "autoencoder": {
        "decoder_input": "none",  # "none" (constant 1) | "previous" frame.
        "reverse": True,          # Decode from the last frame backwards.
        "denoise_std": 0.0,       # > 0: denoising (noise on the input only).
    },
    # InfoNCE between W_k h_t and an embedding of the raw frame t+k.
    "cpc": {
        "horizon": 4,             # k = 1..horizon.
        "temperature": 0.1,
        "embedding_dim": 32,
        "anchors": 8,             # Anchor frames drawn per sequence.
    },
    # NT-Xent between two augmented views of each window.
    "simclr": {
        "pool": "last",           # "last" valid frame | "mean" over frames.
        "projection_dim": 32,
        "temperature": 0.1,
        "jitter_std": 0.05,       # Normalised units (x channel std).
        "scale_std": 0.1,         # Per-channel factor ~ N(1, scale_std).
        "rotation_deg": 30.0,     # Max rotation angle; 0 disables.
        "time_warp_std": 0.2,     # Log-speed std at the knots; 0 disables.
        "channel_dropout": 0.1,   # Probability of blanking each channel.
    },
    # Which transformation was applied (Saeed et al. 2019).
    "transform_prediction": {
        "transforms": ("noise,scaling,rotation,negation,flip,permutation,"
                       "time_warp,channel_shuffle"),
        "head": "binary",         # "binary" per transform | "multiclass".
        "pool": "last",
        "original_fraction": 0.5,  # Share of each batch left untransformed.
        "noise_std": 0.2,         # Normalised units.
        "scale_std": 0.2,
        "rotation_deg": 180.0,
        "segments": 4,            # Permutation: equal segments shuffled.
        "time_warp_std": 0.3,
    },
}

# Data-dependent keys that the trainer adds to the options of any objective
# (ignored where unused).
DATA_KEYS = ("channel_names",)

TRANSFORMS = ("noise", "scaling", "rotation", "negation", "flip",
              "permutation", "time_warp", "channel_shuffle")

_CHOICES = {
    ("masked_reconstruction", "span_dist"): ("fixed", "geometric"),
    ("masked_reconstruction", "mask_value"): ("zero", "noise", "learned"),
    ("autoencoder", "decoder_input"): ("none", "previous"),
    ("simclr", "pool"): ("last", "mean"),
    ("transform_prediction", "head"): ("binary", "multiclass"),
    ("transform_prediction", "pool"): ("last", "mean"),
}


def _positive(v):
  return v > 0


def _non_negative(v):
  return v >= 0


def _open_unit(v):
  return 0 < v < 1


def _half_open_unit(v):
  return 0 <= v < 1


# (predicate, what the value must be) per key; keys absent here only need
# the default's type (and a listed choice for strings).
_RANGES = {
    "mask_ratio": (_open_unit, "in (0, 1)"),
    "span_mean": (lambda v: v >= 1, ">= 1"),
    "horizon": (_positive, ">= 1"),
    "denoise_std": (_non_negative, ">= 0"),
    "temperature": (_positive, "> 0"),
    "embedding_dim": (_positive, ">= 1"),
    "anchors": (_positive, ">= 1"),
    "projection_dim": (_positive, ">= 1"),
    "jitter_std": (_non_negative, ">= 0"),
    "scale_std": (_non_negative, ">= 0"),
    "rotation_deg": (lambda v: 0 <= v <= 180, "in [0, 180]"),
    "time_warp_std": (_non_negative, ">= 0"),
    "channel_dropout": (_half_open_unit, "in [0, 1)"),
    "original_fraction": (_open_unit, "in (0, 1)"),
    "noise_std": (_positive, "> 0"),
    "segments": (lambda v: v >= 2, ">= 2"),
}


def _type_ok(value, default) -> bool:
  if isinstance(default, bool):
    return isinstance(value, bool)
  if isinstance(default, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  return isinstance(value, type(default))


def validate(kind: str, opts=None) -> dict:
  """`opts` checked and completed with the defaults of objective `kind`.

  Args:
    kind: an objective's name; one absent from DEFAULTS takes no options.
    opts: a mapping (dict or ConfigDict) of options; missing keys take their
      defaults, keys in DATA_KEYS pass through unchecked here.

  Returns:
    A new plain dict with every option of `kind` (floats as float).

  Raises:
    ValueError: naming `pretrain.<kind>.<key>` and what it must be.
  """
  from imujax import objectives  # pylint: disable=g-import-not-at-top (cycle)
  if kind not in DEFAULTS and kind not in objectives.names():
    raise ValueError(f"Unknown objective {kind!r} (config key "
                     f"pretrain.objective); choose one of "
                     f"{list(objectives.names())}.")
  given = dict(opts or {})
  defaults = DEFAULTS.get(kind, {})
  unknown = sorted(set(given) - set(defaults) - set(DATA_KEYS))
  if unknown:
    keys = ", ".join(f"pretrain.{kind}.{k}" for k in unknown)
    raise ValueError(f"Unknown option(s) {keys}; {kind} takes "
                     f"{sorted(defaults)}.")
  out = {}
  for key, default in defaults.items():
    value = given.get(key, default)
    name = f"pretrain.{kind}.{key}"
    if not _type_ok(value, default):
      raise ValueError(f"{name}={value!r} must be a {type(default).__name__} "
                       f"(default {default!r}).")
    if isinstance(default, float):
      value = float(value)
    choices = _CHOICES.get((kind, key))
    if choices and value not in choices:
      raise ValueError(f"{name}={value!r} must be one of {list(choices)}.")
    check = _RANGES.get(key)
    if check and not check[0](value):
      raise ValueError(f"{name}={value!r} must be {check[1]}.")
    out[key] = value
  if kind == "masked_reconstruction" and out["span_dist"] == "geometric":
    # The stationary two-state chain needs P(unmasked -> masked) <= 1.
    if out["mask_ratio"] > out["span_mean"] / (out["span_mean"] + 1):
      raise ValueError(
          f"pretrain.{kind}.mask_ratio={out['mask_ratio']} is too high for "
          f"span_mean={out['span_mean']} with geometric spans (at most "
          "span_mean / (span_mean + 1)); lower it or lengthen the spans.")
  if kind == "transform_prediction":
    names = [t.strip() for t in out["transforms"].split(",") if t.strip()]
    bad = [t for t in names if t not in TRANSFORMS]
    if bad or not names or len(set(names)) != len(names):
      raise ValueError(
          f"pretrain.{kind}.transforms={out['transforms']!r} must be a comma-"
          f"separated list of distinct names from {list(TRANSFORMS)}"
          + (f"; unknown: {bad}" if bad else "") + ".")
    out["transforms"] = ",".join(names)
  for key in DATA_KEYS:
    if key in given:
      out[key] = given[key]
  return out
