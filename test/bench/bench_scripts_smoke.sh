#!/usr/bin/env bash
# Runs one benchmark script of tools/bench once at a tiny size, with the
# binaries of BUILD_DIR as they are, and checks that it exits 0 and wrote
# its section (and its plots) into a scratch copy of the benchmarks page.
# Benchmarks are scripts, never timed tests: no figure is checked here.
#   bench_scripts_smoke.sh SCRIPT BUILD_DIR SOURCE_DIR
set -euo pipefail
script=$1 bin=$(cd "$2" && pwd) src=$3
tmp=$(mktemp -d)
child=""
# Stopping the script (ctest's timeout) lets its own trap stop its cluster.
cleanup() { [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true; [ -z "$child" ] || wait "$child" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 143' TERM INT

export BENCH_DOC=$tmp/benchmarks.md BENCH_BIN=$bin TRIALS=1
section=$script pngs=()
case "$script" in
  transport|ledger|cross) export DURATION_MS=200 ;;
  targets) export DURATION_MS=200 IDLE_MS=500 CLIENTS=8 PEAK_CLIENTS=16 PEAK_CONNECTIONS=4 BATCH_CLIENTS=4 BATCH=10 ;;
  failover) ;;
  failover_load) export DURATION_MS=1500 KILL_AT_MS=500 CLIENTS=8; pngs=(failover_load_bully.png failover_load_ring.png) ;;
  scaling) export DURATION_MS=300 CLIENTS=16 SHARD_COUNTS="1 2" NODE_COUNTS="3 5"; pngs=(scaling.png) ;;
  *) echo "bench_scripts_smoke: unknown script $script" >&2; exit 2 ;;
esac
"$src/tools/bench/$script.sh" > "$tmp/out.log" 2>&1 &
child=$!
status=0
wait "$child" || status=$?
child=""
fail() { echo "FAIL: $*" >&2; sed 's/^/    /' "$tmp/out.log" >&2; exit 1; }
[ "$status" -eq 0 ] || fail "tools/bench/$script.sh exited $status"
grep -q "^<!-- $section:begin -->" "$BENCH_DOC" || fail "no <!-- $section:begin --> in $BENCH_DOC"
grep -q "^<!-- $section:end -->" "$BENCH_DOC" || fail "no <!-- $section:end --> in $BENCH_DOC"
# A table with at least one row of figures between the markers.
sed -n "/^<!-- $section:begin -->/,/^<!-- $section:end -->/p" "$BENCH_DOC" | grep -q '^| [^-]*[0-9]' ||
  fail "no table row in the $section section"
for png in "${pngs[@]}"; do
  [ -s "$tmp/$png" ] || fail "no $png beside $BENCH_DOC"
  [ "$(head -c 4 "$tmp/$png" | tail -c 3)" = PNG ] || fail "$png is not a PNG"
done
echo "tools/bench/$script.sh: ok"
