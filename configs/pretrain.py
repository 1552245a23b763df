r"""Self-supervised pre-training vs scratch, one objective at a time.

Every arm uses the same causal encoder; only the pretext objective changes.
The run pre-trains on the unlabelled recordings of the training subjects,
then fine-tunes with the labels of `budget` training subjects, and trains the
same network from scratch on the same labels and steps (mode "compare").

  python -m imujax.main --config=configs/pretrain.py:kind=cpc,cell=gru --workdir=/tmp/cpc_gru
  python -m imujax.main --config=configs/pretrain.py:kind=forecast,dataset=sp_sw_har \
      --config.data.manual_dir=../shared/data/sp_sw_har --workdir=/tmp/forecast_spsw

Switches (any other `:name=value` sets a config key, e.g. model.hidden=32):
kind (masked_reconstruction | forecast | autoencoder | cpc | simclr |
transform_prediction), cell (rnn | lstm | gru), dataset (seglearn_watch |
sp_sw_har, the watch at 50 Hz), budget (labelled training subjects), seed.
Runtime on the 2-core CPU: 1.5–3 min per arm (pre-training 1–3 min, SimCLR
the slowest; fine-tuning ~30 s). Measured test macro-F1, seed 0, budget 5
(scratch / masked_reconstruction / forecast / autoencoder / cpc / simclr /
transform_prediction): seglearn_watch 0.787 / 0.809 / 0.806 / 0.809 / 0.805 /
0.878 / 0.802; sp_sw_har 0.840 / 0.828 / 0.825 / 0.846 / 0.840 / 0.851 / 0.840
(README.md, "Pre-training objectives"; `launch/objectives.sh` reruns all).
"""

from imujax import configlib

# Subject counts per dataset: (validation, test). seglearn_watch has 10
# subjects, sp_sw_har 23.
_DATASETS = {"seglearn_watch": ("seglearn_watch", 2, 3),
             "sp_sw_har": ("sp_sw_har/watch_50hz", 3, 5)}


def get_config(arg=None):
  sw, keys = configlib.parse_arg(arg, kind="masked_reconstruction",
                                 cell="lstm", dataset="seglearn_watch",
                                 budget=5, seed=0)
  if sw.dataset not in _DATASETS:
    raise ValueError(f"dataset={sw.dataset!r}; choose one of {sorted(_DATASETS)}.")
  config = configlib.backbone(configlib.base())
  config.mode = "compare"
  config.seed = sw.seed
  config.data.name, config.data.val_subjects, config.data.test_subjects = (
      _DATASETS[sw.dataset])
  config.data.labeled_subjects = sw.budget
  config.model.cell = sw.cell
  config.pretrain.objective = sw.kind
  return configlib.apply_args(config, keys)
