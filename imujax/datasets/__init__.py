"""imujax's TFDS builders; importing this package registers them with TFDS.

Each folder holds one dataset (see CONVENTIONS.md). `NAMES` lists them.
"""

import pathlib

from imujax.datasets.ipol_gait import ipol_gait_dataset_builder  # noqa: F401
from imujax.datasets.seglearn_watch import seglearn_watch_dataset_builder  # noqa: F401
from imujax.datasets.sp_sw_har import sp_sw_har_dataset_builder  # noqa: F401
from imujax.datasets.andy import andy_dataset_builder  # noqa: F401
from imujax.datasets.recordings import recordings_dataset_builder  # noqa: F401
from imujax.datasets.uci_hapt import uci_hapt_dataset_builder  # noqa: F401
from imujax.datasets.gaze_lund2013 import gaze_lund2013_dataset_builder  # noqa: F401
from imujax.datasets.insole_pin2gpi import insole_pin2gpi_dataset_builder  # noqa: F401
from imujax.datasets.mobilised import mobilised_dataset_builder  # noqa: F401

NAMES = sorted(
    p.name for p in pathlib.Path(__file__).parent.iterdir()
    if (p / f"{p.name}_dataset_builder.py").exists())
