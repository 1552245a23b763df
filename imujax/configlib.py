"""The complete, locked set of config keys, and `:arg` overrides.

Every config file starts from `base()`, which holds every key imujax reads
with its default. The returned ConfigDict is locked, so a typo anywhere
(`config.model.hiden = 64` in a file, `--config.model.hiden=64` on the
command line, `:hiden=64` as an arg) fails at once, naming the key.

This module imports only ml_collections (and the plain-Python registry and
option defaults of the objectives), so config files stay light.
"""

import ml_collections

from imujax import objectives
from imujax.objectives import modality
from imujax.objectives import options as pretext_options

# Numeric hyper-parameters of the trained phase (pretrain.* / finetune.*) in
# which the members of one vmapped program (imujax.training.multiseed) may differ: its
# step builds each member's optimizer from the member's own, traced, values.
MEMBER_HPARAMS = ("learning_rate", "weight_decay")


def base() -> ml_collections.ConfigDict:
  """Defaults for every key; config files override what they need."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_seeds = 1  # mode "compare": seeds seed .. seed+num_seeds-1.
  # What main runs: "pretrain" (pretext objective), "finetune" (classifier,
  # from init_from when set, else from scratch), or "compare" (pretrain, then
  # finetune from it and from scratch with the same labels and steps).
  c.mode = "compare"
  c.init_from = ""  # Workdir of a pre-training run (finetune mode).
  # True: init_from may be a run that has not finished (its latest good
  # checkpoint is used). By default an unfinished one is refused.
  c.init_from_unfinished = False

  c.data = ml_collections.ConfigDict()
  c.data.name = "seglearn_watch"   # A TFDS name, e.g. "sp_sw_har/watch_50hz".
  c.data.data_dir = ""             # TFDS data_dir; "" = TFDS's default.
  c.data.manual_dir = ""           # Raw files for manual-download datasets.
  c.data.spec = ""                 # TOML spec for data.name="recordings/<rate>".
  c.data.val_subjects = 2
  # >= 1; 0 for mode="pretrain" only, with val_subjects = 0 too: pre-training
  # on every subject, which validates and tests nothing (`_check_held_out`).
  c.data.test_subjects = 3
  # Cross-validation over subjects: num_folds > 0 deals the subjects into
  # folds (by fold_seed, the same for every seed) and tests on fold `fold`;
  # data.test_subjects is then unused. 0: a random split by `seed`.
  c.data.num_folds = 0
  c.data.fold = 0
  c.data.fold_seed = 0
  c.data.labeled_subjects = 0      # Label budget; 0 = every training subject.
  c.data.labeled_recordings = 0    # Alternative budget in recordings.
  c.data.window = 128              # Training window, frames.
  c.data.window_s = 0.0            # > 0: the window in seconds (not frames).
  c.data.eval_batch_size = 16      # Whole recordings per evaluation batch.

  c.model = ml_collections.ConfigDict()
  c.model.cell = "lstm"            # A cell's name: "rnn" | "lstm" | "gru" ...
  c.model.hidden = 128
  c.model.layers = 2
  c.model.dropout = 0.1
  c.model.layer_norm = True
  c.model.residual = False  # h + layer(h) around layers 2.. (models.py).
  c.model.modality_dropout = 0.0  # Drop one modality per sequence (models).
  # d > 0: per-modality linear map to d features + layer norm before the
  # first layer (models.project_modalities); 0 = off.
  c.model.modality_projection = 0
  c.model.unroll = 1

  c.pretrain = _phase(steps=2000, learning_rate=2e-3)
  # An objective's name (imujax.objectives): a self-supervised one, or
  # "classification" of pretrain.dataset's own labels (supervised
  # pre-training on another dataset).
  c.pretrain.objective = "masked_reconstruction"
  c.pretrain.dataset = ""          # "" = data.name; else e.g. "sp_sw_har/watch_50hz".
  c.pretrain.manual_dir = ""       # Raw files of pretrain.dataset, if manual.
  # A pooled pre-training corpus (imujax/data/corpus.py, CORPUS.md): datasets
  # separated by commas, each "name" or "name@manual_dir", e.g.
  # "uci_hapt/50hz@../shared/data/uci_hapt,seglearn_watch". All built at
  # data.name's rate. Members of data.name's cohort give only its training
  # subjects; a study leaves the target's dataset out. "" = no corpus.
  c.pretrain.corpus = ""
  # Mixing weights, one per member ("3,1,1"); "" = proportional to hours.
  c.pretrain.corpus_weights = ""
  c.pretrain.corpus_hours = 0.0  # > 0: a nested subset (data/corpus_budget.py).
  # Input space: "canonical" (each placement as one imu_acc_x..imu_gyr_z
  # unit; any target) or "union" (every member's channel names, absent ones
  # zero; the target's placement must be among them). CORPUS.md.
  c.pretrain.corpus_channels = "canonical"
  # "member": each member (and placement) standardised on its own frames;
  # "pooled": one normaliser over the whole corpus.
  c.pretrain.corpus_normalizer = "member"
  # Supervised corpus pre-training (CORPUS.md): objective corpus_supervised,
  # or weight > 0: + weight x its loss to a self-supervised objective's.
  c.pretrain.corpus_supervised_weight = 0.0
  c.pretrain.corpus_label_map = "member"  # Or "shared": corpus_labels.py.
  for kind, options in pretext_options.DEFAULTS.items():
    c.pretrain[kind] = ml_collections.ConfigDict(dict(options))

  c.finetune = _phase(steps=1000, learning_rate=2e-3)
  # "full" | "linear_probe" (frozen encoder) | "freeze_lower" (freeze_layers).
  c.finetune.protocol = "full"
  c.finetune.freeze_layers = 0     # For "freeze_lower": the lowest k layers.
  c.finetune.layer_decay = 1.0     # < 1: layer-wise learning-rate decay.
  # "simclr": train the fine-tune on simclr's augmented views (options of
  # pretrain.simclr, without time warp): the control that separates "simclr
  # pre-training helps" from "its augmentations help". "": none.
  c.finetune.augment = ""
  # How another dataset's channels reach a pre-trained encoder:
  # "auto" (select by name when all exist, else adapter) | "adapter".
  c.finetune.channels = "auto"
  # What the fine-tune learns per frame (imujax.objectives): "classification"
  # of `labels` (or of the one label track in finetune.tracks),
  # "regression" of float targets, "events" of an integer track's instants,
  # or "prediction" of the input channels ahead. Options: finetune.<target>.
  c.finetune.target = "classification"
  # Tracks of data.name, split by "," or "+", no "labels_" / "targets_" prefix:
  # regression's targets ("walking_speed+stride_length"), events' integer tracks
  # ("initial_contact"), classification's label track ("" = labels).
  c.finetune.tracks = ""
  for kind, options in pretext_options.TARGET_DEFAULTS.items():
    c.finetune[kind] = ml_collections.ConfigDict(dict(options))

  # Comma-separated config keys allowed to differ from the workdir's run.json
  # when a run resumes (e.g. "finetune.learning_rate"); recorded there.
  c.resume_changes = ""
  c.log_every = 50
  c.eval_every = 250
  # Validation also every dense_eval_every steps up to dense_eval_until (0:
  # off): the early fine-tune curve that convergence claims rest on.
  c.dense_eval_until = 0
  c.dense_eval_every = 10
  c.checkpoint_every = 250
  c.eval = ml_collections.ConfigDict()
  # Macro-F1 over "present" (in truth or predictions) | "all" | "truth" classes.
  c.eval.f1_classes = "present"
  # Comma-separated modalities ("gyr"): test scores are also reported with
  # their normalised channels at 0 (the mean), as test_without_<m>/<metric>.
  c.eval.missing_modalities = ""
  c.lock()
  return c


def _phase(steps: int, learning_rate: float) -> ml_collections.ConfigDict:
  p = ml_collections.ConfigDict()
  p.steps = steps
  p.batch_size = 32
  p.learning_rate = learning_rate
  p.warmup_steps = 100
  p.weight_decay = 1e-4
  p.grad_clip = 1.0
  return p


def _parse_value(text: str, current):
  if isinstance(current, bool):
    if text.lower() in ("1", "true", "yes"):
      return True
    if text.lower() in ("0", "false", "no"):
      return False
    raise ValueError(f"expected true/false, got {text!r}")
  if isinstance(current, (int, float, str)):
    return type(current)(text)
  raise ValueError(f"cannot set a {type(current).__name__} from {text!r}")


def parse_arg(arg: str | None, **switches):
  """The one meaning of `:arg` after a config or sweep file's path.

  `:arg` is comma-separated `name=value` items. A name the file declares as
  a switch (keyword here, typed by its default) sets that switch; any other
  name is a dotted config key (`model.hidden=32`), set by `apply_args` after
  the file has built its config. So `configs/pretrain.py:kind=cpc,cell=gru`
  and `configs/default.py:model.cell=gru,finetune.steps=300` read alike.

  Returns:
    (switch values as a ConfigDict, the config-key items as one arg string).

  Raises:
    ValueError: an item that is not name=value, or a switch value of the
      wrong type (naming the switch).
  """
  values = ml_collections.ConfigDict(switches)
  keys = []
  for item in (arg or "").split(","):
    if not item.strip():
      continue
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep:
      raise ValueError(
          f"Config arg {item!r} is not name=value; `:arg` takes switches "
          f"{sorted(switches)} or config keys, e.g. model.cell=gru.")
    if name in switches:
      try:
        values[name] = _parse_value(text.strip(), switches[name])
      except ValueError as e:
        raise ValueError(f"Config switch {name!r}: {e}") from None
    else:
      keys.append(item)
  return values, ",".join(keys)


def backbone(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The README's experiments' shared network and schedule, in one place.

  A causal LSTM 2x64 on 128-frame windows (2.56 s at 50 Hz), 1,500
  pre-training and 600 fine-tuning steps, evaluated and checkpointed every
  200 steps.
  """
  config.data.window = 128
  config.model.cell = "lstm"
  config.model.hidden = 64
  config.model.layers = 2
  config.pretrain.steps = 1500
  config.finetune.steps = 600
  config.eval_every = 200
  config.checkpoint_every = 200
  return config


