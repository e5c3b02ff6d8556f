"""Per-route limits with the `limit()` dependency, and a limiter registered globally.

    uvicorn --app-dir python/examples dependency:app
"""

from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from pacer import Limiter, Policy, Rate, limit, rate_limit, set_limiter

limiter = Limiter(redis_url=None, default_policy=Policy([Rate(10, "1m", burst=5)], name="default"))
set_limiter(limiter)


@asynccontextmanager
async def lifespan(app: FastAPI):
    await limiter.startup()
    yield
    await limiter.shutdown()


app = FastAPI(lifespan=lifespan)


@app.get("/limited", dependencies=[Depends(limit())])  # the limiter's default policy
async def limited():
    return {"message": "default policy"}


@app.post("/login", dependencies=[Depends(limit(Rate(5, "1m")))])
async def login():
    return {"message": "welcome"}


@app.get("/search")
@rate_limit(Rate(2, "1s", burst=3))  # the decorator form
async def search(q: str = ""):
    return {"results": [], "q": q}


# A router-level limit: every route below shares one policy (a bucket per route and client).
admin = APIRouter(prefix="/admin", dependencies=[Depends(limit(Rate(30, "1m")))])


@admin.get("/stats")
async def stats():
    return {"limiter": limiter.get_metrics()}


app.include_router(admin)
