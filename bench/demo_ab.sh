#!/usr/bin/env bash
# Two builds of pacer-demo (e.g. before and after a change) under wrk in one run: each serves
# /limited (a limit so high that nothing is denied) in turn, ABBA, ROUNDS times; prints req/s
# and the server's CPU time per request of every run, then the medians and B's ratios.
#   bench/demo_ab.sh <pacer-demo A> <pacer-demo B> [seconds per run, default 5]
# Environment: ROUNDS (4), CONNECTIONS (64), WRK_THREADS (2), PORT (18090).
set -euo pipefail
a=$1
b=$2
seconds=${3:-5}
rounds=${ROUNDS:-4}
port=${PORT:-18090}
hz=$(getconf CLK_TCK)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# One wrk run against a fresh server of build $1; prints "<req/s> <CPU us per request>".
run() {
  RATE_PERMITS=1000000000 RATE_PERIOD=1s RATE_BURST=1000000000 "$1" --port "$port" \
    >/dev/null 2>&1 &
  local pid=$! before after out
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  wrk -t1 -c8 -d1s "http://127.0.0.1:$port/limited" >/dev/null  # warm up
  before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  out=$(wrk -t"${WRK_THREADS:-2}" -c"${CONNECTIONS:-64}" -d"${seconds}s" \
    "http://127.0.0.1:$port/limited")
  after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  echo "$out" | awk -v cpu=$((after - before)) -v hz="$hz" \
    '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {print r, cpu * 1e6 / hz / n}'
}
for r in $(seq "$rounds"); do
  order="A B"
  [ $((r % 2)) -eq 0 ] && order="B A"
  for build in $order; do
    binary=$a
    [ "$build" = B ] && binary=$b
    read -r rps us < <(run "$binary")
    echo "round=$r build=$build req_per_s=$rps cpu_us_per_request=$us" | tee -a "$results"
  done
done
python3 - "$results" <<'PY'
import statistics, sys
runs = [dict(kv.split("=") for kv in line.split()) for line in open(sys.argv[1])]
med = lambda b, f: statistics.median(float(r[f]) for r in runs if r["build"] == b)
for b in "AB":
    print(f"{b}: median {med(b, 'req_per_s'):.0f} req/s, {med(b, 'cpu_us_per_request'):.2f} us CPU per request")
print(f"B/A: req/s {med('B', 'req_per_s') / med('A', 'req_per_s'):.3f}, "
      f"CPU per request {med('B', 'cpu_us_per_request') / med('A', 'cpu_us_per_request'):.3f}")
PY
