#!/usr/bin/env bash
# Ledger throughput: rlbench sends intra-shard transfers to the leader of a
# 3-node shard on loopback, closed loop per connection, at 1, 16 and 64
# connections, with fsync=never and fsync=always. TRIALS runs of
# DURATION_MS each (defaults 3 and 3000); medians go to docs/benchmarks.md.
#   tools/bench/ledger.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-3}; duration=${DURATION_MS:-3000}
bench_build rlnode rlcat rlbench

bench_workdir
write_config() {  # fsync
  shard_config "$work/bench.ini" 1-10000 "name = ledger
initial_balance = 1000000000
fsync = $1"
}

out=$work/section.md
{
  echo "## Intra-shard transfers (one 3-node shard, loopback)"
  echo
  echo "rlbench closed loops (one transfer in flight per connection) against the shard's leader; each transfer is a log entry replicated to a majority and applied before the reply. Median of $trials trials of ${duration} ms. Target: at least 20,000 committed transfers/s with fsync=never and p99 under 20 ms at that load."
  echo
  echo "Command: \`TRIALS=$trials DURATION_MS=$duration tools/bench/ledger.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "| fsync | connections | transfers/s | p50 (µs) | p99 (µs) |"
  echo "|---|---:|---:|---:|---:|"
} > "$out"
failed=0
for fsync in never always; do
  write_config "$fsync"
  rm -rf "$work/data"
  tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null
  for conns in 1 16 64; do
    rates=(); p50s=(); p99s=()
    for _ in $(seq "$trials"); do
      # A failed trial (errors or no leader) is reported and left out of the median.
      if ! line=$("$bin/tools/rlbench" transfer --config "$work/bench.ini" --connections "$conns" --duration-ms "$duration" 2>&1); then
        echo "fsync=$fsync connections=$conns trial FAILED: $line" | tee -a "$work/failures" >&2
        failed=$((failed + 1)); continue
      fi
      echo "fsync=$fsync $line"
      rates+=("$(echo "$line" | field per_second)"); p50s+=("$(echo "$line" | field p50_us)"); p99s+=("$(echo "$line" | field p99_us)")
    done
    echo "| $fsync | $conns | $(printf '%s\n' "${rates[@]}" | median) | $(printf '%s\n' "${p50s[@]}" | median) | $(printf '%s\n' "${p99s[@]}" | median) |" >> "$out"
  done
  tools/cluster.sh stop "$work/bench.ini" --run "$work" >/dev/null
done
if [ "$failed" -gt 0 ]; then
  printf '\n%s trial(s) failed and are left out of the medians:\n\n' "$failed" >> "$out"
  sed 's/^/    /' "$work/failures" >> "$out"
fi
cat "$out"
replace_section ledger "$out"
