r"""Default experiment: does masked-reconstruction pre-training help an LSTM?

On the real Apple Watch recordings shipped with seglearn (7 exercises, 10
subjects, 50 Hz): 3 test and 2 validation subjects are held out; the LSTM is
pre-trained by masked reconstruction on the unlabelled recordings of the 5
training subjects, then fine-tuned with the labels of 2 of them, and compared
with the same network trained from random initialisation on the same labels
and steps. Per-frame macro-F1 and accuracy on whole test recordings, causal.
Repeated for seeds 0, 1, 2 (each its own split, labels and initialisation).

  python -m imujax.main --config=configs/default.py --workdir=/tmp/imujax_default

Arguments after the file set config keys, e.g. `configs/default.py:model.cell=gru`
(configlib.parse_arg). Runtime and result on a 2-core CPU: README.md,
"The default experiment".
"""

from imujax import configlib


def get_config(arg=None):
  _, keys = configlib.parse_arg(arg)  # No switches: `:arg` sets config keys.
  config = configlib.backbone(configlib.base())
  config.mode = "compare"
  config.num_seeds = 3
  config.data.name = "seglearn_watch"
  config.data.val_subjects = 2
  config.data.test_subjects = 3
  config.data.labeled_subjects = 2
  return configlib.apply_args(config, keys)
