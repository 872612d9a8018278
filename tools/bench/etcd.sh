#!/usr/bin/env bash
# Side by side with etcd: a 3-member etcd (Debian's etcd-server, installed
# here if missing) and two 3-node Ringleader shards (bully and ring) run on
# loopback with the same timing (etcd --heartbeat-interval = heartbeat_ms,
# --election-timeout = suspect_after_ms) and fsync on every write, and
# rlcompare drives them alike (tools/bench/compare.cpp): sequential write
# latency, write throughput at several connection counts, and SIGKILL of
# the leader to the first successful write through a survivor. Trials of
# the systems alternate, so drift of the shared machine hits them alike.
# The table with the ratios goes to $BENCH_DOC (default docs/benchmarks.md).
#   tools/bench/etcd.sh
# Environment: TRIALS failover trials per system (10), LOAD_TRIALS (3),
# DURATION_MS per load trial (3000), WARMUP_MS (500), CONNECTIONS ("16 64
# 128"), HEARTBEAT_MS (50), SUSPECT_AFTER_MS (250), ELECTION_TIMEOUT_MS
# (300), BENCH_BIN (a build dir: use its binaries and build nothing).
# Exits 77 when etcd-server is missing and cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/bench/lib.sh
trials=${TRIALS:-10}; load_trials=${LOAD_TRIALS:-3}; duration=${DURATION_MS:-3000}; warmup=${WARMUP_MS:-500}
connections=${CONNECTIONS:-16 64 128}
heartbeat=${HEARTBEAT_MS:-50}; suspect=${SUSPECT_AFTER_MS:-250}; election_timeout=${ELECTION_TIMEOUT_MS:-300}
for knob in trials load_trials duration warmup heartbeat suspect election_timeout; do
  [[ "${!knob}" =~ ^[0-9]+$ ]] && [ "${!knob}" -gt 0 ] || { echo "etcd.sh: $knob must be a positive number, not '${!knob}'" >&2; exit 2; }
done

# etcd-server is a prerequisite of this benchmark only, so it is installed
# here rather than by tools/install-deps.sh.
if ! command -v etcd >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null || { echo "etcd.sh: etcd-server is not installed and installing it needs root or sudo" >&2; exit 77; }
    sudo="sudo -n"
  fi
  echo "etcd.sh: installing etcd-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { timeout 120 $sudo apt-get update -qq && timeout 300 $sudo apt-get install -y -qq --no-install-recommends etcd-server >/dev/null; } ||
     ! command -v etcd >/dev/null; then
    echo "etcd.sh: could not install etcd-server with apt-get (no network or no package source?)" >&2; exit 77
  fi
fi

if [ -n "${BENCH_BIN:-}" ]; then
  bin=$(cd "$BENCH_BIN" && pwd)
else
  tools/install-deps.sh
  tools/build.sh release rlnode rlcat rlcompare >/dev/null
  bin=$PWD/build
fi
compare=$bin/tools/bench/rlcompare

