"""The seglearn watch builder against the file it reads."""

import numpy as np

from imujax.datasets.seglearn_watch import seglearn_watch_dataset_builder as sw


def test_builds_all_recordings_in_si_units(watch_data):
  raw = np.load(sw.installed_file(), allow_pickle=True).item()
  assert len(watch_data.recordings) == 140
  assert len({r.subject for r in watch_data.recordings}) == 10
  assert watch_data.sample_rate_hz == 50.0
  assert watch_data.channel_names[0] == "wrist_acc_x"
  assert len(watch_data.class_names) == 7
  # Recording order within a subject follows the upstream file.
  first_of_s01 = [i for i, s in enumerate(raw["subject"]) if s == 1][0]
  rec = next(r for r in watch_data.recordings if r.recording == "s01_r00")
  expected = np.asarray(raw["X"][first_of_s01], np.float64)
  np.testing.assert_allclose(rec.signals[:, :3], expected[:, :3] * 9.80665,
                             rtol=1e-6)
  np.testing.assert_allclose(rec.signals[:, 3:], expected[:, 3:], rtol=1e-6)
  assert (rec.labels == raw["y"][first_of_s01]).all()
  total = sum(len(r.labels) for r in watch_data.recordings)
  assert total == sum(len(x) for x in raw["X"]) == 244102
