"""The benchmark app: GET /ping, with no limiter, or LimiterMiddleware on the in-process store
or on Redis (PACER_BENCH_MODE = none | memory | redis; PACER_BENCH_REDIS = the URL)."""

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from pacer import Limiter, LimiterMiddleware, Rate

mode = os.environ.get("PACER_BENCH_MODE", "none")
app = FastAPI()
if mode in ("memory", "redis"):
    url = None if mode == "memory" else os.environ.get("PACER_BENCH_REDIS", "redis://127.0.0.1:6379")
    limiter = Limiter(redis_url=url, app_name="bench")
    # Generous enough that every request is admitted: the cost of deciding, not of refusing.
    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(1_000_000, "1s", burst=1_000_000))


_HEADERS = {"RateLimit-Limit": "1000000", "RateLimit-Remaining": "999999", "RateLimit-Reset": "1"}


@app.get("/ping")
async def ping():
    if mode == "headers":
        # No limiter, but the three headers it adds: what writing them costs the server.
        return JSONResponse({"ping": "pong"}, headers=_HEADERS)
    return {"ping": "pong"}
