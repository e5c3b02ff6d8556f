#!/usr/bin/env bash
# Every benchmark of docs/PERFORMANCE.md in one run (release build), on this machine:
#   in-process store (Google Benchmark), the HTTP layer, wrk against pacer-demo, and the Redis
#   store with pacer-bench beside redis-benchmark on a scratch redis-server.
#   scripts/bench.sh [quick]      # quick: shorter runs
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${1:-}
secs=5; [ "$quick" = quick ] && secs=2
cmake --preset release >/dev/null
cmake --build --preset release --target pacer_store_benchmark pacer_http_benchmark pacer-demo pacer-bench >/dev/null
bin=build/release

echo "== in-process store"
"$bin/bench/pacer_store_benchmark" --benchmark_min_time=1 2>/dev/null | grep -E '^BM_'
echo "== HTTP layer (no sockets)"
"$bin/bench/pacer_http_benchmark" 2>/dev/null | grep -E '^BM_'
echo "== wrk: pacer-demo /limited vs / (same server, same run)"
scripts/wrk-demo.sh "$secs" 3 | tail -2

echo "== Redis store (scratch redis-server on a free port)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize yes --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
url="redis://127.0.0.1:$port"
echo "-- 256 concurrent checks on one connection, one hot key; then redis-benchmark -P 16"
"$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url" --concurrency 256 \
  --seconds "$secs" --redis-benchmark 2>/dev/null
echo "-- 256 concurrent checks, 100k keys"
"$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url" --concurrency 256 \
  --keys 100000 --seconds "$secs" 2>/dev/null | grep decisions_per_s
echo "-- one sequential check at a time (latency)"
"$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url" --concurrency 1 \
  --seconds "$secs" 2>/dev/null | grep decisions_per_s
echo "-- one abusive key: 1000 checks/s against 10/s for 10 s (deny cache)"
"$bin/apps/pacer-bench/pacer-bench" --store redis --url "$url" --keys 1 --rate 10/1s --burst 0 \
  --send-rate 1000 --seconds 10 --print-admitted --key-prefix abuse 2>/dev/null |
  grep -E 'checks=|round_trip_share|admitted'

echo "== pacerd: /v1/check vs pacer-demo /, nginx auth_request vs limit_req"
bench/pacerd_bench.sh "$secs" 1

echo "== FastAPI: GET /ping without a limiter, with LimiterMiddleware in process and on Redis"
ROUNDS=1 DURATION="$secs" python/bench/run.sh "$bin"
