r"""Cells at equal parameter count: LSTM, GRU, minGRU, minLSTM, LRU (issue 20).

Declared 2026-11-30. Both halves of readme ran complete on 2026-12-01:
readme_scratch (launch/results/cells_readme_scratch) and readme_simclr
(launch/results/cells_readme_simclr), reported together in
launch/results/cells_readme/report (`report ... --also`); README
"Parallel-in-time cells". Question: at the same
number of encoder parameters, does a parallel-in-time cell (minGRU, minLSTM,
LRU: gates from the input only, cells/parallel.py) classify activities as
well as the LSTM and GRU, trained from scratch and after simclr
pre-training? Protocol as configs/sweeps/study_cv.py (5-fold
cross-validation over subjects, per-subject test macro-F1, paired by subject
and seed; report with `python -m imujax.experiments.report`), with the cell
as the factor and scratch / simclr as the two arms.

Equal size, computed: every cell gets the hidden width whose encoder
(`models.init_encoder`: all layers' cell weights and layer norms, the
dataset's input channels, the config's layers; no heads) has the parameter
count closest to the reference LSTM's (2x64 for `full` and `readme`, the
LSTM of configs/test.py for `smoke`): `matched_hidden`, by bisection over
the shapes `jax.eval_shape` gives, nothing run. For 6 channels and 2 layers
(LSTM 2x64: 51,456): GRU 74 (51,800), minGRU 155 (51,150), minLSTM 126
(51,156), LRU 84 (51,912), all within 1 %; at smoke size (LSTM 1x16: 1,504)
GRU 18 is 4.3 % under (17 would be 9 % under, 19 6 % over), the others within
1 % (tests/test_parallel_cells.py checks <= 5 %).
The widths are printed by `python configs/sweeps/cells.py`.

Variants (`cells.py:variant=<name>,data_root=<folder of manual dirs>,
residual=<bool>`; residual=true adds model.residual to every run):
  full    seglearn_watch and sp_sw_har/watch_50hz x 5 cells x scratch,
          simclr x budgets 2 and all training subjects x 5 folds x seeds
          101-103 x learning rates 1e-3, 2e-3, 5e-3 (chosen per arm on
          validation subjects): 150 pre-training and 1,800 fine-tune runs,
          estimated ~20 core-hours from the study's measured LSTM CPU
          times (the parallel cells train faster per step).
  readme  the same datasets, cells and arms x all training subjects x 5
          folds x seeds 101, 102, learning rate 2e-3: 100 pre-training and
          200 fine-tune runs. Run as its two halves, each its own sweep dir
          and report (split 2026-12-01 before any readme run, when the
          simclr pre-trainings were costed at ~3 h here: the scratch half
          answers the cell question on its own and first):
  readme_scratch  readme's scratch arm: 100 fine-tune runs (~30-45 min on
          the 2-core CPU with --vmap_seeds --cpu_devices=2, from the
          study_cv readme's measured 42 s per 600-step LSTM program).
  readme_simclr   readme's simclr arm: 100 pre-training (1,500 steps each)
          and 100 fine-tune runs (~3-4 h here, from study_cv's 457 s per
          LSTM pre-training program; the parallel cells are faster).
  smoke   configs/test.py size (LSTM 1x16 reference) on seglearn_watch,
          the 5 cells x scratch, simclr x budget 1 x fold 0 of 2 x seeds
          101, 102: 10 pre-training and 20 fine-tune runs (5 + 10 vmapped
          seed pairs).

  launch/studies.sh ../shared/data cells:readme_scratch cells:readme_simclr
  python -m imujax.experiments.report launch/results/cells_readme_simclr \
      --also launch/results/cells_readme_scratch \
      --out launch/results/cells_readme/report
"""

from imujax.experiments import jobs as jobs_lib

CONFIG = ("configs/default.py:eval_every=100,checkpoint_every=100,"
          "dense_eval_until=200,dense_eval_every=10")

# name -> (validation subjects, manual_dir under data_root or "", channels).
DATASETS = {"seglearn_watch": (2, "", 6),
            "sp_sw_har/watch_50hz": (3, "sp_sw_har", 6)}
CELLS = ("lstm", "gru", "mingru", "minlstm", "lru")
ARMS = ("scratch", "simclr")
SEEDS = (101, 102, 103)
TOLERANCE = 0.05  # Largest relative parameter-count mismatch allowed.

