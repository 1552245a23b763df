"""configs/sweeps/targets.py: the declared comparison of issue 18 expands as
its docstring says (counts, fresh seeds, shared pre-training, folds)."""

import pytest

from imujax.experiments import jobs
from tests.conftest import REPO

SWEEP = str(REPO / "configs" / "sweeps" / "targets.py")


@pytest.mark.parametrize("variant,pretrains,finetunes", [
    ("smoke", 12, 32), ("readme", 26, 72), ("full", 78, 432)])
def test_variants_expand_to_the_documented_runs(variant, pretrains,
                                                finetunes):
  config, points = jobs.load_sweep(f"{SWEEP}:variant={variant}")
  expanded = jobs.expand(points, config, "/tmp/x")
  assert sum(j.mode == "pretrain" for j in expanded) == pretrains
  assert sum(j.mode == "finetune" for j in expanded) == finetunes
  seeds = {dict(j.overrides)["seed"] for j in expanded}
  assert seeds <= {201, 202, 203}
  for j in expanded:
    o = dict(j.overrides)
    if o["data.name"] == "mobilised/50hz":  # 3 participants: 3 folds.
      assert o["data.num_folds"] == 3 and o["data.val_subjects"] == 1
      assert o["data.manual_dir"].endswith("mobilised_example/lab")
      assert j.mode == "pretrain" or o["data.labeled_subjects"] == 0
    if j.mode == "finetune" and o["finetune.target"] == "events":
      assert o["finetune.tracks"] == "initial_contact"
      assert o["finetune.events.tolerance_ms"] == 50.


def test_ipol_gait_tasks_share_their_pretraining():
  config, points = jobs.load_sweep(f"{SWEEP}:variant=readme")
  expanded = jobs.expand(points, config, "/tmp/x")
  after = {}
  for j in expanded:
    if j.after and "ipol_gait" in j.name:
      after.setdefault(j.after, set()).add(
          dict(j.overrides)["finetune.target"])
  assert after and all(t == {"events", "regression"} for t in after.values())


def test_unknown_switch_or_variant_is_refused():
  with pytest.raises(ValueError, match="variant"):
    jobs.load_sweep(f"{SWEEP}:variant=huge")
  with pytest.raises(ValueError, match="switches variant, data_root"):
    jobs.load_sweep(f"{SWEEP}:model.hidden=8")
