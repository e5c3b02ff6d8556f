"""Issue 19, Python side: shadow policies and refused missing identities.

A shadow policy (`Policy(..., shadow=True)`) decides and counts but never shows a would-be
denial: every request passes, no RateLimit-* header is sent, and the engine's metrics count the
denials. `missing_identity="refuse"` answers a request without the identity with 401 before
anything is spent. The same answers as pacerd's and the C++ layer's (tests/conformance/
trace.json's "dry" and "strict" steps compare them)."""

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from pacer import Limiter, LimiterMiddleware, Policy, Rate, limit, rate_limit

DRY = Policy([Rate(1, "1m")], name="dry", shadow=True)


def client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.70", 1)),
                             base_url="http://test")


def app_with(limiter, policy=DRY):
    """/middleware, /dependency and /decorator, each limited by `policy` its own way."""
    app = FastAPI()
    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=policy,
                       exclude_paths=["/dependency", "/decorator"])

    @app.get("/middleware")
    async def middleware():
        return {"ok": True}

    @app.get("/dependency", dependencies=[Depends(limit(policy, limiter=limiter))])
    async def dependency():
        return {"ok": True}

    @app.get("/decorator")
    @rate_limit(policy, limiter=limiter)
    async def decorator(request: Request):
        return {"ok": True}

    return app


async def test_shadow_policies_pass_everything_and_show_nothing(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    await limiter.startup()
    async with client(app_with(limiter)) as c:
        for path in ("/middleware", "/dependency", "/decorator"):
            responses = [await c.get(path) for _ in range(4)]
            assert [r.status_code for r in responses] == [200] * 4, path
            for r in responses:
                assert not [h for h in r.headers if h.lower().startswith(("ratelimit", "x-ratelimit",
                                                                           "retry-after"))], path
    # One bucket per route: 1 admitted and 3 would-be denials on each, counted.
    assert limiter.metrics.requests_allowed == 3
    assert limiter.metrics.requests_blocked == 9
    result = limiter.check_blocking("user:9", DRY)
    assert result.allowed and result.outcome == "allowed" and result.retry_after_ms == 0
    result = limiter.check_blocking("user:9", DRY)
    assert result.allowed and result.remaining == 0 and result.retry_after_ms == 0
    assert limiter.peek("user:9", DRY).allowed
    await limiter.shutdown()


def test_shadow_is_keyword_only_and_checked():
    assert not Policy([Rate(1, "1m")]).shadow
    with pytest.raises(TypeError, match="shadow must be True or False, got 'yes'"):
        Policy([Rate(1, "1m")], shadow="yes")


STRICT = Policy([Rate(3, "1m", burst=1)], key="api_key", name="strict", missing_identity="refuse")


async def test_a_missing_identity_is_refused_with_401_before_anything_is_spent(store_url,
                                                                               app_name):
    """Issue 19: `missing_identity="refuse"` answers a request without an API key as pacerd
    and the C++ layer do; requests with a key are limited as before."""
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    await limiter.startup()
    async with client(app_with(limiter, STRICT)) as c:
        for path in ("/middleware", "/dependency", "/decorator"):
            refused = [await c.get(path) for _ in range(3)]
            assert [r.status_code for r in refused] == [401] * 3, path
            assert all(r.content == b'{"detail":"identity_missing"}' for r in refused), path
            keyed = [await c.get(path, headers={"X-API-Key": "k1"}) for _ in range(3)]
            assert [r.status_code for r in keyed] == [200, 200, 429], path
    assert limiter.metrics.requests_allowed == 6  # the 401s spent nothing
    from pacer import IdentityMissing
    from starlette.requests import Request as StarletteRequest

    bare = StarletteRequest({"type": "http", "method": "GET", "path": "/", "headers": [],
                             "client": ("203.0.113.9", 1), "query_string": b""})
    with pytest.raises(IdentityMissing, match="strict"):
        await limiter.check_policy(bare, STRICT)
    shared = Policy([Rate(3, "1m")], key="api_key", name="shared")  # FastAPI Pacer's default
    assert (await limiter.check_policy(bare, shared)).allowed
    await limiter.shutdown()


def test_missing_identity_is_checked():
    with pytest.raises(ValueError, match=r"missing_identity must be .*got 'drop'"):
        Policy([Rate(1, "1m")], missing_identity="drop")
