"""Writes MVNX files in the layout of real Xsens MVN exports, for tests.

The layout follows the real files in ../shared/data/mvnx_samples (v3:
kicking-003, Meri-020; v4: test_mocap) and the MVNX XSD there: tab-indented
XML, a header with segments (points), sensors and joints (v4 adds ergonomic
joint angles and foot-contact definitions), calibration frames without data
(`npose`/`tpose` in v3, `identity`/`tpose`/`tpose-isb` in v4), then normal
frames whose children come in schema order, numbers printed with 6 decimals.

  python -m tests.mvnx_fixtures --out=/tmp/big.mvnx --mb=200   # benchmark file
"""

import argparse
import io

import numpy as np

SEGMENTS = ("Pelvis", "L5", "L3", "T12", "T8", "Neck", "Head", "RightShoulder",
            "RightUpperArm", "RightForeArm", "RightHand", "LeftShoulder",
            "LeftUpperArm", "LeftForeArm", "LeftHand", "RightUpperLeg",
            "RightLowerLeg", "RightFoot", "RightToe", "LeftUpperLeg",
            "LeftLowerLeg", "LeftFoot", "LeftToe")
SENSORS_FULL = ("Pelvis", "T8", "Head", "RightShoulder", "RightUpperArm",
                "RightForeArm", "RightHand", "LeftShoulder", "LeftUpperArm",
                "LeftForeArm", "LeftHand", "RightUpperLeg", "RightLowerLeg",
                "RightFoot", "LeftUpperLeg", "LeftLowerLeg", "LeftFoot")
SENSORS_UPPER = SENSORS_FULL[:11]
JOINTS = tuple(f"j{i}" for i in range(22))
ERGO = ("T8_Head", "T8_LeftUpperArm", "T8_RightUpperArm", "Pelvis_T8")
# Children of a normal frame in XSD order, with values per item.
_ORDER = (("orientation", 4), ("position", 3), ("velocity", 3),
          ("acceleration", 3), ("angularVelocity", 3),
          ("angularAcceleration", 3), ("footContacts", None),
          ("sensorFreeAcceleration", 3), ("sensorAcceleration", 3),
          ("sensorAngularVelocity", 3), ("sensorMagneticField", 3),
          ("sensorOrientation", 4), ("jointAngle", 3), ("jointAngleXZY", 3),
          ("jointAngleErgo", 3), ("centerOfMass", None))


def _unit_quats(rng, shape):
  q = rng.normal(size=shape + (4,))
  return q / np.linalg.norm(q, axis=-1, keepdims=True)


def random_frames(n_frames: int, version: int = 4, seed: int = 0,
                  sensors=None) -> dict[str, np.ndarray]:
  """Plausible values for every quantity a v3 or v4 export holds.

  Returns:
    quantity -> <float64>[T, D] exactly as it will be printed (rounded to 6
    decimals); joint angles in degrees, as in the file.
  """
  rng = np.random.default_rng(seed)
  sensors = sensors or (SENSORS_FULL if version == 3 else SENSORS_UPPER)
  t, ns, nseg, nj = n_frames, len(sensors), len(SEGMENTS), len(JOINTS)
  f = {
      "orientation": _unit_quats(rng, (t, nseg)).reshape(t, -1),
      "position": rng.normal(size=(t, nseg * 3)),
      "velocity": rng.normal(size=(t, nseg * 3)),
      "acceleration": rng.normal(size=(t, nseg * 3)),
      "angularVelocity": rng.normal(size=(t, nseg * 3)),
      "angularAcceleration": rng.normal(size=(t, nseg * 3)),
      "sensorAngularVelocity": rng.normal(size=(t, ns * 3)),
      "sensorMagneticField": rng.normal(size=(t, ns * 3)),
      "sensorOrientation": _unit_quats(rng, (t, ns)).reshape(t, -1),
      "jointAngle": rng.uniform(-90, 90, size=(t, nj * 3)),
      "jointAngleXZY": rng.uniform(-90, 90, size=(t, nj * 3)),
      "centerOfMass": rng.normal(size=(t, 3)),
  }
  if version == 3:
    f["sensorAcceleration"] = rng.normal(size=(t, ns * 3)) + 9.8 / np.sqrt(3)
  else:
    f["sensorFreeAcceleration"] = rng.normal(size=(t, ns * 3))
    f["footContacts"] = rng.integers(0, 2, size=(t, 4)).astype(np.float64)
    f["jointAngleErgo"] = rng.uniform(-90, 90, size=(t, len(ERGO) * 3))
    del f["sensorAngularVelocity"]  # As in the real v4 export test_mocap.
  return {k: np.round(v, 6) for k, v in f.items()}


