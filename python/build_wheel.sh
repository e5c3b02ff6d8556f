#!/usr/bin/env bash
# Builds a wheel of the Python package that installs without a compiler:
#   python/build_wheel.sh [OUT_DIR]      (default: build/wheel; prints the wheel's path last)
# The extension is built in Release by python/setup.py with PACER_BUNDLE_LIBS=1: the shared
# libraries it needs beyond the base system (libc, libstdc++, libgcc_s, libssl3 ...) go into the
# wheel's pacer.libs/, found through an $ORIGIN run path. Needs what a source build needs
# (scripts/install-deps.sh) plus patchelf and python3-wheel. PACER_BUILD_JOBS limits compile jobs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$repo/build/wheel}" && cd "${1:-$repo/build/wheel}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# pip builds in the source directory (python/build, python/pacer.egg-info), where a source
# install may be building at the same time: build from a copy of the tree instead (the files
# git tracks, as they are in the working tree; outside a clone, everything but build output).
mkdir "$work/src"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$repo" ls-files -z --cached |
    tar -C "$repo" --null --ignore-failed-read -T - -cf - | tar -C "$work/src" -xf -
else
  tar -C "$repo" --exclude=./build --exclude=./python/build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -C "$work/src" -xf -
fi

rm -f "$out"/pacer-*.whl
PACER_BUNDLE_LIBS=1 /usr/bin/python3 -m pip wheel -v --no-build-isolation --no-deps --no-index \
  -w "$out" "$work/src/python"
ls "$out"/pacer-*.whl
