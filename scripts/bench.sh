#!/usr/bin/env bash
# Every benchmark of docs/PERFORMANCE.md in one run (release build), on this machine:
#   in-process store (Google Benchmark), the HTTP layer, wrk against pacer-demo, and the Redis
#   store with pacer-bench beside redis-benchmark on a scratch redis-server (decisions/s and the
#   script's Redis CPU per decision, usec_per_call, against the targets of issue 9).
#   scripts/bench.sh [quick]      # quick: shorter runs
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
secs=5; [ "$quick" = quick ] && secs=2
cmake --preset release >/dev/null
cmake --build --preset release --target pacer_store_benchmark pacer_http_benchmark pacer-demo pacer-bench >/dev/null
bin=build/release

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== in-process store"
# 5 repetitions each, medians shown (the JSON keeps every repetition for bench/targets.py).
reps=(--benchmark_repetitions=5 --benchmark_display_aggregates_only=true)
"$bin/bench/pacer_store_benchmark" --benchmark_min_time=0.2 "${reps[@]}" \
  --benchmark_out="$out/store.json" --benchmark_out_format=json 2>/dev/null | grep -E '^BM_.*_median'
echo "== HTTP layer (no sockets)"
"$bin/bench/pacer_http_benchmark" --benchmark_min_time=0.2 "${reps[@]}" \
  --benchmark_out="$out/http.json" --benchmark_out_format=json 2>/dev/null | grep -E '^BM_.*_median'
echo "== wrk: pacer-demo limited vs unlimited route (same server, same run)"
for c in 16 64 256; do
  echo "-- $c connections"
  CONNECTIONS=$c scripts/wrk-demo.sh "$secs" 4 | tee "$out/wrk-$c.txt" | tail -3
done
echo "== issue 10 figures beside their targets (this run)"
python3 bench/targets.py "$out"
rm -rf "$out"  # the scratch Redis below sets its own EXIT trap

echo "== Redis store (scratch redis-server on a free port)"
# shellcheck source=scripts/lib/scratch_redis.sh
source scripts/lib/scratch_redis.sh
bench=("$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url")
# Redis CPU per decision (usec_per_call of EVALSHA in INFO commandstats, over the run) is the
# ceiling of every Redis deployment: 1e6 / usec_per_call decisions/s per Redis core.
field() { sed -n "s/.*$1=\([0-9.a-z]*\).*/\1/p" | head -1; }
verdict() { python3 -c "import sys; v=sys.argv[1]; print('met' if v.replace('.','',1).isdigit() and float(v) <= float(sys.argv[2]) else 'NOT met')" "$1" "$2"; }
three_rates=(--rate 1000/1s --rate 20000/1m --rate 1000000/1h --burst 1000)
for shape in one three; do
  if [ "$shape" = one ]; then extra=(); target=4; else extra=("${three_rates[@]}"); target=6; fi
  echo "-- $shape rate(s): 64 concurrent checks, 10k keys; then redis-benchmark -c 32 -P 16 (same script, keys, arguments)"
  out=$("${bench[@]}" --concurrency 64 --keys 10000 --seconds "$secs" --redis-benchmark "${extra[@]}" 2>/dev/null)
  echo "$out" | grep -E 'decisions_per_s|redis_usec_per_call|redis_benchmark'
  upc=$(echo "$out" | field redis_usec_per_call)
  echo "   redis_usec_per_call=$upc target<=$target us: $(verdict "$upc" "$target")"
  echo "   pacer-bench $(echo "$out" | field decisions_per_s)/s vs redis-benchmark ceiling $(echo "$out" | field redis_benchmark_c32_P16_per_s)/s (our script; FastAPI Pacer's is not here)"
done
echo "-- 256 concurrent checks on one connection, one hot key"
"${bench[@]}" --concurrency 256 --seconds "$secs" 2>/dev/null | grep -E 'decisions_per_s|redis_usec_per_call'
echo "-- 256 concurrent checks, 100k keys"
"${bench[@]}" --concurrency 256 --keys 100000 --seconds "$secs" 2>/dev/null |
  grep -E 'decisions_per_s|redis_usec_per_call'
echo "-- one sequential check at a time (latency)"
"$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url" --concurrency 1 \
  --seconds "$secs" 2>/dev/null | grep decisions_per_s
echo "-- one abusive key: 1000 checks/s against 10/s for 10 s (deny cache)"
"$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url" --keys 1 --rate 10/1s --burst 0 \
  --send-rate 1000 --seconds 10 --print-admitted --key-prefix abuse 2>/dev/null |
  grep -E 'checks=|round_trip_share|admitted'

echo "== Redis Cluster (3 masters): io_threads 1 vs 2 (target: 2 > 1)"
bench/cluster_io_threads.sh "$bin/apps/pacer-bench/pacer-bench" "$secs" 1

echo "== pacerd: /v1/check vs pacer-demo /, nginx auth_request vs limit_req"
bench/pacerd_bench.sh "$secs" 1

echo "== pacerd: Envoy's ShouldRateLimit over gRPC vs POST /v1/check, both stores"
bench/rls_bench.sh "$secs" 1

echo "== FastAPI: GET /ping without a limiter, with LimiterMiddleware in process and on Redis"
ROUNDS=1 DURATION="$secs" python/bench/run.sh "$bin"
