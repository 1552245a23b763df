r"""The scale question: does pre-training on more (pooled) hours help? (issue 16)

Per target: scratch (0 h), in-domain pre-training (the target's own training
subjects of the fold, no corpus) and pooled pre-training on the target's
leave-one-dataset-out corpus (`corpus_labels.leave_one_out`: every other
dataset of POOL, none of the target's people) cut to nested subsets of
increasing size (`pretrain.corpus_hours`: 0.5, 1, 2, 4 h, then all of it;
data/corpus_budget.py: whole recordings, fixed by a seed of their own,
proportional to the members' hours, the 0.5 h subset inside the 1 h one).

Protocol (as configs/sweeps/study_cv.py):
* subject-disjoint folds (`data.num_folds=5`, `data.fold`): test subjects
  of a fold are never trained on; validation subjects come from the others;
  in-domain pre-training sees the fold's training subjects only. A pooled
  corpus holds no subject of the target at all, so one pooled pre-training
  per (target, objective, hours, seed) serves every fold (`finetune_only`);
* label budgets of 1 and 5 training subjects; fine-tuning from each encoder
  and from scratch on the same labels and seeds;
* per-subject test macro-F1 (whole recordings, causal); the report plots it
  against pre-training hours per target and budget with 95% intervals
  (hierarchical bootstrap over subjects, then seeds), and tabulates pooled −
  in-domain paired on (subject, seed) (imujax/experiments/scale_report.py).

Targets and their corpora (hours of CORPUS.md, 50 Hz builds):
  seglearn_watch        uci_hapt + sp_sw_har phone + watch + ipol_gait, 8.6 h
  sp_sw_har watch/phone uci_hapt + ipol_gait, 7.2 h
  uci_hapt              sp_sw_har phone + watch + ipol_gait, 2.3 h
A size at or above a corpus's hours is its "all" point (not repeated).

Variants (`scale.py:variant=<name>,data_root=<folder of manual dirs>`):
  full    the 4 targets x simclr, masked_reconstruction, forecast, cpc x
          0.5, 1, 2, 4 h and all (those below the corpus's hours) x budgets
          1, 5 x 5 folds x seeds 101-103, configs/default.py (LSTM 2x64,
          windows of 128, 1,500 pre-training and 600 fine-tune steps): 468
          pre-training and 2,880 fine-tune runs. Cost from this CPU's
          measured default.py runs (CORPUS.md: one seed, 1.3-3 min per
          pre-training, 35-45 s per fine-tune, compilation included) plus
          ~1 min of evaluation compile per simclr run: ~60 h of the 2-core
          machine, ~120 core-hours; ~2 h on 64 SLURM cores (2 per job):
            python -m imujax.experiments.sweep --sweep=configs/sweeps/scale.py \
                --sweep_dir=$SCRATCH/scale --launcher=slurm \
                --sbatch='--cpus-per-task=2' --submit
          or on a TPU VM: `--launcher=tpu --tpu=<name> --zone=<zone>`.
  readme  the 4 targets x simclr, masked_reconstruction x 0.5, 2 h and all x
          budgets 1, 5 x fold 0 (of 5) x seeds 101-103, a smaller network
          (LSTM 1x32, windows of 64, batch 16, 300 pre-training and 150
          fine-tune steps, validated once at the end): 96 pre-training and
          216 fine-tune runs in 104 programs with --vmap_seeds (24
          pre-training, 80 fine-tune). Estimated 1.6-2.4 h on the 2-core CPU
          (below); measured 2026-12-01 on an idle machine: 17 min
          (launch/results/scale_readme; README "Pre-training on a corpus").
          It sees 300 x 16 x 64 frames (1.7 h) per pre-training, so it
          cannot tell larger corpora apart: a null result for scale here
          says little about scale.
  seen    readme's question without its confound, within the issue's
          3 h budget for this machine (declared 2026-12-01 after the readme
          result, before any of its runs; seeds as readme's, since nothing
          was chosen on them): readme's network, fine-tuning, targets,
          budgets, fold 0 and seeds, but every pre-training sees
          600 steps x 64 windows x 64 frames = 2,457,600 frames (13.7 h at
          50 Hz: 1.6x the largest corpus, 8.6 h; readme's 0.18x), the same
          for every corpus size (fixed compute: the 0.5 h corpus is seen 27
          times, the whole one 1.6-5.9 times), and the four objectives
          simclr, masked_reconstruction, forecast, cpc x 0.5, 1, 2, 4 h and
          all: 276 pre-training and 576 fine-tune runs in 92 + 192
          programs with --vmap_seeds. Measured 2026-12-01: 58 min here
          (launch/results/scale_seen; README). Estimated ~1.5 h, from readme's
          measured programs (simclr 12 s, masked reconstruction 5 s,
          fine-tune 5 s of compute; ~8 s of start-up each) with 2x the
          steps at 4x the batch (at 32 units the step is bound by the
          scan's 64 sequential steps, not the batch).
  smoke   the readme's network at 40 + 40 steps on seglearn_watch x simclr,
          masked_reconstruction x 0.5 h and all x budget 1 x folds 0, 1 x
          seeds 101, 102: 16 pre-training and 28 fine-tune runs, 22 programs.

  python -m imujax.experiments.sweep --sweep=configs/sweeps/scale.py:variant=readme \
      --sweep_dir=/tmp/scale --launcher=local --vmap_seeds --cpu_devices=2
  python -m imujax.experiments.report /tmp/scale

COST, measured with the smoke variant (2026-11-30, 2-core CPU shared with a
running study and other jobs, load average 10-18; 2 seeds per program on 2
CPU devices): one program (log span; +~8 s process start) took
  pre-training simclr        76-158 s: start, data and compile 40-107 s
                             (107 s: reading the whole 8.6 h corpus), the
                             first evaluation 35-55 s (compiling simclr's
                             held-out loss), 22-36 steps/s (x2 seeds)
  pre-training masked rec.   29-41 s (start 22-31 s, 59-100 steps/s)
  fine-tune                  20-25 s (start 17-22 s, 100-160 steps/s)
so start-up and compilation, not steps, are the cost. Readme: 12 simclr
pre-trainings ~150 s, 4 more on the whole corpus ~180 s, 16 masked
reconstruction ~50 s, 80 fine-tune programs ~30 s: 1.6 h at
seglearn_watch's size, ~2.4 h allowing 1.5x for the larger targets'
evaluations (uci_hapt 30, sp_sw_har 23 subjects).
"""

