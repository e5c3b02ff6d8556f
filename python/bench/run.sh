#!/usr/bin/env bash
# Side by side, one run: the same FastAPI app serving GET /ping (python/bench/app.py) with no
# limiter, with an empty async dependency taking the Request ("empty-dep"), and with Pacer's
# LimiterMiddleware ("mw-*") or Depends(limit(...)) ("dep-*") on the in-process store and on
# Redis. uvicorn 1 worker with uvloop and httptools (what production FastAPI runs) pinned to
# CPU 0; wrk -t1 and redis-server pinned to CPU 1.
# The modes take turns for ROUNDS rounds (default 3) of DURATION seconds (default 8) and the
# medians are compared: this VM's throughput drifts by 10-15% from one run to the next.
# Per mode: req/s, p50, p99, the server's CPU time (all its threads, /proc/<pid>/stat) per
# request, and on Redis EVALSHA calls (INFO commandstats) against the requests the app served:
# any difference is a decision lost (or made twice), and the run fails.
#   python/bench/run.sh [build-dir]        # build-dir holds python/pacer (default build/release)
# Environment: MODES (default: none empty-dep mw-memory mw-redis dep-memory dep-redis; also
# "headers", "mw-pass", "mw-yield", "dep-yield", "mw-ping" and "dep-ping", python/bench/app.py), ROUNDS, DURATION, CONNECTIONS, LOOP (uvloop | asyncio), HTTP (httptools | h11),
# BASELINE=<build-dir>: also runs each limited mode as "<mode>@base" on that build's package
# (before and after a change, in the same interleaved run). IO_THREAD=1: also runs each Redis
# mode as "<mode>@thread", with the engine's Redis I/O on a thread of its own (PACER_IO=thread)
# instead of the event loop's (the default). LOGS=<dir>: keeps each server's
# output there as <mode>-<round>.log (with PACER_BENCH_DIAG=1: its stalls and GC pauses).
# PACER_BENCH_GC_FREEZE=1: every app calls gc.freeze() once started (python/bench/app.py).
# Bounded: every server start, request and wrk run has a timeout; a mode that fails to start
# ends the run with its log.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$repo/build/release}"
duration="${DURATION:-8}"
rounds="${ROUNDS:-3}"
conns="${CONNECTIONS:-32}"
loop="${LOOP:-uvloop}"
http="${HTTP:-httptools}"
baseline="${BASELINE:-}"
io_thread="${IO_THREAD:-}"
py=/usr/bin/python3  # Debian's: python3-fastapi, -uvicorn, -uvloop, -httptools
[ -d "$build/python/pacer" ] || { echo "no $build/python/pacer: build target pacer_python" >&2; exit 2; }
[ -z "$baseline" ] || [ -d "$baseline/python/pacer" ] ||
  { echo "BASELINE: no $baseline/python/pacer" >&2; exit 2; }
for module in uvicorn fastapi "$loop" "$http"; do
  [ "$module" = asyncio ] && continue
  $py -c "import $module" 2>/dev/null ||
    { echo "$py cannot import $module (Debian: apt-get install python3-$module)" >&2; exit 2; }
done
for tool in wrk redis-server redis-cli curl taskset bc; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done

modes=(${MODES:-none empty-dep mw-memory mw-redis dep-memory dep-redis})
for mode in "${modes[@]}"; do
  case "$mode" in
    none | headers | empty-dep | mw-pass | mw-yield | dep-yield | mw-ping | dep-ping | \
      mw-memory | mw-redis | dep-memory | dep-redis) ;;
    *) echo "unknown mode '$mode' (none headers empty-dep mw-pass mw-yield dep-yield mw-ping" \
         "dep-ping mw-memory mw-redis dep-memory dep-redis)" >&2; exit 2 ;;
  esac
done
if [ -n "$baseline" ] || [ -n "$io_thread" ]; then
  # Each limited mode right before its variants: the VM's drift within a round hits all alike.
  paired=()
  for mode in "${modes[@]}"; do
    paired+=("$mode")
    case "$mode" in none | headers | empty-dep | *-yield | *-ping) continue ;; esac
    [ -z "$io_thread" ] || case "$mode" in *-redis) paired+=("$mode@thread") ;; esac
    [ -z "$baseline" ] || paired+=("$mode@base")
  done
  modes=("${paired[@]}")
fi

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

