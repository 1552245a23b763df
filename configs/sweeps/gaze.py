r"""Eye-movement events on Lund 2013: does self-supervised pre-training help?

Declared (issue 19); readme and velocity are measured (README). Data:
gaze_lund2013 (`gaze_x_deg`, `gaze_y_deg` at 500 Hz; fixation, saccade,
PSO, pursuit, blink, undefined; imujax/datasets/gaze_lund2013/README.md),
read in place from `data_root/gaze_lund2013`.

Protocol (as configs/sweeps/study_cv.py):
* 5-fold cross-validation over participants (`data.num_folds=5`): every
  participant is tested exactly once per seed, recordings of one participant
  never span folds (subject = participant code); validation participants
  come from the other folds; pre-training sees only its fold's training
  participants (their recordings, unlabelled).
* Arms: scratch, and a self-supervised arm pre-trained with
  masked reconstruction (no physical augmentation needed: gaze is not
  rotated), fine-tuned fully; `full` adds forecast and the linear probes.
* Scores (test participants, whole recordings, causal): sample-level
  macro-F1, per-class Cohen's kappa (one-vs-rest) and event-level F1 with
  events matched by overlap (imujax/metrics.py; reported for gaze channels by
  training/evaluate.py). The unit of comparison is the paired difference
  arm - scratch per participant and seed.
* Windows of 1 s (500 frames, `data.window_s=1`); LSTM 2 x 64 (the size
  bench/stream_gaze.py times at 500 Hz).

Variants (`gaze.py:variant=<name>,data_root=<folder of manual dirs>`):
  full    scratch, masked_reconstruction, forecast (each also as a linear
          probe) x budgets 1, 2, 5, all x 5 folds x seeds 101-103: 15
          pre-training and 300 fine-tune runs.
  readme  scratch, masked_reconstruction x budgets 1, 2 x 5 folds x seeds
          101, 102: 10 pre-training and 40 fine-tune runs.
  velocity  readme's runs on `gaze_lund2013/500hz_velocity`: the same
          positions plus the velocity (deg/s) and track-loss channels the
          builder derives causally from them, everything else as readme, so
          readme vs velocity isolates the input. Declared 2026-12-01 after
          readme had failed (both arms near chance) and after ONE
          development run on validation participants only (fold 0, seed
          101, scratch, 2 labelled participants, 600 steps): validation
          macro-F1 0.458 and saccade kappa 0.45 with velocity vs 0.272 and
          0.08 for the readme run of that cell; no test score was looked at.
          Measured 2026-12-01: 50 runs in 73 min on the 2-core CPU
          (launch/results/gaze_velocity; README "Beyond IMUs").
  smoke   readme's shape at configs/test.py size (hidden 16, 1 layer, 20
          steps, windows of 64 frames): 2 folds, 2 seeds, budget 1.

  python -m imujax.experiments.sweep --sweep=configs/sweeps/gaze.py:variant=smoke \
      --sweep_dir=/tmp/gaze_smoke --launcher=local --vmap_seeds --cpu_devices=2
  python -m imujax.experiments.report /tmp/gaze_smoke
"""

from imujax.experiments import jobs as jobs_lib

DATASET = "gaze_lund2013/500hz"
VELOCITY_DATASET = "gaze_lund2013/500hz_velocity"
MANUAL = "gaze_lund2013"
VAL_SUBJECTS = 3
CONFIG = ("configs/default.py:eval_every=100,checkpoint_every=100,"
          "data.window_s=1.0,model.hidden=64,model.layers=2")
SMOKE_CONFIG = "configs/test.py:data.window=64"
FOLDS = 5
SEEDS = (101, 102, 103)

_arms = jobs_lib.pretext_arms


VARIANTS = {
    "full": dict(arms=_arms(("masked_reconstruction", "forecast"), True),
                 budgets=(1, 2, 5, 0), folds=FOLDS, seeds=SEEDS,
                 config=CONFIG),
    "readme": dict(arms=_arms(("masked_reconstruction",), False),
                   budgets=(1, 2), folds=FOLDS, seeds=SEEDS[:2],
                   config=CONFIG),
    "velocity": dict(arms=_arms(("masked_reconstruction",), False),
                     budgets=(1, 2), folds=FOLDS, seeds=SEEDS[:2],
                     config=CONFIG, dataset=VELOCITY_DATASET),
    "smoke": dict(arms=_arms(("masked_reconstruction",), False),
                  budgets=(1,), folds=2, seeds=SEEDS[:2],
                  config=SMOKE_CONFIG),
}


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/gaze.py")
  implied = {"data.val_subjects": VAL_SUBJECTS, "data.num_folds": v["folds"],
             "data.manual_dir": f"{sw.data_root}/{MANUAL}"}
  for objective, finetune in v["arms"]:
    for budget in v["budgets"]:
      for fold in range(v["folds"]):
        for seed in v["seeds"]:
          yield {"data.name": v.get("dataset", DATASET),
                 "objective": objective,
                 "data.labeled_subjects": budget, "data.fold": fold,
                 "seed": seed, **finetune, "set": dict(implied),
                 "config": v["config"]}
