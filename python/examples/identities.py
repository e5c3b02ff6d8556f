"""Who is counted: API keys, users, organisations, and compositions of selectors.

    uvicorn --app-dir python/examples identities:app
    curl -H 'X-API-Key: k1' localhost:8000/by-key
"""

from fastapi import Depends, FastAPI, Request

from pacer import Limiter, Policy, Rate, compose, key_ip, key_user, limit

limiter = Limiter(redis_url=None)
app = FastAPI()


@app.middleware("http")
async def fake_authentication(request: Request, call_next):
    # An authentication layer would set these; the selectors read request.state.
    request.state.user_id = request.headers.get("X-User")
    request.state.org_id = request.headers.get("X-Org")
    return await call_next(request)


def tenant(request: Request) -> str:
    """A custom selector: any function request -> str."""
    return request.headers.get("X-Tenant", "public")


by_key = Policy([Rate(20, "1m", burst=5)], key="api_key", name="by_key")  # SHA-256, never clear
by_user = Policy([Rate(10, "1m")], key="user", name="by_user")  # "anonymous" without a user
by_org = Policy([Rate(100, "1m")], key="org", name="by_org")
by_user_and_ip = Policy([Rate(5, "1m")], key=compose(key_user, key_ip), name="by_user_and_ip")
by_tenant = Policy([Rate(50, "1m")], key=tenant, name="by_tenant")


@app.get("/by-key", dependencies=[Depends(limit(by_key, limiter=limiter))])
async def with_key():
    return {"counted": "per API key"}


@app.get("/by-user", dependencies=[Depends(limit(by_user, limiter=limiter))])
async def with_user():
    return {"counted": "per user"}


@app.get("/by-org", dependencies=[Depends(limit(by_org, limiter=limiter))])
async def with_org():
    return {"counted": "per organisation"}


@app.get("/by-user-and-ip", dependencies=[Depends(limit(by_user_and_ip, limiter=limiter))])
async def with_user_and_ip():
    return {"counted": "per user and address"}


@app.get("/by-tenant", dependencies=[Depends(limit(by_tenant, limiter=limiter))])
async def with_tenant():
    return {"counted": "per tenant"}
