#!/usr/bin/env bash
# rlbench's batches when some of their transfers get no outcome in time:
# the receiving shard of the cross-shard transfers is frozen (SIGSTOP, all
# three nodes) while batches of 8 (half of them cross-shard) keep coming
# to the other shard. Its leader answers each batch with the transfers
# within the shard decided and the ones across it without an outcome once
# their deadline passes; rlbench sends the same batch again (same txids:
# the decided ones are answered from the session table) until every
# transfer has its outcome. After the thaw nothing has failed, the partial
# replies were counted (retries_batch_incomplete), and the audit balances.
#   rlbench_batch_partial_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
cd "$src"
source tools/bench/lib.sh
work=$(mktemp -d)
frozen=""
cleanup() {
  [ -n "$frozen" ] && kill -CONT $frozen 2>/dev/null
  [ -n "${bench:-}" ] && kill "$bench" 2>/dev/null
  tools/cluster.sh stop "$work/t.ini" --run "$work" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
shards_config "$work/t.ini" "1-100 101-200" "name = partial-$RANDOM
initial_balance = 1000000"
tools/cluster.sh start "$work/t.ini" --bin "$bin" --run "$work" >/dev/null || { echo "FAIL: cluster did not start" >&2; exit 1; }

# Shard 2's nodes, from the config (ids 4-6: shards_config numbers shard k's
# nodes 3k-2..3k).
shard2_pids() { for id in 4 5 6; do cat "$work/node-$id.pid"; done; }
applied() {  # applied ID: that node's applied index
  "$bin/tools/rlcat" --config "$work/t.ini" -n "$1" -c status 2>/dev/null | field applied_index
}

"$bin/tools/rlbench" --config "$work/t.ini" --shard 1 --cross-shard 50 --batch 8 --clients 4 --duration-ms 5000 \
  --warmup-ms 0 --timeout-ms 4000 --no-progress > "$work/out" 2>&1 &
bench=$!

# Freeze shard 2 once the load has reached it (some of its entries applied).
start=$(applied 4); start=${start:-0}
deadline=$((SECONDS + 10))
until [ "$(applied 4)" -gt $((start + 20)) ] 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "FAIL: no cross-shard load reached shard 2" >&2; exit 1; }
  sleep 0.05  # poll interval
done
frozen=$(shard2_pids | tr '\n' ' ')
kill -STOP $frozen
# The fault itself: frozen for longer than a request's deadline (1 s with
# this timing), so the waiting transfers are answered without an outcome.
sleep 2
kill -CONT $frozen
frozen=""

wait "$bench"; rc=$?
bench=""
line=$(cat "$work/out")
failures=0
[ "$rc" -eq 0 ] || { echo "FAIL: rlbench exited $rc: $line" >&2; failures=$((failures + 1)); }
errors=$(echo "$line" | field errors)
[ "$errors" = 0 ] || { echo "FAIL: errors=$errors, wanted 0 (line: $line)" >&2; failures=$((failures + 1)); }
partial=$(echo "$line" | field retries_batch_incomplete)
if ! [[ "$partial" =~ ^[0-9]+$ ]] || [ "$partial" -lt 1 ]; then
  echo "FAIL: retries_batch_incomplete=$partial: no batch came back partly decided (line: $line)" >&2
  failures=$((failures + 1))
fi
committed=$(echo "$line" | field committed)
if ! [[ "$committed" =~ ^[0-9]+$ ]] || [ "$committed" -lt 1 ]; then
  echo "FAIL: committed=$committed (line: $line)" >&2
  failures=$((failures + 1))
fi
# Every hold is released once both shards answer again; the audit then
# finds nothing in flight and the money all there.
deadline=$((SECONDS + 20))
until audit=$("$bin/tools/rlcat" --config "$work/t.ini" --json audit 2>&1) && echo "$audit" | grep -q '"in_flight":\[\]'; do
  [ "$SECONDS" -lt "$deadline" ] || { echo "FAIL: audit did not settle: $audit" >&2; failures=$((failures + 1)); break; }
  sleep 0.1  # poll interval
done
[ "$failures" -eq 0 ] && echo "rlbench partial batches: ok ($partial partial replies, $committed committed)"
exit $((failures > 0))
