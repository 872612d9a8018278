#!/usr/bin/env bash
# Installs the Debian 12 packages Ringleader builds, tests and runs with.
# Only missing packages are installed; as a non-root user it uses sudo.
set -euo pipefail

packages=(
  g++ cmake ninja-build make pkg-config
  libboost-system1.74-dev libboost-program-options1.74-dev libboost-test1.74-dev
  libboost1.74-dev  # header-only parts: Asio, and Beast for tools/bench/compare.cpp
  libcereal-dev nlohmann-json3-dev libisal-dev liburing-dev libjemalloc-dev
  libnetfilter-queue-dev  # tools/rldelay: delays for tools/partition where tc netem is missing
  iptables iproute2 procps gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
