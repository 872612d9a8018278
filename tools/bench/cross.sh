#!/usr/bin/env bash
# Cross-shard transfers (two-phase commit between shard leaders) against
# intra-shard ones, on two shards of three nodes each on loopback with
# fsync=always, in one run:
#   a. one connection, sequential: p50 intra vs p50 cross (--cross-shard 100);
#      and two connections, one client in each shard, intra-shard (intra2):
#      how much a round in the other shard slows a round here
#   b. 64 connections: throughput intra vs cross, and the cross run's p99
#   a and b also record the six nodes' CPU (user + system, from /proc) per
#   committed transfer
#   c. 64 connections, 80 % intra / 20 % cross, Zipf-skewed items over two
#      small shards with a small initial balance: throughput, latency and
#      aborts by reason
# a and b alternate within each trial (intra 1, cross 1, intra 2, intra 64,
# cross 64), so each ratio compares runs of the same minutes. TRIALS runs of
# DURATION_MS each (defaults 3 and 3000); medians, ratios of medians and
# PASS/FAIL against the targets go to docs/benchmarks.md. A failed trial
# (rlbench errors or no leader) is listed and left out of the medians.
#   tools/bench/cross.sh
#   BUILD_DIR=build-bench tools/bench/cross.sh   (build into and run from another folder than build/)
#   BENCH_BIN=build tools/bench/cross.sh         (run the binaries there as they are)
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-3}; duration=${DURATION_MS:-3000}; warmup=500
bench_build rlnode rlcat rlbench

bench_workdir
start_cluster() {  # ITEMS INITIAL_BALANCE
  shards_config "$work/bench.ini" "$1" "name = cross
initial_balance = $2
fsync = always"
  rm -rf "$work/data"
  tools/cluster.sh start "$work/bench.ini" --bin "$bin" --run "$work" >/dev/null
}
# Leader changes while a cluster ran, from its nodes' logs: elections,
# leaders that stepped down for want of a quorum (and how many of those
# within 500 ms after a snapshot_taken on any node), snapshots taken.
leader_changes() {
  cat "$work"/node-*.log | awk -v shards=2 '
    function secs(ts) { split(substr(ts, 15, 12), t, ":"); return t[1] * 3600 + t[2] * 60 + t[3] }
    /event=snapshot_taken/ { snap[++ns] = secs($1); next }
    /event=became_leader/ { elected++ }
    /event=stepped_down/ && /reason=check_quorum/ { down[++nd] = secs($1) }
    END {
      near = 0
      for (i = 1; i <= nd; i++) for (j = 1; j <= ns; j++) if (down[i] >= snap[j] && down[i] - snap[j] <= 0.5) { near++; break }
      printf "%d elections after each shard'"'"'s first, %d check_quorum step-downs (%d within 500 ms after a snapshot_taken), %d snapshots taken\n", elected - shards, nd, near, ns
    }'
}
stop_cluster() { tools/cluster.sh stop "$work/bench.ini" --run "$work" >/dev/null; rm -f "$work"/node-*.log "$work"/node-*.err; }

# ratio A B: A / B with two decimals, "n/a" when either is missing or B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
# verdict VALUE OP LIMIT: PASS or FAIL (FAIL when VALUE is n/a)
verdict() { awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
  if (v == "n/a" || v == "") { print "FAIL (no successful trial)"; exit }
  ok = (op == "<=") ? v + 0 <= l + 0 : (op == ">=") ? v + 0 >= l + 0 : v + 0 < l + 0
  print ok ? "PASS" : "FAIL" }'; }
# med NAME: median of the values collected under NAME (empty when none)
declare -A vals
add() { vals[$1]="${vals[$1]:-} $2"; }
med() { [ -n "${vals[$1]:-}" ] && printf '%s\n' ${vals[$1]} | median || true; }
list() { echo "${vals[$1]:-}" | sed 's/^ //; s/ /\//g'; }

