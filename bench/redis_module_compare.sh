#!/usr/bin/env bash
# The Lua script and PACER.GCRA (pacer-redis-module.so) side by side in one run on one scratch
# redis-server with the module loaded: for one rate and for three rates, pacer-bench with 64
# checks in flight over 10k keys (--script lua, then --script module), then redis-benchmark
# -c 32 -P 16 with the same command and arguments (--redis-benchmark: Redis saturated). Prints
# each run, then the medians and the module's ratios: Redis CPU per decision (usec_per_call in
# INFO commandstats) and decisions/s at saturation. The two take turns ROUNDS times.
#   bench/redis_module_compare.sh [pacer-bench] [module.so] [seconds per run, default 5]
# Defaults: the release build (cmake --preset release && cmake --build --preset release).
# Environment: ROUNDS (3); REDIS_CPU (0) and CLIENT_CPU (1): Redis on one core, pacer-bench and
# redis-benchmark on the other (commandstats' usec is time inside the command: a client sharing
# Redis's core inflates it by 10-30% at random; empty values: no pinning).
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-build/release/apps/pacer-bench/pacer-bench}
module=$(realpath "${2:-build/release/src/redis_module/pacer-redis-module.so}")
secs=${3:-5}
rounds=${ROUNDS:-3}
REDIS_ARGS="--loadmodule $module"
REDIS_CPU=${REDIS_CPU-0}
client_cpu=${CLIENT_CPU-1}
client=()
[ -n "$client_cpu" ] && client=(taskset -c "$client_cpu")
# shellcheck source=scripts/lib/scratch_redis.sh
source scripts/lib/scratch_redis.sh
three_rates=(--rate 1000/1s --rate 20000/1m --rate 1000000/1h --burst 1000)
results=$(mktemp)
for round in $(seq "$rounds"); do
  for shape in one three; do
    extra=()
    [ "$shape" = three ] && extra=("${three_rates[@]}")
    for script in lua module; do
      redis-cli -p "$port" flushall >/dev/null
      out=$("${client[@]}" "$bench" --store redis --url "$url" --concurrency 64 --keys 10000 \
        --seconds "$secs" --script "$script" --redis-benchmark "${extra[@]}" 2>/dev/null)
      line="round=$round rates=$shape script=$script $(echo "$out" | grep -oE \
        '(decisions_per_s|redis_usec_per_call|redis_benchmark_c32_P16_per_s|redis_benchmark_usec_per_call|command|errors)=[0-9.A-Za-z]+' \
        | tr '\n' ' ')"
      echo "$line" | tee -a "$results"
    done
  done
done
echo
python3 - "$results" <<'PY'
import re, statistics, sys
runs = [dict(kv.split("=", 1) for kv in line.split()) for line in open(sys.argv[1]) if line.strip()]
def med(shape, script, field):
    values = [float(r[field]) for r in runs if r["rates"] == shape and r["script"] == script
              and re.fullmatch(r"[0-9.]+", r.get(field, ""))]
    return statistics.median(values) if values else float("nan")
print(f"{'rates':6} {'script':7} {'usec/decision':>14} {'decisions/s':>12} {'saturated/s':>12} {'usec/decision saturated':>24}")
for shape in ("one", "three"):
    for script in ("lua", "module"):
        print(f"{shape:6} {script:7} {med(shape, script, 'redis_usec_per_call'):14.2f} "
              f"{med(shape, script, 'decisions_per_s'):12.0f} "
              f"{med(shape, script, 'redis_benchmark_c32_P16_per_s'):12.0f} "
              f"{med(shape, script, 'redis_benchmark_usec_per_call'):24.2f}")
    cpu = med(shape, "lua", "redis_usec_per_call") / med(shape, "module", "redis_usec_per_call")
    sat = med(shape, "module", "redis_benchmark_c32_P16_per_s") / med(shape, "lua", "redis_benchmark_c32_P16_per_s")
    print(f"{shape:6} module: {cpu:.2f}x less Redis CPU per decision, {sat:.2f}x the decisions/s at saturation")
PY
rm -f "$results"
