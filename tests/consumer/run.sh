#!/usr/bin/env bash
# run.sh BUILD_DIR [CXX] [COMPONENT]
# Installs the build tree into a scratch directory (DESTDIR, so absolute install paths such as /etc
# stay inside it too), then configures, builds and runs tests/consumer against it
# with find_package(pacer), compiled by CXX (default: c++). COMPONENT `dev` installs the
# libraries, headers and CMake package only; `all` (the default) everything the tree has built.
# Every installed archive must hold machine code, not only GCC LTO bytecode: a consumer built by
# another compiler links it (docs/OPERATIONS.md, "Packages").
set -euo pipefail
build_dir=$(cd "$1" && pwd)
cxx=${2:-c++}
component=${3:-all}
source_dir=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build_dir/CMakeCache.txt")
install_args=()
[ "$component" = all ] || install_args=(--component "$component")
DESTDIR="$scratch/root" cmake --install "$build_dir" "${install_args[@]}" >"$scratch/install.log" ||
  { cat "$scratch/install.log"; exit 1; }
root="$scratch/root$prefix"

archives=$(find "$root" -name 'libpacer_*.a' | sort)
[ -n "$archives" ] || { echo "FAIL: no libpacer_*.a installed under $root"; exit 1; }
for archive in $archives; do
  # GCC marks LTO objects without machine code ("slim") with this symbol (readelf, unlike nm,
  # never reads the bytecode through the LTO plugin).
  if readelf -sW "$archive" | grep -q '__gnu_lto_slim'; then
    echo "FAIL: $(basename "$archive") holds GCC LTO bytecode only, no machine code"
    exit 1
  fi
done
if [ "$component" = dev ]; then
  stray=$(find "$root" -path '*/bin/*' -o -name '*.service' -o -name 'pacer-redis-module.so')
  [ -z "$stray" ] || { echo "FAIL: the dev component installed programs: $stray"; exit 1; }
fi

cmake -S "$source_dir" -B "$scratch/build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_PREFIX_PATH="$root" >"$scratch/configure.log" || { cat "$scratch/configure.log"; exit 1; }
cmake --build "$scratch/build" >"$scratch/build.log" || { cat "$scratch/build.log"; exit 1; }
"$scratch/build/consumer"
echo "consumer ($("$cxx" --version | head -1)) built and ran against $(echo "$archives" | wc -l)" \
  "installed archives (component $component of $build_dir)"
