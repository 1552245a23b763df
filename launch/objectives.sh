#!/usr/bin/env bash
# Every pre-training objective against scratch on one dataset, one seed: the
# pretext runs, a fine-tune from each, one scratch run with the same labels and
# steps, and supervised pre-training on the other watch dataset. Finished runs
# are skipped, interrupted ones resume. Prints a markdown table at the end.
#
#   launch/objectives.sh seglearn_watch /tmp/objectives_watch
#   launch/objectives.sh sp_sw_har /tmp/objectives_spsw --config.data.manual_dir=../shared/data/sp_sw_har
#
# Extra flags go to every run (e.g. --config.data.data_dir=...).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 seglearn_watch|sp_sw_har OUTDIR [main.py flags...]" >&2
  exit 2
fi
dataset=$1 out=$2
shift 2
cd "$(dirname "$0")/.."
kinds="masked_reconstruction forecast autoencoder cpc simclr transform_prediction"
config="configs/pretrain.py:dataset=$dataset"

run() {  # run WORKDIR FLAGS...
  local workdir=$1
  shift
  [ -f "$workdir/summary.json" ] && return 0
  mkdir -p "$workdir"
  python -m imujax.main --config="$config" --workdir="$workdir" "$@" \
    >"$workdir/log.txt" 2>&1 || { tail -20 "$workdir/log.txt"; return 1; }
}

run "$out/scratch" --config.mode=finetune "$@"
for kind in $kinds; do
  run "$out/pretrain_$kind" --config.mode=pretrain \
    --config.pretrain.objective="$kind" "$@"
  run "$out/finetune_$kind" --config.mode=finetune \
    --config.pretrain.objective="$kind" --config.init_from="$out/pretrain_$kind" "$@"
done

# Supervised pre-training on the other watch dataset (wrist acc + gyr).
if [ "$dataset" = seglearn_watch ]; then
  source_name=sp_sw_har/watch_50hz
  # The raw sp_sw_har files (upstream DATA/); skipped when absent.
  source_dir=${SP_SW_HAR_DIR:-$(cd .. && pwd)/shared/data/sp_sw_har}
else
  source_name=seglearn_watch
  source_dir=
fi
if [ "$dataset" != seglearn_watch ] || [ -d "$source_dir" ]; then
  run "$out/pretrain_supervised" --config.mode=pretrain \
    --config.pretrain.objective=classification \
    --config.pretrain.dataset="$source_name" \
    --config.pretrain.manual_dir="$source_dir" "$@"
  run "$out/finetune_supervised" --config.mode=finetune \
    --config.init_from="$out/pretrain_supervised" "$@"
fi

python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print("| arm | test macro-F1 | test accuracy | fine-tune wall (s) |")
print("|---|---|---|---|")
for d in sorted(out.glob("*")):
  if d.name == "scratch" or d.name.startswith("finetune_"):
    s = json.loads((d / "summary.json").read_text())
    arm = d.name.replace("finetune_", "pre-trained: ")
    print(f"| {arm} | {s['test']['macro_f1']:.3f} | {s['test']['accuracy']:.3f}"
          f" | {s['wall_s_this_session']:.0f} |")
PY
