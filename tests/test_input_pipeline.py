"""Splits, label budgets, normalisation and batching on the real watch data."""

import numpy as np
import pytest

from imujax.data import input_pipeline as ip


def test_subject_split_is_disjoint_deterministic_and_seeded(watch_data):
  subjects = [r.subject for r in watch_data.recordings]
  a = ip.split_subjects(subjects, seed=0, num_val=2, num_test=3)
  assert a == ip.split_subjects(subjects, seed=0, num_val=2, num_test=3)
  assert a != ip.split_subjects(subjects, seed=1, num_val=2, num_test=3)
  assert (len(a["train"]), len(a["val"]), len(a["test"])) == (5, 2, 3)
  assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(subjects)
  assert not set(a["train"]) & set(a["test"])
  assert not set(a["val"]) & (set(a["test"]) | set(a["train"]))


def test_split_without_training_subjects_is_an_error():
  with pytest.raises(ValueError, match="data.val_subjects"):
    ip.split_subjects(["a", "b", "c"], 0, num_val=1, num_test=2)


def test_label_budgets_are_nested_subsets_of_whole_subjects(watch_data):
  recs = watch_data.recordings
  prev = set()
  for n in (1, 2, 5):
    chosen = ip.label_budget(recs, seed=3, subjects=n)
    subjects = {r.subject for r in chosen}
    assert len(subjects) == n
    # Whole subjects: every recording of a chosen subject is in.
    assert len(chosen) == sum(r.subject in subjects for r in recs)
    assert prev <= subjects
    prev = subjects
  assert len(ip.label_budget(recs, seed=3, recordings_budget=7)) == 7
  assert len(ip.label_budget(recs, seed=3)) == len(recs)
  with pytest.raises(ValueError, match="only one"):
    ip.label_budget(recs, 0, subjects=1, recordings_budget=1)


def test_normalizer_uses_only_the_recordings_it_is_given(watch_data, tmp_path):
  train = watch_data.recordings[:20]
  norm = ip.Normalizer.fit(train, watch_data.channel_names)
  x = np.concatenate([r.signals for r in train])
  np.testing.assert_allclose(norm.mean, x.mean(0), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(norm.std, x.std(0), rtol=1e-4)
  z = np.concatenate([norm(r.signals) for r in train])
  np.testing.assert_allclose(z.mean(0), 0., atol=1e-4)
  np.testing.assert_allclose(z.std(0), 1., atol=1e-4)
  norm.save(tmp_path / "n.json")
  again = ip.Normalizer.load(tmp_path / "n.json")
  np.testing.assert_array_equal(again.mean, norm.mean)
  assert again.channel_names == watch_data.channel_names


def test_windows_are_deterministic_slices_of_recordings(watch_data):
  recs = watch_data.recordings[:10]
  norm = ip.Normalizer.fit(recs, watch_data.channel_names)
  a = ip.sample_windows(recs, norm, 64, 8, seed=0, step=5)
  b = ip.sample_windows(recs, norm, 64, 8, seed=0, step=5)
  c = ip.sample_windows(recs, norm, 64, 8, seed=0, step=6)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["signals"], c["signals"])
  assert a["valid"].all()
  # Each window is a contiguous normalised piece of one recording.
  for w, labels in zip(a["signals"], a["labels"]):
    raw = w * norm.std + norm.mean
    found = False
    for r in recs:
      hits = np.flatnonzero(np.all(np.isclose(r.signals, raw[0], atol=1e-4), 1))
      for start in hits:
        if start + 64 <= len(r.labels) and np.allclose(
            r.signals[start:start + 64], raw, atol=1e-4):
          np.testing.assert_array_equal(r.labels[start:start + 64], labels)
          found = True
    assert found


def test_short_recording_is_padded_and_marked_invalid(watch_data):
  rec = watch_data.recordings[0]
  short = rec._replace(signals=rec.signals[:10], labels=rec.labels[:10])
  norm = ip.Normalizer.fit([rec], watch_data.channel_names)
  batch = ip.sample_windows([short], norm, 32, 2, seed=0, step=0)
  assert batch["valid"][:, :10].all() and not batch["valid"][:, 10:].any()
  assert (batch["labels"][:, 10:] == -1).all()


def test_whole_recordings_count_every_frame_once(watch_data):
  recs = watch_data.recordings[:11]
  norm = ip.Normalizer.fit(recs, watch_data.channel_names)
  batches = list(ip.whole_recordings(recs, norm, batch_size=4))
  assert len(batches) == 3
  shapes = {b["signals"].shape for b in batches}
  assert len(shapes) == 1  # One compiled shape.
  assert sum(int(b["valid"].sum()) for b in batches) == sum(
      len(r.labels) for r in recs)
  np.testing.assert_allclose(batches[0]["signals"][1, :len(recs[1].labels)],
                             norm(recs[1].signals), rtol=1e-6)