def apply_args(config: ml_collections.ConfigDict,
               arg: str | None) -> ml_collections.ConfigDict:
  """Applies `--config=file.py:key=value,a.b=value` overrides.

  Raises:
    KeyError: naming the key, when it does not exist.
    ValueError: when the value has the wrong type.
  """
  if not arg:
    return config
  for item in arg.split(","):
    key, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"Config arg {item!r} is not key=value "
                       "(e.g. configs/default.py:model.cell=gru).")
    node, *path = key.strip().split(".")[::-1]
    parent = config
    for part in reversed(path):
      if part not in parent:
        raise KeyError(f"Unknown config key {key!r} in config arg.")
      parent = parent[part]
    if node not in parent:
      raise KeyError(f"Unknown config key {key!r} in config arg; known keys "
                     f"here: {sorted(parent.keys())}.")
    try:
      parent[node] = _parse_value(text.strip(), parent[node])
    except ValueError as e:
      raise ValueError(f"Config key {key!r}: {e}") from None
  return config


def _get(config, key: str):
  for part in key.split("."):
    config = config[part]
  return config


def _at_least(low):
  return (lambda v: v >= low), f">= {low}"


_POSITIVE = ((lambda v: v > 0), "> 0")
# Numeric keys and the values they take; a value outside is an error naming
# the key (rather than a crash deep inside JAX, or a run of zero steps).
_RANGES = {
    "num_seeds": _at_least(1),
    "data.val_subjects": _at_least(0),
    "data.test_subjects": _at_least(0),  # 0: `_check_held_out`.
    "data.labeled_subjects": _at_least(0),
    "data.labeled_recordings": _at_least(0),
    "data.window": _at_least(2),
    "pretrain.corpus_supervised_weight": _at_least(0),
    "data.window_s": _at_least(0),
    "pretrain.corpus_hours": _at_least(0),
    "model.modality_dropout": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "model.modality_projection": ((lambda v: isinstance(v, int) and v >= 0
                                   and v != 1), "an int >= 0, not 1"),
    "data.eval_batch_size": _at_least(1),
    "data.num_folds": _at_least(0),
    "data.fold": _at_least(0),
    "model.hidden": _at_least(1),
    "model.layers": _at_least(1),
    "model.dropout": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "model.unroll": _at_least(1),
    "finetune.freeze_layers": _at_least(0),
    "finetune.layer_decay": ((lambda v: 0 < v <= 1), "in (0, 1]"),
    "log_every": _at_least(1),
    "eval_every": _at_least(1),
    "checkpoint_every": _at_least(1),
    "dense_eval_until": _at_least(0),
    "dense_eval_every": _at_least(1),
    **{f"{phase}.{key}": rule for phase in ("pretrain", "finetune")
       for key, rule in (("steps", _at_least(1)), ("batch_size", _at_least(1)),
                         ("learning_rate", _POSITIVE),
                         ("warmup_steps", _at_least(0)),
                         ("weight_decay", _at_least(0)),
                         ("grad_clip", _POSITIVE))},
}


