#!/usr/bin/env bash
# release_tree.sh PACER_SOURCE TREE
# Configures TREE with the release preset (-O3 and link-time optimisation; no tests, benchmarks
# or Python extension) and builds the six libraries: what the package tests install and link
# with g++ and clang++-14 (docs/OPERATIONS.md, "Packages").
# Incremental: a second run rebuilds only what changed.
set -euo pipefail
source_dir=$(cd "$1" && pwd)
tree=$2
start=$(date +%s)
cd "$source_dir"
cmake --preset release -B "$tree" -DPACER_BUILD_TESTS=OFF -DPACER_BUILD_BENCHMARKS=OFF \
  -DPACER_BUILD_PYTHON=OFF >"$tree.configure.log" 2>&1 || { cat "$tree.configure.log"; exit 1; }
nice cmake --build "$tree" --target pacer_libraries -j "${PACER_PACKAGE_JOBS:-2}"
echo "release tree $tree: configured and built in $(( $(date +%s) - start )) s"
