"""Prints the inter-rater agreement (RA vs MN) of the Lund 2013 data, or,
with --ivt_deg_s, the scores of the I-VT baseline (ivt.py) instead.

  python -m imujax.datasets.gaze_lund2013 \
      --manual_dir=../shared/data/gaze_lund2013 [--subset=original,article]
  python -m imujax.datasets.gaze_lund2013 \
      --manual_dir=../shared/data/gaze_lund2013 --ivt_deg_s=30 \
      [--config=500hz] [--data_dir=~/tensorflow_datasets]
"""

import sys
import types

from absl import app
from absl import flags
import numpy as np

from imujax.datasets.gaze_lund2013 import agreement
from imujax.datasets.gaze_lund2013 import ivt

_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "The upstream annotated_data folder (or one above).")
_SUBSETS = flags.DEFINE_list("subset", ["original", "article"],
                             "Subsets to compare: original, article.")
_IVT = flags.DEFINE_float(
    "ivt_deg_s", None, "Score the I-VT baseline at this threshold (deg/s) "
    "against the config's labels, instead of the rater agreement.")
_CONFIG = flags.DEFINE_string("config", "500hz",
                              "The gaze_lund2013 config I-VT is scored on.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data_dir of the prepared dataset (default "
    "TFDS's, ~/tensorflow_datasets); prepared there if it is not.")


def load(config: str, data_dir, manual_dir) -> types.SimpleNamespace:
  """The prepared `gaze_lund2013/<config>` with the fields of
  `input_pipeline.Dataset` that `ivt.evaluate` reads (this layer may not
  import imujax.data; tests check that both give the same recordings)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from imujax.datasets import common  # pylint: disable=g-import-not-at-top
  from imujax.datasets.gaze_lund2013 import gaze_lund2013_dataset_builder  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import

  builder = tfds.builder(f"gaze_lund2013/{config}", data_dir=data_dir,
                         file_format="array_record")
  if not builder.is_prepared():
    common.check_builder_manual_dir(builder, manual_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir or None))
  source = builder.as_data_source()["train"]
  recordings = sorted(
      (types.SimpleNamespace(
          signals=np.asarray(ex["signals"], np.float32),
          labels=np.asarray(ex["labels"], np.int32),
          subject=_text(ex["subject"]), recording=_text(ex["recording"]))
       for ex in (source[i] for i in range(len(source)))),
      key=lambda r: r.recording)
  meta = builder.info.metadata
  return types.SimpleNamespace(
      name=f"gaze_lund2013/{config}", recordings=recordings,
      channel_names=list(meta["channel_names"]),
      class_names=list(meta["class_names"]),
      sample_rate_hz=float(meta["sample_rate_hz"]))


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def main(argv):
  del argv
  if _IVT.value is not None:
    try:
      data = load(_CONFIG.value, _DATA_DIR.value, _MANUAL_DIR.value)
      result = ivt.evaluate(data, _IVT.value)
    except (FileNotFoundError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    print(ivt.format_ivt(result, f"{data.name} (labels: the config's rater)"))
    return
  if not _MANUAL_DIR.value:
    raise app.UsageError("--manual_dir is required.")
  for subset in _SUBSETS.value:
    try:
      result = agreement.rater_agreement(_MANUAL_DIR.value, subset)
    except (FileNotFoundError, ValueError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    print(agreement.format_agreement(result, f"{subset} (RA vs MN)"))


if __name__ == "__main__":
  app.run(main)