from imujax.data import corpus_labels
from imujax.experiments import jobs as jobs_lib

# The pooled datasets (each at 50 Hz) as "name@<manual dir under data_root>".
POOL = ("uci_hapt/50hz@{root}/uci_hapt", "sp_sw_har/phone_50hz@{root}/sp_sw_har",
        "sp_sw_har/watch_50hz@{root}/sp_sw_har", "ipol_gait/50hz@{root}/ipol_gait")
# Target -> (validation subjects, manual dir under data_root or "",
#            hours of its leave-one-dataset-out corpus, CORPUS.md).
TARGETS = {"sp_sw_har/watch_50hz": (3, "sp_sw_har", 7.17),
           "sp_sw_har/phone_50hz": (3, "sp_sw_har", 7.17),
           "uci_hapt/50hz": (3, "uci_hapt", 2.33),
           "seglearn_watch": (2, "", 8.57)}
OBJECTIVES = ("simclr", "masked_reconstruction", "forecast", "cpc")
HOURS = (0.5, 1., 2., 4.)  # Then 0: the whole corpus.
BUDGETS = (1, 5)
FOLDS = 5
SEEDS = (101, 102, 103)

_EVAL = "eval_every={e},checkpoint_every={e},log_every={l}"
_SMALL = ("model.hidden=32,model.layers=1,data.window=64,"
          "pretrain.batch_size=16,finetune.batch_size=16,"
          "pretrain.steps={p},finetune.steps={f},"
          "pretrain.warmup_steps={w},finetune.warmup_steps={w}")
CONFIG = "configs/default.py:" + _EVAL.format(e=100, l=50)
# Validation once, at the end: an evaluation (whole recordings, causal) costs
# more than the 300 steps on the shared 2-core CPU (measured below).
README_CONFIG = ("configs/default.py:" + _SMALL.format(p=300, f=150, w=30)
                 + "," + _EVAL.format(e=1000, l=50))
# readme's, but 600 pre-training steps of 64 windows (2.46 M frames).
SEEN_CONFIG = README_CONFIG.replace(
    "pretrain.batch_size=16", "pretrain.batch_size=64").replace(
        "pretrain.steps=300", "pretrain.steps=600")
SMOKE_CONFIG = ("configs/default.py:" + _SMALL.format(p=40, f=40, w=5)
                + "," + _EVAL.format(e=20, l=10))

VARIANTS = {
    "full": dict(targets=tuple(TARGETS), objectives=OBJECTIVES, hours=HOURS,
                 budgets=BUDGETS, folds=range(FOLDS), seeds=SEEDS,
                 config=CONFIG),
    "readme": dict(targets=tuple(TARGETS),
                   objectives=("simclr", "masked_reconstruction"),
                   hours=(0.5, 2.), budgets=BUDGETS, folds=(0,),
                   seeds=SEEDS, config=README_CONFIG),
    "seen": dict(targets=tuple(TARGETS), objectives=OBJECTIVES,
                 hours=HOURS, budgets=BUDGETS, folds=(0,), seeds=SEEDS,
                 config=SEEN_CONFIG),
    "smoke": dict(targets=("seglearn_watch",),
                  objectives=("simclr", "masked_reconstruction"),
                  hours=(0.5,), budgets=(1,), folds=(0, 1), seeds=SEEDS[:2],
                  config=SMOKE_CONFIG),
}


def corpus_for(target: str, data_root: str) -> str:
  """The target's leave-one-dataset-out corpus (`pretrain.corpus`)."""
  return corpus_labels.leave_one_out(
      ",".join(m.format(root=data_root) for m in POOL), target)


def sizes(target: str, hours) -> list:
  """The corpus sizes of a target: those below its corpus's hours, then 0
  (all of it)."""
  return [h for h in hours if h < TARGETS[target][2]] + [0.]


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/scale.py")
  for target in v["targets"]:
    val, manual, _ = TARGETS[target]
    implied = {"data.val_subjects": val, "data.num_folds": FOLDS}
    if manual:
      implied["data.manual_dir"] = f"{sw.data_root}/{manual}"
    corpus = corpus_for(target, sw.data_root)
    for budget in v["budgets"]:
      for fold in v["folds"]:
        for seed in v["seeds"]:
          base = {"data.name": target, "data.labeled_subjects": budget,
                  "data.fold": fold, "seed": seed, "set": dict(implied),
                  "config": v["config"]}
          yield {**base, "objective": "scratch"}
          for objective in v["objectives"]:
            yield {**base, "objective": objective}  # In-domain.
            for hours in sizes(target, v["hours"]):
              yield {**base, "objective": objective,
                     "pretrain.corpus": corpus,
                     "pretrain.corpus_hours": hours,
                     "finetune_only": ("data.fold",)}
