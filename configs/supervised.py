r"""Supervised pre-training on one labelled dataset, fine-tuning on another.

The encoder is trained to classify `source`'s own per-frame labels on its
training subjects, then fine-tuned (new head) on `target` with `budget`
labelled subjects, against the same network from scratch on the same labels.
Channels are matched by name (both default datasets are a wrist watch:
`wrist_acc_*`, `wrist_gyr_*`), otherwise an input adapter is learned
(see imujax/training/transfer.py).

  python -m imujax.main --config=configs/supervised.py \
      --config.pretrain.manual_dir=../shared/data/sp_sw_har --workdir=/tmp/sup_spsw_to_watch

Switches: source, target (TFDS names), cell, budget, seed; any other
`:name=value` sets a config key.
Runtime on the 2-core CPU: about 3 min (pre-training ~1.5 min, two
fine-tunes ~30 s each). Measured test macro-F1, seed 0, budget 5:
sp_sw_har/watch_50hz -> seglearn_watch 0.811 (scratch 0.787);
seglearn_watch -> sp_sw_har/watch_50hz 0.829 (scratch 0.840).
"""

from imujax import configlib


def get_config(arg=None):
  sw, keys = configlib.parse_arg(arg, source="sp_sw_har/watch_50hz",
                                 target="seglearn_watch", cell="lstm",
                                 budget=5, seed=0)
  config = configlib.backbone(configlib.base())
  config.mode = "compare"
  config.seed = sw.seed
  config.pretrain.objective = "classification"
  config.pretrain.dataset = sw.source
  config.data.name = sw.target
  config.data.labeled_subjects = sw.budget
  config.model.cell = sw.cell
  return configlib.apply_args(config, keys)
