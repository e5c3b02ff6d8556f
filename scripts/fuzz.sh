#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time:
#   ip_fuzz    addresses, CIDRs, trusted proxies, proxy headers (src/http/ip.cc)
#   resp_fuzz  the RESP reader over hiredis (src/redis/reply_reader.cc)
#   http_fuzz  whole requests through HttpLimiter on a MemoryStore (http, limiter, store, core)
#   pacerd_api_fuzz  pacerd's JSON request parser (apps/pacerd/api.cc)
#
#   scripts/fuzz.sh                          # 20 s per target (scripts/test.sh does this)
#   FUZZ_SECONDS=3600 scripts/fuzz.sh        # longer runs
#   FUZZ_TARGETS="resp_fuzz" scripts/fuzz.sh # a subset
#   FUZZ_JOBS=4 scripts/fuzz.sh              # parallel fuzzing processes per target
#
# Corpora grow in build/fuzz/<target>-corpus (seeded from tests/fuzz/corpus/<target>); a crash
# fails the script, printing the log tail and the crashing input, kept in
# build/fuzz/<target>-crashes/. Reproduce with: build/fuzz/<target> <input>.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-ip_fuzz resp_fuzz http_fuzz pacerd_api_fuzz}
jobs=${FUZZ_JOBS:-1}
out=$root/build/fuzz
mkdir -p "$out/obj"
cxx=clang++-14
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
  -Iinclude -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB -DSPDLOG_SHARED_LIB)

# Compiles one source to an object, again only when the source or any header is newer, so a
# second run does not rebuild the library sources. Globs pick up new files in each layer.
stamp="$out/obj/.stamp"
newer_header=$(find include src apps/pacerd apps/common -name "*.h" -newer "$stamp" 2>/dev/null | head -1) || true
[[ -e "$stamp" && -z "$newer_header" ]] || rm -f "$out"/obj/*.o
touch "$stamp"
object() {
  local src=$1 obj="$out/obj/$(echo "$1" | tr / _).o"
  if [[ ! -e "$obj" || "$src" -nt "$obj" ]]; then
    "$cxx" "${flags[@]}" -Isrc/redis -Iapps/pacerd -Iapps/common -c "$src" -o "$obj"
  fi
  echo "$obj"
}
objects() {
  local src
  for src in "$@"; do object "$src" || return 1; done
}

build() {
  local objs libs=()
  case $1 in
    ip_fuzz)
      objs=$(objects tests/fuzz/ip_fuzz.cc src/http/ip.cc src/http/request_view.cc src/core/text.cc)
      ;;
    resp_fuzz)
      objs=$(objects tests/fuzz/resp_fuzz.cc src/redis/reply_reader.cc)
      libs=(-lhiredis)
      ;;
    http_fuzz)
      objs=$(objects tests/fuzz/http_fuzz.cc src/core/*.cc src/store/*.cc src/limiter/*.cc \
        src/http/*.cc)
      libs=(-lspdlog -lfmt -lcrypto -pthread)
      ;;
    pacerd_api_fuzz)
      objs=$(objects tests/fuzz/pacerd_api_fuzz.cc apps/pacerd/api.cc src/core/*.cc \
        src/http/response.cc)
      libs=(-lfmt)
      ;;
    *)
      echo "fuzz: unknown target '$1' (expected ip_fuzz, resp_fuzz, http_fuzz or pacerd_api_fuzz)" >&2
      exit 2
      ;;
  esac
  # shellcheck disable=SC2086  # one object path per word
  "$cxx" -fsanitize=fuzzer,address,undefined $objs "${libs[@]}" -o "$out/$1"
}

for target in $targets; do
  echo "fuzz: building $target"
  build "$target"
done

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
