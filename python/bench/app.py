"""The benchmark app: GET /ping answering {"ping": "pong"}, limited in one of several ways.

PACER_BENCH_MODE (the limiter is generous enough that every request is admitted: the cost of
deciding, not of refusing):
  none        no limiter
  headers     no limiter, but the three RateLimit-* headers it adds (what writing them costs)
  empty-dep   an empty async dependency with limit()'s signature (request, response): what
              FastAPI's dependency solving costs, the baseline of the dep-* modes
  mw-pass     no limiter, but a pure ASGI middleware that passes every request on: what any
              middleware costs
  mw-yield    no limiter, but a pure ASGI middleware that suspends every request once on a
              future a loop callback resolves: the least any limiter costs that awaits an
              answer from outside the request (a Redis round trip), with nothing decided
  dep-yield   empty-dep's dependency suspended once the same way: the least any limiting
              dependency costs that awaits an answer from outside the request
  mw-ping     mw-yield's middleware waiting for a Redis PING instead (PACER_BENCH_REDIS): one
              connection, every PING asked in one turn of the loop written at once, each reply
              resolving the oldest future. No script, no key, no decision: the least any limiter
              costs that asks Redis once per request from this event loop
  dep-ping    empty-dep's dependency waiting for a PING the same way
  mw-memory   LimiterMiddleware on the in-process store
  mw-redis    LimiterMiddleware on Redis (PACER_BENCH_REDIS, the URL)
  dep-memory  Depends(limit(...)) on the in-process store
  dep-redis   Depends(limit(...)) on Redis
"memory" and "redis" are the old names of mw-memory and mw-redis. PACER_BENCH_ROUTE_SCOPE sets
the Limiter's route_scope (default "route", the Limiter's: the middleware matches the route).

PACER_BENCH_DIAG=1 reports event loop stalls and garbage collections on stderr when the
server stops, PACER_BENCH_PROFILE=<file> writes cProfile statistics (python/bench/diag.py).

PACER_BENCH_GC_FREEZE=1: the app calls gc.freeze() once started (what an app can do about the
full collections that a Redis decision awaited inside FastAPI's dependency solving sets off:
docs/PERFORMANCE.md, issue 23).

GET /bench/count answers how many /ping requests the app has served (never limited): run.sh
compares it with Redis' EVALSHA count, so a decision that was lost shows.
"""

import asyncio
import collections
import gc
import os
import urllib.parse

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from pacer import Limiter, LimiterMiddleware, Rate, limit

MODES = ("none", "headers", "empty-dep", "mw-pass", "mw-yield", "dep-yield", "mw-ping", "dep-ping",
         "mw-memory", "mw-redis", "dep-memory", "dep-redis")
_ALIASES = {"memory": "mw-memory", "redis": "mw-redis"}

mode = os.environ.get("PACER_BENCH_MODE", "none")
mode = _ALIASES.get(mode, mode)
if mode not in MODES:
    raise SystemExit(f"PACER_BENCH_MODE must be one of {', '.join(MODES)}, got {mode!r}")

_RATE = Rate(1_000_000, "1s", burst=1_000_000)
app = FastAPI()
dependencies = []
if mode.endswith(("-memory", "-redis")):
    url = None if mode.endswith("-memory") else os.environ.get("PACER_BENCH_REDIS",
                                                               "redis://127.0.0.1:6379")
    limiter = Limiter(redis_url=url, app_name="bench",
                      route_scope=os.environ.get("PACER_BENCH_ROUTE_SCOPE", "route"))
    if mode.startswith("mw-"):
        app.add_middleware(LimiterMiddleware, limiter=limiter, policy=_RATE,
                           exclude_paths=["/bench/*"])
    else:
        dependencies = [Depends(limit(_RATE, limiter=limiter))]
elif mode == "mw-pass":

    class PassMiddleware:
        def __init__(self, app):
            self.inner = app

        async def __call__(self, scope, receive, send):
            await self.inner(scope, receive, send)

    app.add_middleware(PassMiddleware)
elif mode == "mw-yield":

    class YieldMiddleware:
        def __init__(self, app):
            self.inner = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                loop = asyncio.get_running_loop()
                future = loop.create_future()
                loop.call_soon(future.set_result, None)
                await future
            await self.inner(scope, receive, send)

    app.add_middleware(YieldMiddleware)
elif mode == "empty-dep":

    async def empty(request: Request, response: Response) -> None:
        """limit()'s dependency without the limiter."""

    dependencies = [Depends(empty)]
elif mode == "dep-yield":

    async def suspended(request: Request, response: Response) -> None:
        """limit()'s dependency without the limiter, suspended once."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, None)
        await future

    dependencies = [Depends(suspended)]
elif mode in ("mw-ping", "dep-ping"):

    class Pinger(asyncio.Protocol):
        """A Redis connection that pipelines PINGs: the ones asked in one turn of the loop go
        out in one write at its end, and each reply line resolves the oldest waiting future."""

        def __init__(self):
            self.transport = None
            self.waiting = collections.deque()
            self.unsent = 0
            self.partial = b""

        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            data = self.partial + data
            end = data.rfind(b"\n") + 1
            self.partial = data[end:]
            for _ in range(data.count(b"\n", 0, end)):  # "+PONG\r\n" each
                self.waiting.popleft().set_result(None)

        def ping(self):
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self.waiting.append(future)
            if not self.unsent:
                loop.call_soon(self.flush)
            self.unsent += 1
            return future

        def flush(self):
            self.transport.write(b"PING\r\n" * self.unsent)
            self.unsent = 0

    pinger = Pinger()

    async def connect():
        where = urllib.parse.urlsplit(os.environ.get("PACER_BENCH_REDIS", "redis://127.0.0.1:6379"))
        await asyncio.get_running_loop().create_connection(lambda: pinger, where.hostname,
                                                           where.port or 6379)

    app.add_event_handler("startup", connect)
    if mode == "mw-ping":

        class PingMiddleware:
            def __init__(self, app):
                self.inner = app

            async def __call__(self, scope, receive, send):
                if scope["type"] == "http":
                    await pinger.ping()
                await self.inner(scope, receive, send)

        app.add_middleware(PingMiddleware)
    else:

        async def pinged(request: Request, response: Response) -> None:
            """limit()'s dependency without the limiter, waiting for a PING."""
            await pinger.ping()

        dependencies = [Depends(pinged)]


if os.environ.get("PACER_BENCH_DIAG") or os.environ.get("PACER_BENCH_PROFILE"):
    import diag

    diag.install(app)

if os.environ.get("PACER_BENCH_GC_FREEZE"):
    # Moves everything alive after startup out of the collector's reach: a full collection
    # then scans only what was allocated since, not the app's and its libraries' objects.
    app.add_event_handler("startup", gc.freeze)

_HEADERS = {"RateLimit-Limit": "1000000", "RateLimit-Remaining": "999999", "RateLimit-Reset": "1"}
_served = 0


@app.get("/ping", dependencies=dependencies)
async def ping():
    global _served
    _served += 1
    if mode == "headers":
        return JSONResponse({"ping": "pong"}, headers=_HEADERS)
    return {"ping": "pong"}


@app.get("/bench/count")
async def count():
    return {"served": _served}
