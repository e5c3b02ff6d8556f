"""Hooks: a callback after every decision and after every store failure, and the counters.

    uvicorn --app-dir python/examples hooks:app
"""

import logging

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from pacer import Limiter, LimiterMiddleware, Rate, create_otel_hooks

log = logging.getLogger("example")


def on_decision(request, policy, result, duration_ms):
    if not result.allowed:
        log.warning("limited %s on %s (%s), retry in %d ms", request.client.host,
                    request.url.path, policy.name, result.retry_after_ms)


def on_error(request, policy, error, duration_ms):
    log.error("rate limit store failed for %s: %s", policy.name, error)


limiter = Limiter(redis_url=None, on_decision=on_decision, on_error=on_error)
# With OpenTelemetry installed, these record counters, a histogram and span events:
#   on_decision, on_error = create_otel_hooks(service_name="shop")
otel_decision, otel_error = create_otel_hooks(service_name="example")

app = FastAPI()
app.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(5, "1m", burst=2),
                   exclude_paths=["/metrics*"])


@app.get("/")
async def root():
    return {"message": "hello"}


@app.get("/metrics")
async def metrics():
    return limiter.get_metrics()


@app.get("/metrics/prometheus", response_class=PlainTextResponse)
async def prometheus():
    return limiter.prometheus()
