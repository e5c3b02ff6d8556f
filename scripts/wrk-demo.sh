#!/usr/bin/env bash
# Measures what rate limiting costs over HTTP: wrk against pacer-demo's /limited (limit set so
# high that nothing is denied) and its unlimited / route, alternating (ABBA), in the same run;
# req/s and the server's CPU time per request.
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

# The server's CPU time (user + system, all threads) in clock ticks: other load on the machine
# moves it less than it moves throughput.
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
# Prints "<req/s> <server CPU microseconds per request>" for one wrk run on route $1.
run() {
  local before out after
  before=$(ticks)
  out=$(wrk -t"${WRK_THREADS:-2}" -c"${CONNECTIONS:-64}" -d"${seconds}s" "http://127.0.0.1:$port$1")
  after=$(ticks)
  echo "$out" | awk -v cpu=$((after - before)) -v hz="$hz" \
    '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {print r, cpu * 1e6 / hz / n}'
}
wrk -t1 -c8 -d2s "http://127.0.0.1:$port/limited" >/dev/null  # warm up
total_free=0; total_limited=0; cpu_free=0; cpu_limited=0
# Odd rounds run / first, even rounds /limited first: a drift in the machine's speed during the
# run (other tenants, frequency) then favours neither route.
for r in $(seq "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    read -r free free_us < <(run /); read -r limited limited_us < <(run /limited)
  else
    read -r limited limited_us < <(run /limited); read -r free free_us < <(run /)
  fi
  printf 'round %d: unlimited / %10.0f req/s   limited /limited %10.0f req/s   ratio %.3f   CPU/request %.2f / %.2f us   ratio %.3f\n' \
    "$r" "$free" "$limited" "$(echo "$limited / $free" | bc -l)" "$free_us" "$limited_us" \
    "$(echo "$free_us / $limited_us" | bc -l)"
  total_free=$(echo "$total_free + $free" | bc -l); total_limited=$(echo "$total_limited + $limited" | bc -l)
  cpu_free=$(echo "$cpu_free + $free_us" | bc -l); cpu_limited=$(echo "$cpu_limited + $limited_us" | bc -l)
done
printf 'mean:    unlimited   %10.0f req/s   limited          %10.0f req/s   ratio %.3f\n' \
  "$(echo "$total_free / $rounds" | bc -l)" "$(echo "$total_limited / $rounds" | bc -l)" \
  "$(echo "$total_limited / $total_free" | bc -l)"
printf 'server CPU per request: unlimited %.2f us   limited %.2f us   ratio %.3f\n' \
  "$(echo "$cpu_free / $rounds" | bc -l)" "$(echo "$cpu_limited / $rounds" | bc -l)" \
  "$(echo "$cpu_free / $cpu_limited" | bc -l)"
denied=$(curl -s "http://127.0.0.1:$port/metrics" | sed -E 's/.*"requests_blocked":([0-9]+).*/\1/')
echo "requests denied during the run: $denied"
