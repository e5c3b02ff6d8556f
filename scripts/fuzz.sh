#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time.
#   scripts/fuzz.sh            # 20 s per target
#   FUZZ_SECONDS=600 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
out=build/fuzz
mkdir -p "$out"
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude)
clang++-14 "${flags[@]}" tests/fuzz/ip_fuzz.cc src/http/ip.cc src/http/request_view.cc src/core/text.cc \
  -o "$out/ip_fuzz"
for target in ip_fuzz; do
  corpus="$out/$target-corpus"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${seconds}s"
  "$out/$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$corpus" \
    2>"$out/$target.log" || { tail -50 "$out/$target.log"; exit 1; }
  grep -E "stat::number_of_executed_units" "$out/$target.log"
done
