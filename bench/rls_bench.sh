#!/usr/bin/env bash
# pacerd's two ways of asking, side by side in one run (release build, bounded: SECONDS_PER_RUN
# each, ROUNDS interleaved rounds, medians):
#   gRPC  Envoy's ShouldRateLimit (one descriptor, hits_addend 1), driven by pacer-rls-load
#         (bench/rls_load.cc, async grpc++): --channels 4 --concurrency CONNECTIONS, 1 thread.
#   HTTP  POST /v1/check (one policy, random keys), driven by wrk -t1 -cCONNECTIONS with
#         bench/pacerd_check.lua.
# Both ask one pacerd (the same process, the same store) about random keys out of a million at
# rates so high that nothing is denied: the cost of asking is measured. Once on the in-process
# store, once on a scratch redis-server. Per run: decisions/s, p50 and p99 as the client saw
# them, and pacerd's CPU per decision (utime + stime from /proc, the fairest figure: the two
# clients share the cores with the server and do not cost the same) and its context switches
# per decision (all threads, from /proc/<pid>/task/*/status).
#   bench/rls_bench.sh [seconds per run, default 5] [rounds, default 3]
# Environment: BUILD (build/release), CONNECTIONS (64), THREADS (2, pacerd's HTTP threads),
# STORES ("memory redis").
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
build=${BUILD:-build/release}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
stores=${STORES:-memory redis}
if [ "$build" = build/release ]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target pacerd pacer-rls-load >/dev/null
fi
pacerd=$build/apps/pacerd/pacerd
load=$build/bench/pacer-rls-load

source bench/lib.sh
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
# Context switches (voluntary and not) of all of a process's threads so far.
switches_of() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }

mkdir -p "$tmp/ratelimit"
cat >"$tmp/ratelimit/bench.yaml" <<YAML
domain: bench
descriptors:
  - key: k
    rate_limit: {unit: second, requests_per_unit: 100000}
YAML

# run_one <kind> <pacerd pid> <http port> <grpc port>
#   -> "<decisions/s> <p50 ms> <p99 ms> <cpu us/decision> <switches/decision> <errors>"
run_one() {
  local kind=$1 pid=$2 http_port=$3 grpc_port=$4 before after switches out rps p50 p99 n errors
  switches=$(switches_of "$pid")
  before=$(cpu_of "$pid")
  if [ "$kind" = grpc ]; then
    out=$("$load" --target "127.0.0.1:$grpc_port" --domain bench --key k --channels 4 \
      --concurrency "$connections" --seconds "$secs") || true
    after=$(cpu_of "$pid")
    switches=$(( $(switches_of "$pid") - switches ))
    rps=$(sed -n 's/.*calls_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    n=$(sed -n 's/^calls=\([0-9]*\).*/\1/p' <<<"$out")
    errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
  else
    out=$(wrk -t1 -c"$connections" -d"${secs}s" --latency -s bench/pacerd_check.lua \
      "http://127.0.0.1:$http_port/v1/check")
    after=$(cpu_of "$pid")
    switches=$(( $(switches_of "$pid") - switches ))
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(wrk_ms "$out" 50%)
    p99=$(wrk_ms "$out" 99%)
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  fi
  echo "$rps $p50 $p99 $(echo "($after - $before) * 1000000 / $n" | bc -l)" \
    "$(echo "$switches / $n" | bc -l) ${errors:-0}"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

for store in $stores; do
  url=memory
  if [ "$store" = redis ]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    url="redis://127.0.0.1:$redis_port"
  fi
  http_port=$(free_port)
  grpc_port=$(free_port)
  cat >"$tmp/pacerd.toml" <<TOML
[server]
listen = "127.0.0.1:$http_port"
threads = $threads
[store]
url = "$url"
[[policy]]
name = "bench"
rates = [{ limit = "100000/1s", burst = 100000 }]
[grpc]
listen = "127.0.0.1:$grpc_port"
config_dir = "$tmp/ratelimit"
TOML
  "$pacerd" --config "$tmp/pacerd.toml" --log-level warn >"$tmp/pacerd-$store.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_http "$http_port" /health
  # Warm both paths (connections, scripts loaded, allocator).
  "$load" --target "127.0.0.1:$grpc_port" --domain bench --key k --seconds 1 >/dev/null
  wrk -t1 -c8 -d1s -s bench/pacerd_check.lua "http://127.0.0.1:$http_port/v1/check" >/dev/null

  echo "== $store store: pacerd gRPC ShouldRateLimit vs HTTP POST /v1/check (${secs}s runs, $connections in flight, server HTTP threads $threads)"
  printf '%-6s %-5s %12s %9s %9s %16s %17s %7s\n' round path decisions/s p50_ms p99_ms \
    cpu_us/decision switches/decision errors
  : >"$tmp/grpc.txt"
  : >"$tmp/http.txt"
  for r in $(seq "$rounds"); do
    for kind in grpc http; do
      line=$(run_one "$kind" "$pid" "$http_port" "$grpc_port")
      echo "$line" >>"$tmp/$kind.txt"
      read -r rps p50 p99 cpu switches errors <<<"$line"
      printf '%-6s %-5s %12.0f %9.3f %9.3f %16.1f %17.2f %7s\n' "$r" "$kind" "$rps" "$p50" "$p99" \
        "$cpu" "$switches" "$errors"
    done
  done
  for kind in grpc http; do
    printf 'median %-5s %12.0f %9.3f %9.3f %16.1f %17.2f\n' "$kind" \
      "$(cut -d' ' -f1 "$tmp/$kind.txt" | median)" "$(cut -d' ' -f2 "$tmp/$kind.txt" | median)" \
      "$(cut -d' ' -f3 "$tmp/$kind.txt" | median)" "$(cut -d' ' -f4 "$tmp/$kind.txt" | median)" \
      "$(cut -d' ' -f5 "$tmp/$kind.txt" | median)"
  done
  g=$(cut -d' ' -f1 "$tmp/grpc.txt" | median)
  h=$(cut -d' ' -f1 "$tmp/http.txt" | median)
  gc=$(cut -d' ' -f4 "$tmp/grpc.txt" | median)
  hc=$(cut -d' ' -f4 "$tmp/http.txt" | median)
  printf 'ratio gRPC / HTTP: %.3f decisions/s, %.3f server CPU per decision\n' \
    "$(echo "$g / $h" | bc -l)" "$(echo "$gc / $hc" | bc -l)"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
