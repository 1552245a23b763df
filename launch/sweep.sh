#!/usr/bin/env bash
# Launches a sweep (configs/sweeps/*.py): locally, as SLURM job arrays, or as
# TPU VM commands. All flags go to `python -m imujax.experiments.sweep` (see --help):
#
#   launch/sweep.sh --sweep=configs/sweeps/study.py:variant=cheap --sweep_dir=/tmp/study \
#       --launcher=local --vmap_seeds
#   launch/sweep.sh --sweep=configs/sweeps/study.py --sweep_dir=$SCRATCH/study \
#       --set=data.manual_dir=$PWD/../shared/data/sp_sw_har --launcher=slurm --submit
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m imujax.experiments.sweep "$@"
