#!/usr/bin/env bash
# release_tree.sh PACER_SOURCE TREE
# Configures TREE with the deb preset (release: -O3 and link-time optimisation, install prefix
# /usr, the Debian layout) and builds pacerd, hence the six libraries it links: what the package
# tests install, link with g++ and clang++-14, and pack (docs/OPERATIONS.md, "Packages").
# Incremental: a second run rebuilds only what changed.
set -euo pipefail
source_dir=$(cd "$1" && pwd)
tree=$2
start=$(date +%s)
mkdir -p "$tree"
cd "$source_dir"
cmake --preset deb -B "$tree" >"$tree/configure.log" 2>&1 || { cat "$tree/configure.log"; exit 1; }
nice cmake --build "$tree" --target pacerd -j "${PACER_PACKAGE_JOBS:-2}"
echo "release tree $tree: configured and built in $(( $(date +%s) - start )) s"
