#!/usr/bin/env bash
# Scaling: rlbench with a fixed number of clients (CLIENTS, default 64;
# intra-shard transfers, clients dealt round-robin to the shards) against
# 1, 2, 3 and 4 shards of 3 nodes, and against one shard of 3, 5 and 7
# nodes, all rlnode processes on this machine's loopback, fsync=always.
# TRIALS runs of DURATION_MS per deployment (defaults 3 and 3000); the
# medians go to docs/benchmarks.md (or $BENCH_DOC) as a table, a gnuplot PNG
# (scaling.png next to it) and a paragraph on how the cost grows.
#   tools/bench/scaling.sh
#   SHARD_COUNTS="1 2" NODE_COUNTS="3" TRIALS=1 DURATION_MS=300 BENCH_DOC=/tmp/b.md BENCH_BIN=build tools/bench/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-3}; duration=${DURATION_MS:-3000}; clients=${CLIENTS:-64}
shard_counts=${SHARD_COUNTS:-1 2 3 4}; node_counts=${NODE_COUNTS:-3 5 7}
doc=${BENCH_DOC:-docs/benchmarks.md}
png_dir=$(dirname "$doc"); mkdir -p "$png_dir"
bench_build rlnode rlcat rlbench

bench_workdir
# write_config SHARDS NODES: SHARDS shards of NODES nodes, 1000 items each.
write_config() {
  local shards=$1 nodes=$2 base s n id=0
  base=$(port_base $((shards * nodes)))
  {
    printf '[cluster]\nname = scaling\ninitial_balance = 1000000000\nfsync = always\ndata_dir = data\n'
    for s in $(seq "$shards"); do
      printf '[shard.%s]\nitems = %s-%s\nnodes = %s\n' "$s" $(((s - 1) * 1000 + 1)) $((s * 1000)) \
        "$(seq -s, $(((s - 1) * nodes + 1)) $((s * nodes)))"
    done
    for n in $(seq $((shards * nodes))); do printf '[node.%s]\naddress = 127.0.0.1:%s\n' "$n" $((base + n - 1)); done
  } > "$work/bench.ini"
}

declare -A runs
: > "$work/failures"
# run SHARDS NODES TRIAL: one rlbench run on a fresh cluster; its figures
# are appended under "SHARDS NODES".
run() {
  local key="$1 $2" line
  write_config "$1" "$2"
  rm -rf "$work/data"
  tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null
  if line=$("$bin/tools/rlbench" --config "$work/bench.ini" --clients "$clients" --duration-ms "$duration" --seed "$3" 2>&1); then
    echo "shards=$1 nodes=$2 $line"
    runs[$key]="${runs[$key]:-} $(echo "$line" | field per_second):$(echo "$line" | field p50_us):$(echo "$line" | field p99_us)"
  else
    echo "shards=$1 nodes=$2 trial $3 FAILED: $line" | tee -a "$work/failures" >&2
  fi
  tools/cluster.sh stop "$work/bench.ini" --run "$work" >/dev/null
}
# The deployments, each once; trials go round all of them in turn, so a
# burst of load from other jobs on the machine falls on every deployment alike.
deployments=()
for s in $shard_counts; do deployments+=("$s 3"); done
for n in $node_counts; do [[ " ${deployments[*]} " == *" 1 $n "* ]] || deployments+=("1 $n"); done
load_before=$(cut -d' ' -f1 /proc/loadavg)
for t in $(seq "$trials"); do
  for d in "${deployments[@]}"; do run $d "$t"; done
done
load_after=$(cut -d' ' -f1 /proc/loadavg)
declare -A rate p50 p99 lo hi
for d in "${deployments[@]}"; do
  col() { echo "${runs[$d]:-}" | tr ' ' '\n' | sed '/^$/d' | cut -d: -f"$1"; }
  rate[$d]=$(col 1 | median); p50[$d]=$(col 2 | median); p99[$d]=$(col 3 | median)
  lo[$d]=$(col 1 | sort -n | head -1); hi[$d]=$(col 1 | sort -n | tail -1)
done

