"""Default options of every objective and target kind, and their checks.

Plain Python only (no jax, no numpy): config files import this module to build
`config.pretrain.<kind>` from `DEFAULTS`, so every value is an int, float, str
or bool. `validate(kind, opts)` fills missing keys with the defaults and
rejects unknown keys, wrong types and out-of-range values, naming the config
key (`pretrain.<kind>.<key>`, or `finetune.<kind>.<key>` for the fine-tune
target kinds of `TARGET_DEFAULTS`, which config files read the same way).

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
        "span_mean_s": 0.0,       # > 0: span_mean in seconds instead.
        "mask_value": "zero",     # "zero" (channel mean) | "noise" | "learned".
    },
    # From h_t predict frames t+1..t+horizon.
    "forecast": {
        "horizon": 4,             # k: frames ahead, 1 = next-step only.
        "horizon_s": 0.0,         # > 0: the horizon in seconds instead.
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
        "horizon_s": 0.0,         # > 0: the horizon in seconds instead.
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
        # Modality-specific (objectives/augment.py); no-ops without them.
        "swap_left_right": 0.0,   # Insoles: P(left <-> right cells traded).
        "gaze_offset_std": 0.5,   # Gaze: offset ~ N(0, .^2), raw units (deg).
        "gaze_drift_std": 0.5,    # Gaze: drift over the window, raw units.
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

# Options of the fine-tune target kinds: `finetune.<kind>` (with
# `finetune.target=<kind>` and `finetune.tracks` naming the tracks).
TARGET_DEFAULTS = {
    # Float per-frame targets (targets_<name>); frames without a value (NaN)
    # are masked. Each target is standardised with its mean and sd over the
    # labelled training recordings; metrics are in its physical units.
    "regression": {
        "loss": "mse",            # "mse" | "huber" (on standardised values).
        "huber_delta": 1.0,       # Huber's switch point, in target sds.
    },
    # Instants (frames where an integer track is > 0, e.g. initial contacts)
    # as a per-frame event probability. Target: a Gaussian of sd sigma_ms
    # around each event (peak 1, cut at 3 sd; overlapping ones take the
    # max); loss: per-frame Bernoulli KL divergence (cross-entropy minus the
    # target's entropy: 0 at a perfect prediction), frames weighted
    # 1 + (pos_weight - 1) * target. Decoded causally (metrics.decode_events).
    "events": {
        "sigma_ms": 25.0,
        "pos_weight": 5.0,        # Weight of frames at an event (>= 1).
        "threshold": 0.5,         # Decoder: probability that makes a peak.
        "delay_ms": 100.0,        # Decoder: fires at most this after a peak.
        "tolerance_ms": 50.0,     # Scoring: a detection within ± of an event.
    },
    # Predict the input channels horizons_ms ahead (normalised units); scored
    # by RMSE per horizon beside the last-value and constant-velocity
    # baselines on the same frames.
    "prediction": {
        "horizons_ms": "200",     # Several: "100,200,400" (or "100+200").
        "residual": True,         # Predict x[t+h] - x[t] instead of x[t+h].
    },
}

# Data-dependent keys that the trainer adds to the options of any objective
# (ignored where unused): the channel names; for the target kinds the tracks
# (`finetune.tracks`, short names, in order), the rate and their units.
DATA_KEYS = ("channel_names", "tracks", "sample_rate_hz", "units")

TRANSFORMS = ("noise", "scaling", "rotation", "negation", "flip",
              "permutation", "time_warp", "channel_shuffle")

_CHOICES = {
    ("masked_reconstruction", "span_dist"): ("fixed", "geometric"),
    ("masked_reconstruction", "mask_value"): ("zero", "noise", "learned"),
    ("autoencoder", "decoder_input"): ("none", "previous"),
    ("simclr", "pool"): ("last", "mean"),
    ("transform_prediction", "head"): ("binary", "multiclass"),
    ("transform_prediction", "pool"): ("last", "mean"),
    ("regression", "loss"): ("mse", "huber"),
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
    "swap_left_right": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "gaze_offset_std": (_non_negative, ">= 0"),
    "gaze_drift_std": (_non_negative, ">= 0"),
    "original_fraction": (_open_unit, "in (0, 1)"),
    "noise_std": (_positive, "> 0"),
    "segments": (lambda v: v >= 2, ">= 2"),
    "huber_delta": (_positive, "> 0"),
    "sigma_ms": (_positive, "> 0"),
    "pos_weight": (lambda v: v >= 1, ">= 1"),
    "threshold": (_open_unit, "in (0, 1)"),
    "delay_ms": (_non_negative, ">= 0"),
    "tolerance_ms": (_non_negative, ">= 0"),
    "span_mean_s": (_non_negative, ">= 0"),
    "horizon_s": (_non_negative, ">= 0"),
}

# Frame-valued options with a seconds-valued twin `<key>_s` (0 = unset),
# turned into frames at the dataset's rate by `in_frames` (training setup).
SECONDS_TWINS = (("masked_reconstruction", "span_mean"),
                 ("forecast", "horizon"), ("cpc", "horizon"))
# The rate the frame-valued defaults were chosen for (50 Hz IMU data).
DEFAULT_RATE_HZ = 50.0


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
  phase = "finetune" if kind in TARGET_DEFAULTS else "pretrain"
  defaults = TARGET_DEFAULTS.get(kind) or DEFAULTS.get(kind, {})
  unknown = sorted(set(given) - set(defaults) - set(DATA_KEYS))
  if unknown:
    keys = ", ".join(f"{phase}.{kind}.{k}" for k in unknown)
    raise ValueError(f"Unknown option(s) {keys}; {kind} takes "
                     f"{sorted(defaults)}.")
  out = {}
  for key, default in defaults.items():
    value = given.get(key, default)
    name = f"{phase}.{kind}.{key}"
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
  for k, key in SECONDS_TWINS:
    if k == kind and out[key + "_s"] and out[key] != defaults[key]:
      raise ValueError(f"Set {phase}.{kind}.{key} (frames) or {key}_s "
                       f"(seconds), not both; leave {key} at {defaults[key]}.")
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
  if kind == "prediction":
    out["horizons_ms"] = _horizons(out["horizons_ms"])
  for key in DATA_KEYS:
    if key in given:
      out[key] = given[key]
  return out


def split_list(text: str) -> list[str]:
  """The items of a list-valued option: "a,b" or "a+b" (`:arg` overrides
  split on commas, so "walking_speed+stride_length" passes through them)."""
  return [t.strip() for t in text.replace("+", ",").split(",") if t.strip()]


def _horizons(text: str) -> str:
  """finetune.prediction.horizons_ms, checked: distinct positive numbers."""
  items = split_list(text)
  try:
    values = [float(t) for t in items]
  except ValueError:
    values = []
  if not values or min(values) <= 0 or len(set(values)) != len(values):
    raise ValueError(
        f"finetune.prediction.horizons_ms={text!r} must be a comma-separated "
        "list of distinct positive milliseconds, e.g. '100,200'.")
  return ",".join(items)


def frames_of(seconds: float, rate_hz: float, like):
  """`seconds` at `rate_hz` in frames: an int (>= 1) when `like` is one."""
  frames = seconds * rate_hz
  return max(1, round(frames)) if isinstance(like, int) else max(1., frames)


def in_frames(kind: str, opts: dict, rate_hz: float,
              where: str = "pretrain") -> tuple[dict, list[str]]:
  """`opts` with each seconds twin set turned into frames at `rate_hz`.

  Every `<key>_s` is removed, so an objective sees exactly the options it
  saw before the twins existed. Returns (opts, warnings): a warning for each
  frame-valued option used as frames at a rate more than 2x from
  DEFAULT_RATE_HZ, where it means a very different time.
  """
  out, notes = dict(opts), []
  for k, key in SECONDS_TWINS:
    if k != kind or key not in out:
      continue
    seconds = out.pop(key + "_s", 0.0)
    if seconds:
      out[key] = frames_of(seconds, rate_hz, out[key])
    else:
      notes.append(frames_warning(f"{where}.{kind}.{key}", out[key], rate_hz))
  return out, [n for n in notes if n]


def frames_warning(name: str, frames, rate_hz: float) -> str:
  """A warning when `frames` at `rate_hz` is > 2x from its 50 Hz time."""
  if not rate_hz or 0.5 <= rate_hz / DEFAULT_RATE_HZ <= 2:
    return ""
  return (f"{name}={frames:g} frames is {frames / rate_hz:.3g} s at "
          f"{rate_hz:g} Hz ({frames / DEFAULT_RATE_HZ:.3g} s at "
          f"{DEFAULT_RATE_HZ:g} Hz); set {name}_s (seconds) to fix its time.")
