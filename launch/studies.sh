#!/usr/bin/env bash
# The declared studies' `readme` variants, one after another, each into
# launch/results/<sweep>_readme/, a sweep dir kept in git (per-run results
# only: run.json, metrics.jsonl, summary.json, ...; launch/results/.gitignore
# keeps checkpoints and logs out). Rerunning resumes from what the
# repository holds: finished runs are skipped, interrupted ones resume from
# their checkpoint if it is still here, and a finished pre-training whose
# checkpoint is gone ("archived") is rerun only when one of its fine-tunes
# is unfinished. Commit finished runs as you go (an unfinished run's files
# without its checkpoint would only be refused on resume elsewhere):
#
#   git add launch/results/.gitignore launch/results/*/sweep.json \
#     $(dirname $(ls launch/results/*/*/*/summary.json)) launch/results/*/report
#
#   launch/studies.sh [DATA_ROOT] [SWEEP ...]
#
# DATA_ROOT holds the datasets' manual dirs (default ../shared/data). SWEEPs
# default to every declared study, in this order; SWEEP:VARIANT runs another
# variant than readme, into launch/results/<sweep>_<variant>/
# (gaze:velocity). Each sweep's docstring (configs/sweeps/<sweep>.py) gives
# its protocol, runs and estimated cost; none of them is complete until its
# report says "Complete".
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-../shared/data}
shift || true
sweeps=("$@")
[ ${#sweeps[@]} -eq 0 ] && sweeps=(study_cv cells:readme_scratch cells:readme_simclr targets scale supervised
                                   scale:seen gaze gaze:velocity modality)
for arg in "${sweeps[@]}"; do
  s=${arg%%:*}
  variant=readme
  [[ $arg == *:* ]] && variant=${arg#*:}
  dir="launch/results/${s}_${variant}"
  python -m imujax.experiments.sweep \
    --sweep="configs/sweeps/$s.py:variant=$variant,data_root=$root" \
    --sweep_dir="$dir" --launcher=local --vmap_seeds --cpu_devices=2 || true
  python -m imujax.experiments.report "$dir"
done
