#!/usr/bin/env bash
# Builds one flavour of Ringleader: `release` (optimised, warnings as errors)
# into build/, or `asan` (Debug with AddressSanitizer and UBSan) into
# build-asan/. Extra arguments are build targets (default: everything).
#   tools/build.sh release rlnode rlcat
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
case "$flavour" in
  # Line tables only (-g1): symbols and lines are what perf and a crash's
  # backtrace need, and full debug info made the build a third slower
  # (docs/performance.md says how to get it back for a profile).
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
                             -DRL_WERROR=ON -DRL_BUILD_TESTS=ON) ;;
  # The sanitizers' reports need file and line, which line tables give:
  # a clean build in 404 s instead of 493 s with full debug info.
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DRL_SANITIZE=ON -DRL_WERROR=ON
                               -DRL_BUILD_TESTS=ON) ;;
  *) echo "build.sh: flavour must be release or asan" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -G Ninja "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
