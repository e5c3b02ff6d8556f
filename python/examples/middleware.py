"""Every request limited by client IP: 100 per minute with bursts of 20.

    uvicorn --app-dir python/examples middleware:app    (from the repository root)
"""

from fastapi import FastAPI

from pacer import Limiter, LimiterMiddleware, Rate

# redis_url=None: the in-process store (no server). Use "redis://host:6379" to share limits
# between processes, "redis+cluster://a:7000,b:7001" for a Redis Cluster.
limiter = Limiter(redis_url=None)

app = FastAPI()
app.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(100, "1m", burst=20),
                   exclude_paths=["/health", "/docs*", "/openapi.json"])


@app.get("/")
async def root():
    return {"message": "hello"}


@app.get("/health")
async def health():
    return {"status": "ok"}
