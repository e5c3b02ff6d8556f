# Sourced by the benchmark scripts: a scratch redis-server on a free loopback port, without
# persistence, stopped (and its directory removed) when the script exits. Sets `port`, `url`.
# REDIS_ARGS: more arguments for redis-server (e.g. "--loadmodule /path/pacer-redis-module.so");
# REDIS_CPU: pin it to that CPU (taskset), so a client on the other core does not share its own.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scratch_dir=$(mktemp -d)
pin=()
[ -n "${REDIS_CPU:-}" ] && pin=(taskset -c "$REDIS_CPU")
"${pin[@]}" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$scratch_dir" \
  --daemonize yes --logfile "$scratch_dir/redis.log" --pidfile "$scratch_dir/redis.pid" \
  ${REDIS_ARGS:-}
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$scratch_dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
url="redis://127.0.0.1:$port"
