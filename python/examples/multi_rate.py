"""Several rates in one policy: all must pass, and a denied request consumes none of them.

    uvicorn --app-dir python/examples multi_rate:app
"""

from fastapi import Depends, FastAPI

from pacer import Limiter, Policy, Rate, limit

limiter = Limiter(redis_url=None, expose_policy_header=True)

api_policy = Policy(
    rates=[Rate(10, "1s", burst=5), Rate(100, "1m", burst=20), Rate(1000, "1h", burst=100)],
    key="ip",
    name="api",
)

app = FastAPI()


@app.get("/api/items", dependencies=[Depends(limit(api_policy, limiter=limiter))])
async def items():
    # X-RateLimit-Policy: Policy(api): 10/1s (burst=5), 100/1m (burst=20), 1000/1h (burst=100)
    return {"items": [1, 2, 3]}
