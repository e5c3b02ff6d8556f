#!/usr/bin/env bash
# Turns real runs on this machine into the pictures of docs/PERFORMANCE.md and docs/ALGORITHM.md
# (docs/img/*.png), with gnuplot (Debian's gnuplot-nox):
#   gcra-burst.png          a bursty client on Redis: admitted vs the exact GCRA and its bound
#   redis-latency-cdf.png   Redis store latency CDF at 1, 32 and 256 checks in flight
#   wrk-limited.png         pacer-demo under wrk: /limited vs / at 16, 64 and 256 connections
#
#   scripts/plot.sh            # the numbers are this run's; the tables used stay in docs/img/data
set -euo pipefail
cd "$(dirname "$0")/.."
command -v gnuplot >/dev/null || { echo "plot: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 2; }
cmake --preset release >/dev/null
cmake --build --preset release --target pacer-plot-data pacer-demo >/dev/null
bin=build/release
img=docs/img
data=$img/data
mkdir -p "$data"

# shellcheck source=scripts/lib/scratch_redis.sh
source scripts/lib/scratch_redis.sh

echo "plot: bursty client (10/s, burst 9; 25 requests every second for 8 s)"
"$bin/bench/pacer-plot-data" gcra --url "$url" --rate 10/1s --burst 9 --seconds 8 --every 1 \
  --burst-size 25 >"$data/gcra-burst.dat"
gnuplot <<EOF
set terminal pngcairo size 900,500 font ",11"
set output "$img/gcra-burst.png"
set title "A bursty client on Redis: 25 requests every second, limit 10/s with burst 9"
set xlabel "seconds"; set ylabel "requests admitted so far"; set key left top; set grid
plot "$data/gcra-burst.dat" using 1:4 with lines dt 2 lw 2 title "bound: burst + 1 + rate x t", \
     "" using 1:3 with steps lw 2 title "exact GCRA (in-process step, same arrivals)", \
     "" using 1:2 with points pt 7 ps 0.5 title "admitted by Redis"
EOF

for n in 1 32 256; do
  echo "plot: Redis latency, $n in flight"
  "$bin/bench/pacer-plot-data" latency --url "$url" --concurrency "$n" --seconds 3 \
    >"$data/redis-latency-$n.dat"
done
gnuplot <<EOF
set terminal pngcairo size 900,500 font ",11"
set output "$img/redis-latency-cdf.png"
set title "RedisStore decision latency (one I/O thread, loopback redis-server)"
set xlabel "latency (microseconds, log scale)"; set ylabel "fraction of decisions"
set logscale x; set key right bottom; set grid
plot "$data/redis-latency-1.dat" using 1:2 with lines lw 2 title "1 in flight", \
     "$data/redis-latency-32.dat" using 1:2 with lines lw 2 title "32 in flight", \
     "$data/redis-latency-256.dat" using 1:2 with lines lw 2 title "256 in flight"
EOF

: >"$data/wrk.dat"
for c in 16 64 256; do
  echo "plot: wrk, $c connections"
  # "mean:    unlimited   X req/s   limited          Y req/s   ratio R"
  CONNECTIONS=$c scripts/wrk-demo.sh 5 2 | awk -v c="$c" '/^mean:/ {print c, $3, $6, $9}' \
    >>"$data/wrk.dat"
done
gnuplot <<EOF
set terminal pngcairo size 900,500 font ",11"
set output "$img/wrk-limited.png"
set title "pacer-demo under wrk: the limited route against the unlimited one"
set ylabel "requests/s"; set xlabel "wrk connections"; set grid ytics
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8
set boxwidth 0.9; set key left top; set yrange [0:*]
plot "$data/wrk.dat" using 2:xtic(1) title "/ (unlimited)", \
     "" using 3:xtic(1) title "/limited", \
     "" using 0:3:(sprintf("%.2f", \$4)) with labels offset 4,1 notitle
EOF
echo "plot: wrote $img/gcra-burst.png $img/redis-latency-cdf.png $img/wrk-limited.png"
