#!/usr/bin/env bash
# Runs tools/bench/etcd.sh once at a tiny size (one trial of each kind, 200 ms
# load runs, 16 connections only) into a scratch BENCH_DOC, and checks that
# it exited 0 and wrote the table with every system's rows filled. Where
# etcd-server is missing and cannot be installed, etcd.sh exits 77, which
# ctest reports as skipped, never as passed, with the reason on stderr.
set -euo pipefail
: "${RL_SOURCE_DIR:?set by ctest}" "${RL_BIN_DIR:?set by ctest}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
doc=$scratch/benchmarks.md
cd "$RL_SOURCE_DIR"
rc=0
TRIALS=1 LOAD_TRIALS=1 DURATION_MS=200 WARMUP_MS=100 CONNECTIONS=16 BENCH_BIN="$RL_BIN_DIR" BENCH_DOC="$doc" \
  tools/bench/etcd.sh > "$scratch/out" 2>&1 || rc=$?
if [ "$rc" -eq 77 ]; then
  echo "SKIPPED: $(tail -1 "$scratch/out")" >&2
  exit 77
fi
cat "$scratch/out"
[ "$rc" -eq 0 ] || { echo "FAIL: tools/bench/etcd.sh exited $rc" >&2; exit 1; }
fail() { echo "FAIL: $1" >&2; cat "$doc" >&2 2>/dev/null || true; exit 1; }
grep -qx '<!-- etcd:begin -->' "$doc" && grep -qx '<!-- etcd:end -->' "$doc" || fail "no etcd section markers in BENCH_DOC"
# A load row has positive writes/s for both systems.
for label in 'sequential (1 connection)' '16 connections'; do
  grep -Eq "^\| $(printf '%s' "$label" | sed 's/[()]/\\&/g') \| [1-9][0-9]* \| [1-9][0-9]* \|" "$doc" ||
    fail "no load row '$label' with writes/s for both systems"
done
# A failover row has its one trial done and a time.
for name in 'etcd' 'Ringleader, bully' 'Ringleader, ring'; do
  grep -Eq "^\| $name \| 1/1 \| [0-9]+ \|" "$doc" || fail "no failover row '$name' with 1/1 trials"
done
echo "etcd.sh smoke run wrote the table"