VARIANTS = {
    "full": dict(datasets=tuple(DATASETS), budgets=(2, 0), folds=5,
                 fold_ids=range(5), seeds=SEEDS, rates=(1e-3, 2e-3, 5e-3),
                 reference=(64, 2), config=CONFIG),
    "readme": dict(datasets=tuple(DATASETS), budgets=(0,), folds=5,
                   fold_ids=range(5), seeds=SEEDS[:2], rates=(2e-3,),
                   reference=(64, 2), config=CONFIG),
    "readme_scratch": dict(datasets=tuple(DATASETS), budgets=(0,), folds=5,
                           fold_ids=range(5), seeds=SEEDS[:2],
                           rates=(2e-3,), reference=(64, 2), config=CONFIG,
                           arms=("scratch",)),
    "readme_simclr": dict(datasets=tuple(DATASETS), budgets=(0,), folds=5,
                          fold_ids=range(5), seeds=SEEDS[:2], rates=(2e-3,),
                          reference=(64, 2), config=CONFIG,
                          arms=("simclr",)),
    # configs/test.py: hidden 16, 1 layer.
    "smoke": dict(datasets=("seglearn_watch",), budgets=(1,), folds=2,
                  fold_ids=(0,), seeds=SEEDS[:2], rates=(2e-3,),
                  reference=(16, 1),
                  config="configs/test.py:dense_eval_until=10,"
                         "dense_eval_every=5"),
}


def encoder_params(cell: str, in_dim: int, hidden: int, layers: int) -> int:
  """Parameters of the encoder the sweep's runs build (shapes only)."""
  from imujax import models  # pylint: disable=g-import-not-at-top
  return models.encoder_size(models.ModelConfig(
      in_dim=in_dim, cell=cell, hidden=hidden, layers=layers))


def matched_hidden(cell: str, in_dim: int, ref_hidden: int,
                   layers: int) -> int:
  """The width of `cell` whose encoder size is closest to the LSTM's.

  Raises:
    ValueError: when no width comes within TOLERANCE.
  """
  from imujax import models  # pylint: disable=g-import-not-at-top
  target = encoder_params("lstm", in_dim, ref_hidden, layers)
  best = models.width_for_size(models.ModelConfig(
      in_dim=in_dim, cell=cell, hidden=ref_hidden, layers=layers), target)
  size = encoder_params(cell, in_dim, best, layers)
  if abs(size - target) > TOLERANCE * target:
    raise ValueError(f"configs/sweeps/cells.py: no width of {cell!r} within "
                     f"{TOLERANCE:.0%} of LSTM {layers}x{ref_hidden}'s "
                     f"{target} parameters (closest: {best}, {size}).")
  return best


def sweep(arg=None):
  """Yields one override dict per fine-tune run."""
  sw, v = jobs_lib.variant_of(arg, VARIANTS, "configs/sweeps/cells.py",
                              residual=False)
  ref_hidden, layers = v["reference"]
  for name in v["datasets"]:
    val, manual, channels = DATASETS[name]
    implied = {"data.val_subjects": val, "data.num_folds": v["folds"],
               "model.layers": layers}
    if manual:
      implied["data.manual_dir"] = f"{sw.data_root}/{manual}"
    for cell in CELLS:
      # The width is implied by the cell (and the dataset's channels).
      size = {"model.hidden": matched_hidden(cell, channels, ref_hidden,
                                             layers)}
      for objective in v.get("arms", ARMS):
        for budget in v["budgets"]:
          for fold in v["fold_ids"]:
            for seed in v["seeds"]:
              for rate in v["rates"]:
                point = {"data.name": name, "model.cell": cell,
                         "objective": objective,
                         "data.labeled_subjects": budget, "data.fold": fold,
                         "seed": seed, "set": {**implied, **size},
                         "config": v["config"]}
                if sw.residual:
                  point["model.residual"] = True
                if len(v["rates"]) > 1:
                  point["finetune.learning_rate"] = rate
                yield point


if __name__ == "__main__":
  for ref in ((64, 2), (16, 1)):
    for c in CELLS:
      h = matched_hidden(c, 6, *ref)
      print(f"LSTM {ref[1]}x{ref[0]} reference, 6 channels: {c:8s} hidden "
            f"{h:4d}  {encoder_params(c, 6, h, ref[1]):7d} parameters "
            f"(LSTM {encoder_params('lstm', 6, ref[0], ref[1])})")
