#!/usr/bin/env bash
# rlsyncprobe: bad flags are refused with exit 2 and a message naming them;
# a short real run prints one line per writer count, with rounds and
# ordered percentiles, and leaves no WAL folder behind.
#   rlsyncprobe_test.sh BUILD_DIR
set -uo pipefail
probe=$1/tools/bench/rlsyncprobe
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
expect() {
  local want=$1; shift
  local err code
  err=$("$probe" "$@" 2>&1 >/dev/null); code=$?
  [ "$code" -eq 2 ] && [[ "$err" == *"$want"* ]] || fail "rlsyncprobe $* -> exit $code, stderr: $err (wanted exit 2 and \"$want\")"
}
expect "--dir is required"
expect "unrecognised option '--bogus'" --dir "$tmp/p" --bogus
expect "--writers must be a comma-separated list of counts 1..64" --dir "$tmp/p" --writers 1,0
expect "--writers must be a comma-separated list of counts 1..64" --dir "$tmp/p" --writers 2,x
expect "--writers must be a comma-separated list of counts 1..64" --dir "$tmp/p" --writers 65
expect "--writers must be a comma-separated list of counts 1..64" --dir "$tmp/p" --writers 1,
expect "--duration-ms must be 1..600000" --dir "$tmp/p" --duration-ms 0

if out=$("$probe" --dir "$tmp/p" --writers 1,3 --duration-ms 100 2>&1); then
  [ "$(echo "$out" | wc -l)" -eq 2 ] || fail "expected two lines, got: $out"
  for w in 1 3; do
    line=$(echo "$out" | grep "^writers=$w ") || { fail "no line for $w writers in: $out"; continue; }
    echo "$line" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
      END { exit !(v["rounds"] > 0 && v["p50_us"] > 0 && v["p50_us"] <= v["p90_us"] && v["p90_us"] <= v["p99_us"]) }' ||
      fail "implausible line: $line"
  done
  [ -z "$(ls -A "$tmp/p")" ] || fail "left behind in --dir: $(ls -A "$tmp/p")"
else
  fail "a short run failed: $out"
fi
[ "$failures" -eq 0 ] && echo "rlsyncprobe: ok"
exit $((failures > 0))