def _header(out, version, rate, sensors):
  w = out.write
  w('<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!-- Uncomment this part to use the DTD.\n"
    '<!DOCTYPE mvnx SYSTEM "http://www.xsens.com/mvn/mvnx/schema.dtd">\n-->\n'
    '<mvnx xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns="http://www.xsens.com/mvn/mvnx" xsi:schemaLocation='
    '"http://www.xsens.com/mvn/mvnx http://www.xsens.com/mvn/mvnx/schema.xsd"'
    f' version="{version}">\n'
    '\t<mvn version="2019.0.0" build="fixture"/>\n\t<comment></comment>\n'
    f'\t<subject label="fixture" torsoColor="#0000ff" frameRate="{rate:g}" '
    f'segmentCount="{len(SEGMENTS)}" recDate="fixture" '
    'originalFilename="fixture.mvn" configuration="FullBody" '
    'userScenario="noLevel">\n\t\t<comment></comment>\n\t\t<segments>\n')
  for i, s in enumerate(SEGMENTS, 1):
    w(f'\t\t\t<segment label="{s}" id="{i}">\n\t\t\t\t<points>\n'
      f'\t\t\t\t\t<point label="p{s}">\n\t\t\t\t\t\t<pos_s>0.000000 0.000000 '
      '0.000000</pos_s>\n\t\t\t\t\t</point>\n\t\t\t\t</points>\n'
      '\t\t\t</segment>\n')
  w("\t\t</segments>\n\t\t<sensors>\n")
  for s in sensors:
    w(f'\t\t\t<sensor label="{s}"/>\n')
  w("\t\t</sensors>\n\t\t<joints>\n")
  for j in JOINTS:
    w(f'\t\t\t<joint label="{j}">\n\t\t\t\t<connector1>Pelvis/{j}'
      f'</connector1>\n\t\t\t\t<connector2>L5/{j}</connector2>\n'
      '\t\t\t</joint>\n')
  w("\t\t</joints>\n")
  if version >= 4:
    w("\t\t<ergonomicJointAngles>\n")
    for i, e in enumerate(ERGO):
      a, b = e.split("_")
      w(f'\t\t\t<ergonomicJointAngle label="{e}" index="{i}" '
        f'parentSegment="{a}" childSegment="{b}"/>\n')
    w("\t\t</ergonomicJointAngles>\n\t\t<footContactDefinition>\n")
    for i, c in enumerate(("LeftFoot_Heel", "LeftFoot_Toe", "RightFoot_Heel",
                           "RightFoot_Toe")):
      w(f'\t\t\t<contactDefinition label="{c}" index="{i}"/>\n')
    w("\t\t</footContactDefinition>\n")
  w(f'\t\t<frames segmentCount="{len(SEGMENTS)}" sensorCount="{len(sensors)}"'
    f' jointCount="{len(JOINTS)}">\n')
  calib = ("npose", "tpose") if version == 3 else ("identity", "tpose",
                                                   "tpose-isb")
  zeros = " ".join(["0.000000"] * (len(SEGMENTS) * 3))
  for i, kind in enumerate(calib):
    idx = f' index="{i - 3}"' if version == 3 else ""
    w(f'\t\t\t<frame time="0"{idx} tc="00:00:00:00" ms="0" type="{kind}">\n'
      f"\t\t\t\t<orientation>{zeros}</orientation>\n"
      f"\t\t\t\t<position>{zeros}</position>\n\t\t\t</frame>\n")


def _frame_text(i, index, rate, frames, t0_ms=1490374345320) -> str:
  ms = index * 1000.0 / rate
  parts = [f'\t\t\t<frame time="{int(ms)}" index="{index}" tc="00:00:00:00" '
           f'ms="{t0_ms + int(round(ms))}" type="normal">\n']
  for name, _ in _ORDER:
    if name in frames:
      vals = " ".join(f"{v:.6f}" for v in frames[name][i])
      parts.append(f"\t\t\t\t<{name}>{vals}</{name}>\n")
  parts.append("\t\t\t</frame>\n")
  return "".join(parts)


_FOOTER = "\t\t</frames>\n\t</subject>\n\t<securityCode code=\"0\"/>\n</mvnx>\n"


def write_mvnx(path, frames: dict[str, np.ndarray], *, version: int = 4,
               rate: float = 60.0, sensors=None, first_index: int = 0,
               indices=None) -> None:
  """Writes one MVNX file holding `frames` (quantity -> [T, D]) as normal frames.

  `indices` overrides the frame numbers (default first_index + arange(T)).
  """
  sensors = sensors or (SENSORS_FULL if version == 3 else SENSORS_UPPER)
  n = len(next(iter(frames.values())))
  indices = first_index + np.arange(n) if indices is None else indices
  out = io.StringIO()
  _header(out, version, rate, sensors)
  for i in range(n):
    out.write(_frame_text(i, int(indices[i]), rate, frames))
  out.write(_FOOTER)
  with open(path, "w", encoding="utf-8") as f:
    f.write(out.getvalue())


def write_large(path, megabytes: float, version: int = 3,
                rate: float = 240.0) -> int:
  """Streams a file of about `megabytes` MB; returns the normal frame count.

  Frames cycle through 64 random ones (parsing cost is the same as distinct
  values) so that writing 200 MB takes seconds.
  """
  pool = random_frames(64, version=version, seed=1)
  sensors = SENSORS_FULL if version == 3 else SENSORS_UPPER
  with open(path, "w", encoding="utf-8") as f:
    head = io.StringIO()
    _header(head, version, rate, sensors)
    f.write(head.getvalue())
    texts = [_frame_text(i, 0, rate, pool) for i in range(64)]
    target, written, n = megabytes * 1e6, 0, 0
    while written < target:
      text = texts[n % 64].replace('index="0"', f'index="{n}"', 1)
      f.write(text)
      written += len(text)
      n += 1
    f.write(_FOOTER)
  return n


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("--mb", type=float, default=200.0)
  ap.add_argument("--version", type=int, default=3)
  args = ap.parse_args()
  n = write_large(args.out, args.mb, args.version)
  print(f"wrote {args.out}: {n} normal frames, MVNX v{args.version}")


if __name__ == "__main__":
  main()