work=$(mktemp -d)
etcd_pids() { cat "$work"/etcd/etcd-*.pid 2>/dev/null || true; }
cleanup() {
  for pid in $(etcd_pids); do kill -9 "$pid" 2>/dev/null || true; done
  for algorithm in bully ring; do
    [ -f "$work/$algorithm/bench.ini" ] && tools/cluster.sh stop "$work/$algorithm/bench.ini" --run "$work/$algorithm" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Ringleader: one shard of 3 nodes per election algorithm.
ports_used=""
for algorithm in bully ring; do
  mkdir -p "$work/$algorithm"
  shard_config "$work/$algorithm/bench.ini" 1-10000 "name = compare-$algorithm
election = $algorithm
heartbeat_ms = $heartbeat
suspect_after_ms = $suspect
election_timeout_ms = $election_timeout
initial_balance = 1000000000
fsync = always"
  ports_used+=" $(sed -n 's/^address = 127.0.0.1://p' "$work/$algorithm/bench.ini" | tr '\n' ' ')"
done
# etcd: client ports base..base+2, peer ports base+3..base+5, none of them a node's.
while :; do
  base=$(port_base); clash=0
  for p in $ports_used; do [ "$p" -ge "$base" ] && [ "$p" -le $((base + 5)) ] && clash=1; done
  [ "$clash" -eq 0 ] && break
done
mkdir -p "$work/etcd"
initial=""; endpoints=""
for i in 1 2 3; do
  initial+="${initial:+,}m$i=http://127.0.0.1:$((base + 2 + i))"
  endpoints+="${endpoints:+,}127.0.0.1:$((base + i - 1))"
done
start_etcd() {  # member number 1..3; with an existing data dir etcd rejoins
  local i=$1 client=http://127.0.0.1:$((base + $1 - 1)) peer=http://127.0.0.1:$((base + 2 + $1))
  # In a subshell and setsid, as tools/rlcluster starts nodes: not a job of
  # this script, so a member killed by a trial is reaped without a word.
  (setsid etcd --name "m$i" --data-dir "$work/etcd/m$i" --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$initial" \
    --initial-cluster-token "rlcompare-$$" --initial-cluster-state new \
    --heartbeat-interval "$heartbeat" --election-timeout "$suspect" </dev/null >> "$work/etcd/m$i.log" 2>&1 &
   echo $! > "$work/etcd/etcd-$i.pid")
}
# Restarts the members that are not running (the one a failover trial killed).
restart_etcd() {
  local i pid
  for i in 1 2 3; do
    pid=$(cat "$work/etcd/etcd-$i.pid")
    if ! kill -0 "$pid" 2>/dev/null || grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then
      start_etcd "$i"
    fi
  done
}
load_start=$(cut -d" " -f1 /proc/loadavg)
for i in 1 2 3; do start_etcd "$i"; done
for algorithm in bully ring; do
  tools/cluster.sh start "$work/$algorithm/bench.ini" --bin "$bin" --run "$work/$algorithm" >/dev/null
done

failures=$work/failures
touch "$failures"
# run NAME RLCOMPARE-ARGS...: one rlcompare run; its line on stdout, or
# nothing (and a line in $failures) when it failed.
run() {
  local name=$1 line; shift
  if line=$("$compare" "$@" 2>&1); then
    echo "$name $line" >&2; echo "$line"
  else
    echo "$name FAILED: $line" | tee -a "$failures" >&2
  fi
}
etcd_args=(etcd --endpoints "$endpoints" --run-dir "$work/etcd")
rl_args() { echo "ringleader --config $work/$1/bench.ini --run-dir $work/$1"; }

# Load: to the leader, alternating systems trial by trial.
declare -A rate p50 p99
for conns in 1 $connections; do
  for _ in $(seq "$load_trials"); do
    for system in etcd ringleader; do
      if [ "$system" = etcd ]; then args=("${etcd_args[@]}"); else read -ra args <<< "$(rl_args bully)"; fi
      line=$(run "$system" "${args[0]}" load "${args[@]:1}" --connections "$conns" --duration-ms "$duration" \
        --warmup-ms "$warmup" --attempt-timeout-ms 2000)
      [ -n "$line" ] || continue
      rate[$system,$conns]+=" $(echo "$line" | field per_second)"
      p50[$system,$conns]+=" $(echo "$line" | field p50_us)"
      p99[$system,$conns]+=" $(echo "$line" | field p99_us)"
    done
  done
done

# Failover: through a survivor; after each trial the killed member restarts.
declare -A failover
for trial in $(seq "$trials"); do
  for system in etcd bully ring; do
    if [ "$system" = etcd ]; then args=("${etcd_args[@]}"); else read -ra args <<< "$(rl_args "$system")"; fi
    line=$(run "$system trial $trial" "${args[0]}" failover "${args[@]:1}" --warmup-ms "$warmup" \
      --attempt-timeout-ms "$heartbeat" --retry-pause-ms 10)
    [ -n "$line" ] && failover[$system]+=" $(echo "$line" | field failover_ms)"
    if [ "$system" = etcd ]; then
      restart_etcd
    else
      tools/cluster.sh start "$work/$system/bench.ini" --bin "$bin" --run "$work/$system" >/dev/null
    fi
  done
done

med() { printf '%s\n' $1 | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
out=$work/section.md
{
  echo "## Side by side with etcd (3 members on loopback, same timing, fsync on every write)"
  echo
  echo "etcd $(etcd --version | sed -n 's/^etcd Version: //p') (Debian's etcd-server) with --heartbeat-interval=$heartbeat --election-timeout=$suspect; Ringleader with heartbeat_ms=$heartbeat, suspect_after_ms=$suspect, election_timeout_ms=$election_timeout, fsync=always (etcd syncs its WAL on every commit). The three clusters (etcd, a Ringleader shard electing by bully and one by ring) run at the same time, each idle but for the one measured, and trials alternate between them."
  echo
  echo "How each side is driven: one program, \`rlcompare\` (tools/bench/compare.cpp), on one io_context, closed loops (one write in flight per connection). A Ringleader write is a transfer of 1 between two items of the shard in the loop's own client session, over Ringleader's client protocol; an etcd write is a put of a short value to the loop's own key through etcd's v3 JSON gateway (POST /v3/kv/put, HTTP/1.1 keep-alive), which adds a JSON-to-gRPC step inside etcd that its native gRPC clients skip. A write counts when Ringleader answers committed or etcd answers 200. Load runs write to the leader (the one every member names); failover runs write through a survivor (a member that is not the leader, which forwards), SIGKILL the leader right after a write succeeded (none in flight) and time the kill to the first successful write sent after it. Retry rules are the same for both: an attempt without an answer in ${heartbeat} ms (2000 ms in load runs) closes the connection, opens it again and resends (Ringleader with the same txid); an error answer is retried after 10 ms. So either side's failover time may include up to ${heartbeat} ms of the client waiting out an attempt sent before the new leader could answer it."
  echo
  echo "Command: \`TRIALS=$trials LOAD_TRIALS=$load_trials DURATION_MS=$duration tools/bench/etcd.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, load average $load_start at the start, from other work on the machine). Load: median of $load_trials trials of ${duration} ms after ${warmup} ms of warm-up (Ringleader: the bully shard). Failover: $trials trials per system."
  echo
  echo "| load | etcd writes/s | Ringleader writes/s | ratio | etcd p50 (µs) | Ringleader p50 (µs) | ratio | etcd p99 (µs) | Ringleader p99 (µs) | ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for conns in 1 $connections; do
    label="$conns connections"; [ "$conns" = 1 ] && label="sequential (1 connection)"
    er=$(med "${rate[etcd,$conns]:-}"); rr=$(med "${rate[ringleader,$conns]:-}")
    e50=$(med "${p50[etcd,$conns]:-}"); r50=$(med "${p50[ringleader,$conns]:-}")
    e99=$(med "${p99[etcd,$conns]:-}"); r99=$(med "${p99[ringleader,$conns]:-}")
    echo "| $label | $er | $rr | $(ratio "$rr" "$er") | $e50 | $r50 | $(ratio "$r50" "$e50") | $e99 | $r99 | $(ratio "$r99" "$e99") |"
  done
  echo
  echo "Ratios are Ringleader / etcd: above 1 for writes/s and below 1 for latency favour Ringleader."
  echo
  etcd_median=$(med "${failover[etcd]:-}")
  echo "| failover: SIGKILL of the leader to the first successful write through a survivor | trials ok | median (ms) | min (ms) | max (ms) | median / etcd median | max / etcd median | target: median < 0.25 and max < 0.5 of etcd's median |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for system in etcd bully ring; do
    values=$(printf '%s\n' ${failover[$system]:-} | sort -n)
    count=$(printf '%s\n' ${failover[$system]:-} | grep -c . || true)
    m=$(echo "$values" | median); lo=$(echo "$values" | head -1); hi=$(echo "$values" | tail -1)
    name="Ringleader, $system"; [ "$system" = etcd ] && name=etcd
    verdict="—"
    if [ "$system" != etcd ]; then
      verdict=$(awk -v m="$m" -v hi="$hi" -v e="$etcd_median" -v n="$count" 'BEGIN { print (n > 0 && e > 0 && m < 0.25 * e && hi < 0.5 * e) ? "PASS" : "FAIL" }')
    fi
    echo "| $name | $count/$trials | ${m:-} | ${lo:-} | ${hi:-} | $(ratio "${m:-0}" "$etcd_median") | $(ratio "${hi:-0}" "$etcd_median") | $verdict |"
  done
  if [ -s "$failures" ]; then
    printf '\nRuns that failed, left out of the figures:\n\n'
    sed 's/^/    /' "$failures"
  fi
} > "$out"
cat "$out"
replace_section etcd "$out"
