"""The benchmark app: GET /ping, with no limiter, or LimiterMiddleware on the in-process store
or on Redis (PACER_BENCH_MODE = none | memory | redis; PACER_BENCH_REDIS = the URL)."""

import os

from fastapi import FastAPI

from pacer import Limiter, LimiterMiddleware, Rate

mode = os.environ.get("PACER_BENCH_MODE", "none")
app = FastAPI()
if mode != "none":
    url = None if mode == "memory" else os.environ.get("PACER_BENCH_REDIS", "redis://127.0.0.1:6379")
    limiter = Limiter(redis_url=url, app_name="bench")
    # Generous enough that every request is admitted: the cost of deciding, not of refusing.
    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(1_000_000, "1s", burst=1_000_000))


@app.get("/ping")
async def ping():
    return {"ping": "pong"}
