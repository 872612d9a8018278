#!/usr/bin/env bash
# Installs what is missing, builds, starts the demo cluster of
# examples/demo.ini (2 shards x 3 nodes on 127.0.0.1), shows every node's
# status with rlcat, moves some money within and across shards, audits the
# books, SIGKILLs a shard leader and shows the next transfer commit under
# the new one; then, as root, runs examples/partition.ini in a network
# namespace, cuts a shard's leader off with tools/partition (the minority
# refuses, the majority commits) and heals. Every cluster stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh release rlnode rlcat
config=examples/demo.ini
part=run/demo-partition  # the run dir of the partition part's cluster
cleanup() {
  kill -CONT ${pids2:-} 2>/dev/null || true
  tools/cluster.sh stop "$config" || true
  [ -f "$part/cluster.env" ] && tools/rlcluster --run "$part" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
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

# ---- watch it survive ----
rlcat() { build/tools/rlcat --config "$config" "$@"; }
# leader_of SHARD [NODE]: the leader id NODE (any node without it) knows, or nothing
leader_of() { rlcat ${2:+-n "$2"} --timeout 500 -c "leader $1" 2>/dev/null | sed -n 's/.*leader=\([0-9][0-9]*\).*/\1/p'; }
echo "== a shard's leader dies: SIGKILL (tools/rlcluster --run run/demo kill ID)"
old=$(leader_of 1)
echo "   shard 1 is led by node $old; killing it"
tools/rlcluster --run run/demo kill "$old"
survivor=$(( old == 1 ? 2 : 1 ))
for _ in $(seq 100); do  # until a survivor knows a new leader
  new=$(leader_of 1 "$survivor")
  [ -n "$new" ] && [ "$new" != "$old" ] && break
  sleep 0.05
done
echo "   node $survivor now names node ${new:-none} the leader of shard 1:"
tools/rlcluster --run run/demo status
echo "   the next transfer, sent to node $survivor, commits:"
rlcat -n "$survivor" -c "transfer 1 2 1"
tools/rlcluster --run run/demo restart "$old" >/dev/null
echo "   node $old is back (a follower now: it does not depose the live leader)"
rlcat -n "$old" -c status
echo
if [ "$(id -u)" -ne 0 ]; then
  echo "== partitions need root (the nodes run in a network namespace of their own,"
  echo "   where iptables cuts links): run sudo tools/demo.sh to see that part"
  exit 0
fi
pconfig=examples/partition.ini
prlcat() { tools/rlcluster --run "$part" exec -- build/tools/rlcat --config "$pconfig" "$@"; }
pleader_of() { prlcat ${2:+-n "$2"} --timeout 500 -c "leader $1" 2>/dev/null | sed -n 's/.*leader=\([0-9][0-9]*\).*/\1/p'; }
echo "== a partition: examples/partition.ini in network namespace rl-demo (tools/rlcluster --netns)"
rm -rf run/partition-data
tools/rlcluster --run "$part" --netns rl-demo up "$pconfig"
lead=$(pleader_of 2)
others=$(echo 6 7 8 | tr ' ' '\n' | grep -vx "$lead" | paste -sd, -)
echo "   shard 2 (nodes 6, 7, 8) is led by node $lead; cutting it off: tools/partition split \"$lead|$others\""
tools/partition --run "$part" split "$lead|$others"
tools/partition --run "$part" show
first=${others%%,*}
for _ in $(seq 100); do  # until the majority side elects its own leader
  now=$(pleader_of 2 "$first")
  [ -n "$now" ] && [ "$now" != "$lead" ] && break
  sleep 0.05
done
echo "   the minority side (node $lead alone) refuses: it has no quorum"
prlcat -n "$lead" --timeout 1500 -c "transfer 5001 5002 1" || true
echo "   the majority side (nodes $others, now led by node ${now:-none}) commits"
prlcat -n "$first" -c "transfer 5001 5002 1"
echo "   healing: one leader again, every replica catches up"
tools/partition --run "$part" heal
for _ in $(seq 100); do
  [ "$(pleader_of 2 "$lead")" = "$now" ] && break
  sleep 0.05
done
tools/rlcluster --run "$part" status
