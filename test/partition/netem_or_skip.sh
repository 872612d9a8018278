#!/usr/bin/env bash
# Runs the command (the partition suite's delayed-link cases) where the
# kernel has tc netem; elsewhere exits 77, which ctest reports as skipped,
# never as passed, with the reason on stderr. The probe adds a netem qdisc
# inside a throwaway network namespace and deletes the namespace again.
set -euo pipefail
ns=rl-netem-probe-$$
ip netns add "$ns" || { echo "netem probe: cannot create a network namespace (needs root)" >&2; exit 1; }
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip -n "$ns" link set lo up
if ! out=$(ip netns exec "$ns" tc qdisc add dev lo root netem delay 1ms 2>&1); then
  echo "SKIPPED: this kernel has no tc netem (sch_netem), so the delayed-link cases did not run: $out" >&2
  exit 77
fi
ip netns del "$ns"
trap - EXIT
"$@"