def check(config: ml_collections.ConfigDict) -> None:
  """Rejects keys `base()` does not know and values outside their choices."""
  _check_keys(config, base(), "")
  from imujax import cells  # pylint: disable=g-import-not-at-top  (JAX)
  choices = {"mode": ("pretrain", "finetune", "compare"),
             "model.cell": cells.names(),
             "pretrain.objective": objectives.names(),
             "finetune.protocol": ("full", "linear_probe", "freeze_lower"),
             "finetune.channels": ("auto", "adapter"),
             "finetune.augment": ("", "simclr"),
             "finetune.target": objectives.targets(),
             "pretrain.corpus_channels": ("canonical", "union"),
             "pretrain.corpus_normalizer": ("member", "pooled"),
             "pretrain.corpus_label_map": ("member", "shared"),
             "eval.f1_classes": ("present", "all", "truth")}
  for key, allowed in choices.items():
    value = _get(config, key)
    if value not in allowed:
      raise ValueError(f"Config key {key}={value!r}; choose one of {allowed}.")
  pretext_options.validate(config.pretrain.objective,
                           config.pretrain.get(config.pretrain.objective))
  _check_target(config.finetune)
  for key, (ok, what) in _RANGES.items():
    value = _get(config, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        not ok(value)):
      raise ValueError(f"Config key {key}={value!r} must be {what}.")
  _check_corpus(config)
  _check_held_out(config)
  _check_missing_modalities(config.eval.missing_modalities)
  if config.data.window_s and config.data.window != base().data.window:
    raise ValueError("Set data.window (frames) or data.window_s (seconds), "
                     "not both; leave data.window at 128 with window_s.")
  if config.pretrain.objective == "classification" and (
      not config.pretrain.dataset):
    raise ValueError(
        "pretrain.objective='classification' (supervised pre-training) needs "
        "pretrain.dataset: a labelled "
        "source dataset other than data.name (pre-training on the target's "
        "own labels would leak the label budget).")
  if config.mode == "compare" and config.init_from and config.pretrain.corpus:
    raise ValueError("mode='compare' with init_from fine-tunes that encoder "
                     "(nothing is pre-trained), so pretrain.corpus is unused: "
                     "unset one of them.")


