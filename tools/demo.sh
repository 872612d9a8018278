#!/usr/bin/env bash
# Installs what is missing, builds, starts the demo cluster of
# examples/demo.ini (2 shards x 3 nodes on 127.0.0.1), shows every node's
# status with rlcat, moves some money, and stops the cluster again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh release rlnode rlcat
config=examples/demo.ini
trap 'tools/cluster.sh stop "$config"' EXIT
rm -rf run/demo-data  # a fresh ledger for every demo
tools/cluster.sh start "$config"
echo
echo "== status of every node (rlcat --config $config -n N -c status)"
tools/cluster.sh status "$config"
echo
echo "== the same for node 4, as JSON"
build/tools/rlcat --config "$config" -n 4 --json -c status
echo
echo "== who leads each shard, asked of node 1"
printf 'leader 1\nleader 2\n' | build/tools/rlcat --config "$config" -n 1
echo
echo "== transfers sent to node 2; each is forwarded to its shard's leader"
printf 'transfer 1 2 5\ntransfer 3001 3002 7\ntransfer 1 2 100\nbalance 1\nbalance 2\nbalance 3002\n' |
  build/tools/rlcat --config "$config" -n 2 || true
echo
