r"""The pre-registered study: cross-validated over subjects, controlled, fresh seeds.

Fixed 2026-11-30, before any of its runs existed (issue 17). Seeds 101-103
were never used by an earlier run of this project; the README's earlier
study (configs/sweeps/study.py, seeds 0-2) is exploratory.

Question: does pre-training help an online recurrent model when labels are
scarce, and does it speed convergence? Protocol:
* 5-fold cross-validation over subjects (`data.num_folds=5`): every subject
  is a test subject exactly once per seed; validation subjects are drawn
  from the other folds; pre-training uses the training subjects of its fold
  only (its unlabelled recordings), so no pre-training sees a validation or
  test subject (the fine-tune run's guard checks it).
* Per-subject test macro-F1 (whole recordings, causal). The unit of
  comparison is the paired difference arm − scratch for one subject and
  seed; intervals by a hierarchical bootstrap (subjects, then seeds), p by a
  sign-flip test over subjects, Holm-adjusted across arms
  (imujax/experiments/paired.py). Every cell rests on >= 15 pairs.
* Controls: `scratch +aug` (scratch fine-tuned on simclr's augmentations:
  separates "pre-training helps" from "augmentation helps"); every
  pre-trained arm also as a linear probe; in `full`, each arm's learning
  rate chosen among LEARNING_RATES on validation subjects only.
* Convergence: validation every 10 steps over the first 200 fine-tune steps
  (`dense_eval_until=200`); runs that never reach a target are censored.

Variants (`study_cv.py:variant=<name>,data_root=<folder of manual dirs>`):
  full    DATASETS x scratch, scratch +aug, the six self-supervised
          objectives (full fine-tuning and linear probe) x budgets 1, 2, 5,
          all x 5 folds x seeds 101-103 x 3 learning rates: 450 pre-training
          and 12,600 fine-tune runs. Estimated from measured CPU times
          (pre-training 1,500 steps ~1.5 core-min, fine-tuning 600 steps
          ~0.5 core-min on this project's CPU): ~120 core-hours, e.g. 2 h on
          64 SLURM cores (`--launcher=slurm`), less on a TPU VM
          (`--launcher=tpu`).
  readme  seglearn_watch and sp_sw_har/watch_50hz x scratch, scratch +aug,
          simclr, simclr [linear_probe] x budgets 1, 2 x 5 folds x seeds
          101, 102, learning rate 2e-3: 20 pre-training and 160 fine-tune
          runs, estimated 2.5 h on the 2-core CPU with --vmap_seeds
          --cpu_devices=2 (seeds paired in one program).
  smoke   the readme variant's shape at configs/test.py size on
          seglearn_watch: 2 folds, 2 seeds, 20 steps; a minute.

  python -m imujax.experiments.sweep --sweep=configs/sweeps/study_cv.py:variant=readme \
      --sweep_dir=/tmp/study_cv --launcher=local --vmap_seeds --cpu_devices=2
  python -m imujax.experiments.report /tmp/study_cv
"""

from imujax.experiments import jobs as jobs_lib

CONFIG = ("configs/default.py:eval_every=100,checkpoint_every=100,"
          "dense_eval_until=200,dense_eval_every=10")

# name -> (validation subjects, manual_dir under data_root or "").
DATASETS = {"seglearn_watch": (2, ""),
            "sp_sw_har/watch_50hz": (3, "sp_sw_har"),
            "sp_sw_har/phone_50hz": (3, "sp_sw_har"),
            "uci_hapt/50hz": (3, "uci_hapt"),
            "ipol_gait/50hz": (3, "ipol_gait")}
PRETEXTS = ("masked_reconstruction", "forecast", "autoencoder", "cpc",
            "simclr", "transform_prediction")
BUDGETS = (1, 2, 5, 0)   # Labelled training subjects; 0 = all of them.
FOLDS = 5
SEEDS = (101, 102, 103)
LEARNING_RATES = (1e-3, 2e-3, 5e-3)

# An arm: (objective, finetune overrides).
SCRATCH = ("scratch", {})
SCRATCH_AUG = ("scratch", {"finetune.augment": "simclr"})


def _arms(pretexts, probes: bool):
  return jobs_lib.pretext_arms(pretexts, probes, (SCRATCH, SCRATCH_AUG))


VARIANTS = {
    "full": dict(datasets=tuple(DATASETS), arms=_arms(PRETEXTS, True),
                 budgets=BUDGETS, folds=FOLDS, seeds=SEEDS,
                 rates=LEARNING_RATES, config=CONFIG),
    "readme": dict(datasets=("seglearn_watch", "sp_sw_har/watch_50hz"),
                   arms=_arms(("simclr",), True), budgets=(1, 2),
                   folds=FOLDS, seeds=SEEDS[:2], rates=(2e-3,),
                   config=CONFIG),
    "smoke": dict(datasets=("seglearn_watch",), arms=_arms(("simclr",), True),
                  budgets=(1,), folds=2, seeds=SEEDS[:2], rates=(2e-3,),
                  config="configs/test.py:dense_eval_until=10,"
                         "dense_eval_every=5"),
}


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/study_cv.py")
  for name in v["datasets"]:
    val, manual = DATASETS[name]
    implied = {"data.val_subjects": val, "data.num_folds": v["folds"],
               "config": v["config"]}
    if manual:
      implied["data.manual_dir"] = f"{sw.data_root}/{manual}"
    for objective, finetune in v["arms"]:
      for budget in v["budgets"]:
        for fold in range(v["folds"]):
          for seed in v["seeds"]:
            for rate in v["rates"]:
              point = {"data.name": name, "objective": objective,
                       "data.labeled_subjects": budget, "data.fold": fold,
                       "seed": seed, **finetune,
                       "set": {k: x for k, x in implied.items()
                               if k != "config"}}
              if len(v["rates"]) > 1:
                point["finetune.learning_rate"] = rate
              point["config"] = implied["config"]
              yield point