class ConfigError(ValueError):
  """A config value the data refuse, found once they are read (more held-out
  subjects than the dataset has); main reports it like `check`'s errors."""


_EVERY_SUBJECT = ("0 is for mode='pretrain' only, with data.val_subjects=0 "
                  "and data.test_subjects=0: a pre-training on every subject")


def _check_held_out(config: ml_collections.ConfigDict) -> None:
  """data.val_subjects / test_subjects = 0: a pre-training on every subject.

  Every other run validates every eval_every steps and tests at the end on
  held-out subjects, so it needs at least one of each.
  """
  data = config.data
  if data.val_subjects and data.test_subjects:
    return
  key, other = (("data.test_subjects", "data.val_subjects")
                if not data.test_subjects else
                ("data.val_subjects", "data.test_subjects"))
  if config.mode != "pretrain":
    raise ValueError(
        f"Config key {key}=0 with mode={config.mode!r}, which validates and "
        f"tests on held-out subjects: set {key} >= 1 ({_EVERY_SUBJECT}).")
  if _get(config, other):
    raise ValueError(
        f"Config key {key}=0 with {other}={_get(config, other)}: set both to "
        f"0 (a pre-training on every subject) or {key} >= 1.")
  if data.num_folds:
    raise ValueError(
        f"Config key data.num_folds={data.num_folds} holds out a test fold, "
        "but data.val_subjects=0 and data.test_subjects=0 pre-train on every "
        "subject: set data.num_folds=0.")
  if config.pretrain.corpus:
    raise ValueError(
        "Config key pretrain.corpus with data.val_subjects=0 and "
        "data.test_subjects=0: a corpus pre-training validates on data.name's "
        "held-out subjects; set both >= 1.")


def corpus_members(text: str) -> list[tuple[str, str]]:
  """(TFDS name, manual_dir) of each member of `pretrain.corpus`.

  Raises:
    ValueError: naming the key, for an empty name or a repeated member.
  """
  members = []
  for item in text.split(","):
    if not item.strip():
      continue
    name, _, manual_dir = (part.strip() for part in item.partition("@"))
    if not name:
      raise ValueError(f"Config key pretrain.corpus: item {item.strip()!r} "
                       "has no dataset name; write name or name@manual_dir.")
    members.append((name, manual_dir))
  names = [n for n, _ in members]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ValueError(f"Config key pretrain.corpus names {repeated} more than "
                     "once; list each dataset once (corpus_weights weighs).")
  return members


