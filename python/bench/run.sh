#!/usr/bin/env bash
# Side by side, one run: the same FastAPI app serving GET /ping with no limiter ("none"), with
# only the three RateLimit-* headers the limiter adds ("headers": what writing them costs),
# with LimiterMiddleware on the in-process store ("memory"), and on Redis ("redis").
# uvicorn (1 worker) pinned to CPU 0, wrk pinned to CPU 1 with Redis, 32 connections.
# The modes take turns for ROUNDS rounds (default 3) of DURATION seconds (default 8), and the
# medians are compared: this VM's throughput drifts by 10-15% from one run to the next.
#   python/bench/run.sh [build-dir]        # build-dir holds python/pacer (default build/release)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$repo/build/release}"
duration="${DURATION:-8}"
rounds="${ROUNDS:-3}"
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads

run() {  # mode
  local port; port=$(free_port)
  PACER_BENCH_MODE=$1 PACER_BENCH_REDIS="redis://127.0.0.1:$redis_port" \
    taskset -c 0 $py -m uvicorn app:app --host 127.0.0.1 --port "$port" --workers 1 \
    --log-level warning --no-access-log >>"$work/uvicorn.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  # warm-up, then the measured run
  taskset -c 1 wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port/ping" >/dev/null
  local cpu0; cpu0=$(cpu_ticks "$pid")
  taskset -c 1 wrk -t1 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/ping" \
    > "$work/$1.txt"
  local cpu1; cpu1=$(cpu_ticks "$pid")
  local status; status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ping")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  # wrk prints latencies as 850.00us, 7.92ms or 1.20s: in milliseconds here
  to_ms='{v=$2; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v);
          print (u=="us" ? v/1000 : (u=="s" ? v*1000 : v))}'
  p50=$(awk '$1=="50%"' "$work/$1.txt" | awk "$to_ms")
  p99=$(awk '$1=="99%"' "$work/$1.txt" | awk "$to_ms")
  errors=$(awk '/Non-2xx/ {print $5}' "$work/$1.txt"); errors=${errors:-0}
  # CPU time of the server process (all its threads) per request, in microseconds: steadier
  # than req/s on a VM whose speed drifts, and what a CPU-bound server's capacity follows.
  local requests; requests=$(awk '/requests in/ {print $1}' "$work/$1.txt")
  local us; us=$(echo "scale=1; ($cpu1 - $cpu0) * 1000000 / $(getconf CLK_TCK) / $requests" | bc)
  echo "$1 $rps $p50 $p99 $errors $status $us"
}

modes=(${MODES:-none headers memory redis})
echo "uvicorn $($py -c 'import uvicorn; print(uvicorn.__version__)'), 1 worker on CPU 0;" \
  "wrk -t1 -c$conns -d${duration}s on CPU 1; $rounds rounds, medians"
for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do run "$mode" >> "$work/results"; done
done
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
base=$(awk '$1=="none" {print $2}' "$work/results" | median)
printf '%-8s %10s %10s %10s %8s %10s %s\n' mode req/s p50 p99 non-2xx cpu/req \
  "ratio: req/s, cpu (all rounds' req/s)"
base_cpu=$(awk '$1=="none" {print $7}' "$work/results" | median)
for mode in "${modes[@]}"; do
  rps=$(awk -v m="$mode" '$1==m {print $2}' "$work/results" | median)
  p50=$(awk -v m="$mode" '$1==m {print $3}' "$work/results" | median)
  p99=$(awk -v m="$mode" '$1==m {print $4}' "$work/results" | median)
  errors=$(awk -v m="$mode" '$1==m {s+=$5} END {print s+0}' "$work/results")
  cpu=$(awk -v m="$mode" '$1==m {print $7}' "$work/results" | median)
  all=$(awk -v m="$mode" '$1==m {printf "%s ", $2}' "$work/results")
  printf '%-8s %10s %8sms %8sms %8s %8sus %s %s (%s)\n' "$mode" "$rps" "$p50" "$p99" "$errors" \
    "$cpu" "$(echo "scale=3; $rps / $base" | bc)" "$(echo "scale=3; $base_cpu / $cpu" | bc)" "$all"
done
