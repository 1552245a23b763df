#!/usr/bin/env bash
# Pre-trains the released encoder on the pooled corpus and publishes it as
# imujax/pretrained/$NAME (params, run.json with the corpus fingerprints,
# summary, metrics; no optimizer state), then fine-tunes seglearn_watch from
# it and from scratch with the default protocol (3 seeds) to measure it.
#
#   launch/release_encoder.sh [DATA_ROOT] [WORKDIR]
#
# DATA_ROOT holds the manual dirs uci_hapt/, sp_sw_har/, ipol_gait/ (default
# ../shared/data). The corpus leaves seglearn_watch out, so the release can
# be fine-tuned (and measured) on it; fine-tuning it on a corpus member's
# dataset is refused by the leakage guard (its test subjects were seen).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-../shared/data}
work=${2:-/tmp/imujax_release}
NAME=${NAME:-simclr_lstm2x64_imu6}
corpus="uci_hapt/50hz@$root/uci_hapt,sp_sw_har/phone_50hz@$root/sp_sw_har,sp_sw_har/watch_50hz@$root/sp_sw_har,ipol_gait/50hz@$root/ipol_gait"
python -m imujax.main --config=configs/default.py --config.mode=pretrain \
  --config.pretrain.objective=simclr --config.pretrain.corpus="$corpus" \
  --workdir="$work/pretrain"
python -m imujax.training.pretrained "$work/pretrain" "$NAME"
python -m imujax.main --config=configs/default.py \
  --config.init_from="pretrained:$NAME" --workdir="$work/compare"
