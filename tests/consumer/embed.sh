#!/usr/bin/env bash
# embed.sh PACER_SOURCE WORK_DIR add_subdirectory|FetchContent
# Configures tests/consumer/embed (a project with Pacer inside its build) in WORK_DIR, checks
# that the parent's default build holds Pacer's libraries and none of its programs, tests,
# benchmarks or Python extension (every command ninja runs for `all`, built or not), then
# builds and runs the consumer (docs/OPERATIONS.md, "Packages").
set -euo pipefail
pacer_source=$(cd "$1" && pwd)
work_dir=$2
mode=$3
embed_source=$(cd "$(dirname "$0")/embed" && pwd)
mkdir -p "$work_dir"
log="$work_dir/embed.log"

cmake -S "$embed_source" -B "$work_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DPACER_EMBED="$mode" -DPACER_SOURCE="$pacer_source" >"$log" 2>&1 || { cat "$log"; exit 1; }

# Every command the default build needs, whether up to date or not; what each one writes.
plan=$(ninja -C "$work_dir" -t commands all)
outputs=$(grep -oE '( -o | qc )[^ ]+' <<<"$plan" | awk '{print $2}')
unwanted='pacerd|pacer-demo|pacer-bench|pacer-redis-module|_pacer|_test|benchmark|fuzz'
if grep -E "$unwanted" <<<"$outputs"; then
  echo "FAIL: the parent's default build ($mode) builds the Pacer programs above"
  exit 1
fi
for library in pacer_core pacer_store pacer_limiter pacer_http pacer_redis pacer_beast; do
  grep -q "lib$library.a" <<<"$outputs" || { echo "FAIL: $mode: lib$library.a not built"; exit 1; }
done
for option in PACER_BUILD_APPS PACER_BUILD_PYTHON PACER_BUILD_TESTS PACER_BUILD_BENCHMARKS \
  PACER_INSTALL; do
  grep -q "^$option:BOOL=OFF" "$work_dir/CMakeCache.txt" ||
    { echo "FAIL: $mode: $option is not OFF by default"; exit 1; }
done

cmake --build "$work_dir" --target embed >"$log" 2>&1 || { cat "$log"; exit 1; }
"$work_dir/embed"
echo "$mode: the default build has the 6 libraries and no Pacer program; the consumer ran"
