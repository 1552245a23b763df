r"""Per-frame targets beyond class labels: does pre-training help? (issue 18)

Declared 2026-11-30, before any of its runs existed. Seeds 201-203 were
never used by an earlier run of this project (study.py: 0-2; study_cv.py
and cells.py: 101-103). The readme variant is measured (2026-12-01, 98
runs in 35 min on the 2-core CPU; launch/results/targets_readme, README
"Per-frame targets"); full is not. The smoke variant's numbers are 20 steps
of a 16-unit model and mean nothing.

Tasks (each `finetune.target` with its `finetune.tracks`; objectives/):
  contacts       ipol_gait/50hz initial-contact events (both feet,
                 `labels_initial_contact`): event F1 at ±50 ms
                 (`finetune.events.tolerance_ms=50`; 50 ms is 2 whole
                 frames = ±40 ms at 50 Hz: `events.frames` never widens it),
                 timing error and detection delay of the causal decoder
                 (fires at most delay_ms=100 after a peak).
  stride_time    ipol_gait/50hz regression of `targets_stride_time` (s):
                 MAE, RMSE, R², r in seconds.
  walking_speed  mobilised/50hz regression of `targets_walking_speed` (m/s)
                 on `<data_root>/mobilised_example/lab`: ONLY 3 participants,
                 so 3 folds of one test, one validation and ONE training
                 subject; read it as a feasibility check, not an estimate.
  prediction     sp_sw_har/watch_50hz: the inputs 200 ms ahead; RMSE of the
                 model beside the last-value and constant-velocity baselines
                 on the same frames (normalised units).
Arms: scratch, and the encoder pre-trained by masked_reconstruction (full
also simclr) on the training subjects of the same fold; full fine-tuning.
Folds over subjects (`data.num_folds`; every subject is tested once per
seed); the paired unit is arm − scratch per subject and seed, with a
hierarchical bootstrap interval and a sign-flip p over subjects, per metric
with its direction from `metrics.HIGHER_IS_BETTER`
(`python -m imujax.experiments.report`, "Other targets: paired").

Variants (`targets.py:variant=<name>,data_root=<folder of manual dirs>`):
  full    the 4 tasks x scratch, masked_reconstruction, simclr x budgets 1,
          2, all (mobilised: all = 1) x 5 folds (mobilised 3) x seeds
          201-203: 78 pre-training and 432 fine-tune runs.
  readme  the 4 tasks x scratch, masked_reconstruction x budget 2 (mobilised:
          all) x 5 folds (mobilised 3) x seeds 201, 202: 26 pre-training and
          72 fine-tune runs. Estimated ~2.5 h on the shared 2-core CPU
          with --vmap_seeds --cpu_devices=2, from times measured there
          (2026-11-30, default config, ipol_gait, a pair of seeds:
          pre-training ~4.5 steps/s, fine-tuning ~10 steps/s; ~40 s per
          launched unit for start, data, compilation and evaluation, from
          the smoke): 13 pre-training units x ~6 min + 36 fine-tune units
          x ~2 min. Measured: 35 min (pre-training ~1 min, fine-tuning
          ~0.5 min per pair of seeds).
  smoke   the readme variant at configs/test.py size: the first 2 folds,
          seeds 201, 202, budget 1 (mobilised: all), 20 steps: 12 pre-training
          and 32 fine-tune runs; 15.6 min wall on the shared 2-core CPU
          (2026-11-30).

  python -m imujax.experiments.sweep --sweep=configs/sweeps/targets.py:variant=smoke \
      --sweep_dir=/tmp/targets_smoke --launcher=local --vmap_seeds --cpu_devices=2
  python -m imujax.experiments.report /tmp/targets_smoke
"""

from imujax.experiments import jobs as jobs_lib

CONFIG = "configs/default.py:eval_every=100,checkpoint_every=100"

# name -> (data.name, manual dir under data_root, validation subjects,
#          folds, the budget when a variant asks for 1 or 2, finetune keys).
TASKS = {
    "contacts": ("ipol_gait/50hz", "ipol_gait", 3, 5, None, {
        "finetune.target": "events",
        "finetune.tracks": "initial_contact",
        "finetune.events.tolerance_ms": 50.}),
    "stride_time": ("ipol_gait/50hz", "ipol_gait", 3, 5, None, {
        "finetune.target": "regression",
        "finetune.tracks": "stride_time"}),
    # 3 participants: 1 test, 1 validation, 1 training subject per fold.
    "walking_speed": ("mobilised/50hz", "mobilised_example/lab", 1, 3, 0, {
        "finetune.target": "regression",
        "finetune.tracks": "walking_speed"}),
    "prediction": ("sp_sw_har/watch_50hz", "sp_sw_har", 3, 5, None, {
        "finetune.target": "prediction",
        "finetune.prediction.horizons_ms": "200"}),
}
SEEDS = (201, 202, 203)
PRETEXTS = ("masked_reconstruction", "simclr")

VARIANTS = {
    "full": dict(arms=("scratch",) + PRETEXTS, budgets=(1, 2, 0),
                 max_folds=None, seeds=SEEDS, config=CONFIG),
    "readme": dict(arms=("scratch", PRETEXTS[0]), budgets=(2,),
                   max_folds=None, seeds=SEEDS[:2], config=CONFIG),
    "smoke": dict(arms=("scratch", PRETEXTS[0]), budgets=(1,), max_folds=2,
                  seeds=SEEDS[:2], config="configs/test.py"),
}


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/targets.py")
  for task, (name, manual, val, folds, budget, finetune) in TASKS.items():
    budgets = (budget,) if budget is not None else v["budgets"]
    implied = {"data.val_subjects": val, "data.num_folds": folds,
               "data.manual_dir": f"{sw.data_root}/{manual}"}
    for objective in v["arms"]:
      for b in dict.fromkeys(budgets):
        for fold in range(min(folds, v["max_folds"] or folds)):
          for seed in v["seeds"]:
            yield {"data.name": name, "objective": objective,
                   "data.labeled_subjects": b, "data.fold": fold,
                   "seed": seed, **finetune, "set": dict(implied),
                   "config": v["config"]}
