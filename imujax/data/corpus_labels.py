"""Who may be in a corpus, and whose labels a corpus pre-training may read.

Subject guards (`check_no_leak`, `leave_one_out`) and the label spaces of
supervised corpus pre-training (`pretrain.objective=corpus_supervised`, or
`pretrain.corpus_supervised_weight` > 0 with a self-supervised objective):
`label_spaces` gives one head per labelled member in the member's own classes
("member", the default), or one head over `SHARED_CLASSES` through the table
`SHARED_MAP` ("shared"). `check_supervised` refuses a supervised corpus that
holds the fine-tune target's cohort. Design: `imujax/data/CORPUS.md`.
"""

import re
from typing import NamedTuple, Sequence

from imujax.data import input_pipeline

LABEL_MAPS = ("member", "shared")
# The shared label space of pretrain.corpus_label_map="shared": motion classes
# that several datasets label alike.
SHARED_CLASSES = ("walking", "upstairs", "downstairs", "sitting", "standing",
                  "lying", "transition", "turning")
# Cohort -> {class name in its builder's class_names -> shared class}. A class
# not listed (and a cohort not listed) is ignored: its frames get no label in
# the shared space. seglearn_watch's shoulder exercises have no similar class
# elsewhere; andy's crouching and kneeling neither.
SHARED_MAP = {
    "uci_hapt": {
        "WALKING": "walking", "WALKING_UPSTAIRS": "upstairs",
        "WALKING_DOWNSTAIRS": "downstairs", "SITTING": "sitting",
        "STANDING": "standing", "LAYING": "lying",
        **{t: "transition" for t in ("STAND_TO_SIT", "SIT_TO_STAND",
                                     "SIT_TO_LIE", "LIE_TO_SIT",
                                     "STAND_TO_LIE", "LIE_TO_STAND")}},
    "sp_sw_har": {"SEATED": "sitting", "STANDING_UP": "transition",
                  "WALKING": "walking", "TURNING": "turning",
                  "SITTING_DOWN": "transition"},
    "ipol_gait": {"stand": "standing", "walk": "walking", "turn": "turning"},
    "andy": {"standing": "standing", "walking": "walking"},
    "seglearn_watch": {},
}


class LeakError(ValueError):
  """The corpus holds a validation or test subject of the target."""


def leave_one_out(corpus: str, target: str) -> str:
  """`pretrain.corpus` without the members of `target`'s cohort.

  The default corpus of a study's target: leave-one-dataset-out, so that
  no view or rate of the target's people is pre-trained on (e.g. target
  "sp_sw_har/watch_50hz" drops "sp_sw_har/phone_50hz@..." too).
  """
  cohort = input_pipeline.cohort_of(target)
  return ",".join(item.strip() for item in corpus.split(",") if item.strip()
                  and input_pipeline.cohort_of(item.strip().partition("@")[0])
                  != cohort)


def check_no_leak(contents: dict, target: str, splits: dict) -> None:
  """Refuses a corpus holding a validation or test subject of `target`.

  Args:
    contents: member TFDS name -> the subjects it contributes.
    target: the fine-tune target's TFDS name (`data.name`).
    splits: the target's split ("val", "test" -> subjects), from the run's
      seed and folds. Subjects are compared by cohort, so another view or
      rate of the target's dataset counts as the target.
  """
  cohort = input_pipeline.cohort_of(target)
  held = set(splits["val"]) | set(splits["test"])
  for name, subjects in contents.items():
    leaked = sorted(set(subjects) & held)
    if input_pipeline.cohort_of(name) == cohort and leaked:
      raise LeakError(
          f"pretrain.corpus member {name!r} holds subjects {leaked}, which "
          f"are validation or test subjects of the fine-tune target "
          f"data.name={target!r} (cohort {cohort!r}: the same people). "
          f"Leave {name} out of pretrain.corpus (leave-one-dataset-out, the "
          "default for studies), or build the corpus for this run's seed "
          "and folds so that only the target's training subjects enter.")


def check_supervised(names: Sequence[str], target: str,
                     corpus: str = "") -> None:
  """Refuses a supervised corpus holding the target's cohort.

  Its training subjects' labels would all be read, beyond the fine-tune's
  label budget (data.labeled_subjects). The corpus itself withholds them
  (`Member.labelled` is False), so this refusal is what makes it visible.

  Args:
    names: the members' TFDS names.
    target: the fine-tune target's TFDS name (`data.name`).
    corpus: `pretrain.corpus`, to spell out the fix.
  """
  cohort = input_pipeline.cohort_of(target)
  for name in names:
    if input_pipeline.cohort_of(name) == cohort:
      fix = leave_one_out(corpus, target) if corpus else "<the others>"
      raise ValueError(
          f"pretrain.corpus member {name!r} is of the fine-tune target's "
          f"cohort (data.name={target!r}): supervised corpus pre-training "
          "(pretrain.objective=corpus_supervised or "
          "pretrain.corpus_supervised_weight > 0) would train on the labels "
          "of every training subject of the target, beyond the label budget. "
          "Leave the target's dataset out (leave-one-dataset-out, "
          f"corpus.leave_one_out): pretrain.corpus={fix!r}.")


class LabelSpaces(NamedTuple):
  """The heads of supervised corpus pre-training and how members reach them.

  heads: ((head name, classes), ...); member_heads: per member, its head's
  index (-1: no labelled class); maps: per member, each of its classes' index
  in its head (-1: ignored).
  """
  heads: tuple
  member_heads: tuple
  maps: tuple

  def options(self, member_names: Sequence[str]) -> dict:
    """The objective's static options (`corpus_supervised`)."""
    return {"corpus_heads": self.heads, "corpus_member_heads":
            self.member_heads, "corpus_label_maps": self.maps,
            "corpus_members": tuple(metric_name(n) for n in member_names)}


def metric_name(member: str) -> str:
  """A member's name as a metric suffix ("uci_hapt/50hz" -> "uci_hapt_50hz")."""
  return re.sub(r"[^0-9A-Za-z]+", "_", member).strip("_")


def label_spaces(members: Sequence, how: str = "member") -> LabelSpaces:
  """The heads for `members` (each with `name`, `class_names`, `labelled`).

  "member": one head per labelled member, its own classes. "shared": one
  head over SHARED_CLASSES; classes SHARED_MAP does not list are ignored.
  A member of the target's cohort (`labelled` False) reaches no head.
  """
  if how not in LABEL_MAPS:
    raise ValueError(f"pretrain.corpus_label_map={how!r}; choose one of "
                     f"{LABEL_MAPS}.")
  heads, member_heads, maps = [], [], []
  for m in members:
    classes = list(m.class_names) if m.labelled else []
    if how == "shared":
      table = SHARED_MAP.get(input_pipeline.cohort_of(m.name), {})
      index = [SHARED_CLASSES.index(table[c]) if c in table else -1
               for c in classes]
      if not heads:
        heads.append(("shared", len(SHARED_CLASSES)))
      member_heads.append(0 if any(i >= 0 for i in index) else -1)
    else:
      index = list(range(len(classes)))
      member_heads.append(len(heads) if classes else -1)
      if classes:
        heads.append((metric_name(m.name), len(classes)))
    maps.append(tuple(index))
  if all(h < 0 for h in member_heads):
    raise ValueError(
        "No member of pretrain.corpus has labels that supervised corpus "
        f"pre-training could use (pretrain.corpus_label_map={how!r}; members "
        f"{[m.name for m in members]}). Add a labelled dataset, or use "
        "corpus_label_map=member (every class of each member).")
  return LabelSpaces(tuple(heads), tuple(member_heads), tuple(maps))