load_before=$(cut -d' ' -f1 /proc/loadavg)
failed=0
: > "$work/failures"
# node_ticks: CPU clock ticks (user + system) the cluster's nodes used so far
node_ticks() {
  local sum=0 f
  for f in "$work"/node-*.pid; do
    sum=$((sum + $(cpu_ticks "$(cat "$f")")))
  done
  echo "$sum"
}
hz=$(getconf CLK_TCK)
# trial NAME ARGS...: one rlbench transfer run; its figures are kept under NAME
trial() {
  local name=$1; shift
  local line before
  before=$(node_ticks)
  if ! line=$("$bin/tools/rlbench" transfer --config "$work/bench.ini" --duration-ms "$duration" --warmup-ms "$warmup" \
               "$@" 2>&1); then
    local brief=""
    for key in requests errors per_second p50_us p99_us first_error; do
      brief+=" $key=$(echo "$line" | sed -n "s/.* $key=\(\"[^\"]*\"\|[^ ]*\).*/\1/p")"
    done
    [ -n "$(echo "$line" | field requests)" ] || brief=" $line"
    echo "$name (${*}) trial FAILED:$brief" | tee -a "$work/failures" >&2
    failed=$((failed + 1)); return 0
  fi
  # The nodes' CPU per committed transfer: rlbench counts the measured
  # part only, /proc the warm-up too, so the CPU is taken at the measured
  # part's share of the run (a steady rate assumed).
  local used=$(( $(node_ticks) - before )) committed
  committed=$(echo "$line" | field committed)
  line+=" node_cpu_us=$(awk -v t="$used" -v hz="$hz" -v c="$committed" -v d="$duration" -v w="$warmup" \
    'BEGIN { if (c > 0) printf "%.1f", t / hz * 1e6 * d / (d + w) / c }')"
  echo "$name $line" | tee -a "$work/lines"
  for key in per_second committed_per_second p50_us p99_us intra_p50_us cross_p50_us cross_p99_us requests aborted node_cpu_us \
             aborts_insufficient_funds aborts_overflow aborts_expired aborts_session_expired aborts_timeout \
             aborts_mismatch aborts_bad_request; do
    add "$name.$key" "$(echo "$line" | field "$key")"
  done
  add "$name.ok" 1
}

# a and b: items 1-3000 and 3001-6000, a balance no transfer can exhaust.
start_cluster "1-3000 3001-6000" 1000000000
for t in $(seq "$trials"); do
  trial intra1 --connections 1 --seed "$t"
  trial cross1 --connections 1 --cross-shard 100 --seed "$t"
  trial intra2 --connections 2 --seed "$t"
  trial intra64 --connections 64 --seed "$t"
  trial cross64 --connections 64 --cross-shard 100 --seed "$t"
done
changes_ab=$(leader_changes)
stop_cluster

# c: two shards of 1000 items, Zipf 1.1 over each shard's items (its first
# item draws about a fifth of the picks), 20 units per item: hot items run
# dry, so some transfers abort with insufficient_funds.
start_cluster "1-1000 1001-2000" 20
for t in $(seq "$trials"); do
  trial mixed --connections 64 --cross-shard 20 --skew zipf:1.1 --seed "$t"
done
changes_c=$(leader_changes)
stop_cluster

load_after=$(cut -d' ' -f1 /proc/loadavg)
ok() { echo "${vals[$1.ok]:-}" | wc -w; }
# per_trial A B: A/B of each trial where both runs succeeded (from the
# lines above), for the spread behind a ratio of medians
per_trial() {
  grep -h "^$1 \|^$2 " "$work/lines" | awk -v a="$1" -v b="$2" -v k="$3" '
    { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) v = substr($i, length(k) + 2)
      for (i = 2; i <= NF; i++) if (index($i, "seed=") == 1) t = substr($i, 6)
      x[$1, t] = v; seen[t] = 1 }
    END { n = 0; for (t = 1; t in seen; t++) if ((a, t) in x && (b, t) in x && x[b, t] > 0) {
            printf "%s%.2f", n++ ? "/" : "", x[a, t] / x[b, t] }
          if (!n) printf "none"; print "" }'
}
p50_ratio=$(ratio "$(med cross1.p50_us)" "$(med intra1.p50_us)")
tput_ratio=$(ratio "$(med cross64.per_second)" "$(med intra64.per_second)")
cpu_ratio=$(ratio "$(med cross64.node_cpu_us)" "$(med intra64.node_cpu_us)")
overlap_us=$(awk -v a="$(med intra2.p50_us)" -v b="$(med intra1.p50_us)" 'BEGIN { if (a == "" || b == "") print "n/a"; else print a - b }')
cross_p99=$(med cross64.p99_us)
cross_p99_ms=$(awk -v v="$cross_p99" 'BEGIN { if (v == "") print "n/a"; else printf "%.1f\n", v / 1000 }')

