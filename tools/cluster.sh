#!/usr/bin/env bash
# Runs a local cluster from one INI file: every [node.N] on this machine.
#   tools/cluster.sh start  CONFIG.ini [--bin DIR] [--run DIR]
#   tools/cluster.sh status CONFIG.ini [--bin DIR]
#   tools/cluster.sh stop   CONFIG.ini [--run DIR]
# Logs and pid files go to the run dir (default run/<config name>/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}; config=${2:-}
[ -n "$cmd" ] && [ -n "$config" ] || { sed -n '2,6p' "$0" | sed 's/^# //'; exit 2; }
[ -f "$config" ] || { echo "cluster.sh: no such config: $config" >&2; exit 2; }
shift 2
bin=$root/build; run=$root/run/$(basename "$config" .ini)
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --run) run=$2; shift 2 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
# Alive and not a zombie (a killed node whose parent never reaped it).
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

ids=$(sed -n 's/^[[:space:]]*\[node\.\([0-9]\+\)\].*/\1/p' "$config")
shards=$(sed -n 's/^[[:space:]]*\[shard\.\([0-9]\+\)\].*/\1/p' "$config")

start() {
  mkdir -p "$run"
  for id in $ids; do
    if [ -f "$run/node-$id.pid" ] && alive "$(cat "$run/node-$id.pid")"; then
      echo "node $id already running (pid $(cat "$run/node-$id.pid"))"; continue
    fi
    "$bin/node/rlnode" --config "$config" --id "$id" --log-file "$run/node-$id.log" 2>>"$run/node-$id.err" &
    echo $! > "$run/node-$id.pid"
    echo "node $id started (pid $!, log $run/node-$id.log)"
  done
  # Ready means every node answers ping and every shard has a leader its
  # members agree on; give up waiting after 10 s each.
  for id in $ids; do
    for _ in $(seq 200); do
      "$bin/tools/rlcat" --config "$config" -n "$id" --timeout 200 -c ping >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  for shard in $shards; do
    for _ in $(seq 200); do
      "$bin/tools/rlcat" --config "$config" --timeout 200 -c "leader $shard" 2>/dev/null | grep -q 'leader=[0-9]' && break
      sleep 0.05
    done
  done
}

status() {
  for id in $ids; do
    printf 'node %s: ' "$id"
    "$bin/tools/rlcat" --config "$config" -n "$id" --timeout 1000 -c status || true
  done
}

stop() {
  for id in $ids; do
    pidfile=$run/node-$id.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 40); do alive "$pid" || break; sleep 0.05; done
      kill -KILL "$pid" 2>/dev/null || true
      echo "node $id stopped"
    fi
    rm -f "$pidfile"
  done
}

case "$cmd" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  *) echo "cluster.sh: command must be start, status or stop" >&2; exit 2 ;;
esac
