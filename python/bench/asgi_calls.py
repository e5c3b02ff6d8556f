"""The benchmark app (app.py) called directly, without a server: N requests of GET /ping from 32
concurrent tasks after a warm-up, for python/bench/instructions.sh, which counts the whole
process's instructions under callgrind for two values of N.

    PYTHONPATH=build/release/python python3 python/bench/asgi_calls.py <mode> <requests>

Modes as app.py's: none, headers, empty-dep, mw-pass, mw-yield, dep-yield, mw-memory, dep-memory,
and on the Redis of
PACER_BENCH_REDIS mw-redis and dep-redis (PACER_BENCH_ROUTE_SCOPE as there). Prints the status
counts; exits 1 unless every request was answered 200 and decided by the store. The event loop
is uvloop's (LOOP=asyncio: asyncio's own, whose loop runs partly in Python).
"""

import asyncio
import gc
import os
import sys

MODES = ("none", "headers", "empty-dep", "mw-pass", "mw-yield", "dep-yield", "mw-memory",
         "dep-memory", "mw-redis", "dep-redis")
TASKS = 32
SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
         "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 40000), "scheme": "http",
         "method": "GET", "root_path": "", "path": "/ping", "raw_path": b"/ping",
         "query_string": b"",
         "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]}
REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def main(mode: str, requests: int) -> int:
    os.environ["PACER_BENCH_MODE"] = mode
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import app as bench  # noqa: E402  (reads PACER_BENCH_MODE)

    app = bench.app

    statuses = {}

    async def receive():
        return REQUEST

    async def send(message):
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    async def calls(n):
        async def task():
            for _ in range(n // TASKS):
                await app(dict(SCOPE), receive, send)

        await asyncio.gather(*(task() for _ in range(TASKS)))

    await calls(10 * TASKS)  # routes compiled, the engine started
    gc.collect()
    gc.freeze()  # the app's objects out of the collector's reach: runs of any N alike
    await calls(requests)
    # A decision the store failed (a Redis timeout under callgrind's slowness) would be let
    # through by the fail mode, and counted as a cheaper path: such a run is a failure.
    errors = bench.limiter.metrics.redis_errors if hasattr(bench, "limiter") else 0
    print(mode, requests, statuses, "store errors:", errors)
    return 0 if set(statuses) == {200} and errors == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in MODES or not sys.argv[2].isdigit():
        sys.exit(f"usage: asgi_calls.py <{'|'.join(MODES)}> <requests>, got {sys.argv[1:]}")
    loop = os.environ.get("LOOP", "uvloop")
    if loop == "uvloop":
        import uvloop  # Debian: python3-uvloop; what the wrk benchmark's server runs

        uvloop.install()
    elif loop != "asyncio":
        sys.exit(f"LOOP must be uvloop or asyncio, got {loop!r}")
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
