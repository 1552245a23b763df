"""Small raw-file fixtures in the exact upstream layouts of sp_sw_har, ipol_gait.

Signals are linear ramps in time, so a resampled value has an exact expected
value, and labels change at known times. Nothing here comes from the real data.
"""

import json
import pathlib

import numpy as np

SP_SW_HEADER = "x_acc,y_acc,z_acc,x_gyro,y_gyro,z_gyro,timestamp,label"
# (label, start time in s from the recording start), in force until the next.
SP_SW_SEGMENTS = (("SEATED", 0.0), ("STANDING_UP", 1.0), ("WALKING", 1.5),
                  ("TURNING", 2.5), ("SITTING_DOWN", 3.0))


def sp_sw_ramp(t_s: np.ndarray, device: str) -> np.ndarray:
  """<float64>[T, 6] fixture signal at times (s since the unix epoch)."""
  rel = np.asarray(t_s, np.float64)[:, None] - 1.6e9
  # Gentle slopes keep float32 values precise over minutes of fixture time.
  slope = np.arange(1, 7) * (0.01 if device == "sp" else -0.005)
  return 0.1 * np.arange(6) + slope * rel


def sp_sw_label_at(rel_s: float) -> str:
  return [name for name, start in SP_SW_SEGMENTS if rel_s >= start - 1e-9][-1]


def sp_sw_times_ms(seconds: float, offset_ms: int, seed: int) -> np.ndarray:
  """Irregular ~100 Hz unix-ms timestamps with one duplicated timestamp."""
  rng = np.random.default_rng(seed)
  n = int(seconds * 100)
  t = 1.6e12 + offset_ms + np.arange(n) * 10 + rng.integers(-3, 4, n)
  t[0] = 1.6e12 + offset_ms
  t = np.sort(t).astype(np.int64)
  t[20] = t[19]  # Same-millisecond delivery, as upstream.
  return t


def sp_sw_lines(times_ms: np.ndarray, device: str, start_ms: int) -> list[str]:
  """CSV data rows for the given timestamps."""
  x = sp_sw_ramp(times_ms / 1000.0, device)
  return [",".join([*(repr(float(v)) for v in row), str(int(t)),
                    sp_sw_label_at((t - start_ms) / 1000.0)])
          for row, t in zip(x, times_ms)]


def write_sp_sw_csv(path: pathlib.Path, lines: list[str],
                    header: str = SP_SW_HEADER, newline_at_end=True):
  path.parent.mkdir(parents=True, exist_ok=True)
  end = "\n" if newline_at_end else ""
  path.write_text("\n".join([header, *lines]) + end)


def write_sp_sw_har(root: pathlib.Path, subjects=("s01", "s02", "s03"),
                    executions=2, seconds=4.0) -> dict:
  """Writes root/DATA like upstream; returns {execution: {suffix: times_ms}}.

  Each execution starts at its own time; the watch starts 37 ms later and
  stops 23 ms earlier than the phone, so the devices overlap on a sub-interval.
  """
  data = root / "DATA"
  data.mkdir(parents=True)
  (data / "subjects_info.csv").write_text(
      "subject_id,age,gender,height,weight,dominant_hand,executions\n" +
      "".join(f"{s},40,F,170,70,R,{executions}\n" for s in subjects))
  rows, written = [], {}
  for i, subject in enumerate(subjects):
    for e in range(1, executions + 1):
      execution = f"{subject}_{e:02d}"
      rows.append(f"{execution},front,l,r\n")
      start = (i * 10 + e) * 10_000
      written[execution] = {}
      for suffix, offset, seconds_dev in (("sp", 0, seconds),
                                          ("sw", 37, seconds - 0.06)):
        t = sp_sw_times_ms(seconds_dev, start + offset, seed=i * 10 + e)
        write_sp_sw_csv(data / subject / f"{execution}_{suffix}.csv",
                        sp_sw_lines(t, suffix, int(1.6e12) + start))
        written[execution][suffix] = t
  (data / "executions_info.csv").write_text(
      "execution_id,orientation,first_turn,second_turn\n" + "".join(rows))
  return written


