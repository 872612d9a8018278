#!/usr/bin/env bash
# One ctest bank run: rlbank against a fresh 2x3-node cluster in a network
# namespace of its own, with faults, for the given election algorithm.
#   run_bank.sh ELECTION BUILD_DIR SOURCE_DIR DURATION_S
# Fails (never skips) where a namespace cannot be created. Whatever happens,
# the cluster is stopped and the namespace deleted on the way out; the run
# folder is kept when the run fails (its path is printed), with the plot,
# the history and every node's log.
set -euo pipefail
election=$1 bin=$2 src=$3 duration=$4
[ "$(id -u)" -eq 0 ] || { echo "bank test: needs root (CAP_NET_ADMIN) to create a network namespace" >&2; exit 1; }
run=$(mktemp -d /tmp/rl-bank-"$election"-XXXXXX)
netns=rl-bank-$$-$election
cleanup() {
  local rc=$?
  "$src/tools/rlcluster" --run "$run" down >/dev/null 2>&1 || true
  ip netns del "$netns" >/dev/null 2>&1 || true
  if [ "$rc" -eq 0 ]; then rm -rf "$run"; else echo "bank test: run folder kept: $run" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
sed -e "s|@ELECTION@|$election|" -e "s|@DATA_DIR@|$run/data|" "$src/test/bank/bank.ini.in" > "$run/bank.ini"
seed=${RL_BANK_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
"$bin/tools/bank/rlbank" --config "$run/bank.ini" --run "$run" --netns "$netns" --bin "$bin" \
  --tools "$src/tools" --duration-s "$duration" --seed "$seed" --clients 12 --quiesce-s 60
