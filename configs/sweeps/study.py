r"""The README's study: does pre-training help with few labels, and faster?

Datasets: the Apple Watch recordings of seglearn (10 subjects: 2 validation,
3 test, 5 training) and sp_sw_har's watch and phone at 50 Hz (23 subjects: 3
validation, 5 test, 15 training). Arms: scratch and every self-supervised
pretext kind, the same LSTM 2x64 (configs/default.py). Label budgets: 1, 2, 5
labelled training subjects and all of them (0); seeds 0, 1, 2 (a seed fixes
the subject split, the labelled subjects and the initialisation, so the arms
are paired by seed). Validation every 50 fine-tune steps for the convergence
curves.

  python -m imujax.experiments.sweep --sweep=configs/sweeps/study.py --sweep_dir=/tmp/study \
      --set=data.manual_dir=../shared/data/sp_sw_har --launcher=local \
      --vmap_seeds --cpu_devices=3
  python -m imujax.experiments.report /tmp/study

On a CPU, --vmap_seeds without --cpu_devices is slower than separate runs
(README, "Vectorised seeds"); --cpu_devices=3 gives each seed of a group its
own CPU device. --parallel=2 without --vmap_seeds uses two cores as well.

Variants (`study.py:variant=<name>`; `:arg` means switches here as in every
config file), wall times on the shared 2-core CPU with --vmap_seeds (measured:
one 3-seed fine-tune group of 600 steps with its 13 evaluations, 126 s;
pre-training ~16-19 member-steps/s):
  full   (default) 3 datasets x 7 arms x 4 budgets x 3 seeds: 54 pre-training
         and 231 fine-tune runs (seglearn has 5 training subjects, so its
         budget 5 is "all" and is run once); ~81k pre-training and ~139k
         fine-tune member-steps: about 4-5 hours.
  readme the README's results: every dataset; scratch, masked_reconstruction,
         forecast and simclr; budgets 1, 2, 5 and all; 3 seeds: 27
         pre-training and 132 fine-tune runs (wall time: README, "The study").
  cheap  seglearn_watch only; scratch, masked_reconstruction and forecast;
         budgets 1, 2 and all; 3 seeds: 6 pre-training and 27 fine-tune runs
         in 11 groups: 20.5 minutes with --vmap_seeds --cpu_devices=3
         (measured 2026-11-29).
  smoke  configs/test.py-sized: seglearn_watch; scratch and
         masked_reconstruction; budgets 1 and all; seeds 0, 1; 20 steps:
         under a minute.
"""

from imujax import configlib

CONFIG = "configs/default.py:eval_every=50,checkpoint_every=100"

# name -> (validation subjects, test subjects, training subjects).
DATASETS = {"seglearn_watch": (2, 3, 5),
            "sp_sw_har/watch_50hz": (3, 5, 15),
            "sp_sw_har/phone_50hz": (3, 5, 15)}
OBJECTIVES = ("scratch", "masked_reconstruction", "forecast", "cpc", "simclr",
              "autoencoder", "transform_prediction")
BUDGETS = (1, 2, 5, 0)   # Labelled training subjects; 0 = all of them.
SEEDS = (0, 1, 2)

VARIANTS = {
    "full": (tuple(DATASETS), OBJECTIVES, BUDGETS, SEEDS),
    "readme": (tuple(DATASETS), ("scratch", "masked_reconstruction",
                                 "forecast", "simclr"), BUDGETS, SEEDS),
    "cheap": (("seglearn_watch",), ("scratch", "masked_reconstruction",
                                    "forecast"), (1, 2, 0), SEEDS),
    "smoke": (("seglearn_watch",), ("scratch", "masked_reconstruction"),
              (1, 0), (0, 1)),
}


def sweep(arg=None):
  """Yields one override dict per fine-tune run (imujax/experiments/sweep.py)."""
  sw, keys = configlib.parse_arg(arg, variant="full")
  if keys:
    raise ValueError(f"configs/sweeps/study.py takes the switch variant=..., "
                     f"not {keys!r}; set config keys with --set.")
  variant = sw.variant
  if variant not in VARIANTS:
    raise ValueError(f"Unknown study variant {variant!r}; choose one of "
                     f"{sorted(VARIANTS)} (configs/sweeps/study.py:variant=...).")
  datasets, objectives, budgets, seeds = VARIANTS[variant]
  smoke = {"config": "configs/test.py:eval_every=5"} if variant == "smoke" else {}
  for name in datasets:
    val, test, train = DATASETS[name]
    for objective in objectives:
      # A budget of every training subject is the same run as budget 0.
      for budget in [b for b in budgets if b < train]:
        for seed in seeds:
          yield {"data.name": name, "objective": objective,
                 "data.labeled_subjects": budget, "seed": seed,
                 "set": {"data.val_subjects": val,
                         "data.test_subjects": test}, **smoke}
