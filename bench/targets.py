#!/usr/bin/env python3
"""Prints issue 10's figures beside their targets, from one run of scripts/bench.sh.

  bench/targets.py DIR

DIR holds store.json and http.json (Google Benchmark --benchmark_out, JSON) and wrk-N.txt
(scripts/wrk-demo.sh output at N connections). Every figure is this run's; a missing one is
reported as such, never filled in.
"""
import json
import re
import sys
from pathlib import Path


def benchmarks(path):
    try:
        return {b["name"]: b for b in json.loads(path.read_text())["benchmarks"]}
    except (OSError, ValueError, KeyError) as e:
        print(f"  (no results in {path}: {e})")
        return {}


def ns(b):
    """CPU time per iteration in nanoseconds."""
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["cpu_time"] * scale


def row(figure, value, target, met):
    verdict = "-" if met is None else ("met" if met else "NOT met")
    print(f"  {figure:<58} {value:>16}   target {target:<14} {verdict}")


def main(out):
    store = benchmarks(out / "store.json")
    http = benchmarks(out / "http.json")
    missing = "(not measured)"

    hot = store.get("BM_HotKey")
    row("in-process hot key, MemoryStore::check_now", f"{ns(hot):.1f} ns" if hot else missing,
        "<= 30 ns", ns(hot) <= 30 if hot else False)
    via = store.get("BM_HotKeyThroughLimiter")
    row("  the same through Limiter::check (metrics with durations)",
        f"{ns(via):.1f} ns" if via else missing, "", None)

    one = store.get("BM_DistinctKeysPerThread/keys_per_thread:1000/real_time/threads:1")
    two = store.get("BM_DistinctKeysPerThread/keys_per_thread:1000/real_time/threads:2")
    if one and two:
        ratio = two["items_per_second"] / one["items_per_second"]
        row("two threads vs one, 1,000 keys per thread (decisions/s)", f"{ratio:.2f}x",
            ">= 1.5x", ratio >= 1.5)
    else:
        row("two threads vs one, 1,000 keys per thread (decisions/s)", missing, ">= 1.5x", False)

    flood = store.get("BM_MaxKeysFlood/1000000/iterations:1")
    if flood:
        admitted = int(flood["admitted"])
        row("flood of exactly max_keys = 1M keys of 1/1h: admitted", f"{admitted:,}",
            "= 1,000,000", admitted == 1_000_000)
        row("  evictions during the flood", f"{int(flood['evictions']):,}", "0",
            int(flood["evictions"]) == 0)
    else:
        row("flood of exactly max_keys = 1M keys of 1/1h: admitted", missing, "= 1,000,000", False)

    layer = http.get("BM_HttpLimiterCheck/trusted_peer:0")
    row("HTTP layer: identity, key, decision, headers", f"{ns(layer):.1f} ns" if layer else missing,
        "<= 120 ns", ns(layer) <= 120 if layer else False)
    parsed = http.get("BM_HttpLimiterCheckParsedPeer/trusted_peer:0")
    if parsed:
        row("  the same with the peer parsed by the adapter (pacer::beast)", f"{ns(parsed):.1f} ns",
            "<= 120 ns", ns(parsed) <= 120)

    for c in (16, 64, 256):
        try:
            text = (out / f"wrk-{c}.txt").read_text()
            ratio = float(re.search(r"^mean:.*ratio ([0-9.]+)", text, re.M).group(1))
            row(f"pacer-demo under wrk, {c} connections: limited / unlimited", f"{ratio:.3f}",
                ">= 0.95", ratio >= 0.95)
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
