#!/usr/bin/env bash
# Instructions per request of the benchmark app called directly (python/bench/asgi_calls.py: no
# HTTP, no wrk): callgrind counts the whole process with 1,000 and with 3,000 requests, and the
# difference over 2,000 is one request's instructions. A count, not a time: it does not move
# with what else the VM runs (wrk's req/s here moves by 10-30% between runs), so a change of a
# few hundred instructions per request shows.
#   python/bench/instructions.sh [build-dir]     (default build/release: its python/pacer)
# Environment: MODES (default: none mw-pass mw-memory empty-dep dep-memory; asgi_calls.py lists
# the others: mw-redis and dep-redis run against a scratch redis-server started here),
# BASELINE=<build-dir>: each mode also on that build's package, printed beside; LOOP=asyncio:
# asyncio's own event loop instead of uvloop's.
# PYTHONHASHSEED is fixed and address randomisation off: both change dict layouts, and with them
# the counts.
# Two callgrind runs per mode and build, about 25 s each; both cores are used.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$repo/build/release}"
baseline="${BASELINE:-}"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
for dir in "$build" ${baseline:+"$baseline"}; do
  [ -d "$dir/python/pacer" ] ||
    { echo "no $dir/python/pacer: build target pacer_python" >&2; exit 2; }
done

modes="${MODES:-none mw-pass mw-memory empty-dep dep-memory}"
case " $modes " in
  *-redis\ *)
    command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 2; }
    work="$(mktemp -d)"
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
    redis_pid=$!
    trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    export PACER_BENCH_REDIS="redis://127.0.0.1:$port"
    ;;
esac

# Address space layout randomisation moves objects, and with them the layouts of dicts keyed by
# id(): counts then differ by 1-2k per request between runs of one build. Without it (setarch
# -R, util-linux) they agree within a few dozen.
norandom=()
setarch "$(uname -m)" -R true 2>/dev/null && norandom=(setarch "$(uname -m)" -R)

count() {  # build mode requests -> instructions of the whole run
  PYTHONPATH="$1/python" PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 "${norandom[@]}" valgrind --tool=callgrind \
    --callgrind-out-file=/dev/null /usr/bin/python3 "$repo/python/bench/asgi_calls.py" "$2" "$3" \
    2>&1 | awk '/Collected :/ { print $4 } /usage|Error|Traceback/ { print > "/dev/stderr" }'
}

per_request() {  # build mode -> instructions per request
  local small large tmp
  tmp=$(mktemp)
  count "$1" "$2" 1000 > "$tmp" &
  large=$(count "$1" "$2" 3000)
  wait $!
  small=$(cat "$tmp")
  rm -f "$tmp"
  [ -n "$small" ] && [ -n "$large" ] || { echo "mode $2 failed on $1" >&2; exit 1; }
  echo $(( (large - small) / 2000 ))
}

printf '%-12s %14s' mode instructions
[ -n "$baseline" ] && printf ' %14s %8s' baseline change
printf '\n'
for mode in $modes; do
  now=$(per_request "$build" "$mode")
  printf '%-12s %14s' "$mode" "$now"
  if [ -n "$baseline" ]; then
    before=$(per_request "$baseline" "$mode")
    printf ' %14s %+7.1f%%' "$before" "$(echo "($now - $before) * 100 / $before" | bc -l)"
  fi
  printf '\n'
done