def corpus_weights(text: str, count: int) -> list[float] | None:
  """`pretrain.corpus_weights` as numbers, one per member; None = by hours.

  Raises:
    ValueError: naming the key, for a count or value it cannot use.
  """
  if not text.strip():
    return None
  try:
    weights = [float(w) for w in text.split(",")]
  except ValueError:
    raise ValueError(f"Config key pretrain.corpus_weights={text!r} is not "
                     "comma-separated numbers, e.g. '3,1,1'.") from None
  if len(weights) != count:
    raise ValueError(f"Config key pretrain.corpus_weights has {len(weights)} "
                     f"weights for {count} pretrain.corpus members; give one "
                     "each, or '' for weights by hours.")
  if not all(0 <= w < float("inf") for w in weights) or not sum(weights):
    raise ValueError(f"Config key pretrain.corpus_weights={text!r}: weights "
                     "must be finite, >= 0, and not all 0.")
  return weights


def _check_corpus(config: ml_collections.ConfigDict) -> None:
  """pretrain.corpus parses, and goes with what a corpus can train."""
  members = corpus_members(config.pretrain.corpus)
  supervised = config.pretrain.objective in objectives.CORPUS_SUPERVISED
  weight = config.pretrain.corpus_supervised_weight
  if (weight or supervised) and (not members or weight and supervised):
    raise ValueError(
        "pretrain.objective=corpus_supervised, or pretrain.corpus_supervised_"
        "weight > 0 with a self-supervised objective, trains on the labels of "
        "pretrain.corpus's members: set pretrain.corpus, and not both.")
  if not members:
    for key in ("corpus_weights", "corpus_hours"):
      if str(config.pretrain[key]).strip() not in ("", "0", "0.0"):
        raise ValueError(f"Config key pretrain.{key} is set but "
                         "pretrain.corpus is empty; set both or neither.")
    return
  corpus_weights(config.pretrain.corpus_weights, len(members))
  if config.pretrain.dataset:
    raise ValueError("Set pretrain.corpus or pretrain.dataset, not both "
                     "(a corpus of one dataset is pretrain.corpus=<name>).")
  if config.pretrain.objective == "classification" or (
      config.pretrain.objective not in objectives.self_supervised()
      and not supervised):
    raise ValueError(
        f"pretrain.objective={config.pretrain.objective!r} with "
        "pretrain.corpus: a corpus mixes datasets whose labels do not share "
        "classes, so it trains self-supervised objectives only "
        f"{objectives.self_supervised()}, or corpus_supervised (a head per "
        "member).")


def _check_missing_modalities(text: str) -> None:
  """eval.missing_modalities names modalities (the dataset's: at setup)."""
  known = sorted(modality.MODALITIES)
  unknown = [n.strip() for n in text.split(",")
             if n.strip() and n.strip() not in known]
  if unknown:
    raise ValueError(f"Config key eval.missing_modalities={text!r}: "
                     f"{unknown} are not modality names; choose among {known}"
                     " (comma-separated), or '' for none.")


def _check_target(finetune: ml_collections.ConfigDict) -> None:
  """finetune.target's options, and as many finetune.tracks as it takes."""
  target = finetune.target
  if target in pretext_options.TARGET_DEFAULTS:
    pretext_options.validate(target, finetune.get(target))
  tracks = pretext_options.split_list(finetune.tracks)
  bounds = {"classification": (0, 1), "regression": (1, 99),
            "events": (1, 99), "prediction": (0, 0)}.get(target, (0, 99))
  if not bounds[0] <= len(tracks) <= bounds[1]:
    what = {"classification": "at most one label track ('' = labels)",
            "regression": "one or more float targets, e.g. walking_speed",
            "events": "one or more integer event tracks, e.g. "
                      "initial_contact",
            "prediction": "none (it predicts the input channels)"}[target]
    raise ValueError(f"finetune.tracks={finetune.tracks!r} with "
                     f"finetune.target={target!r}: it takes {what}.")
  if finetune.augment and target != "classification":
    raise ValueError(f"finetune.augment={finetune.augment!r} is for "
                     "finetune.target='classification'; set it to ''.")


def _check_keys(config, reference, prefix: str) -> None:
  for key in config.keys():
    name = prefix + key
    if key not in reference:
      raise KeyError(f"Unknown config key {name!r}; it is not among "
                     f"{sorted(reference.keys())}. Check its spelling.")
    if isinstance(config[key], ml_collections.ConfigDict):
      _check_keys(config[key], reference[key], name + ".")


def flatten(config: ml_collections.ConfigDict, prefix: str = "") -> dict:
  """{dotted key: value} of every leaf of `config`, in declaration order."""
  out = {}
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out
