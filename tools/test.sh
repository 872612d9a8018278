#!/usr/bin/env bash
# Installs what is missing, builds the release and the sanitizer flavours,
# and runs the whole test suite through ctest on both.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)
for flavour in release asan; do
  tools/build.sh "$flavour"
  dir=build; [ "$flavour" = asan ] && dir=build-asan
  echo "== ctest ($flavour)"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
done