# A / B with two decimals ("n/a" without B)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
for s in $shard_counts; do echo "$s ${rate[$s 3]} ${lo[$s 3]} ${hi[$s 3]}"; done > "$work/shards.dat"
for n in $node_counts; do echo "$n ${rate[1 $n]} ${lo[1 $n]} ${hi[1 $n]}"; done > "$work/nodes.dat"
cat > "$work/scaling.gp" <<GP
set terminal pngcairo size 1200,450
set output '$png_dir/scaling.png'
set multiplot layout 1,2 title 'Committed transfers/s (median, bars: min-max of $trials trials), $clients clients, fsync=always, all nodes on one $(nproc)-core machine'
set grid; set key off; set yrange [0:*]; set ylabel 'transfers/s'
set xlabel 'shards (3 nodes each)'; set xtics 1; set offsets 0.5, 0.5, 0, 0
plot '$work/shards.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7
set xlabel 'nodes in one shard'; set xtics 2
plot '$work/nodes.dat' using 1:2:3:4 with yerrorlines lw 2 pt 7
unset multiplot
GP
gnuplot "$work/scaling.gp"

first_s=$(echo $shard_counts | awk '{print $1}'); last_s=$(echo $shard_counts | awk '{print $NF}')
first_n=$(echo $node_counts | awk '{print $1}'); last_n=$(echo $node_counts | awk '{print $NF}')
shard_gain=$(ratio "${rate[$last_s 3]}" "${rate[$first_s 3]}")
node_cost=$(ratio "${rate[1 $last_n]}" "${rate[1 $first_n]}")
out=$work/section.md
{
  echo "## Scaling: shards and nodes per shard"
  echo
  echo "rlbench with $clients clients (closed loops, intra-shard transfers of 1, clients dealt round-robin to the shards, each to its shard's leader), fsync=always, every rlnode on this machine's loopback. Median of $trials trials of ${duration} ms per deployment, each on a fresh cluster; the trials go round the deployments in turn. Load average of the machine (other jobs share it) $load_before before, $load_after after."
  echo
  echo "Command: \`TRIALS=$trials DURATION_MS=$duration CLIENTS=$clients tools/bench/scaling.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, shared)"
  echo
  echo "| shards | nodes per shard | rlnode processes | transfers/s (median) | min-max over trials | p50 (µs) | p99 (µs) | vs 1 x 3 |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in $shard_counts; do
    echo "| $s | 3 | $((s * 3)) | ${rate[$s 3]} | ${lo[$s 3]}-${hi[$s 3]} | ${p50[$s 3]} | ${p99[$s 3]} | $(ratio "${rate[$s 3]}" "${rate[1 3]:-}") |"
  done
  for n in $node_counts; do
    [ "$n" = 3 ] && [[ " $shard_counts " == *" 1 "* ]] && continue  # the 1 x 3 row is above
    echo "| 1 | $n | $n | ${rate[1 $n]} | ${lo[1 $n]}-${hi[1 $n]} | ${p50[1 $n]} | ${p99[1 $n]} | $(ratio "${rate[1 $n]}" "${rate[1 3]:-}") |"
  done
  echo
  echo "![scaling](scaling.png)"
  echo
  echo "**How cost grows.** Measured here: $first_s to $last_s shards of 3 nodes gave $shard_gain x the throughput (with a machine per shard the ideal is $(awk -v a="$last_s" -v b="$first_s" 'BEGIN { printf "%.2f", a / b }') x); one shard of $first_n to $last_n nodes gave $node_cost x. Shards are independent logs with a leader each, and an intra-shard transfer touches one of them, so with a machine (cores and disk) per shard throughput adds up shard by shard and the cost of a transfer stays flat. Here all rlnode processes share $(nproc) cores and one disk: more shards put more fsyncs in flight at once (each log waits only on its own), which helps while the disk has room, but their leaders compete for the same CPU, so throughput levels off at what the machine can do; and the fixed $clients clients are spread thinner over more logs, so each leader batches fewer transfers into an append and an fsync. Nodes per shard cost the other way: a leader sends every entry to each of its n - 1 followers and handles each acknowledgement, and each of the n nodes appends and fsyncs it, so the CPU and disk work of a committed transfer grows about linearly with n ($(awk -v a="$last_n" -v b="$first_n" 'BEGIN { printf "%.1f", a / b }') x from $first_n to $last_n nodes), while the commit waits only for the fastest majority (2 of 3, 3 of 5, 4 of 7), which on a noisy disk can shorten the wait about as much as the extra work lengthens it. More nodes buy tolerance of more failures (1, 2 and 3 nodes lost), not throughput; more shards buy throughput only with hardware to run them on. On this shared machine single trials of one deployment differ by up to the min-max range above, so differences within those ranges are noise."
} > "$out"
if [ -s "$work/failures" ]; then
  printf '\nTrials that failed (left out above):\n\n' >> "$out"
  sed 's/^/    /' "$work/failures" >> "$out"
fi
cat "$out"
replace_section scaling "$out"