redis_port=$(free_port)
taskset -c 1 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" >/dev/null &
pids+=($!)
rcli() { timeout 5 redis-cli -p "$redis_port" "$@"; }
for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
rcli ping >/dev/null || { echo "redis-server did not start" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, all threads
evalsha_calls() { rcli info commandstats | tr -d '\r' |
  awk -F'[:=,]' '$1=="cmdstat_evalsha" {print $3} END {if (!NR) print 0}' | tail -1; }
served() { curl -fsS --max-time 5 "http://127.0.0.1:$1/bench/count" | tr -dc 0-9; }

run() {  # mode[@base|@thread]
  local mode=${1%@*} path="$build/python" io=loop port
  case "$1" in *@base) path="$baseline/python" ;; *@thread) io=thread ;; esac
  port=$(free_port)
  PYTHONPATH="$path:$repo/python/bench" PACER_BENCH_MODE=$mode PACER_IO=$io \
    PACER_BENCH_REDIS="redis://127.0.0.1:$redis_port" \
    taskset -c 0 $py -m uvicorn app:app --host 127.0.0.1 --port "$port" --workers 1 \
    --loop "$loop" --http "$http" --log-level warning --no-access-log >"$work/uvicorn.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 100); do curl -fs --max-time 2 "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs --max-time 5 "http://127.0.0.1:$port/ping" >/dev/null ||
    { echo "mode $1 did not start:" >&2; cat "$work/uvicorn.log" >&2; exit 1; }
  local served0; served0=$(served "$port")
  rcli config resetstat >/dev/null
  # warm-up, then the measured run
  taskset -c 1 timeout 60 wrk -t1 -c"$conns" -d2s --timeout 2s "http://127.0.0.1:$port/ping" >/dev/null
  local cpu0; cpu0=$(cpu_ticks "$pid")
  taskset -c 1 timeout $((duration + 60)) wrk -t1 -c"$conns" -d"${duration}s" --timeout 2s \
    --latency "http://127.0.0.1:$port/ping" > "$work/$1.txt"
  local cpu1; cpu1=$(cpu_ticks "$pid")
  local status; status=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ping")
  local served1; served1=$(served "$port")
  local evalsha; evalsha=$(evalsha_calls)
  kill -INT "$pid"; timeout 10 tail --pid="$pid" -f /dev/null || kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ -z "${LOGS:-}" ] || cp "$work/uvicorn.log" "$LOGS/$1-$round.log"
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
  # Requests the app served since the counters were reset, and EVALSHA calls: equal on Redis.
  local decided=$((served1 - served0)) lost=-
  case "$mode" in *-redis) lost=$((decided - evalsha)) ;; esac
  echo "$1 $rps $p50 $p99 $errors $status $us $decided $evalsha $lost"
}

per_mode=$((duration + 2 + 3))
echo "uvicorn $($py -c 'import uvicorn; print(uvicorn.__version__)') --loop $loop --http $http," \
  "1 worker on CPU 0; wrk -t1 -c$conns -d${duration}s and redis-server on CPU 1;" \
  "$rounds rounds, medians (about $((per_mode * ${#modes[@]} * rounds / 60 + 1)) min)"
for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do run "$mode" >> "$work/results"; done
done

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
col() { awk -v m="$1" -v c="$2" '$1==m {print $c}' "$work/results"; }
base=$(col none 2 | median)
base_cpu=$(col none 7 | median)
empty=""; empty_p99=""
if printf '%s\n' "${modes[@]}" | grep -qx empty-dep; then
  empty=$(col empty-dep 2 | median); empty_p99=$(col empty-dep 4 | median)
fi
p99_base=$(col none 4 | median)
printf '%-15s %9s %9s %9s %7s %9s %7s %7s %7s %9s %s\n' mode req/s p50 p99 non-2xx cpu/req \
  "vs none" "p99 x" "vs empty" "lost" "(all rounds' req/s)"
failed=0
for mode in "${modes[@]}"; do
  rps=$(col "$mode" 2 | median)
  p50=$(col "$mode" 3 | median)
  p99=$(col "$mode" 4 | median)
  errors=$(awk -v m="$mode" '$1==m {s+=$5} END {print s+0}' "$work/results")
  cpu=$(col "$mode" 7 | median)
  all=$(awk -v m="$mode" '$1==m {printf "%s ", $2}' "$work/results")
  lost=$(awk -v m="$mode" '$1==m && $10!="-" {s+=($10<0?-$10:$10); n++}
                           END {print n ? s : "-"}' "$work/results")
  [ "$lost" = "-" ] || [ "$lost" = 0 ] || failed=1
  vs_empty=-; p99x=$(echo "scale=2; $p99 / $p99_base" | bc)
  case "$mode" in dep-*)
    if [ -n "$empty" ]; then
      vs_empty=$(echo "scale=3; $rps / $empty" | bc); p99x=$(echo "scale=2; $p99 / $empty_p99" | bc)
    fi ;;
  esac
  printf '%-15s %9s %7sms %7sms %7s %7sus %7s %7s %8s %9s (%s)\n' "$mode" "$rps" "$p50" "$p99" \
    "$errors" "$cpu" "$(echo "scale=3; $rps / $base" | bc)" "$p99x" "$vs_empty" "$lost" "$all"
done
echo "p99 x: p99 over no limiter's (dep-*: over empty-dep's); lost: |served - EVALSHA| summed"
echo "over the rounds (Redis modes; non-zero fails the run); cpu/req: server CPU per request"
[ "$failed" = 0 ] || { echo "FAILED: EVALSHA calls differ from the requests served" >&2; exit 1; }
