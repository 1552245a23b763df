"""`model.modality_dropout`: its check and the ModelConfig fields it sets.

With p > 0, training zeroes (after normalisation: the channel's mean) every
channel of one randomly chosen modality per sequence with probability p
(`models.drop_modality`), so a multimodal model keeps working when a
modality is missing at run time; streaming feeds a missing modality the same
way (online/modality_gaps.py). The modality of each channel is read from its
name (objectives/modality.py), so it needs channels of two or more
modalities.
"""

from imujax.objectives import modality


def model_fields(config, channel_names) -> dict:
  """{"modality_dropout", "modalities"} for models.ModelConfig; {} when off.

  Raises:
    ValueError: naming model.modality_dropout, for p outside [0, 1) or
      channels of a single modality.
  """
  p = float(config.model.get("modality_dropout", 0.0))
  if not 0 <= p < 1:
    raise ValueError(f"model.modality_dropout={p} must be in [0, 1) (the "
                     "probability of dropping one modality per sequence).")
  if not p:
    return {}
  kinds = modality.of(channel_names)
  if len(set(kinds)) < 2:
    raise ValueError(
        f"model.modality_dropout={p} drops one modality per sequence, but "
        f"every channel of {list(channel_names)} reads as {kinds[0]!r}: "
        "dropping it would leave no input. Set model.modality_dropout=0, or "
        "use channels of two or more modalities (named as in "
        "imujax/datasets/CONVENTIONS.md, 'Modalities').")
  return {"modality_dropout": p, "modalities": kinds}
