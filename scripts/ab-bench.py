#!/usr/bin/env python3
"""Compares Google Benchmark binaries side by side, in one run, alternating between them.

    scripts/ab-bench.py [--filter REGEX] [--rounds N] [--cpu N] BINARY...

Each round runs every binary once (5 repetitions of 0.2 s each, pinned to one CPU unless
--cpu -1), so a drift in the machine's speed during the run touches every binary alike. Prints,
per benchmark and binary, the minimum and the median of all repetitions' real time: on a shared
VM the minimum is the least disturbed figure and the median the typical one. Build the binaries
from the trees to compare (e.g. `git stash`, build, copy the binary; `git stash pop`, build).
"""
import argparse
import csv
import io
import os
import statistics
import subprocess
import sys


def run_once(binary, flt, cpu):
    command = [binary, f"--benchmark_filter={flt}", "--benchmark_repetitions=5",
               "--benchmark_min_time=0.2", "--benchmark_format=csv"]
    if cpu >= 0:
        command = ["taskset", "-c", str(cpu)] + command
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "name," not in out:
        return  # nothing matched the filter
    rows = csv.reader(io.StringIO(out[out.index("name,"):]))
    header = next(rows)
    name_at, time_at, unit_at = header.index("name"), header.index("real_time"), header.index("time_unit")
    for row in rows:
        name = row[name_at]
        if name.endswith(("_mean", "_median", "_stddev", "_cv")):
            continue
        yield name, float(row[time_at]), row[unit_at]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default=".")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=1, help="CPU to pin to; -1: no pinning")
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    for binary in args.binaries:
        if not os.access(binary, os.X_OK):
            sys.exit(f"ab-bench: '{binary}' is not an executable benchmark binary")
    times = {}  # (benchmark, binary) -> [times]
    units = {}
    for _ in range(args.rounds):
        for binary in args.binaries:
            for name, value, unit in run_once(binary, args.filter, args.cpu):
                times.setdefault((name, binary), []).append(value)
                units[name] = unit
    if not times:
        sys.exit(f"ab-bench: no benchmark matches '{args.filter}'")
    for name in sorted({n for n, _ in times}):
        for binary in args.binaries:
            values = times.get((name, binary))
            if values:
                print(f"{name:<55} {binary:<40} min {min(values):9.1f}  median "
                      f"{statistics.median(values):9.1f} {units[name]}  (n={len(values)})")


if __name__ == "__main__":
    main()
