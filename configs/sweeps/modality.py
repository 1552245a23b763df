r"""Per-modality input projection: does it help, and without a modality?

Declared 2026-12-01; not run yet beyond `smoke`. Question (the multimodal
issue: several modalities at once, per-modality input projection, modality
dropout): with modality dropout in training, does a per-modality input
projection (`model.modality_projection=32`: each modality's channels through
their own linear map to 32 features and a layer norm, the embeddings
concatenated before the first layer; models.project_modalities) classify
activities better than feeding the channels straight to the first layer
(`model.modality_projection=0`), with all modalities present and with the
gyroscope missing at test time (`eval.missing_modalities=gyr`: every test
metric again with the gyroscope's normalised channels at 0, the mean, as
`test_without_gyr/<metric>`)?

Protocol: sp_sw_har/watch_50hz (smartwatch accelerometer + gyroscope, 50 Hz;
manual dir `<data_root>/sp_sw_har`), trained from scratch (no pre-training)
on the labels of all training subjects; `model.modality_dropout=0.3` in both
arms (without it a model never sees a missing modality, and the
missing-modality score measures nothing but that); 5-fold cross-validation
over subjects (3 validation subjects from the other folds), seeds 101, 102;
a seed is the same split, labels, training batches and head initialisation
in both arms, so the arms pair by (fold, seed). Report: the two arms as
`scratch` and `scratch +proj32` (run_records.read_runs) with the paired
difference in test macro-F1, and a table of the `test_without_gyr` scores
per arm (their drop from the same runs' scores with every modality).

Variants (`modality.py:variant=<name>,data_root=<folder of manual dirs>`):
  readme  configs/default.py sizes (LSTM 2x64, 600 fine-tune steps) x
          2 arms x 5 folds x seeds 101, 102: 20 fine-tune runs (10 vmapped
          seed pairs).
  smoke   configs/test.py sizes (LSTM 1x16, 20 steps) x 2 arms x 2 folds x
          seeds 101, 102: 8 fine-tune runs (4 vmapped seed pairs).

  python -m imujax.experiments.sweep --sweep=configs/sweeps/modality.py:variant=readme,data_root=../shared/data \
      --sweep_dir=/tmp/modality --launcher=local --vmap_seeds --cpu_devices=2
  python -m imujax.experiments.report /tmp/modality
"""

from imujax.experiments import jobs as jobs_lib

CONFIG = ("configs/default.py:eval_every=100,checkpoint_every=100,"
          "dense_eval_until=200,dense_eval_every=10")
DATASET = "sp_sw_har/watch_50hz"
MANUAL = "sp_sw_har"
VAL_SUBJECTS = 3
PROJECTIONS = (0, 32)   # model.modality_projection: the factor.
SEEDS = (101, 102)
# Both arms: modality dropout in training, scores without the gyroscope.
SHARED = {"model.modality_dropout": 0.3, "eval.missing_modalities": "gyr"}

VARIANTS = {
    "readme": dict(folds=5, config=CONFIG),
    "smoke": dict(folds=2, config="configs/test.py:dense_eval_until=10,"
                                  "dense_eval_every=5"),
}


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/modality.py")
  implied = {"data.val_subjects": VAL_SUBJECTS, "data.num_folds": v["folds"],
             "data.manual_dir": f"{sw.data_root}/{MANUAL}",
             "data.labeled_subjects": 0, **SHARED}
  for d in PROJECTIONS:
    for fold in range(v["folds"]):
      for seed in SEEDS:
        yield {"data.name": DATASET, "objective": "scratch",
               "model.modality_projection": d, "data.fold": fold,
               "seed": seed, "set": dict(implied), "config": v["config"]}
