#!/usr/bin/env bash
# rlbench's clients sharing connections (--connections) against a real
# 3-node shard: every reply finds its own client, the run opens exactly the
# connections asked for, and a SIGKILLed leader fails the attempts of every
# client on its connections, which all move on and finish without a failed
# request.
#   rlbench_shared_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
cd "$src"
source tools/bench/lib.sh
work=$(mktemp -d)
trap 'tools/cluster.sh stop "$work/t.ini" --run "$work" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
shard_config "$work/t.ini" 1-100 "name = shared-$RANDOM
initial_balance = 1000000"
tools/cluster.sh start "$work/t.ini" --bin "$bin" --run "$work" >/dev/null || { echo "FAIL: cluster did not start" >&2; exit 1; }
failures=0
check() {  # check WHAT LINE KEY WANT
  local got
  got=$(echo "$2" | field "$3")
  if [ "$got" != "$4" ]; then
    echo "FAIL: $1: $3=$got, wanted $4 (line: $2)" >&2
    failures=$((failures + 1))
  fi
}
at_least() {  # at_least WHAT LINE KEY MIN: a whole number, MIN or more
  local got
  got=$(echo "$2" | field "$3")
  if ! [[ "$got" =~ ^[0-9]+$ ]] || [ "$got" -lt "$4" ]; then
    echo "FAIL: $1: $3=$got, wanted a whole number >= $4 (line: $2)" >&2
    failures=$((failures + 1))
  fi
}

# 16 closed loops over 2 connections: each reply answers its own request,
# so all 400 commit without a timeout.
line=$("$bin/tools/rlbench" --config "$work/t.ini" --clients 16 --connections 2 --requests 400 --timeout-ms 3000 \
       --retries 0 --no-progress 2>&1)
check "shared run" "$line" connections 2
check "shared run" "$line" clients 16
check "shared run" "$line" committed 400
check "shared run" "$line" errors 0
check "shared run" "$line" retries 0

# The leader dies under 12 clients on 3 connections: each of them is lost,
# every waiting client retries elsewhere with its txid, none gives up.
line=$("$bin/tools/rlbench" --config "$work/t.ini" --clients 12 --connections 3 --duration-ms 2500 --warmup-ms 200 \
       --kill-leader-of 1 --kill-after-ms 500 --run-dir "$work" --no-progress 2>&1)
check "leader killed" "$line" errors 0
at_least "leader killed (no client retried, so no connection was lost)" "$line" retries 1
at_least "leader killed (no unavailability window measured)" "$line" unavailable_ms 0
at_least "leader killed (nothing committed)" "$line" committed 1
[ "$failures" -eq 0 ] && echo "rlbench shared connections: ok"
exit $((failures > 0))
