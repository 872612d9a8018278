#!/usr/bin/env bash
# Transport ping-pong benchmark: rlbench against one rlnode on loopback,
# closed-loop pings over 1, 16 and 64 connections; TRIALS runs of
# DURATION_MS each, medians written to docs/benchmarks.md.
#   tools/bench/transport.sh            (TRIALS=5 DURATION_MS=2000 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-5}; duration=${DURATION_MS:-2000}
bench_build rlnode rlcat rlbench

bench_workdir
port=$(port_base)
cat > "$work/bench.ini" <<INI
[cluster]
name = bench
data_dir = data
fsync = never
[shard.1]
items = 1-100
nodes = 1
[node.1]
address = 127.0.0.1:$port
INI
tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null

out=$work/section.md
{
  echo "## Transport ping-pong (loopback, one rlnode)"
  echo
  echo "Closed loop: each connection keeps one ping in flight; a reply is a full frame decode, dispatch and encode on the node's single thread. Median of $trials trials of ${duration} ms."
  echo
  echo "Command: \`TRIALS=$trials DURATION_MS=$duration tools/bench/transport.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "| connections | pings/s | p50 round trip (µs) | p99 round trip (µs) |"
  echo "|---:|---:|---:|---:|"
} > "$out"
for conns in 1 16 64; do
  rates=(); p50s=(); p99s=()
  for _ in $(seq "$trials"); do
    line=$("$bin/tools/rlbench" ping "127.0.0.1:$port" --connections "$conns" --duration-ms "$duration" --warmup-ms 300)
    echo "connections=$conns $line"
    rates+=("$(echo "$line" | field per_second)"); p50s+=("$(echo "$line" | field p50_us)"); p99s+=("$(echo "$line" | field p99_us)")
  done
  echo "| $conns | $(printf '%s\n' "${rates[@]}" | median) | $(printf '%s\n' "${p50s[@]}" | median) | $(printf '%s\n' "${p99s[@]}" | median) |" >> "$out"
done
cat "$out"
replace_section transport "$out"
