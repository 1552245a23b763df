#!/usr/bin/env bash
# Runs one imujax experiment on a Cloud TPU VM, one host or a pod slice:
# creates the VM unless it exists, copies this checkout (its last commit) to
# every worker, installs requirements.txt with jax[tpu], and starts the same
# command on all workers, where --distributed=auto joins them into one mesh.
#
#   NAME=imujax-v4 ZONE=us-central2-b TYPE=v4-32 \
#     launch/tpu_vm.sh CONFIG WORKDIR [main.py flags...]
#   NAME=imujax-v4 ZONE=us-central2-b TYPE=v4-32 \
#     launch/tpu_vm.sh configs/default.py gs://my-bucket/runs/lstm
#
# WORKDIR must be one place every worker writes to: a gs:// bucket (the VM's
# service account needs write access), or a filesystem all workers mount.
# Rerunning the same command resumes from WORKDIR's last checkpoint, so a
# preempted VM only needs the command again (after recreating it, if gone).
# Optional: VERSION (TPU software image, default tpu-ubuntu2204-base),
# PREEMPTIBLE=1 (spot VM), DETACH=1 (run under nohup, log to ~/imujax.log on
# each worker, and return), DELETE=1 (delete the VM after the run).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: NAME=... ZONE=... TYPE=... $0 CONFIG WORKDIR [flags...]" >&2
  exit 2
fi
: "${NAME:?set NAME, the TPU VM name}"
: "${ZONE:?set ZONE, e.g. us-central2-b}"
: "${TYPE:=v4-8}"
: "${VERSION:=tpu-ubuntu2204-base}"
config=$1 workdir=$2
shift 2
cd "$(dirname "$0")/.."

tpu=(gcloud compute tpus tpu-vm)
if ! "${tpu[@]}" describe "$NAME" --zone="$ZONE" >/dev/null 2>&1; then
  spot=()
  [ "${PREEMPTIBLE:-0}" = 1 ] && spot=(--spot)
  "${tpu[@]}" create "$NAME" --zone="$ZONE" --accelerator-type="$TYPE" \
    --version="$VERSION" ${spot[@]+"${spot[@]}"}
fi

# The committed code, the same on every worker.
archive=$(mktemp --suffix=.tar.gz)
trap 'rm -f "$archive"' EXIT
git archive --format=tar.gz -o "$archive" HEAD
"${tpu[@]}" scp "$archive" "$NAME:imujax.tar.gz" --zone="$ZONE" --worker=all

# The image's Python may be older than requirements.txt needs: uv fetches 3.11.
# shellcheck disable=SC2016  # Expanded on each worker, not here.
setup='set -e
rm -rf ~/imujax && mkdir -p ~/imujax && tar xzf ~/imujax.tar.gz -C ~/imujax
python3 -m pip install --quiet --user uv
~/.local/bin/uv venv --quiet --allow-existing --python 3.11 ~/imujax-venv
jax=$(grep "^jax==" ~/imujax/requirements.txt)
VIRTUAL_ENV=~/imujax-venv ~/.local/bin/uv pip install --quiet \
  -r ~/imujax/requirements.txt "jax[tpu]==${jax#jax==}"'
"${tpu[@]}" ssh "$NAME" --zone="$ZONE" --worker=all --command="$setup"

args=$(printf ' %q' --config="$config" --workdir="$workdir" \
  --distributed=auto "$@")
run="cd ~/imujax && . ~/imujax-venv/bin/activate && python -m imujax.main$args"
if [ "${DETACH:-0}" = 1 ]; then
  run="nohup bash -c $(printf %q "$run") > ~/imujax.log 2>&1 < /dev/null &"
fi
"${tpu[@]}" ssh "$NAME" --zone="$ZONE" --worker=all --command="$run"

if [ "${DELETE:-0}" = 1 ] && [ "${DETACH:-0}" != 1 ]; then
  "${tpu[@]}" delete "$NAME" --zone="$ZONE" --quiet
fi
