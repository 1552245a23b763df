"""Missing modalities: the checks and ModelConfig fields of the keys for them.

`model.modality_dropout`: with p > 0, training zeroes (after normalisation:
the channel's mean) every channel of one randomly chosen modality per
sequence with probability p (`models.drop_modality`), so a multimodal model
keeps working when a modality is missing at run time; streaming feeds a
missing modality the same way (online/modality_gaps.py).

`model.modality_projection`: with d > 0, each modality's channels get their
own linear map to d features and layer norm before the first layer
(`models.project_modalities`); a missing modality is still fed as 0.

`eval.missing_modalities`: the test evaluation also scores the model with
those modalities' normalised channels at 0 (training/evaluate.py).

The modality of each channel is read from its name (objectives/modality.py),
so all of them need channels of two or more modalities.
"""

from imujax.objectives import modality


def _single_modality_error(key: str, value, channel_names, kinds, what: str):
  return ValueError(
      f"{key}={value} {what}, but every channel of {list(channel_names)} "
      f"reads as {kinds[0]!r}. Set {key}=0, or use channels of two or more "
      "modalities (named as in imujax/datasets/CONVENTIONS.md, "
      "'Modalities').")


def model_fields(config, channel_names) -> dict:
  """{"modality_dropout", "modality_projection", "modalities"} for
  models.ModelConfig, those that are on; {} when both are off.

  Raises:
    ValueError: naming model.modality_dropout (p outside [0, 1)) or
      model.modality_projection (not an int >= 0, or 1), or either with
      channels of a single modality.
  """
  p = float(config.model.get("modality_dropout", 0.0))
  d = config.model.get("modality_projection", 0)
  if not 0 <= p < 1:
    raise ValueError(f"model.modality_dropout={p} must be in [0, 1) (the "
                     "probability of dropping one modality per sequence).")
  if isinstance(d, bool) or not isinstance(d, int) or d < 0 or d == 1:
    raise ValueError(
        f"model.modality_projection={d!r} must be an int >= 0 and not 1 "
        "(0: off; d: d features per modality, layer-normed, which over one "
        "feature would be a constant).")
  if not p and not d:
    return {}
  kinds = modality.of(channel_names)
  if len(set(kinds)) < 2 and p:
    raise _single_modality_error(
        "model.modality_dropout", p, channel_names, kinds,
        "drops one modality per sequence: dropping the only one would leave "
        "no input")
  if len(set(kinds)) < 2:
    raise _single_modality_error(
        "model.modality_projection", d, channel_names, kinds,
        "projects each modality on its own: with one modality that is one "
        "linear map and a layer norm in front of the first layer, which is "
        "not what the key is for")
  out = {"modalities": kinds}
  if p:
    out["modality_dropout"] = p
  if d:
    out["modality_projection"] = d
  return out


def missing_channels(config, channel_names) -> tuple[str, list]:
  """(metric prefix, channel indices) of eval.missing_modalities; ("", [])
  when it is "".

  The prefix is "test_without_<m1>+<m2>/" (modalities sorted).

  Raises:
    ValueError: naming eval.missing_modalities and the modalities of
      `channel_names`, for a name that is none of them, or all of them.
  """
  text = str(config.get("eval", {}).get("missing_modalities", ""))
  names = sorted({n.strip() for n in text.split(",") if n.strip()})
  if not names:
    return "", []
  kinds = modality.of(channel_names)
  have = sorted(set(kinds))
  unknown = [n for n in names if n not in have]
  if unknown or names == have:
    why = (f"names {unknown}, which" if unknown else
           "leaves no modality, while")
    raise ValueError(
        f"eval.missing_modalities={text!r} {why} the dataset's channels "
        f"have modalities {have}: give some of those, comma-separated "
        "(e.g. eval.missing_modalities=gyr), or '' for none.")
  return (f"test_without_{'+'.join(names)}/",
          [i for i, k in enumerate(kinds) if k in names])