IPOL_COLUMNS = ("PacketCounter\tAcc_X\tAcc_Y\tAcc_Z\tGyr_X\tGyr_Y\tGyr_Z\t"
                "Mag_X\tMag_Y\tMag_Z")


def ipol_ramp(counter: np.ndarray, sensor: str) -> np.ndarray:
  """<float64>[T, 9] fixture acc, gyr, mag at packet counter values."""
  k = {"lb": 1.0, "lf": 2.0, "rf": 3.0}[sensor]
  c = np.asarray(counter, np.float64)[:, None]
  return k * 0.01 * np.arange(1, 10) * c + k


def ipol_counters(n: int, first: int, lost=()) -> np.ndarray:
  """Packet counters first..first+n-1 without the `lost` ones."""
  c = np.arange(first, first + n)
  return c[~np.isin(c, lost)]


def ipol_lines(counter: np.ndarray, sensor: str) -> list[str]:
  x = ipol_ramp(counter, sensor)
  return ["\t".join([f"{float(c):.1f}", *(f"{v:.6f}" for v in row)])
          for c, row in zip(counter, x)]


def write_ipol_txt(path: pathlib.Path, lines: list[str],
                   first_line="Acquisition frequency: 100 Hz",
                   newline_at_end=True):
  path.write_text("\n".join([first_line, IPOL_COLUMNS, *lines]) +
                  ("\n" if newline_at_end else ""))


def ipol_meta(subject: int, trial: int) -> dict:
  return {"Subject": subject, "Trial": trial, "Filename": f"{subject}-{trial}",
          "Age": 30, "Gender": "F", "Height": 170.0, "Weight": 60.0,
          "TrialBoundaries": [100, 400], "UTurnBoundaries": [220, 260],
          "LeftFootEvents": [[120, 160], [250, 290]],
          "RightFootEvents": [[100, 110], [180, 215], [290, 330]]}


def write_ipol_gait(root: pathlib.Path,
                    trials=((1, 1), (1, 2), (2, 1), (3, 1))) -> dict:
  """Writes root/GaitData like upstream; returns {trial: {sensor: counters}}.

  5 s trials; sensors start at counters 0, 1, 2 and lose a few packets, as the
  real Awinda files do.
  """
  data = root / "GaitData"
  data.mkdir(parents=True)
  written = {}
  for subject, trial in trials:
    name = f"{subject}-{trial}"
    written[name] = {}
    for sensor, first, lost in (("lb", 0, (50, 51, 52)), ("lf", 1, (300,)),
                                ("rf", 2, ())):
      c = ipol_counters(500, first, lost)
      write_ipol_txt(data / f"{name}_{sensor}.txt", ipol_lines(c, sensor))
      written[name][sensor] = c
    (data / f"{name}.json").write_text(json.dumps(ipol_meta(subject, trial)))
  return written


# ------------------------------------------------------------- recordings
def build_recordings(tmp_path: pathlib.Path, spec_text: str, *,
                     spec_path: pathlib.Path = None, config: str = "50hz",
                     manual_dir=None):
  """Writes a recordings spec, builds it; (builder, {recording: example}).

  The spec goes to `spec_path` (default <tmp_path>/data/imujax_spec.toml, so
  its folder is the data folder), the build to <tmp_path>/tfds.
  """
  from imujax.datasets.recordings import recordings_dataset_builder as rb  # pylint: disable=g-import-not-at-top
  spec = spec_path or tmp_path / "data" / "imujax_spec.toml"
  spec.parent.mkdir(parents=True, exist_ok=True)
  spec.write_text(spec_text)
  builder = rb.Builder(spec=str(spec), config=config,
                       manual_dir=str(manual_dir) if manual_dir else None,
                       data_dir=str(tmp_path / "tfds"),
                       file_format="array_record")
  builder.download_and_prepare()
  source = builder.as_data_source()["train"]
  return builder, {_text(source[i]["recording"]): source[i]
                   for i in range(len(source))}


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)
