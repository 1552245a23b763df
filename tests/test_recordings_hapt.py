"""UCI HAPT's RawData/ layout through the `recordings` spec alone.

The spec is the one in imujax/datasets/recordings/README.md. A generated
fixture in exactly that layout (3 subjects, a few hundred samples) has label
counts checked by hand; the shared copy of the real data must give what the
`uci_hapt/50hz` builder gives.
"""

import re

import numpy as np
import pytest

from imujax.datasets.recordings import recordings_dataset_builder as rb
from tests import dataset_fixtures
from tests.conftest import REPO

README = REPO / "imujax" / "datasets" / "recordings" / "README.md"
G = 9.80665
CLASSES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING",
           "STANDING", "LAYING", "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE",
           "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND")
# experiment, user, samples.
EXPERIMENTS = ((1, 1, 300), (2, 2, 250), (3, 3, 200))
# experiment user activity start end: 1-based, inclusive, as upstream.
LABELS_TXT = """1 1 5 11 110
1 1 7 111 130
1 1 4 131 280
2 2 1 1 250
3 3 6 51 150
9 9 1 1 50
"""
# By hand: exp01 100 STANDING (11..110), 20 STAND_TO_SIT, 150 SITTING,
# 30 unlabelled (1..10, 281..300); exp02 all 250 WALKING (first and last
# sample included); exp03 100 LAYING, 100 unlabelled; the experiment-9 row
# names no file.
EXPECTED = {"WALKING": 250, "SITTING": 150, "STANDING": 100, "LAYING": 100,
            "STAND_TO_SIT": 20, "unlabelled": 130}


def readme_spec() -> str:
  """The HAPT spec of the recordings README, as written there."""
  blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)
  found = [b for b in blocks if 'name = "uci_hapt_raw"' in b]
  assert len(found) == 1, "the README has no (or two) HAPT specs"
  return found[0]


def write_hapt(folder):
  """RawData/ of 3 experiments: acc_/gyro_expXX_userYY.txt + labels.txt.

  acc x of sample k (0-based) is k / 1000 g, gyro x is -k / 100 rad/s; y and
  z are the experiment id and the user id.
  """
  folder.mkdir(parents=True)
  for exp, user, n in EXPERIMENTS:
    k = np.arange(n)
    for sensor, x in (("acc", k / 1000), ("gyro", -k / 100)):
      rows = [f"{a:.10g} {exp:.10g} {user:.10g}" for a in x]
      (folder / f"{sensor}_exp{exp:02d}_user{user:02d}.txt").write_text(
          "\n".join(rows) + "\n")
  (folder / "labels.txt").write_text(LABELS_TXT)
  (folder.parent / "activity_labels.txt").write_text(
      "".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, start=1)))


def build(tmp_path, folder, spec_text=None):
  return dataset_fixtures.build_recordings(
      tmp_path, spec_text or readme_spec(),
      spec_path=tmp_path / "hapt_spec.toml", manual_dir=folder)


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def label_counts(examples, class_names) -> dict:
  counts = {}
  for ex in examples.values():
    for label in ex["labels"]:
      name = class_names[label] if label >= 0 else "unlabelled"
      counts[name] = counts.get(name, 0) + 1
  return counts


