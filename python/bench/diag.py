"""Where a request's time goes, for python/bench/app.py (PACER_BENCH_DIAG=1, or
PACER_BENCH_PROFILE=<file> for cProfile). Reported on stderr when the server stops:

- event loop stalls: a task asks to wake every millisecond and records how late it woke (a
  late wake-up is time the loop spent on something else in one go: every request waiting then
  waits that long);
- garbage collections: how many per generation, and their total and longest pause;
- with PACER_BENCH_GARBAGE=1, what the collector found in reference cycles (kept, by type);
- with PACER_BENCH_PROFILE, the cProfile statistics of the server's thread, written to <file>.
"""

import asyncio
import collections
import cProfile
import gc
import os
import sys
import time


class Diagnostics:
    def __init__(self) -> None:
        self.lags = []
        self.gc = {0: [], 1: [], 2: []}
        self._gc_started = 0.0
        self._task = None
        self.profile_path = os.environ.get("PACER_BENCH_PROFILE")
        self.profiler = cProfile.Profile() if self.profile_path else None

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc[info["generation"]].append(time.perf_counter() - self._gc_started)

    async def _watch(self) -> None:
        period = 0.001
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(period)
            self.lags.append(time.perf_counter() - asked - period)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        if os.environ.get("PACER_BENCH_GARBAGE"):
            gc.set_debug(gc.DEBUG_SAVEALL)
        self._task = asyncio.get_running_loop().create_task(self._watch())
        if self.profiler:
            self.profiler.enable()

    def stop(self) -> None:
        if self.profiler:
            self.profiler.disable()
            self.profiler.dump_stats(self.profile_path)
        if self._task:
            self._task.cancel()
        gc.callbacks.remove(self._on_gc)
        lags = sorted(self.lags)
        out = sys.stderr
        if lags:
            pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000  # noqa: E731
            out.write(f"diag: loop lag over {len(lags)} wake-ups: p50 {pick(0.5):.3f} ms, "
                      f"p99 {pick(0.99):.3f} ms, p99.9 {pick(0.999):.3f} ms, "
                      f"max {lags[-1] * 1000:.3f} ms; over 5 ms: "
                      f"{sum(1 for v in lags if v > 0.005)}\n")
        for generation, pauses in self.gc.items():
            if pauses:
                out.write(f"diag: gc gen{generation}: {len(pauses)} collections, "
                          f"{sum(pauses) * 1000:.1f} ms in all, longest "
                          f"{max(pauses) * 1000:.3f} ms\n")
        if gc.get_debug() & gc.DEBUG_SAVEALL:
            gc.collect()
            kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
            out.write(f"diag: garbage in cycles: {len(gc.garbage)} objects, "
                      f"{kinds.most_common(12)}\n")
            frames = collections.Counter(f"{o.f_code.co_name} ({o.f_code.co_filename})"
                                         for o in gc.garbage if type(o).__name__ == "frame")
            out.write(f"diag: their frames: {frames.most_common(12)}\n")
        out.write(f"diag: gc thresholds {gc.get_threshold()}, counts {gc.get_count()}, "
                  f"tracked objects {len(gc.get_objects())}\n")
        out.flush()


def install(app) -> None:
    diagnostics = Diagnostics()
    app.add_event_handler("startup", diagnostics.start)
    app.add_event_handler("shutdown", diagnostics.stop)
