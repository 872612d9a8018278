#!/usr/bin/env bash
# Installs what is missing, builds, starts the demo cluster of
# examples/demo.ini (2 shards x 3 nodes on 127.0.0.1), shows every node's
# status with rlcat, and stops the cluster again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh release rlnode rlcat
config=examples/demo.ini
trap 'tools/cluster.sh stop "$config"' EXIT
tools/cluster.sh start "$config"
echo
echo "== status of every node (rlcat --config $config -n N -c status)"
tools/cluster.sh status "$config"
echo
echo "== the same for node 4, as JSON"
build/tools/rlcat --config "$config" -n 4 --json -c status
echo