out=$work/section.md
{
  echo "## Cross-shard transfers (two shards of 3 nodes, loopback, fsync=always)"
  echo
  echo "rlbench closed loops (one transfer of 1 in flight per connection), dealt round-robin to the two shards; each loop sends to the leader of its FROM shard, which for a cross-shard transfer coordinates the two-phase commit (PrepareDebit here and PrepareCredit in the other shard, replicated in parallel; the reply once both are known yes). An intra-shard transfer is one log entry; a cross-shard one adds a Prepare and a Decide entry to each shard's log, and Forget entries later in batches. Runs a and b: items 1-3000 and 3001-6000, initial balance 10^9 (no insufficient funds); the five runs alternate within each trial. Run c: items 1-1000 and 1001-2000, initial balance 20, 20 % of transfers cross-shard, items drawn by Zipf's law (s = 1.1) over their rank in their shard. Default timing (heartbeat_ms 50, suspect_after_ms 200, election_timeout_ms 300). Median of $trials trials of ${duration} ms; ratios are ratios of the medians."
  echo
  echo "Command: \`TRIALS=$trials DURATION_MS=$duration tools/bench/cross.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "| run | connections | cross-shard | trials ok | transfers/s | p50 (µs) | p99 (µs) | node CPU per transfer (µs) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for run in intra1:1:0 cross1:1:1 intra2:2:0 intra64:64:0 cross64:64:1; do
    IFS=: read -r name conns frac <<< "$run"
    echo "| $name | $conns | $frac | $(ok "$name")/$trials | $(med "$name.per_second") | $(med "$name.p50_us") | $(med "$name.p99_us") | $(med "$name.node_cpu_us") |"
  done
  echo
  echo "| target | measured | result |"
  echo "|---|---:|---|"
  echo "| a. one connection: cross p50 / intra p50 <= 1.5 | $p50_ratio | $(verdict "$p50_ratio" "<=" 1.5) |"
  echo "| b. 64 connections: cross transfers/s / intra transfers/s >= 0.5 | $tput_ratio | $(verdict "$tput_ratio" ">=" 0.5) |"
  echo "| b. 64 connections: cross p99 < 20 ms | $cross_p99_ms ms | $(verdict "$cross_p99_ms" "<" 20) |"
  echo
  echo "Where the ratios come from, in the same runs: at 64 connections a cross-shard transfer cost the six nodes $cpu_ratio times the CPU of an intra-shard one (node CPU per transfer: user + system time of the nodes from /proc, over the measured part of each run), on $(nproc) cores that the load generator shares with them. intra2 is one client in each shard at once, both intra-shard and sequential: a round in the other shard lengthens a round here by $overlap_us µs of p50 on this machine, and a sequential cross-shard transfer is two such overlapping rounds plus the two messages between the leaders (docs/performance.md)."
  echo
  echo "Run c, mixed (64 connections, 20 % cross-shard, zipf:1.1, initial balance 20): $(ok mixed)/$trials trials ok."
  echo
  echo "| transfers/s | committed/s | p50 (µs) | p99 (µs) | intra p50 (µs) | cross p50 (µs) | cross p99 (µs) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  echo "| $(med mixed.per_second) | $(med mixed.committed_per_second) | $(med mixed.p50_us) | $(med mixed.p99_us) | $(med mixed.intra_p50_us) | $(med mixed.cross_p50_us) | $(med mixed.cross_p99_us) |"
  echo
  echo "| abort reason | aborts per trial (median) | share of transfers (median) |"
  echo "|---|---:|---:|"
  # Per trial: aborts of that reason / transfers answered; the median of those shares.
  read -r -a reqs <<< "${vals[mixed.requests]:-}"
  for reason in insufficient_funds timeout mismatch overflow expired session_expired bad_request; do
    read -r -a n <<< "${vals[mixed.aborts_$reason]:-}"
    shares=()
    for i in "${!n[@]}"; do shares+=("$(awk -v a="${n[$i]}" -v r="${reqs[$i]}" 'BEGIN { printf "%d\n", r ? a * 1000000 / r : 0 }')"); done
    share=$( [ ${#shares[@]} -gt 0 ] && printf '%s\n' "${shares[@]}" | median || true)
    echo "| $reason | $(med "mixed.aborts_$reason") | $(awk -v s="$share" 'BEGIN { if (s == "") print "n/a"; else printf "%.2f %%\n", s / 10000 }') |"
  done
  echo
  echo "Leader changes, from the nodes' logs: runs a and b, $changes_ab; run c, $changes_c (snapshot_after_entries = 50000 per shard)."
  echo
  echo "Per trial, from the runs next to each other: cross/intra p50 with one connection $(per_trial cross1 intra1 p50_us); cross/intra transfers/s with 64 connections $(per_trial cross64 intra64 per_second). Load average of the machine (other jobs share it) $load_before before, $load_after after."
  echo
  echo "The trials (transfers/s, then p50 µs): intra1 $(list intra1.per_second), $(list intra1.p50_us); cross1 $(list cross1.per_second), $(list cross1.p50_us); intra2 $(list intra2.per_second), $(list intra2.p50_us); intra64 $(list intra64.per_second), $(list intra64.p50_us); cross64 $(list cross64.per_second), $(list cross64.p50_us), p99 $(list cross64.p99_us); mixed $(list mixed.per_second), $(list mixed.p50_us), p99 $(list mixed.p99_us), aborted $(list mixed.aborted) of $(list mixed.requests)."
} > "$out"
if [ "$failed" -gt 0 ]; then
  printf '\n%s trial(s) failed and are left out of the medians:\n\n' "$failed" >> "$out"
  sed 's/^/    /' "$work/failures" >> "$out"
fi
cat "$out"
replace_section cross "$out"
