"""The streaming MVNX reader: generated v3/v4 files, bad input, real files."""

import numpy as np
import pytest

from imujax.datasets import mvnx
import mvnx_fixtures


@pytest.mark.parametrize("version, rate", [(3, 240.0), (4, 60.0)])
def test_values_written_are_values_read(tmp_path, version, rate):
  frames = mvnx_fixtures.random_frames(700, version=version, seed=version)
  path = tmp_path / "rec.mvnx"
  mvnx_fixtures.write_mvnx(path, frames, version=version, rate=rate)
  rec = mvnx.read(path, "all")
  sensors = (mvnx_fixtures.SENSORS_FULL if version == 3
             else mvnx_fixtures.SENSORS_UPPER)
  assert rec.version == str(version) and rec.frame_rate_hz == rate
  assert rec.sensor_labels == sensors
  assert rec.segment_labels == mvnx_fixtures.SEGMENTS
  assert len(rec.joint_labels) == 22
  np.testing.assert_array_equal(rec.index, np.arange(700))
  np.testing.assert_allclose(rec.timestamps_s, np.arange(700) / rate)
  np.testing.assert_array_equal(rec.time_ms, (np.arange(700) * 1000 / rate)
                                .astype(int))
  calib = {3: {"npose": 1, "tpose": 1},
           4: {"identity": 1, "tpose": 1, "tpose-isb": 1}}[version]
  assert rec.skipped_frames == calib
  assert set(rec.fields) == set(frames)
  for k, v in frames.items():
    got = rec.fields[k].reshape(700, -1)
    want = np.deg2rad(v) if k.startswith("jointAngle") else v
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=k)
  assert rec.fields["sensorOrientation"].shape == (700, len(sensors), 4)
  assert rec.fields["jointAngle"].shape == (700, 22, 3)
  imu = mvnx.imu_channels(rec)
  assert imu.acc.shape == imu.gyr.shape == (700, len(sensors), 3)
  if version == 4:  # No sensorAngularVelocity: the segment's is used.
    assert "segment" in imu.sources["gyr"]
    seg = frames["angularVelocity"].reshape(700, -1, 3)
    np.testing.assert_allclose(imu.gyr[:, 0], seg[:, 0], atol=1e-6)
  else:
    assert imu.sources["acc"].startswith("sensorAcceleration rotated")


def test_default_reads_only_sensor_quantities(tmp_path):
  frames = mvnx_fixtures.random_frames(10, version=4)
  mvnx_fixtures.write_mvnx(tmp_path / "a.mvnx", frames)
  rec = mvnx.read(tmp_path / "a.mvnx")
  assert set(rec.fields) == {"sensorFreeAcceleration", "sensorMagneticField",
                             "sensorOrientation"}


def _write(tmp_path, n=40, version=4):
  frames = mvnx_fixtures.random_frames(n, version=version)
  path = tmp_path / "a.mvnx"
  mvnx_fixtures.write_mvnx(path, frames, version=version)
  return path, path.read_text()


def test_cut_off_mid_frame_is_an_error_naming_the_last_complete_frame(tmp_path):
  path, text = _write(tmp_path)
  cut = text.index('index="30"') + 300  # Inside frame 30.
  path.write_text(text[:cut])
  with pytest.raises(mvnx.MvnxError,
                     match=r"a.mvnx:\d+: the file ends before </mvnx>.*last "
                           r"complete frame is index 29 \(line \d+\)"):
    mvnx.read(path)
  rec = mvnx.read(path, allow_truncated=True)
  assert len(rec.index) == 30
  assert rec.repairs == {"truncated_file_tail_dropped": 1}


