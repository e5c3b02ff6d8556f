#!/usr/bin/env bash
# RedisStore against a scratch 3-master Redis Cluster on free loopback ports: pacer-bench with
# one I/O thread, then two (`io_threads = 2` shards the connections over two threads), one
# run after the other, alternating `rounds` times.
#   bench/cluster_io_threads.sh <pacer-bench> [seconds, default 5] [rounds, default 2]
set -euo pipefail
bench=$1
secs=${2:-5}
rounds=${3:-2}
dir=$(mktemp -d)
ports=()
cleanup() {
  for p in "${ports[@]}"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p < 55000:
        b = socket.socket()
        try:
            b.bind(("127.0.0.1", p + 10000)); print(p); break
        except OSError: pass
        finally: b.close()'
}
for i in 1 2 3; do
  p=$(free_port)
  ports+=("$p")
  mkdir -p "$dir/$p"
  redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$dir/$p/nodes.conf" \
    --save "" --appendonly no --dir "$dir/$p" --daemonize yes --logfile "$dir/$p/redis.log"
done
for p in "${ports[@]}"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 0 \
  --cluster-yes >/dev/null
for _ in $(seq 100); do
  redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok && break
  sleep 0.1
done
url="redis+cluster://127.0.0.1:${ports[0]}"
for r in $(seq "$rounds"); do
  for threads in 1 2; do
    rate=$("$bench" --store redis --url "$url" --concurrency 256 --keys 100000 --seconds "$secs" \
      --io-threads "$threads" --no-deny-cache 2>/dev/null | awk -F= '/decisions_per_s/ {print $2}' | awk '{print $1}')
    echo "round $r: io_threads=$threads decisions_per_s=$rate"
  done
done
