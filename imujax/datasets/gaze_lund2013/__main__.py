"""Prints the inter-rater agreement (RA vs MN) of the Lund 2013 data.

  python -m imujax.datasets.gaze_lund2013 \
      --manual_dir=../shared/data/gaze_lund2013 [--subset=original,article]
"""

import sys

from absl import app
from absl import flags

from imujax.datasets.gaze_lund2013 import agreement

_MANUAL_DIR = flags.DEFINE_string(
    "manual_dir", None, "The upstream annotated_data folder (or one above).")
_SUBSETS = flags.DEFINE_list("subset", ["original", "article"],
                             "Subsets to compare: original, article.")


def main(argv):
  del argv
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
