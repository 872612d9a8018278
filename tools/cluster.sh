#!/usr/bin/env bash
# The benchmarks' and the demo's short form of tools/rlcluster, which does
# the work: every [node.N] of one INI on this machine.
#   tools/cluster.sh start  CONFIG.ini [--bin DIR] [--run DIR]   (rlcluster up)
#   tools/cluster.sh status CONFIG.ini [--bin DIR] [--run DIR]   (rlcluster status)
#   tools/cluster.sh stop   CONFIG.ini [--run DIR]               (rlcluster down)
# Logs and pid files go to the run dir (default run/<config name>/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}; config=${2:-}
[ -n "$cmd" ] && [ -n "$config" ] || { sed -n '4,6p' "$0" | sed 's/^# //' >&2; exit 2; }
shift 2
opts=(--run "$root/run/$(basename "$config" .ini)")
while [ $# -gt 0 ]; do
  case "$1" in
    --bin|--run) [ $# -ge 2 ] || { echo "cluster.sh: $1 needs a value" >&2; exit 2; }; opts+=("$1" "$2"); shift 2 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$cmd" in
  start) exec "$root/tools/rlcluster" "${opts[@]}" up "$config" ;;
  status) exec "$root/tools/rlcluster" "${opts[@]}" status ;;
  stop) exec "$root/tools/rlcluster" "${opts[@]}" down ;;
  *) echo "cluster.sh: command must be start, status or stop" >&2; exit 2 ;;
esac