def test_malformed_number_names_the_line(tmp_path):
  path, text = _write(tmp_path)
  lines = text.splitlines()
  i = next(i for i, l in enumerate(lines) if "<sensorOrientation>" in l
           and i > 700)
  lines[i] = lines[i].replace(">", ">1.012.598.156.929.010 ", 1)
  path.write_text("\n".join(lines))
  with pytest.raises(mvnx.MvnxError, match=rf"a.mvnx:{i + 1}: <sensorOrienta"
                     r"tion> holds a malformed number \('1.012.598.156"):
    mvnx.read(path)


def test_wrong_value_count_names_the_line(tmp_path):
  path, text = _write(tmp_path)
  lines = text.splitlines()
  i = [i for i, l in enumerate(lines) if "<sensorFreeAcceleration>" in l][7]
  lines[i] = lines[i].replace(">", ">0.5 ", 1)
  path.write_text("\n".join(lines))
  with pytest.raises(mvnx.MvnxError, match=rf"a.mvnx:{i + 1}: .*34 values"):
    mvnx.read(path)


def test_not_well_formed_xml_is_not_mistaken_for_truncation(tmp_path):
  path, text = _write(tmp_path)
  path.write_text(text.replace("</frame>", "</frme>", 3))
  with pytest.raises(mvnx.MvnxError, match=r"not well-formed XML"):
    mvnx.read(path)


_REAL = "mvnx_samples"


def test_real_v3_kicking(shared_data):
  path = (shared_data / _REAL / "xsens_mvnx_inria_larsen_7x10_kicking003" /
          "kicking-003.mvnx")
  rec = mvnx.read(path, "all")
  assert rec.version == "3" and rec.frame_rate_hz == 240.0
  assert len(rec.index) == 540 and len(rec.sensor_labels) == 17
  assert rec.skipped_frames == {"npose": 1, "tpose": 1}
  assert "sensorFreeAcceleration" not in rec.fields
  q = rec.fields["sensorOrientation"]
  np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-5)
  # Values of frame index 0 as printed in the file.
  np.testing.assert_allclose(rec.fields["sensorAcceleration"][0, 0],
                             [-9.172028, 0.599071, 3.553490], rtol=1e-6)
  np.testing.assert_allclose(rec.fields["centerOfMass"][0],
                             [1.126416, -0.748377, 0.952957], rtol=1e-6)
  np.testing.assert_allclose(rec.fields["jointAngle"][0, 0, 2],
                             np.deg2rad(5.424564), rtol=1e-6)
  assert rec.unix_ms[1] - rec.unix_ms[0] == 4
  # Sensor acceleration rotated to the global frame holds gravity: what is
  # left after removing it averages ~0 over the recording.
  imu = mvnx.imu_channels(rec)
  assert np.abs(imu.acc.mean(axis=(0, 1))).max() < 0.1


def test_real_v3_meri_and_v4_upper_body(shared_data):
  meri = mvnx.read(shared_data / _REAL / "xsens_mvnx_v3_iit_meri020_truncated"
                   / "Meri-020.mvnx")
  assert len(meri.index) == 4 and len(meri.sensor_labels) == 17
  assert "sensorMagneticField" in meri.fields
  v4 = mvnx.read(shared_data / _REAL / "xsens_mvnx_v4_upperbody_blender_mvnx_io"
                 / "test_mocap.mvnx", "all")
  assert v4.version == "4" and v4.frame_rate_hz == 60.0
  assert len(v4.sensor_labels) == 11 and len(v4.index) == 112
  assert v4.skipped_frames == {"identity": 1, "tpose": 1, "tpose-isb": 1}
  assert v4.fields["jointAngleErgo"].shape == (112, 4, 3)
  np.testing.assert_allclose(v4.fields["sensorFreeAcceleration"][0, 0],
                             [-0.027436, 0.163358, -0.087386], rtol=1e-6)
  np.testing.assert_allclose(
      np.linalg.norm(v4.fields["sensorOrientation"], axis=-1), 1, atol=1e-5)
  imu = mvnx.imu_channels(v4)
  assert imu.sources["acc"] == "sensorFreeAcceleration"
  assert "segment" in imu.sources["gyr"]
