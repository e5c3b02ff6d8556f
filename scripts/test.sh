#!/usr/bin/env bash
# The whole test run, as CI does it, on a fresh Debian 12 machine:
#   1. install missing packages   2. build (warnings are errors)   3. every CTest test
#   4. unit tests, the Redis safety tests and the Python suites again under ASan + UBSan
#   5. the limiter, HTTP layer and Redis store tests under TSan
#   6. a short fuzz run of every parser of untrusted input
#   7. every documented command, run as written (scripts/check-docs.py; after the others, so
#      the test slices the docs name can be listed in every build tree)
# and, before building, that every C++ file is formatted (scripts/format.sh --check); after the
# dev build, that clang-tidy finds nothing in src/, apps/ and python/src/ (scripts/tidy.sh).
# Slices: ctest --preset dev -L unit | -L http | -L integration | -L python | -L pacerd | -L install
#   | -L reliability | -L package
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

step "dependencies"
scripts/install-deps.sh

step "format: every tracked C++ file as .clang-format says"
scripts/format.sh --check

step "build: dev preset"
cmake --preset dev >/dev/null
cmake --build --preset dev

step "tidy: clang-tidy with .clang-tidy over src/, apps/ and python/src/ (the analyzer in shallow mode)"
scripts/tidy.sh

# Redis integration tests start their own redis-server processes (standalone, TLS with
# certificates made by openssl at test time, a 3-master cluster) on free loopback ports and
# stop them; redis-server and redis-cli come from install-deps. The Python package's pytest
# suite (label python) runs here too, against the extension the dev build made, on the
# in-process store, a standalone Redis and a 3-master cluster of its own.
# The packages (label package, docs/OPERATIONS.md "Packages"): a release tree of pacerd and the
# libraries (build/dev/package/release, built by the first package test alone on both cores, a few
# minutes from scratch), consumers linked by g++ and clang++-14, Pacer inside another project's
# build, and the .deb files installed with dpkg, run and purged on this machine (as root).
step "tests: all labels"
ctest --preset dev

step "build: asan preset (unit tests, Redis safety tests, the Python extension)"
cmake --preset asan >/dev/null
cmake --build --preset asan --target pacer_core_test pacer_store_test pacer_limiter_test pacer_http_test \
  pacer_redis_unit_test pacer_redis_safety_test pacer_python pacer_python_sources

step "tests: unit under ASan + UBSan"
ctest --preset asan

# Shutdown with Redis requests pending (Redis paused), handlers that throw, destruction while
# caller-owned io_contexts run: the lifetime rules of include/pacer/store.h, checked by ASan.
step "tests: Redis safety under ASan + UBSan"
ctest --preset asan-redis

# The extension's C API code (reference counts, the awaitable, the entry) under ASan + UBSan:
# every Python suite once, Redis I/O on the event loop.
step "tests: Python suites under ASan + UBSan"
ctest --preset asan-python

step "build: tsan preset (limiter, HTTP layer, Redis store)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan --target pacer_store_test pacer_limiter_test pacer_http_test pacer_redis_unit_test \
  pacer_redis_store_test pacer_redis_safety_test

step "tests: limiter, HTTP layer and Redis store under TSan"
ctest --preset tsan

if command -v clang++-14 >/dev/null; then
  step "fuzz"
  FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh
fi

# Every shell block of README.md, python/README.md, docs/ and examples/ run as written (or
# skipped with a reason in its marker): the documented ports, a release build, a venv in .venv.
step "docs: every documented command, as written (scripts/check-docs.py)"
scripts/check-docs.py --in-place

step "done"
