# Shared by the benchmark scripts: medians and docs/benchmarks.md sections.

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print 0} else if (NR%2) {print a[(NR+1)/2]} else {printf "%d\n", (a[NR/2]+a[NR/2+1])/2}}'; }

# field KEY from a key=value line
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

# cpu_ticks PID: clock ticks (user + system) the process has used so far; 0
# once it is gone
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# replace_section NAME FILE: replaces the lines between
# <!-- NAME:begin --> and <!-- NAME:end --> in $BENCH_DOC (default
# docs/benchmarks.md) with FILE (appending the section if it is not there yet).
replace_section() {
  local name=$1 body=$2 doc=${BENCH_DOC:-docs/benchmarks.md}
  mkdir -p "$(dirname "$doc")"
  [ -f "$doc" ] || printf '# Benchmarks\n\nFigures measured on the project machine (2 cores, shared and noisy): medians of repeated trials, with the command that reproduces each table.\n' > "$doc"
  if grep -q "<!-- $name:begin -->" "$doc"; then
    awk -v name="$name" -v body="$body" '
      $0 == "<!-- " name ":begin -->" { print; while ((getline line < body) > 0) print line; skip=1; next }
      $0 == "<!-- " name ":end -->" { skip=0 }
      !skip { print }' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
  else
    { echo; echo "<!-- $name:begin -->"; cat "$body"; echo "<!-- $name:end -->"; } >> "$doc"
  fi
}

# port_base [COUNT]: a random first port for a cluster of COUNT (default
# 16) consecutive ports, 20000-31999: below the kernel's ephemeral range
# (32768 up), so no client connection of an earlier run, still in
# TIME_WAIT, holds a node's port (rlcluster up then stops with "died at
# start: bind: Address already in use"); and none of the COUNT in use now
# on this host, so a cluster another test or a deployment of the same
# script runs is never in the way.
port_base() {
  local count=${1:-16} base used
  used=$(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }' | sort -un)
  while :; do
    base=$(( 20000 + RANDOM % 12000 ))
    awk -v lo="$base" -v hi=$((base + count - 1)) '$1 >= lo && $1 <= hi { found = 1 } END { exit !found }' <<< "$used" || break
  done
  echo "$base"
}

# shard_config FILE ITEMS CLUSTER_LINES: a one-shard, 3-node deployment on
# loopback ports picked at random, with CLUSTER_LINES (one key = value per
# line) in its [cluster] section.
shard_config() {
  local file=$1 items=$2 lines=$3 base=$(port_base)
  {
    printf '[cluster]\n%s\ndata_dir = data\n' "$lines"
    printf '[shard.1]\nitems = %s\nnodes = 1,2,3\n' "$items"
    for i in 1 2 3; do printf '[node.%s]\naddress = 127.0.0.1:%s\n' "$i" $((base + i - 1)); done
  } > "$file"
}

# bench_workdir: a temp dir in $work whose cluster (bench.ini) is stopped
# and which is removed when the script exits, however it exits.
bench_workdir() {
  work=$(mktemp -d)
  trap 'tools/cluster.sh stop "$work/bench.ini" --run "$work" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
}

# shards_config FILE "ITEMS ITEMS ..." CLUSTER_LINES: one shard per ITEMS
# (A-B), each of 3 nodes, on loopback ports picked at random, with
# CLUSTER_LINES in its [cluster] section.
shards_config() {
  local file=$1 items=$2 lines=$3 base=$(port_base) shard=0 node=0 ids
  {
    printf '[cluster]\n%s\ndata_dir = data\n' "$lines"
    for range in $items; do
      shard=$((shard + 1)); ids="$((node + 1)),$((node + 2)),$((node + 3))"; node=$((node + 3))
      printf '[shard.%s]\nitems = %s\nnodes = %s\n' "$shard" "$range" "$ids"
    done
    for i in $(seq "$node"); do printf '[node.%s]\naddress = 127.0.0.1:%s\n' "$i" $((base + i - 1)); done
  } > "$file"
}

# bench_build TARGETS...: sets $bin, the build folder the script runs from.
# With BENCH_BIN set, its binaries as they are (nothing is installed or
# built: the smoke test runs the scripts so); with BUILD_DIR set, built
# there; else tools/build.sh release into build/.
bench_build() {
  if [ -n "${BENCH_BIN:-}" ]; then
    bin=$BENCH_BIN
    return
  fi
  tools/install-deps.sh
  if [ -z "${BUILD_DIR:-}" ]; then
    bin=build
    tools/build.sh release "$@" >/dev/null
  else
    bin=$BUILD_DIR
    # Configured like tools/build.sh release unless the folder already is.
    [ -f "$bin/CMakeCache.txt" ] ||
      cmake -S . -B "$bin" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRL_WERROR=ON -DRL_BUILD_TESTS=OFF >/dev/null
    local t targets=()
    for t in "$@"; do targets+=(--target "$t"); done
    cmake --build "$bin" -j "$(nproc)" "${targets[@]}" >/dev/null
  fi
}
