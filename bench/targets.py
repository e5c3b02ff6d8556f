#!/usr/bin/env python3
"""Prints issue 10's figures beside their targets, from one run of scripts/bench.sh.

  bench/targets.py DIR

DIR holds store.json and http.json (Google Benchmark --benchmark_out, JSON, usually with
--benchmark_repetitions) and wrk-N.txt (scripts/wrk-demo.sh output at N connections, rounds
included). A benchmark's figure is the median of its repetitions, judged against the target,
with the fastest repetition beside it: on a shared VM one repetition can land in a disturbed
second. A wrk figure is the run's mean, with the spread of its rounds beside it. Every figure
is this run's; a missing one is reported as such, never filled in.
"""
import json
import re
import statistics
import sys
from pathlib import Path


def benchmarks(path):
    """Each benchmark's repetitions (not the aggregates Google Benchmark adds), by name."""
    try:
        runs = {}
        for b in json.loads(path.read_text())["benchmarks"]:
            if b.get("run_type", "iteration") == "iteration":
                runs.setdefault(b.get("run_name", b["name"]), []).append(b)
        return runs
    except (OSError, ValueError, KeyError) as e:
        print(f"  (no results in {path}: {e})")
        return {}


def ns(b):
    """CPU time per iteration in nanoseconds."""
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["cpu_time"] * scale


def median_ns(runs):
    return statistics.median(ns(b) for b in runs)


def timing(runs):
    """'<median> ns (min <fastest>)' over the repetitions."""
    if len(runs) == 1:
        return f"{ns(runs[0]):.1f} ns"
    return f"{median_ns(runs):.1f} ns (min {min(ns(b) for b in runs):.1f})"


def median_rate(runs):
    return statistics.median(b["items_per_second"] for b in runs)


def row(figure, value, target, met):
    verdict = "-" if met is None else ("met" if met else "NOT met")
    print(f"  {figure:<60} {value:>24}   target {target:<12} {verdict}")


def main(out):
    store = benchmarks(out / "store.json")
    http = benchmarks(out / "http.json")
    missing = "(not measured)"

    hot = store.get("BM_HotKey")
    row("in-process hot key, MemoryStore::check_now", timing(hot) if hot else missing,
        "<= 30 ns", median_ns(hot) <= 30 if hot else False)
    via = store.get("BM_HotKeyThroughLimiter")
    row("  the same through Limiter::check (metrics with durations)",
        timing(via) if via else missing, "", None)

    one = store.get("BM_DistinctKeysPerThread/keys_per_thread:1000/real_time/threads:1")
    two = store.get("BM_DistinctKeysPerThread/keys_per_thread:1000/real_time/threads:2")
    if one and two:
        ratio = median_rate(two) / median_rate(one)
        row("two threads vs one, 1,000 keys per thread (decisions/s)", f"{ratio:.2f}x",
            ">= 1.5x", ratio >= 1.5)
    else:
        row("two threads vs one, 1,000 keys per thread (decisions/s)", missing, ">= 1.5x", False)

    flood = store.get("BM_MaxKeysFlood/1000000/iterations:1")
    if flood:
        # Every repetition is a fresh store: each must admit exactly max_keys.
        admitted = sorted({int(b["admitted"]) for b in flood})
        evictions = sorted({int(b["evictions"]) for b in flood})
        runs = f" ({len(flood)} runs)" if len(flood) > 1 else ""
        row("flood of exactly max_keys = 1M keys of 1/1h: admitted",
            " / ".join(f"{a:,}" for a in admitted) + runs, "= 1,000,000", admitted == [1_000_000])
        row("  evictions during the flood", " / ".join(f"{e:,}" for e in evictions) + runs, "0",
            evictions == [0])
    else:
        row("flood of exactly max_keys = 1M keys of 1/1h: admitted", missing, "= 1,000,000", False)

    layer = http.get("BM_HttpLimiterCheck/trusted_peer:0")
    row("HTTP layer: identity, key, decision, headers", timing(layer) if layer else missing,
        "<= 120 ns", median_ns(layer) <= 120 if layer else False)
    parsed = http.get("BM_HttpLimiterCheckParsedPeer/trusted_peer:0")
    if parsed:
        row("  the same with the peer parsed by the adapter (pacer::beast)", timing(parsed),
            "<= 120 ns", median_ns(parsed) <= 120)

    for c in (16, 64, 256):
        try:
            text = (out / f"wrk-{c}.txt").read_text()
            ratio = float(re.search(r"^mean:.*ratio ([0-9.]+)", text, re.M).group(1))
            # The spread of the rounds' own ratios (req/s) shows how far one run can be trusted.
            rounds = [float(r) for r in re.findall(r"^round \d+:.*? ratio ([0-9.]+)", text, re.M)]
            spread = f" (rounds {min(rounds):.2f}-{max(rounds):.2f})" if len(rounds) > 1 else ""
            row(f"pacer-demo under wrk, {c} connections: limited / unlimited",
                f"{ratio:.3f}{spread}", ">= 0.95", ratio >= 0.95)
            cpu = re.search(r"^server CPU per request:.*ratio ([0-9.]+)", text, re.M)
            if cpu:
                row("  server CPU per request, unlimited / limited", cpu.group(1), "", None)
        except (OSError, AttributeError):
            row(f"pacer-demo under wrk, {c} connections: limited / unlimited", missing, ">= 0.95",
                False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
