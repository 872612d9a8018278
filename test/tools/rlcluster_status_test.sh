#!/usr/bin/env bash
# rlcluster status shows a node as down whether it refuses the connection
# (killed) or takes it, shakes hands and sends no status within the half
# second (mute_node on its address: a node too slow to answer), and no row
# then carries a field it could not read; once the node runs again its row
# is whole again.
#   rlcluster_status_test.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
bin=$1 src=$2
cd "$src" || exit 1
# shellcheck source=tools/bench/lib.sh
. tools/bench/lib.sh
run=$(mktemp -d /tmp/rl-status-XXXXXX)
mute=""
cleanup() {
  [ -z "$mute" ] || { kill "$mute" 2>/dev/null; wait "$mute" 2>/dev/null; }
  tools/rlcluster --run "$run" down >/dev/null 2>&1
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
rlc() { tools/rlcluster --run "$run" --bin "$bin" "$@"; }
# row ID [STATUS]: node ID's row of STATUS (default: `rlcluster status` now),
# its fields space-separated.
row() { awk -v id="$1" 'NR > 1 && $1 == id { $1 = $1; print }' <<< "${2:-$(rlc status)}"; }
port() { sed -n "/^\[node.$1\]/,/^\[/s/^address = 127.0.0.1://p" "$run/c.ini"; }

shard_config "$run/c.ini" 1-100 "name = status
election = bully"
sed -i "s|^data_dir = data|data_dir = $run/data|" "$run/c.ini"
rlc up "$run/c.ini" >/dev/null || { echo "FAIL: rlcluster up" >&2; exit 1; }

# Refused: down.
rlc kill 3 >/dev/null || fail "rlcluster kill 3"
[[ "$(row 3)" == "3 1 down - - - - no" ]] || fail "killed node 3: $(row 3)"

# Accepted, handshake, no reply: down too, and every other row whole.
coproc MUTE { exec "$bin/test/tools/mute_node" "$(port 3)" 3 status; }
mute=$MUTE_PID
read -r -t 10 ready <&"${MUTE[0]}"
[ "${ready:-}" = listening ] || { echo "FAIL: mute_node did not start" >&2; exit 1; }
status=$(rlc status)
[[ "$(row 3 "$status")" == "3 1 down - - - - no" ]] ||
  fail "node 3 as mute_node:
$status"
! echo "$status" | grep -q '?' || fail "a field rlcluster could not read:
$status"
# mute_node did shake hands (else this is the refused case again).
rlc exec -- "$bin/tools/rlcat" --config "$run/c.ini" -n 3 --timeout 300 -c ping > "$run/ping" 2>&1
grep -q "no reply within 300 ms" "$run/ping" || fail "rlcat to mute_node: $(cat "$run/ping")"
kill "$mute"; wait "$mute" 2>/dev/null; mute=""

# Whole again once it runs.
rlc restart 3 >/dev/null || fail "rlcluster restart 3"
status=$(rlc status)
echo "$status" | awk 'NR > 1 && ($3 == "down" || $3 == "?") { bad = 1 } END { exit bad }' ||
  fail "a node down after restart 3:
$status"
[ "$failures" -eq 0 ] && echo "rlcluster_status: ok"
exit $((failures > 0))
