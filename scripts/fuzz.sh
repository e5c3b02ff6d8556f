#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake option PACER_BUILD_FUZZERS, the `fuzz` preset: clang-14,
# ASan + UBSan, tests/fuzz/CMakeLists.txt lists them) and runs each for a bounded time:
#   ip_fuzz    addresses, CIDRs, trusted proxies (src/http/address.cc), proxy headers
#              (src/http/client_ip.cc)
#   resp_fuzz  the RESP reader over hiredis (src/redis/reply_reader.cc)
#   http_fuzz  whole requests through HttpLimiter on a MemoryStore (http, limiter, store, core)
#   pacerd_api_fuzz  pacerd's JSON request parser (apps/pacerd/api.cc)
#   script_step_fuzz the Redis module's step over any stored value (src/redis/script_step.cc)
#
#   scripts/fuzz.sh                          # 20 s per target (scripts/test.sh does this)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh        # longer runs
#   FUZZ_TARGETS="resp_fuzz" scripts/fuzz.sh # a subset
#   FUZZ_JOBS=4 scripts/fuzz.sh              # parallel fuzzing processes per target
#
# Corpora grow in build/fuzz/<target>-corpus (seeded from tests/fuzz/corpus/<target>); a crash
# fails the script, printing the log tail and the crashing input, kept in
# build/fuzz/<target>-crashes/. Reproduce with: build/fuzz/tests/fuzz/<target> <input>.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-ip_fuzz resp_fuzz http_fuzz pacerd_api_fuzz script_step_fuzz rls_config_fuzz}
jobs=${FUZZ_JOBS:-1}
out=$root/build/fuzz
cmake --preset fuzz >/dev/null
# shellcheck disable=SC2086  # one target per word
cmake --build --preset fuzz --target $targets
for target in $targets; do ln -sf "$out/tests/fuzz/$target" "$out/$target"; done

status=0
for target in $targets; do
  corpus="$out/$target-corpus"
  crashes="$out/$target-crashes/"
  seeds="$root/tests/fuzz/corpus/$target"
  log="$out/$target.log"
  mkdir -p "$corpus" "$crashes"
  rm -f "$out"/fuzz-*.log
  dirs=("$corpus")
  [[ -d "$seeds" ]] && dirs+=("$seeds")
  echo "fuzz: $target for ${seconds}s"
  args=(-max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048
    -print_final_stats=1 -artifact_prefix="$crashes")
  # -jobs runs that many fuzzing processes, each logging to fuzz-<n>.log in the working
  # directory (build/fuzz); they share the corpus directory.
  (( jobs > 1 )) && args+=(-jobs="$jobs" -workers="$jobs")
  if ! (cd "$out" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "./$target" "${args[@]}" "${dirs[@]}") >"$log" 2>&1; then
    status=1
    echo "fuzz: $target FAILED; last lines of its log:"
    tail -60 "$log"
    for worker in "$out"/fuzz-*.log; do [[ -e "$worker" ]] && tail -60 "$worker"; done
    echo "fuzz: log: $log"
    found=$(find "$crashes" -type f -newer "$out/$target" 2>/dev/null | head -5)
    if [[ -n "$found" ]]; then
      echo "fuzz: crashing input(s); reproduce with $out/$target <file>:"
      echo "$found" | sed 's/^/  /'
    fi
    continue
  fi
  execs=$(find "$out" -maxdepth 1 \( -name "$target.log" -o -name 'fuzz-*.log' \) -exec cat {} + |
    awk '/stat::number_of_executed_units/ {sum += $2} END {print sum + 0}')
  units=$(find "$corpus" -type f | wc -l)
  echo "fuzz: $target ok: $execs executions in ${seconds}s, corpus of $units inputs"
done
exit $status
