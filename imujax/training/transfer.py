"""Carrying a pre-trained encoder to another dataset's channels.

Channels are matched by name, which in imujax encodes placement, sensor and
axis (`wrist_acc_x`, `thigh_gyr_z`, ...):

* every channel the encoder was pre-trained on exists in the new dataset →
  the new dataset's channels are selected and reordered to the pre-trained
  order (extra channels are dropped) and the encoder is used as is;
* otherwise (or with `finetune.channels="adapter"`) → a learned per-frame
  linear input adapter maps the new channels to the pre-trained ones. It starts
  as the selection it can make: 1 from each new channel to the pre-trained
  channel of the same name, 0 elsewhere, so a pre-trained channel with no
  counterpart starts at 0, the mean of its normalised values.

Names say nothing about axis conventions: two watches may point x differently.
Matching by name assumes the datasets agree; the adapter can learn otherwise.
"""

from typing import NamedTuple, Optional, Sequence

import jax.numpy as jnp
import numpy as np


class ChannelPlan(NamedTuple):
  select: Optional[list[int]]  # Indices of the new dataset's channels to keep.
  adapter: bool                # A learned input adapter is needed.
  note: str                    # What was done, for logs and run.json.


def plan(source: Sequence[str], target: Sequence[str],
         policy: str = "auto") -> ChannelPlan:
  """Decides how `target` channels feed an encoder trained on `source`."""
  if policy not in ("auto", "adapter"):
    raise ValueError(f"finetune.channels={policy!r}; choose 'auto' or "
                     "'adapter'.")
  source, target = list(source), list(target)
  if policy == "auto" and set(source) <= set(target):
    select = [target.index(name) for name in source]
    dropped = [n for n in target if n not in source]
    note = ("same channels" if select == list(range(len(target))) else
            f"selected by name; dropped {dropped}" if dropped else
            "reordered by name")
    return ChannelPlan(select, False, note)
  matched = [n for n in target if n in source]
  return ChannelPlan(None, True,
                     f"input adapter {len(target)}->{len(source)}; "
                     f"{len(matched)} channels matched by name")


def adapter_init(source: Sequence[str], target: Sequence[str]) -> dict:
  """Adapter params {"w": [len(target), len(source)], "b"} matching names."""
  w = np.zeros((len(target), len(source)), np.float32)
  for i, name in enumerate(target):
    if name in source:
      w[i, list(source).index(name)] = 1.
  return {"w": jnp.asarray(w), "b": jnp.zeros((len(source),), jnp.float32)}
