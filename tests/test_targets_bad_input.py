"""Bad input for per-frame targets (issue 18): clear errors naming the file
and field. Event times outside the recording and overlapping bouts of the
mobilised builder are in tests/test_mobilised.py, ipol_gait's contacts
outside the recording and overlapping swings in tests/test_ipol_gait.py;
here: regression targets without a declared unit, wherever they enter."""

import numpy as np
import pytest

from imujax.data import input_pipeline as ip
from imujax.datasets import common
from imujax.datasets.ipol_gait import ipol_gait_dataset_builder as ig
from imujax.datasets.mobilised import mobilised_dataset_builder as mb
from imujax.objectives import regression


@pytest.mark.parametrize("unit", ["", "  ", None])
def test_a_target_without_a_unit_names_the_file_and_field(unit):
  with pytest.raises(ValueError, match=r"builder\.py: regression target "
                     "'targets_speed' declares no unit"):
    common.target_features({"targets_speed": unit}, "builder.py")
  with pytest.raises(ValueError, match=r"'speed' must be named targets_"):
    common.target_features({"speed": "m/s"}, "builder.py")
  assert set(common.target_features({"targets_speed": "m/s"}, "b.py")) == {
      "targets_speed"}


@pytest.mark.parametrize("module,name", [(mb, "mobilised"),
                                         (ig, "ipol_gait")])
def test_builders_refuse_a_unitless_target(module, name, monkeypatch,
                                            tmp_path):
  field = next(iter(module.TARGETS))
  monkeypatch.setattr(module, "TARGETS", {**module.TARGETS, field: ""})
  with pytest.raises(ValueError, match=(
      rf"{name}_dataset_builder\.py: regression target '{field}' declares "
      "no unit")):
    module.Builder(data_dir=str(tmp_path))


def test_training_refuses_a_target_whose_dataset_gives_no_unit():
  rec = ip.Recording(np.zeros((3, 1), np.float32), np.zeros(3, np.int32),
                     "s", "r", targets={"speed": np.ones(3, np.float32)})
  opts = {"tracks": ("speed",), "units": ("",)}
  with pytest.raises(ValueError, match="finetune.tracks: target 'speed' "
                     "declares no unit"):
    regression.fit_target_stats([rec], opts)
  got = regression.fit_target_stats([rec], {**opts, "units": ("m/s",)})
  assert got["target_mean"].tolist() == [1.]
