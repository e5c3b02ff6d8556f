#!/usr/bin/env bash
# Two builds of pacer-bench (e.g. before and after a change of the Redis script) side by side
# in one run on one scratch redis-server: for one rate and for three rates, pacer-bench with 64
# checks in flight over 10k keys, then redis-benchmark -c 32 -P 16 with the same script and
# arguments (--redis-benchmark). Prints decisions/s and the script's Redis CPU per decision
# (usec_per_call of EVALSHA) of each run; the builds take turns ROUNDS times (the cores are
# shared, so alternating spreads any neighbour's load over both).
#   bench/redis_script_compare.sh <pacer-bench A> <pacer-bench B> [seconds per run, default 5]
# Environment: ROUNDS (3).
set -euo pipefail
a=$1
b=$2
secs=${3:-5}
rounds=${ROUNDS:-3}
# shellcheck source=scripts/lib/scratch_redis.sh
source "$(dirname "$0")/../scripts/lib/scratch_redis.sh"
three_rates=(--rate 1000/1s --rate 20000/1m --rate 1000000/1h --burst 1000)
for round in $(seq "$rounds"); do
  for shape in one three; do
    extra=()
    [ "$shape" = three ] && extra=("${three_rates[@]}")
    for build in A B; do
      binary=$a
      [ "$build" = B ] && binary=$b
      redis-cli -p "$port" flushall >/dev/null
      out=$("$binary" --store redis --url "redis://127.0.0.1:$port" --concurrency 64 \
        --keys 10000 --seconds "$secs" --redis-benchmark "${extra[@]}" 2>/dev/null)
      echo "round=$round rates=$shape build=$build" \
        "$(echo "$out" | grep -oE '(decisions_per_s|redis_usec_per_call|redis_benchmark_c32_P16_per_s|redis_benchmark_usec_per_call)=[0-9.a-z]+' | tr '\n' ' ')"
    done
  done
done
