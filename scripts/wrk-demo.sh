#!/usr/bin/env bash
# Measures what rate limiting costs over HTTP: wrk against pacer-demo's /limited (limit set so
# high that nothing is denied) and its unlimited / route, alternating, in the same run.
#   scripts/wrk-demo.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
port=${PORT:-18080}
demo=build/release/apps/pacer-demo/pacer-demo
[ -x "$demo" ] || { cmake --preset release >/dev/null && cmake --build --preset release --target pacer-demo; }

# The server's default (one thread per core) against wrk with as many threads; THREADS=1
# WRK_THREADS=1 pins one of each, which magnifies the per-request cost (docs/PERFORMANCE.md).
RATE_PERMITS=1000000000 RATE_PERIOD=1s RATE_BURST=1000000000 THREADS=${THREADS:-0} \
  "$demo" --port "$port" >/tmp/pacer-wrk-demo.log 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

rps() { wrk -t"${WRK_THREADS:-2}" -c"${CONNECTIONS:-64}" -d"${seconds}s" "http://127.0.0.1:$port$1" |
        awk '/Requests\/sec/ {print $2}'; }
wrk -t1 -c8 -d2s "http://127.0.0.1:$port/limited" >/dev/null  # warm up
total_free=0; total_limited=0
for r in $(seq "$rounds"); do
  free=$(rps /); limited=$(rps /limited)
  printf 'round %d: unlimited / %10.0f req/s   limited /limited %10.0f req/s   ratio %.3f\n' \
    "$r" "$free" "$limited" "$(echo "$limited / $free" | bc -l)"
  total_free=$(echo "$total_free + $free" | bc -l); total_limited=$(echo "$total_limited + $limited" | bc -l)
done
printf 'mean:    unlimited   %10.0f req/s   limited          %10.0f req/s   ratio %.3f\n' \
  "$(echo "$total_free / $rounds" | bc -l)" "$(echo "$total_limited / $rounds" | bc -l)" \
  "$(echo "$total_limited / $total_free" | bc -l)"
denied=$(curl -s "http://127.0.0.1:$port/metrics" | sed -E 's/.*"requests_blocked":([0-9]+).*/\1/')
echo "requests denied during the run: $denied"
