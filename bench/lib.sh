# Shared by the bench/*.sh scripts that start servers (source it after `cd` to the repository):
# a scratch directory and the processes started, both cleaned up on exit, free loopback ports,
# waiting for an HTTP answer, and wrk's latency percentiles in milliseconds.
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_http <port> <path>: until anything answers there (5 s at most; then the logs, and exit).
wait_http() {
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1$2" && return 0; sleep 0.05; done
  echo "no answer on port $1" >&2
  tail -n 5 "$tmp"/*.log >&2 || true
  exit 1
}
# wrk_ms <wrk --latency output> <percentile, e.g. 99%>: that latency in ms.
wrk_ms() {
  awk -v p="$2" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$1"
}
