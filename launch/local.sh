#!/usr/bin/env bash
# Runs one imujax experiment on this machine, logging to WORKDIR/log.txt, and
# restarts it (it resumes from its last checkpoint) if it dies, up to RETRIES
# times: what a preemptible or flaky machine needs.
#
#   launch/local.sh configs/default.py /tmp/imujax_default [--config.seed=1 ...]
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG WORKDIR [main.py flags...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
retries=${RETRIES:-3}
# Keep glibc from handing every step's XLA scratch block (> 32 MiB) back to the
# OS and faulting it in afresh: ~20 % faster CPU training steps
# (imujax/bench/NOTES.md). Set GLIBC_TUNABLES yourself to override.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=17179869184}
mkdir -p "$workdir"
cd "$(dirname "$0")/.."
for attempt in $(seq 0 "$retries"); do
  python -m imujax.main --config="$config" --workdir="$workdir" "$@" \
    2>&1 | tee -a "$workdir/log.txt"
  status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] && exit 0
  # Exit 1 is a Python error (bad config, non-finite loss): retrying won't help.
  [ "$status" -eq 1 ] && exit 1
  echo "run ended with status $status; restart $((attempt + 1))/$retries" >&2
done
exit 1
