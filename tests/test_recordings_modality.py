"""channels[].modality / placement in a recordings spec; every builder's
channel metadata passes `modality.describe_all`; a pressure spec (with an
accelerometer beside it) builds and trains end to end, modality dropout on."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import imujax.datasets as datasets_pkg
from imujax.datasets.recordings import recordings_dataset_builder as rb
from imujax.datasets.recordings import schema
from imujax.objectives import modality
from tests.conftest import REPO, subprocess_env

CELLS = ("01", "02", "03", "04")
CHANNELS = "\n".join(
    [f'  {{column = "{s[0]}{c}", name = "{s}_pressure_{c}", unit = "kPa", '
     f'modality = "pressure", placement = "{s}"}},'
     for s in ("left", "right") for c in CELLS] +
    [f'  {{column = "a{a}", name = "shank_acc_{a}", unit = "g", '
     f'modality = "acc"}},' for a in "xyz"])
SPEC = f"""
name = "insole_lab"
files = "*.csv"
subject_regex = "^(?P<subject>P\\\\d+)_"
channels = [
{CHANNELS}
]
[time]
rate_hz = 50
[labels]
column = "activity"
class_names = ["stand", "walk"]
"""


def _write(folder, subjects=7, seconds=16, spec=SPEC):
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "imujax_spec.toml").write_text(spec)
  rng = np.random.default_rng(0)
  cols = [f"{s[0]}{c}" for s in ("left", "right") for c in CELLS] + [
      "ax", "ay", "az"]
  n = seconds * 50
  for p in range(subjects):
    walk = (np.arange(n) // 100) % 2
    phase = np.arange(n) / 50 * 2 * np.pi
    data = rng.normal(size=(n, len(cols))) * 0.1
    data[:, :8] += 20 + walk[:, None] * 15 * np.sin(phase)[:, None]  # kPa
    data[:, 8:] += 1 + walk[:, None] * 0.5 * np.cos(phase)[:, None]  # g
    lines = [",".join(cols + ["activity"])]
    lines += [",".join([f"{v:.4f}" for v in row] + [("stand", "walk")[w]])
              for row, w in zip(data, walk)]
    (folder / f"P{p:02d}_session.csv").write_text("\n".join(lines) + "\n")
  return folder / "imujax_spec.toml"


def _spec_error(tmp_path, channel_line):
  path = tmp_path / "imujax_spec.toml"
  path.write_text(SPEC.replace(CHANNELS, channel_line))
  with pytest.raises(schema.SpecError) as e:
    schema.load_spec(path)
  return str(e.value)


def test_pressure_in_acceleration_units_is_refused(tmp_path):
  msg = _spec_error(tmp_path, '  {column = "l01", name = "left_pressure_01", '
                    'unit = "m/s^2", modality = "pressure"},')
  assert "channels[0]." in msg and "'left_pressure_01'" in msg
  assert "'m/s^2' is not a pressure unit" in msg and "'kPa'" in msg


def test_unknown_modality_lists_the_known_ones(tmp_path):
  msg = _spec_error(tmp_path, '  {column = "l01", name = "left_pressure_01", '
                    'unit = "kPa", modality = "barometer"},')
  assert "channels[0]." in msg and "unknown modality 'barometer'" in msg
  assert "'pressure'" in msg and "'gaze'" in msg


def test_a_name_that_reads_as_another_modality_is_refused_with_the_fix(
    tmp_path):
  msg = _spec_error(tmp_path, '  {column = "l01", name = "left_acc_01", '
                    'unit = "kPa", modality = "pressure"},')
  assert "channels[0]." in msg and "declared 'pressure'" in msg
  assert "reads as 'acc'" in msg and "'left_pressure_01'" in msg


def test_placement_must_be_the_names(tmp_path):
  msg = _spec_error(tmp_path, '  {column = "l01", name = "left_pressure_01", '
                    'unit = "kPa", placement = "right"},')
  assert "placement = 'right'" in msg and "'right_pressure_01'" in msg


def test_a_unit_is_checked_without_a_declared_modality(tmp_path):
  msg = _spec_error(tmp_path, '  {column = "ax", name = "wrist_acc_x", '
                    'unit = "kPa"},')
  assert "'wrist_acc_x' (acc): unit 'kPa'" in msg and "'m/s^2'" in msg


def test_pressure_spec_builds_with_its_units(tmp_path):
  spec = _write(tmp_path / "data", subjects=2, seconds=4)
  builder = rb.Builder(spec=str(spec), config="50hz",
                       data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  builder.download_and_prepare()
  md = builder.info.metadata
  chs = modality.describe_all(md["channel_names"], md["units"])
  assert [c.modality for c in chs] == ["pressure"] * 8 + ["acc"] * 3
  assert md["units"]["left_pressure_01"] == "Pa"
  assert md["units"]["shank_acc_x"] == "m/s^2"
  ex = builder.as_data_source()["train"][0]
  # kPa -> Pa: the mean load of ~20 kPa reads ~2e4.
  assert 1e4 < float(np.mean(ex["signals"][:, :8])) < 4e4


def _builders():
  for name in datasets_pkg.NAMES:
    if name == "recordings":
      continue
    cls = tfds.builder_cls(name)
    for cfg in cls.BUILDER_CONFIGS or [None]:
      yield name, cfg.name if cfg else None


WANT = {"gaze_lund2013": {"gaze"}, "insole_pin2gpi": {"pressure"}}


@pytest.mark.parametrize("name,config", list(_builders()))
def test_every_builders_channels_declare_their_modality(tmp_path, name,
                                                        config):
  builder = tfds.builder_cls(name)(config=config, data_dir=str(tmp_path))
  md = builder.info.metadata
  names, units = md["channel_names"], md["units"]
  chs = modality.describe_all(names, units)
  kinds = {c.modality for c in chs}
  want = WANT.get(name, {"acc", "gyr"})
  if config and config.endswith("_velocity"):  # gaze_lund2013's derived.
    want = want | {"gaze_velocity", "other"}
  assert kinds == want, (name, config, kinds)
  for c in chs:  # Each channel's unit is declared (and was checked).
    assert any(k in units for k in (c.name, c.sensor, c.modality)), c


@pytest.mark.slow
def test_pressure_spec_trains_end_to_end(tmp_path):
  spec = _write(tmp_path / "data")
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "imujax.main", "--config=configs/test.py",
         f"--workdir={workdir}", "--config.data.name=recordings/50hz",
         f"--config.data.spec={spec}",
         f"--config.data.data_dir={tmp_path / 'tfds'}",
         "--config.model.modality_dropout=0.5",
         "--config.pretrain.steps=6", "--config.finetune.steps=6",
         "--config.eval_every=3", "--config.checkpoint_every=3",
         "--config.log_every=3"]
  proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), timeout=900,
                        capture_output=True, text=True)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  run = json.loads((workdir / "finetune" / "scratch-s0" / "run.json"
                    ).read_text())
  assert run["channel_names"][0] == "left_pressure_01"
  assert run["model_config"]["modality_dropout"] == 0.5
  assert run["model_config"]["modalities"] == ["pressure"] * 8 + ["acc"] * 3
  summary = json.loads((workdir / "finetune" / "scratch-s0" / "summary.json"
                        ).read_text())
  assert 0 <= summary["test"]["macro_f1"] <= 1
