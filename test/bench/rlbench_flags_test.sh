#!/usr/bin/env bash
# rlbench's command line: every bad flag or value is refused with exit
# code 2 and a message naming it, before any connection is made.
#   rlbench_flags_test.sh BUILD_DIR
set -uo pipefail
rlbench=$1/tools/rlbench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[cluster]\nname = flags\n[shard.1]\nitems = 1-10\nnodes = 1\n[node.1]\naddress = 127.0.0.1:1\n' > "$tmp/one.ini"
failures=0
# expect WORDS_IN_MESSAGE ARGS...: exit 2 and stderr containing WORDS_IN_MESSAGE
expect() {
  local want=$1; shift
  local err code
  err=$("$rlbench" "$@" 2>&1 >/dev/null); code=$?
  if [ "$code" -ne 2 ] || [[ "$err" != *"$want"* ]]; then
    echo "FAIL: rlbench $* -> exit $code, stderr: $err (wanted exit 2 and \"$want\")" >&2
    failures=$((failures + 1))
  fi
}
c=(--config "$tmp/one.ini")
expect "unrecognised option '--bogus'" --bogus
expect "--clients must be 1..10000" "${c[@]}" --clients 0
expect "--connections must be 1..--clients" "${c[@]}" --clients 2 --connections 3
expect "give one of --requests, --duration and --duration-ms" "${c[@]}" --requests 5 --duration 1
expect "--duration must be" "${c[@]}" --duration -1
expect "--requests must be positive" "${c[@]}" --requests 0
expect "--cross-shard must be a percentage 0..100, not \"120\"" "${c[@]}" --cross-shard 120
expect "--read must be a percentage 0..100, not \"x\"" "${c[@]}" --read x
expect "--skew must be uniform, zipf or zipf:S" "${c[@]}" --skew pareto
expect "--skew zipf:S needs S > 0" "${c[@]}" --skew zipf:-1
expect "--kill-leader-of needs --run-dir" "${c[@]}" --kill-leader-of 1
expect "--kill-after-ms needs --kill-leader-of" "${c[@]}" --kill-after-ms 5
expect "--kill-after-ms must fall within the measured run" "${c[@]}" --kill-leader-of 1 --run-dir "$tmp" --kill-after-ms 5000 --duration 1
expect "--csv-interval-ms must be 10..3600000" "${c[@]}" --csv-interval-ms 1
expect "unknown workload \"frob\"" frob "${c[@]}"
expect "ping needs HOST:PORT" ping
expect "expected HOST:PORT" ping 127.0.0.1
expect "transfer needs --config" transfer --clients 2
expect "apply to transfer runs" ping 127.0.0.1:1 --read 5
expect "--cross-shard needs a config with at least two shards" "${c[@]}" --cross-shard 10
expect "no shard 7" "${c[@]}" --shard 7
expect "cannot open file" --config "$tmp/missing.ini"
"$rlbench" --help > "$tmp/help" 2>&1 || { echo "FAIL: rlbench --help exited non-zero" >&2; failures=$((failures + 1)); }
grep -q -- "--kill-leader-of" "$tmp/help" || { echo "FAIL: --help does not list --kill-leader-of" >&2; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] && echo "rlbench flags: ok"
exit $((failures > 0))
