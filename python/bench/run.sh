#!/usr/bin/env bash
# Side by side, one run: the same FastAPI app serving GET /ping with no limiter, with
# LimiterMiddleware on the in-process store, and on Redis. uvicorn (1 worker) pinned to CPU 0,
# wrk pinned to CPU 1, 32 connections, DURATION seconds per run (default 10).
#   python/bench/run.sh [build-dir]        # build-dir holds python/pacer (default build/release)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$repo/build/release}"
duration="${DURATION:-10}"
conns="${CONNECTIONS:-32}"
py=/usr/bin/python3
export PYTHONPATH="$build/python:$repo/python/bench"
[ -d "$build/python/pacer" ] || { echo "no $build/python/pacer: build target pacer_python" >&2; exit 2; }

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

redis_port=$(free_port)
taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" >/dev/null &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

run() {  # mode
  local port; port=$(free_port)
  PACER_BENCH_MODE=$1 PACER_BENCH_REDIS="redis://127.0.0.1:$redis_port" \
    taskset -c 0 $py -m uvicorn app:app --host 127.0.0.1 --port "$port" --workers 1 \
    --log-level warning --no-access-log >>"$work/uvicorn.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  # warm-up, then the measured run
  taskset -c 1 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port/ping" >/dev/null
  taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/ping" \
    > "$work/$1.txt"
  local status; status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ping")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/$1.txt"); errors=${errors:-0}
  echo "$1 $rps $p50 $p99 $errors $status"
}

echo "uvicorn $($py -c 'import uvicorn; print(uvicorn.__version__)'), 1 worker on CPU 0; wrk -t1 -c$conns -d${duration}s on CPU 1"
results=()
for mode in ${MODES:-none headers memory redis}; do results+=("$(run $mode)"); done
printf '%-8s %12s %10s %10s %8s %s\n' mode req/s p50 p99 non-2xx ratio
base=$(echo "${results[0]}" | awk '{print $2}')
for line in "${results[@]}"; do
  set -- $line
  printf '%-8s %12s %10s %10s %8s %s\n' "$1" "$2" "$3" "$4" "$5" \
    "$(echo "scale=3; $2 / $base" | bc)"
done
