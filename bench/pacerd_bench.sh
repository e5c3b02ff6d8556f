#!/usr/bin/env bash
# pacerd under wrk, side by side in one run (release build, bounded: SECONDS_PER_RUN each):
#   1. POST /v1/check (keep-alive, random keys) against pacer-demo's unlimited GET /, same
#      server threads, wrk threads and connections (target: >= 80%).
#   2. nginx with auth_request to pacerd (examples/nginx/) against the same nginx with its
#      built-in limit_req at the same rate, in front of pacer-demo's / (target: >= 50%), p99.
# Rates are set so high that nothing is denied: the cost of asking is measured, not 429s.
# Each pair runs alternately ROUNDS times (default 2; the cores are shared, so alternating
# spreads any neighbour's load over both); the ratio is of the sums.
#   bench/pacerd_bench.sh [seconds per run, default 5] [rounds, default 2]
# Environment: BUILD (build/release), WRK_THREADS (2), CONNECTIONS (64), THREADS (2, server
# threads of pacerd and pacer-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-5}
rounds=${2:-2}
build=${BUILD:-build/release}
wrk_threads=${WRK_THREADS:-2}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
if [ "$build" = build/release ]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target pacerd pacer-demo >/dev/null
fi
pacerd=$build/apps/pacerd/pacerd
demo=$build/apps/pacer-demo/pacer-demo
nginx=$(command -v nginx || echo /usr/sbin/nginx)

source bench/lib.sh

# wrk: prints "<req/s> <p99 ms> <non-2xx>".
run_wrk() {
  local out
  out=$(wrk -t"$wrk_threads" -c"$connections" -d"${secs}s" --latency "$@")
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(wrk_ms "$out" 99%)
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$rps $p99 ${non2xx:-0}"
}

demo_port=$(free_port)
RATE_PERMITS=1000000000 RATE_PERIOD=1s RATE_BURST=1000000000 THREADS=$threads \
  "$demo" --port "$demo_port" >"$tmp/demo.log" 2>&1 &
pids+=($!)
pacerd_port=$(free_port)
cat >"$tmp/pacerd.toml" <<TOML
[server]
listen = "127.0.0.1:$pacerd_port"
threads = $threads
[store]
url = "memory"
[[policy]]
name = "bench"
rates = [{ limit = "1000000000/1s", burst = 1000000000 }]
[[policy]]
name = "web"
rates = [{ limit = "1000000/1s", burst = 1000000 }]
identity = "client_ip"
TOML
"$pacerd" --config "$tmp/pacerd.toml" --log-level warn >"$tmp/pacerd.log" 2>&1 &
pids+=($!)
wait_http "$demo_port" /health
wait_http "$pacerd_port" /health

echo "== 1. pacerd POST /v1/check vs pacer-demo GET / (wrk -t$wrk_threads -c$connections, ${secs}s each, server threads $threads)"
wrk -t1 -c8 -d1s "http://127.0.0.1:$demo_port/" >/dev/null
wrk -t1 -c8 -d1s -s bench/pacerd_check.lua "http://127.0.0.1:$pacerd_port/v1/check" >/dev/null
# compare <label A> <label B> <target ratio> <wrk args for A> -- <wrk args for B>
compare() {
  local label_a=$1 label_b=$2 target=$3; shift 3
  local args_a=() args_b=()
  while [ "$1" != -- ]; do args_a+=("$1"); shift; done; shift
  args_b=("$@")
  local sum_a=0 sum_b=0 r rps p99 bad
  for r in $(seq "$rounds"); do
    read -r rps p99 bad <<<"$(run_wrk "${args_a[@]}")"
    printf 'round %d  %-36s %10.0f req/s  p99 %7s ms  non-2xx %s\n' "$r" "$label_a" "$rps" "$p99" "$bad"
    sum_a=$(echo "$sum_a + $rps" | bc -l)
    read -r rps p99 bad <<<"$(run_wrk "${args_b[@]}")"
    printf 'round %d  %-36s %10.0f req/s  p99 %7s ms  non-2xx %s\n' "$r" "$label_b" "$rps" "$p99" "$bad"
    sum_b=$(echo "$sum_b + $rps" | bc -l)
  done
  printf 'ratio %s / %s: %.3f (target >= %s)\n' "$label_b" "$label_a" \
    "$(echo "$sum_b / $sum_a" | bc -l)" "$target"
}
compare "pacer-demo GET / (no limit)" "pacerd POST /v1/check" 0.80 \
  "http://127.0.0.1:$demo_port/" -- \
  -s bench/pacerd_check.lua "http://127.0.0.1:$pacerd_port/v1/check"

echo "== 2. nginx + auth_request to pacerd vs nginx limit_req (same rate, 1 worker, ${secs}s each)"
nginx_run() {  # name, server block file -> port
  local name=$1 port=$2 dir="$tmp/nginx-$1"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  include $dir/servers.conf;
}
CONF
  cp "$3" "$dir/servers.conf"
  "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' &
  pids+=($!)
  wait_http "$port" /
}
auth_port=$(free_port)
sed -e "s/127.0.0.1:9090/127.0.0.1:$pacerd_port/; s/127.0.0.1:8000/127.0.0.1:$demo_port/" \
    -e "s/127.0.0.1:8080/127.0.0.1:$auth_port/" \
    -e "s|/etc/nginx/pacerd-headers.conf|$root/examples/nginx/pacerd-headers.conf|" \
    examples/nginx/pacerd.conf >"$tmp/auth.conf"
nginx_run auth "$auth_port" "$tmp/auth.conf"
limit_port=$(free_port)
cat >"$tmp/limit.conf" <<CONF
limit_req_zone \$binary_remote_addr zone=web:10m rate=1000000r/s;
upstream app { server 127.0.0.1:$demo_port; keepalive 32; }
server {
  listen 127.0.0.1:$limit_port;
  location / {
    limit_req zone=web burst=1000000 nodelay;
    limit_req_status 429;
    proxy_pass http://app;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
  }
}
CONF
nginx_run limit "$limit_port" "$tmp/limit.conf"
wrk -t1 -c8 -d1s "http://127.0.0.1:$auth_port/" >/dev/null
wrk -t1 -c8 -d1s "http://127.0.0.1:$limit_port/" >/dev/null
compare "nginx limit_req" "nginx auth_request -> pacerd" 0.50 \
  "http://127.0.0.1:$limit_port/" -- "http://127.0.0.1:$auth_port/"
