r"""Supervised vs self-supervised pre-training on the same pooled corpus.

Pre-registered 2026-12-01, before any of its runs existed. Seeds 301-303
were never used by an earlier run of this project (study_cv 101-103,
targets 201-203, scale 101-103).

Question (issue text): the corpus's labelled datasets with similar motion
classes are the classic transfer case. Does supervised pre-training on their
labels (one classification head per member, or one head over a documented
shared label space) give a better encoder for a target than self-supervised
pre-training on the same recordings, or than both together?

Arms, per target, each pre-trained ONCE per (target, arm, seed) on the
target's whole leave-one-dataset-out corpus (scale.py's POOL through
`corpus_labels.leave_one_out`: no member of the target's cohort, so no
person and no label of the target; `pretrain.corpus_hours` not set: all of
it) and fine-tuned in every fold from it (`finetune_only`), as in
configs/sweeps/scale.py. The report's names (stats.supervision_tag):
  scratch                          no pre-training, the same labels and steps
  scratch +aug                     the control: scratch fine-tuned on SimCLR's
                                   augmentations (`finetune.augment=simclr`)
  simclr@corpus                    self-supervised (SimCLR)
  corpus_supervised@corpus         `pretrain.objective=corpus_supervised`,
                                   a head per member (`corpus_label_map=member`)
  corpus_supervised:shared@corpus  one head over corpus_labels.SHARED_CLASSES
                                   (`corpus_label_map=shared`, CORPUS.md)
  simclr+sup0.5@corpus             SimCLR + 0.5 x the multi-task loss, a head
                                   per member (`corpus_supervised_weight=0.5`)
Targets and their corpora (hours of CORPUS.md, 50 Hz builds):
  seglearn_watch        uci_hapt + sp_sw_har phone + watch + ipol_gait, 8.6 h
                        (its own 7 shoulder exercises map to no shared class)
  sp_sw_har/watch_50hz  uci_hapt + ipol_gait, 7.2 h (sp_sw_har's phone view is
                        the same people: left out, as the guard demands)

Protocol (as study_cv.py and scale.py): subject-disjoint folds
(`data.num_folds=5`, `data.fold`), validation subjects from the other
folds; full fine-tuning with label budgets of 1 and 2 training subjects; the
same seed is the same split, labelled subjects and head initialisation in
every arm. Per-subject test macro-F1 (whole recordings, causal). The unit is
the paired difference per (subject, seed):
  arm − scratch   `python -m imujax.experiments.report <dir>`: "Paired claims
                  per subject" (hierarchical bootstrap over subjects then
                  seeds, sign-flip p, Holm across the arms of a cell);
  arm − simclr    the same statistics against simclr@corpus (a linear probe
                  against simclr's probe), Holm across the arms of a cell:
                  `python -m imujax.experiments.claims <dir>
                  --versus=simclr@corpus` (`claims.versus_markdown`).
Claims it will test, per target x budget (an interval excluding 0 decides;
otherwise "not distinguishable at this n"):
  1. corpus_supervised (member heads) − scratch > 0: labelled corpus
     pre-training helps the target;
  2. corpus_supervised − simclr: the sign says which pre-training on the same
     recordings gives the better encoder;
  3. corpus_supervised:shared − corpus_supervised: whether one shared label
     space beats a head per member (from the two arms' rows against simclr
     and scratch on the same pairs);
  4. simclr+sup0.5 − simclr > 0 and simclr+sup0.5 − corpus_supervised >= 0:
     combining adds to either objective alone.
  5. each pre-trained arm − scratch +aug (read from the two rows against
     scratch on the same pairs, and `--versus="scratch +aug"`): the
     study_cv readme found scratch fine-tuned on SimCLR's augmentations
     beat SimCLR in every cell, so a pre-training arm that beats scratch but
     not this control has not shown more than augmentation does.

Variants (`supervised.py:variant=<name>,data_root=<folder of manual dirs>`):
  readme  the 2 targets x the 6 arms x budgets 1, 2 x 5 folds x seeds 301,
          302, configs/default.py (LSTM 2x64, windows of 128, 1,500
          pre-training and 600 fine-tune steps, validation every 100): 16
          pre-training and 240 fine-tune runs in 128 programs with
          --vmap_seeds (8 pre-training, 120 fine-tune). Not scale.py's
          readme network (LSTM 1x32, 300 steps): the multi-task objective
          is still learning there (CORPUS.md: per-member training accuracy
          0.38 at 100 steps, 0.63 at 500 of a smaller LSTM), and default.py
          is the network of the completed study_cv readme on the same
          targets, budgets and folds, so its scratch and simclr numbers are
          a check on these. ESTIMATED (not measured) ~3.9 h of the shared
          2-core CPU: 120 fine-tune programs ~1.3 min each (study_cv readme,
          default.py, 90 programs in 2 h 27 min of work) ~2.6 h; 8
          pre-training programs ~6-9 min each (1,500 steps x 2 seeds at
          default.py size, 1.3-3 min per seed in CORPUS.md, plus scale.py's
          measured start-up reading a whole corpus, 107 s, and simclr's
          first evaluation, 35-55 s; the combined arm adds an encoder pass
          per step) ~1-1.2 h.
  full    readme + budget "all" (every training subject) + a linear-probe
          arm per pre-training, seeds 301-303: 24 pre-training and 900
          fine-tune runs (2 targets x 3 budgets x 5 folds x 3 seeds x 10
          arms) in 308 programs (8 pre-training, 300 fine-tune). Estimated
          ~10 h of the 2-core CPU (the readme's per-program rates, x1.5 for
          3 seeds on 2 CPU devices), ~20 core-hours: under 1 h on 64 SLURM
          cores (`--launcher=slurm --sbatch='--cpus-per-task=2'`).
  smoke   seglearn_watch x the 6 arms x budget 1 x folds 0, 1 x seeds 301,
          302, configs/test.py (LSTM 1x16, windows of 32, 20 + 20 steps): 8
          pre-training and 24 fine-tune runs in 16 programs.

  python -m imujax.experiments.sweep --sweep=configs/sweeps/supervised.py:variant=readme \
      --sweep_dir=/tmp/supervised --launcher=local --vmap_seeds --cpu_devices=2
  python -m imujax.experiments.report /tmp/supervised
  python -m imujax.experiments.claims /tmp/supervised --versus=simclr@corpus

Smoke, measured 2026-12-01 before the scratch +aug arm was added (2-core
CPU shared with running experiments,
load average ~4.4): 28 of 28 runs in 3 min 14 s wall, 14 programs of 2
seeds (program logs' spans): pre-training simclr 28 s, simclr+sup0.5 32 s,
corpus_supervised 9-12 s (no held-out loss to compile: it is 0 by design,
CORPUS.md), fine-tunes 8-11 s. The report names the five arms apart in
every table (arm, paired claims, pre-training runs, hours section); at 20
steps of a 16-unit LSTM its scores (macro-F1 ~0.17) mean nothing.
"""

