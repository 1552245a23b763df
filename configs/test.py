r"""Tiny config for the end-to-end tests: the whole comparison in seconds.

  python -m imujax.main --config=configs/test.py --workdir=/tmp/imujax_test
"""

from imujax import configlib


def get_config(arg=None):
  _, keys = configlib.parse_arg(arg)  # No switches: `:arg` sets config keys.
  config = configlib.base()
  config.mode = "compare"
  config.data.name = "seglearn_watch"
  config.data.labeled_subjects = 1
  config.data.window = 32
  config.data.eval_batch_size = 8
  config.model.hidden = 16
  config.model.layers = 1
  config.pretrain.steps = 20
  config.pretrain.batch_size = 8
  config.pretrain.warmup_steps = 5
  config.finetune.steps = 20
  config.finetune.batch_size = 8
  config.finetune.warmup_steps = 5
  config.log_every = 5
  config.eval_every = 10
  config.checkpoint_every = 10
  return configlib.apply_args(config, keys)
