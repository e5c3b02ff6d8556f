"""The middleware's call into C++ in a loop: what one admission costs, without HTTP.

    PYTHONPATH=build/release/python python3 python/bench/admit_loop.py [redis://host:port]

In-process (no URL): 200,000 admissions of a `/ping` ASGI scope from 127.0.0.1 with three
headers, as `LimiterMiddleware` makes them (`Limiter._rule`, then `Engine.admit`); prints the
best of 5 runs in µs per admission, with and without the rule lookup. With a Redis URL: 32 tasks
× 1,000 admissions through the event loop's bridge; prints the process CPU per decision (best
of 5). A build from before the rule (docs/PERFORMANCE.md, issue 19) has `Engine.admit_scope`
instead, which the script then calls: run it with each build's PYTHONPATH for an A/B.
"""

import asyncio
import sys
import time

from pacer import Limiter, Rate, _pacer
from pacer._bridge import bridge_for
from pacer.limiter import _as_policy

SCOPE = {"type": "http", "method": "GET", "path": "/ping", "query_string": b"",
         "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
         "client": ("127.0.0.1", 40000)}
HAS_RULE = hasattr(_pacer, "Rule")


def admitter(limiter, engine, policy, lookup=True):
    """admit(bridge, future, send) for this build, with the rule looked up per call or once."""
    flags = _pacer.HeaderFlag.EXPOSE
    if not HAS_RULE:
        from pacer.selectors import _CLIENT_IP

        return lambda bridge, future, send: engine.admit_scope(
            policy._native, _CLIENT_IP, SCOPE, "/ping", _pacer.ScopeKind.PATH, flags, bridge,
            future, send)
    if lookup:
        return lambda bridge, future, send: engine.admit(
            limiter._rule(policy, engine), SCOPE, "/ping", flags, bridge, future, send)
    rule = limiter._rule(policy, engine)
    return lambda bridge, future, send: engine.admit(rule, SCOPE, "/ping", flags, bridge, future,
                                                     send)


async def send(message):
    del message


async def in_process():
    limiter = Limiter(redis_url=None, app_name="bench")
    engine = await limiter.storage.ready_engine()
    policy = _as_policy(Rate(10**9, "1s", burst=10**6), "bench")
    for lookup in (True, False) if HAS_RULE else (True,):
        admit = admitter(limiter, engine, policy, lookup)
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(200_000):
                admit(None, None, send)
            best = min(best, (time.perf_counter() - started) / 200_000 * 1e6)
        what = "rule looked up per call" if lookup and HAS_RULE else (
            "rule held" if HAS_RULE else "admit_scope")
        print(f"in-process: {best:.2f} us per admission ({what})")
    await limiter.shutdown()


async def on_redis(url):
    limiter = Limiter(redis_url=url, app_name="bench")
    engine = await limiter.storage.ready_engine()
    policy = _as_policy(Rate(10**6, "1s", burst=10**6), "bench")
    admit = admitter(limiter, engine, policy)
    loop = asyncio.get_running_loop()

    async def worker():
        for _ in range(1000):
            future = loop.create_future()
            if admit(bridge_for(loop), future, send) is None:
                await future

    best = float("inf")
    for _ in range(5):
        cpu = time.process_time()
        await asyncio.gather(*[worker() for _ in range(32)])
        best = min(best, (time.process_time() - cpu) / 32_000 * 1e6)
    print(f"redis ({engine.io_mode}): {best:.2f} us CPU per decision")
    await limiter.shutdown()


if __name__ == "__main__":
    asyncio.run(on_redis(sys.argv[1]) if len(sys.argv) > 1 else in_process())
