r"""Default experiment: does masked-reconstruction pre-training help an LSTM?

On the real Apple Watch recordings shipped with seglearn (7 exercises, 10
subjects, 50 Hz): 3 test and 2 validation subjects are held out; the LSTM is
pre-trained by masked reconstruction on the unlabelled recordings of the 5
training subjects, then fine-tuned with the labels of 2 of them, and compared
with the same network trained from random initialisation on the same labels
and steps. Per-frame macro-F1 and accuracy on whole test recordings, causal.
Repeated for seeds 0, 1, 2 (each its own split, labels and initialisation).

  python -m imujax.main --config=configs/default.py --workdir=/tmp/imujax_default

Arguments after the file override keys, e.g. `configs/default.py:model.cell=gru`.
Runtime and result on a 2-core CPU: see README.md ("Results").
"""

from imujax import configlib


def get_config(arg=None):
  config = configlib.base()
  config.mode = "compare"
  config.num_seeds = 3
  config.data.name = "seglearn_watch"
  config.data.val_subjects = 2
  config.data.test_subjects = 3
  config.data.labeled_subjects = 2
  config.data.window = 128
  config.model.cell = "lstm"
  config.model.hidden = 64
  config.model.layers = 2
  config.pretrain.steps = 1500
  config.finetune.steps = 600
  config.eval_every = 200
  config.checkpoint_every = 200
  return configlib.apply_args(config, arg)