import pathlib

from imujax.experiments import jobs as jobs_lib

# configs/sweeps/scale.py: POOL, TARGETS (validation subjects, manual dir,
# corpus hours), FOLDS, CONFIG and corpus_for (the leave-one-out corpus).
scale = jobs_lib.sweep_module(pathlib.Path(__file__).with_name("scale.py"),
                              "_imujax_sweep_scale")

TARGETS = ("seglearn_watch", "sp_sw_har/watch_50hz")
# The report's name of a pre-trained arm (before "@corpus") -> (objective,
# pre-training overrides); the names are stats.supervision_tag's.
PRETRAININGS = {
    "simclr": ("simclr", {}),
    "corpus_supervised": ("corpus_supervised",
                          {"pretrain.corpus_label_map": "member"}),
    "corpus_supervised:shared": ("corpus_supervised",
                                 {"pretrain.corpus_label_map": "shared"}),
    "simclr+sup0.5": ("simclr", {"pretrain.corpus_supervised_weight": 0.5,
                                 "pretrain.corpus_label_map": "member"}),
}
# The control study_cv found larger than SimCLR's gain in every cell:
# scratch fine-tuned on SimCLR's augmentations ("scratch +aug").
AUGMENT = {"finetune.augment": "simclr"}
# The self-supervised arm the others are also paired with (claims.versus).
REFERENCE = "simclr@corpus"
PROBE = {"finetune.protocol": "linear_probe"}
SEEDS = (301, 302, 303)

VARIANTS = {
    "full": dict(targets=TARGETS, budgets=(1, 2, 0), folds=range(scale.FOLDS),
                 seeds=SEEDS, protocols=({}, PROBE), config=scale.CONFIG),
    "readme": dict(targets=TARGETS, budgets=(1, 2), folds=range(scale.FOLDS),
                   seeds=SEEDS[:2], protocols=({},), config=scale.CONFIG),
    "smoke": dict(targets=TARGETS[:1], budgets=(1,), folds=(0, 1),
                  seeds=SEEDS[:2], protocols=({},), config="configs/test.py"),
}
CONFIG = scale.CONFIG


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/supervised.py")
  for target in v["targets"]:
    val, manual, _ = scale.TARGETS[target]
    implied = {"data.val_subjects": val, "data.num_folds": scale.FOLDS}
    if manual:
      implied["data.manual_dir"] = f"{sw.data_root}/{manual}"
    corpus = scale.corpus_for(target, sw.data_root)
    for budget in v["budgets"]:
      for fold in v["folds"]:
        for seed in v["seeds"]:
          base = {"data.name": target, "data.labeled_subjects": budget,
                  "data.fold": fold, "seed": seed, "set": dict(implied),
                  "config": v["config"]}
          yield {**base, "objective": "scratch"}
          yield {**base, "objective": "scratch", **AUGMENT}
          for objective, pre in PRETRAININGS.values():
            for protocol in v["protocols"]:
              yield {**base, "objective": objective,
                     "pretrain.corpus": corpus, **pre, **protocol,
                     "finetune_only": ("data.fold",)}
