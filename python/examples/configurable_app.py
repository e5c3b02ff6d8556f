"""FastAPI Pacer's configurable test service (examples/configurable_app.py, written for v0.1),
running unchanged on Pacer: `extractor=` and a bare `Rate` as the default policy included.

    REDIS_URL=memory:// uvicorn --app-dir python/examples configurable_app:app --port 8000

Its bodies are the ones pacer-demo (the C++ server) answers with, byte for byte.
"""

import os
from contextlib import asynccontextmanager

from fastapi import Body, Depends, FastAPI

from pacer import Limiter, LimiterMiddleware, Rate, limit, set_limiter
from pacer.extractors import extract_api_key, extract_ip

SERVICE_NAME = os.getenv("SERVICE_NAME", "default")
REDIS_URL = os.getenv("REDIS_URL", "redis://localhost:6379")
RATE_PERMITS = int(os.getenv("RATE_PERMITS", "10"))
RATE_PERIOD = os.getenv("RATE_PERIOD", "1m")
RATE_BURST = int(os.getenv("RATE_BURST", "5"))
FAIL_MODE = os.getenv("FAIL_MODE", "open")
USE_MIDDLEWARE = os.getenv("USE_MIDDLEWARE", "false").lower() == "true"
MIDDLEWARE_PERMITS = int(os.getenv("MIDDLEWARE_PERMITS", "100"))
MIDDLEWARE_PERIOD = os.getenv("MIDDLEWARE_PERIOD", "1m")
MIDDLEWARE_BURST = int(os.getenv("MIDDLEWARE_BURST", "20"))

limiter = Limiter(
    redis_url=REDIS_URL,
    default_policy=Rate(RATE_PERMITS, RATE_PERIOD, burst=RATE_BURST),
    extractor=extract_ip(trusted_proxies=["127.0.0.1", "::1", "172.0.0.0/8"]),
    fail_mode=FAIL_MODE,
    app_name=SERVICE_NAME,
)
set_limiter(limiter)

api_key_limiter = Limiter(
    redis_url=REDIS_URL,
    default_policy=Rate(20, "1m", burst=5),
    extractor=extract_api_key(header_name="X-API-Key"),
    fail_mode=FAIL_MODE,
    app_name=f"{SERVICE_NAME}_apikey",
)

RATE_TEXT = f"{RATE_PERMITS} per {RATE_PERIOD}, burst={RATE_BURST}"


@asynccontextmanager
async def lifespan(app: FastAPI):
    await limiter.startup()
    print(f"Service '{SERVICE_NAME}' started with rate limit: {RATE_PERMITS} per {RATE_PERIOD}, "
          f"burst={RATE_BURST}")
    if USE_MIDDLEWARE:
        print(f"  Middleware enabled: {MIDDLEWARE_PERMITS} per {MIDDLEWARE_PERIOD}, "
              f"burst={MIDDLEWARE_BURST}")
    yield
    await limiter.shutdown()


app = FastAPI(
    title=f"Rate Limiter Test Service - {SERVICE_NAME}",
    description=f"Service configured with {RATE_PERMITS} requests per {RATE_PERIOD}",
    lifespan=lifespan,
)

if USE_MIDDLEWARE:
    app.add_middleware(
        LimiterMiddleware,
        limiter=limiter,
        policy=Rate(MIDDLEWARE_PERMITS, MIDDLEWARE_PERIOD, burst=MIDDLEWARE_BURST),
        exclude_paths=["/health", "/config", "/metrics"],
    )


@app.get("/")
async def root():
    return {"service": SERVICE_NAME, "message": "Request successful", "rate_limit": RATE_TEXT}


@app.get("/health")
async def health():
    from fastapi.responses import JSONResponse

    if await limiter.is_healthy():
        return {"status": "healthy", "service": SERVICE_NAME, "redis": "connected"}
    return JSONResponse(status_code=503, content={"status": "unhealthy", "service": SERVICE_NAME,
                                                  "redis": "disconnected"})


@app.get("/config")
async def config():
    return {
        "service": SERVICE_NAME,
        "rate_config": {"permits": RATE_PERMITS, "period": RATE_PERIOD, "burst": RATE_BURST,
                        "fail_mode": FAIL_MODE},
        "middleware": {
            "enabled": USE_MIDDLEWARE,
            "permits": MIDDLEWARE_PERMITS if USE_MIDDLEWARE else None,
            "period": MIDDLEWARE_PERIOD if USE_MIDDLEWARE else None,
            "burst": MIDDLEWARE_BURST if USE_MIDDLEWARE else None,
        },
    }


@app.get("/metrics")
async def metrics():
    return {**limiter.get_metrics(), "service": SERVICE_NAME}


@app.get("/limited", dependencies=[Depends(limit())])
async def limited():
    return {"service": SERVICE_NAME, "endpoint": "limited", "message": "Request successful",
            "rate_limit": RATE_TEXT}


@app.get("/custom", dependencies=[Depends(limit(Rate(5, "10s", burst=2)))])
async def custom():
    return {"service": SERVICE_NAME, "endpoint": "custom", "message": "Request successful",
            "rate_limit": "5 per 10s, burst=2"}


@app.get("/api-key", dependencies=[Depends(limit(limiter=api_key_limiter))])
async def api_key():
    return {"service": SERVICE_NAME, "endpoint": "api-key", "message": "Request successful",
            "rate_limit": "20 per 1m with API key, burst=5"}


@app.post("/post", dependencies=[Depends(limit(Rate(3, "1m", burst=0)))])
async def post(data: dict = Body(default={})):
    return {"service": SERVICE_NAME, "endpoint": "post", "message": "Data received",
            "data": data, "rate_limit": "3 per 1m, no burst"}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="0.0.0.0", port=int(os.getenv("PORT", "8000")))