def test_hapt_layout_fixture(tmp_path):
  folder = tmp_path / "HAPT" / "RawData"
  write_hapt(folder)
  builder, ex = build(tmp_path, folder)
  assert sorted(ex) == ["acc_exp01_user01", "acc_exp02_user02",
                        "acc_exp03_user03"]
  assert sorted(_text(e["subject"]) for e in ex.values()) == ["01", "02",
                                                              "03"]
  meta = builder.info.metadata
  assert list(meta["class_names"]) == list(CLASSES)
  assert label_counts(ex, CLASSES) == EXPECTED
  assert meta["repairs"]["segment_rows_without_recording"] == 1
  one = ex["acc_exp01_user01"]
  # Boundaries of "1 1 5 11 110": samples 11..110 counted from 1.
  assert one["labels"][9] == -1 and one["labels"][10] == 4
  assert one["labels"][109] == 4 and one["labels"][110] == 6
  assert one["labels"][279] == 3 and one["labels"][280] == -1
  # Channels in spec order: acc (g -> m/s^2) then gyro from the sibling file.
  k = np.arange(300)
  np.testing.assert_allclose(one["signals"][:, 0], k / 1000 * G, rtol=1e-6)
  np.testing.assert_allclose(one["signals"][:, 1:3], [[G, G]] * 300,
                             rtol=1e-6)
  np.testing.assert_allclose(one["signals"][:, 3], -k / 100, rtol=1e-6)
  np.testing.assert_allclose(one["signals"][:, 4:6], [[1, 1]] * 300)
  # Sibling files and the table are inputs of the build: editing one gives a
  # new fingerprint.
  inputs = meta["fingerprint_inputs"]["files"]
  assert {"labels.txt", "gyro_exp02_user02.txt"} <= set(inputs)


def test_hapt_layout_bad_files_are_all_reported(tmp_path):
  folder = tmp_path / "RawData"
  write_hapt(folder)
  (folder / "gyro_exp01_user01.txt").unlink()
  gyro3 = folder / "gyro_exp03_user03.txt"
  gyro3.write_text("".join(gyro3.read_text().splitlines(True)[:150]))
  with pytest.raises(rb.BuildError) as e:
    build(tmp_path, folder)
  assert len(e.value.errors) == 2
  text = str(e.value)
  assert "gyro_exp01_user01.txt: channel file for" in text
  assert "channels[3].file = 'gyro_exp{exp}_user{user}.txt'" in text
  assert re.search(r"gyro_exp03_user03.txt: 150 data rows, but \S*"
                   r"acc_exp03_user03.txt has 200", text)


def test_hapt_layout_off_by_one_is_the_spec_not_a_guess(tmp_path):
  """segment_first = 0 shifts every segment one sample later."""
  folder = tmp_path / "RawData"
  write_hapt(folder)
  text = readme_spec().replace("segment_first = 1", "segment_first = 0")
  _, ex = build(tmp_path, folder, text)
  one = ex["acc_exp01_user01"]
  assert one["labels"][10] == -1 and one["labels"][11] == 4
  with pytest.raises(rb.SpecError, match="labels.segment_first must be 0 or"):
    build(tmp_path, folder, re.sub(r"segment_first = 1.*\n", "",
                                   readme_spec()))


def test_hapt_real_data_matches_the_uci_hapt_builder(shared_data, tmp_path):
  from imujax.data import info
  raw = shared_data / "uci_hapt" / "RawData"
  if not (raw / "labels.txt").is_file():
    pytest.skip(f"{raw}/labels.txt is absent: this test compares the "
                "recordings spec with the uci_hapt builder on the real data.")
  spec = tmp_path / "hapt_spec.toml"
  spec.write_text(readme_spec())
  ours = info.prepare("recordings/50hz", str(tmp_path / "tfds"), str(raw),
                      str(spec))
  theirs = info.prepare("uci_hapt/50hz", str(tmp_path / "tfds"),
                        str(raw.parent))
  a, b = info.summarize(ours), info.summarize(theirs)
  assert (a["recordings"], a["subjects"]) == (61, 30)
  assert (b["recordings"], b["subjects"]) == (61, 30)
  assert a["frames"] == b["frames"]
  assert a["class_frames"] == b["class_frames"]
  assert a["channels"] == b["channels"]
  # Recording by recording, the same samples: acc_exp01_user01 = s01_exp01.
  src_a = ours.as_data_source()["train"]
  src_b = theirs.as_data_source()["train"]
  by_name = {_text(src_b[i]["recording"]): i for i in range(len(src_b))}
  for i in range(len(src_a)):
    ex = src_a[i]
    exp, user = re.fullmatch(r"acc_exp(\d+)_user(\d+)",
                             _text(ex["recording"])).groups()
    other = src_b[by_name[f"s{user}_exp{exp}"]]
    np.testing.assert_array_equal(ex["labels"], other["labels"])
    np.testing.assert_array_equal(ex["signals"], other["signals"])
