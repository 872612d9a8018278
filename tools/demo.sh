#!/usr/bin/env bash
# Installs what is missing, builds, starts the demo cluster of
# examples/demo.ini (2 shards x 3 nodes on 127.0.0.1), shows every node's
# status with rlcat, moves some money, and stops the cluster again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh release rlnode rlcat
config=examples/demo.ini
trap 'kill -CONT ${pids2:-} 2>/dev/null; tools/cluster.sh stop "$config"' EXIT
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
echo "== across shards (two-phase commit): item 2 of shard 1 pays item 3001 of shard 2"
build/tools/rlcat --config "$config" -n 5 -c "transfer 2 3001 4"
printf 'balance 2\nbalance 3001\n' | build/tools/rlcat --config "$config" -n 5
echo "   (a credit may still show as pending: the client hears 'committed' once both"
echo "    Prepares are committed; the Decide entries that post it follow)"
echo
echo "== a cross-shard transfer in flight: shard 2's nodes are paused (SIGSTOP), so"
echo "   shard 1 holds the amount on item 1 while it waits for shard 2's vote"
pids2=$(for id in 4 5 6; do cat "run/demo/node-$id.pid"; done)
kill -STOP $pids2
build/tools/rlcat --config "$config" -n 1 --timeout 10000 -c "transfer 1 3002 3" > run/demo/inflight.out 2>&1 &
client=$!
for _ in $(seq 100); do  # until the hold shows
  build/tools/rlcat --config "$config" -n 1 -c "balance 1" | grep -q 'held=3' && break
  sleep 0.05
done
build/tools/rlcat --config "$config" -n 1 -c "balance 1"
echo "   (available = balance - held: other transfers go on against it; nothing is locked)"
kill -CONT $pids2
wait "$client" || true
echo "   shard 2 is back; the transfer ends:"
cat run/demo/inflight.out
printf 'balance 1\nbalance 3002\n' | build/tools/rlcat --config "$config" -n 2
echo
echo "== the audit: every shard's books through its leader, and whether they add up"
for _ in $(seq 100); do  # until the Decide entries of the last transfer are applied on both sides
  build/tools/rlcat --config "$config" -c audit | grep -q 'undecided=0 negatives=0' && break
  sleep 0.05
done
build/tools/rlcat --config "$config" audit
echo
