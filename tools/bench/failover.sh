#!/usr/bin/env bash
# Failover benchmark: a 3-node shard of real rlnode processes with
# heartbeat_ms=50 and suspect_after_ms=150; SIGKILL the leader and measure
# until every survivor reports the same new leader. TRIALS per algorithm
# (default 10); median, min and max go to docs/benchmarks.md.
# SUSPECT_AFTER_MS and ELECTION_TIMEOUT_MS change those two settings.
#   tools/bench/failover.sh
#   SUSPECT_AFTER_MS=250 TRIALS=10 tools/bench/failover.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-10}
suspect_ms=${SUSPECT_AFTER_MS:-150}
election_ms=${ELECTION_TIMEOUT_MS:-300}
[[ "$suspect_ms" =~ ^[0-9]+$ && "$election_ms" =~ ^[0-9]+$ ]] || { echo "failover.sh: SUSPECT_AFTER_MS and ELECTION_TIMEOUT_MS must be numbers of milliseconds" >&2; exit 2; }
bench_build rlnode rlcat rlbench

bench_workdir
write_config() {  # algorithm
  shard_config "$work/bench.ini" 1-100 "name = failover
election = $1
heartbeat_ms = 50
suspect_after_ms = $suspect_ms
election_timeout_ms = $election_ms
fsync = always"
}

out=$work/section.md
{
  echo "## Failover (SIGKILL the leader of a 3-node shard)"
  echo
  echo "From the SIGKILL until every survivor reports the same new leader (which itself reports role leader); heartbeat_ms=50, suspect_after_ms=$suspect_ms, election_timeout_ms=$election_ms, fsync=always. Target: median under 2 x suspect_after_ms = $((2 * suspect_ms)) ms."
  echo
  echo "Command: \`SUSPECT_AFTER_MS=$suspect_ms ELECTION_TIMEOUT_MS=$election_ms TRIALS=$trials tools/bench/failover.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores)"
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
