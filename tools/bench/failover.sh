#!/usr/bin/env bash
# Failover benchmark: a 3-node shard of real rlnode processes with
# heartbeat_ms=50 and suspect_after_ms=150; SIGKILL the leader and measure
# until every survivor reports the same new leader. TRIALS per algorithm
# (default 10); median, min and max go to docs/benchmarks.md.
#   tools/bench/failover.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-10}
bench_build rlnode rlcat rlbench

bench_workdir
write_config() {  # algorithm
  shard_config "$work/bench.ini" 1-100 "name = failover
election = $1
heartbeat_ms = 50
suspect_after_ms = 150
election_timeout_ms = 300
fsync = always"
}

out=$work/section.md
{
  echo "## Failover (SIGKILL the leader of a 3-node shard)"
  echo
  echo "From the SIGKILL until every survivor reports the same new leader (which itself reports role leader); heartbeat_ms=50, suspect_after_ms=150, election_timeout_ms=300, fsync=always. Target: median under 2 x suspect_after_ms = 300 ms."
  echo
  echo "Command: \`TRIALS=$trials tools/bench/failover.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "| election | trials | median (ms) | min (ms) | max (ms) |"
  echo "|---|---:|---:|---:|---:|"
} > "$out"
for algorithm in bully ring; do
  write_config "$algorithm"
  rm -rf "$work/data"
  tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null
  times=()
  for trial in $(seq "$trials"); do
    line=$("$bin/tools/rlbench" failover --config "$work/bench.ini" --run-dir "$work")
    echo "$algorithm trial $trial: $line"
    times+=("$(echo "$line" | field failover_ms)")
    tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null  # restarts the killed node
  done
  tools/cluster.sh stop "$work/bench.ini" --run "$work" >/dev/null
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  echo "| $algorithm | $trials | $(echo "$sorted" | median) | $(echo "$sorted" | head -1) | $(echo "$sorted" | tail -1) |" >> "$out"
done
cat "$out"
replace_section failover "$out"
