"""Channel names -> (modality, placement, axis), and bad declarations."""

import numpy as np
import pytest

from imujax.objectives import modality


@pytest.mark.parametrize("name, want", [
    ("wrist_acc_x", ("acc", "wrist", "x", "")),
    ("lower_back_gyr_z", ("gyr", "lower_back", "z", "")),
    ("right_upper_arm_mag_y", ("mag", "right_upper_arm", "y", "")),
    ("thigh_quat_w", ("orientation", "thigh", "w", "")),
    ("left_pressure_03", ("pressure", "left", "03", "")),
    ("right_foot_force_z", ("force", "right_foot", "z", "")),
    ("gaze_x_deg", ("gaze", "", "x", "deg")),
    ("gazevel_y", ("gaze_velocity", "", "y", "")),
    ("track_lost", ("other", "", "", "")),
    ("wrist_temp", ("other", "", "", "")),
    ("a", ("other", "", "", "")),
])
def test_parse(name, want):
  ch = modality.parse(name)
  assert (ch.modality, ch.placement, ch.axis, ch.unit) == want


def test_every_builder_declares_units_its_modalities_allow():
  # pylint: disable=g-import-not-at-top
  from imujax.datasets.gaze_lund2013 import gaze_lund2013_dataset_builder as g
  from imujax.datasets.insole_pin2gpi import insole_pin2gpi_dataset_builder \
      as ins
  from imujax.datasets.seglearn_watch import seglearn_watch_dataset_builder \
      as sw
  imu = {"acc": "m/s^2", "gyr": "rad/s"}  # Every IMU builder's metadata.
  assert set(modality.of(sw.CHANNEL_NAMES)) == {"acc", "gyr"}
  modality.describe_all(sw.CHANNEL_NAMES, imu)
  assert set(modality.of(ins.CHANNEL_NAMES)) == {"pressure"}
  modality.describe_all(ins.CHANNEL_NAMES, {"pressure": "normalised"})
  assert set(modality.of(g.CHANNEL_NAMES)) == {"gaze"}
  modality.describe_all(g.CHANNEL_NAMES, {"gaze": "deg"})
  modality.describe_all(("wrist_quat_w", "wrist_quat_x"), {"quat": "1"})


def test_a_unit_the_modality_does_not_allow_names_channel_and_units():
  with pytest.raises(ValueError) as e:
    modality.describe("left_pressure_03", unit="m/s^2")
  msg = str(e.value)
  assert "'left_pressure_03'" in msg and "'m/s^2'" in msg
  assert "'normalised'" in msg and "'kPa'" in msg
  with pytest.raises(ValueError, match=r"'wrist_acc_x'.*'rad/s'.*'g'"):
    modality.describe("wrist_acc_x", unit="rad/s")
  with pytest.raises(ValueError, match=r"'gaze_x_px'.*'deg'"):
    modality.describe("gaze_x_px", unit="deg")  # Name and unit disagree.
  with pytest.raises(ValueError, match="'left_pressure_03'.*m/s"):
    modality.describe_all(["wrist_acc_x", "left_pressure_03"],
                          {"acc": "m/s^2", "pressure": "m/s^2"})
  assert modality.describe("wrist_temp", unit="degC").modality == "other"


def test_an_unknown_or_mismatched_modality_names_channel_and_choices():
  with pytest.raises(ValueError) as e:
    modality.describe("wrist_emg_1", modality="emg")
  msg = str(e.value)
  assert "'wrist_emg_1'" in msg and "'emg'" in msg
  for m in modality.MODALITIES:
    assert repr(m) in msg
  with pytest.raises(ValueError, match=r"'wrist_temp'.*'pressure'.*other"):
    modality.describe("wrist_temp", modality="pressure")
  assert modality.describe("left_pressure_00", modality="pressure").axis == "00"


def test_takes_lists_channels_per_augmentation():
  names = ("wrist_acc_x", "left_pressure_00", "gaze_x_deg", "wrist_temp")
  assert modality.takes(names, modality.ROTATION) == (0,)
  assert modality.takes(names, modality.GAIN) == (0, 1, 2)
  assert modality.takes(names, modality.SWAP) == (1,)
  assert modality.takes(names, modality.DRIFT) == (2,)
  assert modality.takes(names, "noise") == (0, 1, 2, 3)
  assert np.all([modality.GENERIC <= m.augmentations
                 for m in modality.MODALITIES.values()])


def test_normalizer_fits_finite_values_and_zeroes_gaps():
  from imujax.data import input_pipeline as ip  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  imu = [ip.Recording(rng.normal(3., 2., (50, 2)).astype(np.float32),
                      np.zeros(50, np.int32), "s", f"r{i}") for i in range(2)]
  n = ip.Normalizer.fit(imu, ["wrist_acc_x", "wrist_acc_y"])
  x = np.concatenate([r.signals for r in imu]).astype(np.float64)
  # Without NaN: exactly the statistics of before.
  np.testing.assert_array_equal(n.mean, x.mean(0).astype(np.float32))
  np.testing.assert_array_equal(n.std, x.std(0).astype(np.float32))
  np.testing.assert_array_equal(n(imu[0].signals),
                                (imu[0].signals - n.mean) / n.std)
  gaze = imu[0].signals.copy()
  gaze[5:9] = np.nan  # Track loss, as gaze_lund2013 stores it.
  gaze[20, 1] = np.nan
  g = ip.Normalizer.fit([imu[0]._replace(signals=gaze)], list(GAZE_NAMES))
  assert np.isfinite(g.mean).all() and np.isfinite(g.std).all()
  np.testing.assert_allclose(g.mean, np.nanmean(gaze, 0), rtol=1e-6)
  np.testing.assert_allclose(g.std, np.nanstd(gaze, 0), rtol=1e-5)
  out = g(gaze)
  assert out.dtype == np.float32 and np.isfinite(out).all()
  assert (out[5:9] == 0).all() and out[20, 1] == 0 and out[20, 0] != 0
  empty = gaze.copy()
  empty[:, 1] = np.nan  # A channel that is all gap: 0 everywhere.
  e = ip.Normalizer.fit([imu[0]._replace(signals=empty)], list(GAZE_NAMES))
  assert (e.mean[1], e.std[1]) == (0., 1.) and (e(empty)[:, 1] == 0).all()


GAZE_NAMES = ("gaze_x_deg", "gaze_y_deg")
