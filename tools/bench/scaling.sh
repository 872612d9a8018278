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
  local shards=$1 nodes=$2 base=$(port_base) s n id=0
  {
    printf '[cluster]\nname = scaling\ninitial_balance = 1000000000\nfsync = always\ndata_dir = data\n'
    for s in $(seq "$shards"); do
      printf '[shard.%s]\nitems = %s-%s\nnodes = %s\n' "$s" $(((s - 1) * 1000 + 1)) $((s * 1000)) \
        "$(seq -s, $(((s - 1) * nodes + 1)) $((s * nodes)))"
    done
    for n in $(seq $((shards * nodes))); do printf '[node.%s]\naddress = 127.0.0.1:%s\n' "$n" $((base + n - 1)); done
  } > "$work/bench.ini"
}

declare -A rate p50 p99
: > "$work/failures"
# measure SHARDS NODES: the medians of TRIALS runs, kept under "SHARDS NODES".
measure() {
  local key="$1 $2" rates=() p50s=() p99s=() line
  [ -z "${rate[$key]:-}" ] || return 0
  write_config "$1" "$2"
  rm -rf "$work/data"
  tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null
  for t in $(seq "$trials"); do
    if ! line=$("$bin/tools/rlbench" --config "$work/bench.ini" --clients "$clients" --duration-ms "$duration" --seed "$t" 2>&1); then
      echo "shards=$1 nodes=$2 trial $t FAILED: $line" | tee -a "$work/failures" >&2
      continue
    fi
    echo "shards=$1 nodes=$2 $line"
    rates+=("$(echo "$line" | field per_second)"); p50s+=("$(echo "$line" | field p50_us)"); p99s+=("$(echo "$line" | field p99_us)")
  done
  tools/cluster.sh stop "$work/bench.ini" --run "$work" >/dev/null
  rate[$key]=$( [ ${#rates[@]} -gt 0 ] && printf '%s\n' "${rates[@]}" | median || echo 0)
  p50[$key]=$( [ ${#p50s[@]} -gt 0 ] && printf '%s\n' "${p50s[@]}" | median || echo 0)
  p99[$key]=$( [ ${#p99s[@]} -gt 0 ] && printf '%s\n' "${p99s[@]}" | median || echo 0)
}
for s in $shard_counts; do measure "$s" 3; done
for n in $node_counts; do measure 1 "$n"; done

# A / B with two decimals ("n/a" without B)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
for s in $shard_counts; do echo "$s ${rate[$s 3]}"; done > "$work/shards.dat"
for n in $node_counts; do echo "$n ${rate[1 $n]}"; done > "$work/nodes.dat"
cat > "$work/scaling.gp" <<GP
set terminal pngcairo size 1200,450
set output '$png_dir/scaling.png'
set multiplot layout 1,2 title 'Committed transfers/s, $clients clients, fsync=always, all nodes on one $(nproc)-core machine'
set grid; set key off; set yrange [0:*]; set ylabel 'transfers/s'
set xlabel 'shards (3 nodes each)'; set xtics 1; set offsets 0.5, 0.5, 0, 0
plot '$work/shards.dat' using 1:2 with linespoints lw 2 pt 7
set xlabel 'nodes in one shard'; set xtics 2
plot '$work/nodes.dat' using 1:2 with linespoints lw 2 pt 7
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
  echo "rlbench with $clients clients (closed loops, intra-shard transfers of 1, clients dealt round-robin to the shards, each to its shard's leader), fsync=always, every rlnode on this machine's loopback. Median of $trials trials of ${duration} ms per deployment."
  echo
  echo "Command: \`TRIALS=$trials DURATION_MS=$duration CLIENTS=$clients tools/bench/scaling.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, shared; load average $(cut -d' ' -f1 /proc/loadavg) at the end)"
  echo
  echo "| shards | nodes per shard | rlnode processes | transfers/s | p50 (µs) | p99 (µs) | vs 1 x 3 |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for s in $shard_counts; do
    echo "| $s | 3 | $((s * 3)) | ${rate[$s 3]} | ${p50[$s 3]} | ${p99[$s 3]} | $(ratio "${rate[$s 3]}" "${rate[1 3]:-}") |"
  done
  for n in $node_counts; do
    [ "$n" = 3 ] && [[ " $shard_counts " == *" 1 "* ]] && continue  # the 1 x 3 row is above
    echo "| 1 | $n | $n | ${rate[1 $n]} | ${p50[1 $n]} | ${p99[1 $n]} | $(ratio "${rate[1 $n]}" "${rate[1 3]:-}") |"
  done
  echo
  echo "![scaling](scaling.png)"
  echo
  echo "**How cost grows.** Shards are independent logs, each with its own leader, so on machines of their own the throughput of intra-shard transfers would add up shard by shard; here every node of every shard shares the same $(nproc) cores and disk, so $last_s shards give $shard_gain x the throughput of $first_s ($first_s x 3 nodes to $last_s x 3): the extra leaders mostly compete for the same CPU, while the fixed $clients clients are spread thinner over more logs, so each leader batches fewer transfers per append and per fsync. Nodes per shard cost the other way: a leader sends every entry to each of its n - 1 followers and hears each acknowledgement, and each of the n nodes appends and fsyncs it, so the work per committed transfer grows about linearly with n while the majority that must answer grows too (2 of 3, 3 of 5, 4 of 7); $last_n nodes give $node_cost x the throughput of $first_n. Adding nodes buys tolerance of more failures (1, 2, 3), not throughput; adding shards buys throughput only with hardware to run them on."
} > "$out"
if [ -s "$work/failures" ]; then
  printf '\nTrials that failed (left out above):\n\n' >> "$out"
  sed 's/^/    /' "$work/failures" >> "$out"
fi
cat "$out"
replace_section scaling "$out"
