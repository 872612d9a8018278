# Shared by tools/rlcluster and tools/partition (sourced, not run): reading
# a deployment's INI, the run folder's cluster.env, and running commands in
# the cluster's network namespace. The caller sets `prog` (its name, for
# messages) and runs with `set -euo pipefail`.

# die MESSAGE...: one clear line on stderr, exit 2.
die() { echo "$prog: $*" >&2; exit 2; }

# ini_nodes CONFIG: one line "ID HOST PORT SHARD" per [node.N] of CONFIG,
# ordered by id. Comments (; or #) and whitespace are ignored as rlnode
# ignores them; rlnode itself validates the file.
ini_nodes() {
  awk '
    { sub(/[;#].*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") }
    /^\[.*\]$/ { sec = substr($0, 2, length($0) - 2); next }
    /=/ {
      k = $0; sub(/[ \t]*=.*/, "", k); v = $0; sub(/^[^=]*=[ \t]*/, "", v)
      if (sec ~ /^node\.[0-9]+$/ && k == "address") addr[substr(sec, 6) + 0] = v
      if (sec ~ /^shard\.[0-9]+$/ && k == "nodes") {
        n = split(v, ids, /[ \t]*,[ \t]*/)
        for (i = 1; i <= n; i++) shard[ids[i] + 0] = substr(sec, 7) + 0
      }
    }
    END {
      for (id in addr) {
        a = addr[id]; p = a; sub(/:[0-9]+$/, "", a); sub(/^.*:/, "", p)
        print id, a, p, (id in shard ? shard[id] : 0)
      }
    }' "$1" | sort -n
}

# load_env RUN_DIR: sets cluster_config, cluster_netns and cluster_bin from
# RUN_DIR/cluster.env (written by `rlcluster up`); false if there is none.
load_env() {
  local file=$1/cluster.env key value
  [ -f "$file" ] || return 1
  cluster_config=""; cluster_netns=""; cluster_bin=""
  while IFS='=' read -r key value; do
    case "$key" in
      config) cluster_config=$value ;;
      netns) cluster_netns=$value ;;
      bin) cluster_bin=$value ;;
    esac
  done < "$file"
  [ -n "$cluster_config" ] || die "$file names no config: remove it, or run rlcluster up again"
}

# need_root WHAT: dies unless this process is root.
need_root() {
  [ "$(id -u)" -eq 0 ] || die "$1 needs root (CAP_NET_ADMIN): run it with sudo, or as root"
}

# netns_exists NAME
netns_exists() { [ -e "/run/netns/$1" ]; }

# in_netns NAME CMD...: runs CMD inside namespace NAME, or plainly when NAME
# is empty.
in_netns() {
  local ns=$1; shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}
