"""Middleware, dependency and decorator through FastAPI and httpx, on every store."""

import json

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response

from pacer import (Limiter, LimiterMiddleware, Policy, Rate, get_limiter, limit, rate_limit,
                   set_limiter)

from conftest import RedisServer, HAVE_REDIS

RL = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def client(app, host="203.0.113.5"):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 1234)),
                             base_url="http://test")


def make_app(limiter, middleware=None, **kwargs):
    app = FastAPI()
    if middleware is not None:
        app.add_middleware(LimiterMiddleware, limiter=limiter, policy=middleware, **kwargs)

    @app.get("/")
    async def root():
        return {"ok": True}

    @app.get("/health")
    async def health():
        return {"status": "healthy"}

    @app.get("/dep", dependencies=[Depends(limit(Rate(10, "1m", burst=5), limiter=limiter))])
    async def dep():
        return {"ok": "dep"}

    @app.get("/deco")
    @rate_limit(Rate(1, "1m"), limiter=limiter)
    async def deco():
        return {"ok": "deco"}

    @app.get("/boom")
    async def boom():
        raise RuntimeError("endpoint failed")

    return app


async def test_middleware_headers_and_429(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = make_app(limiter, Rate(10, "1m", burst=5), exclude_paths=["/health"])
    async with client(app) as c:
        seen = []
        for _ in range(6):
            r = await c.get("/")
            assert r.status_code == 200 and r.json() == {"ok": True}
            assert "retry-after" not in r.headers
            seen.append(tuple(r.headers[h] for h in RL))
        # docs/DESIGN.md §2: tau = (burst + 1) * T; remaining counts further passes exactly.
        assert [s[1] for s in seen] == ["5", "4", "3", "2", "1", "0"]
        assert [s[2] for s in seen] == ["6", "12", "18", "24", "30", "36"]
        assert all(s[0] == "10" for s in seen)
        r = await c.get("/")
        assert r.status_code == 429
        body = r.json()
        assert body["detail"] == "rate_limited" and 5900 <= body["retry_after_ms"] <= 6000
        assert r.text == json.dumps(body, separators=(",", ":"))
        assert r.headers["retry-after"] == "6" and r.headers["ratelimit-remaining"] == "0"
        assert r.headers["content-type"] == "application/json"
        # Excluded paths and methods: no check, no headers.
        for _ in range(3):
            r = await c.get("/health")
            assert r.status_code == 200 and "ratelimit-limit" not in r.headers
        r = await c.options("/")
        assert "ratelimit-limit" not in r.headers
    assert limiter.metrics.requests_allowed == 6 and limiter.metrics.requests_blocked == 1
    assert limiter.get_metrics()["limiter"] == {"requests_allowed": 6, "requests_blocked": 1,
                                                "redis_errors": 0}
    from pacer import LimiterMetrics

    limiter.metrics = LimiterMetrics()
    assert limiter.metrics.to_dict() == {"requests_allowed": 0, "requests_blocked": 0,
                                         "redis_errors": 0}
    text = limiter.prometheus()
    assert "pacer_requests_allowed_total 6" in text and "pacer_check_duration_seconds" in text
    await limiter.shutdown()


async def test_dependency_nested_429_and_decorator_flat_429(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = make_app(limiter)
    async with client(app) as c:
        for i in range(6):
            r = await c.get("/dep")
            assert r.status_code == 200 and r.headers["ratelimit-remaining"] == str(5 - i)
        r = await c.get("/dep")
        assert r.status_code == 429
        detail = r.json()["detail"]
        assert set(detail) == {"detail", "retry_after_ms"} and detail["detail"] == "rate_limited"
        assert r.headers["retry-after"] == "6" and r.headers["ratelimit-limit"] == "10"
        r = await c.get("/deco")
        assert r.status_code == 200 and r.json() == {"ok": "deco"}
        r = await c.get("/deco")
        assert r.status_code == 429 and r.json()["detail"] == "rate_limited"
        assert r.headers["retry-after"] == "60"
    await limiter.shutdown()


async def test_per_route_buckets_scopes_and_identities(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = FastAPI()

    @app.get("/items/{item}", dependencies=[Depends(limit(Rate(1, "1m"), limiter=limiter))])
    async def item(item: int):
        return {"item": item}

    async with client(app) as c, client(app, "203.0.113.6") as other:
        assert (await c.get("/items/1")).status_code == 200
        # One bucket per route template, not per concrete path (FastAPI Pacer's, issue 20):
        # /items/2 and /items/01 spend /items/{item}'s bucket too.
        assert (await c.get("/items/2")).status_code == 429
        assert (await c.get("/items/01")).status_code == 429
        assert (await c.get("/items/1")).status_code == 429
        assert (await other.get("/items/1")).status_code == 200  # another client
        spoofed = await c.get("/items/1", headers={"X-Forwarded-For": "198.51.100.1"})
        assert spoofed.status_code == 429  # a public peer cannot choose its identity
    await limiter.shutdown()


async def test_trusted_proxy_headers_pick_the_client(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = make_app(limiter, Rate(1, "1m"))
    async with client(app, "10.0.0.1") as proxy:
        for ip in ("198.51.100.1", "198.51.100.2"):
            r = await proxy.get("/", headers={"X-Forwarded-For": f"{ip}, 10.0.0.2"})
            assert r.status_code == 200
        r = await proxy.get("/", headers={"X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 429
    await limiter.shutdown()


async def test_optional_headers_and_expose_off(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name, legacy_timestamp_header=True,
                      expose_policy_header=True)
    app = make_app(limiter, Policy([Rate(100, "1m", burst=10)], name="root"))
    async with client(app) as c:
        r = await c.get("/")
        assert r.headers["x-ratelimit-policy"] == "Policy(root): 100/1m (burst=10)"
        assert int(r.headers["x-ratelimit-reset"]) > 1_700_000_000
    quiet = Limiter(redis_url=None, app_name=app_name, expose_headers=False)
    app = make_app(quiet, Rate(1, "1m"))
    async with client(app) as c:
        assert "ratelimit-limit" not in (await c.get("/")).headers
        r = await c.get("/")
        assert r.status_code == 429 and "retry-after" not in r.headers


async def test_middleware_does_not_rerun_or_mask_the_application(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = make_app(limiter, Rate(100, "1m"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/boom")
        assert r.status_code == 500
    assert limiter.metrics.requests_allowed == 1


async def test_websocket_and_lifespan_pass_through(app_name):
    seen = []

    async def inner(scope, receive, send):
        seen.append(scope["type"])

    middleware = LimiterMiddleware(inner, Limiter(redis_url=None, app_name=app_name), Rate(1, "1m"))
    await middleware({"type": "lifespan"}, None, None)
    await middleware({"type": "websocket", "path": "/"}, None, None)
    assert seen == ["lifespan", "websocket"]


async def test_hooks_including_one_that_raises(store_url, app_name):
    decisions, errors = [], []

    def on_decision(request, policy, result, duration_ms):
        decisions.append((request.url.path, policy.name, result.allowed, duration_ms))
        raise RuntimeError("hook bug")

    limiter = Limiter(redis_url=store_url, app_name=app_name, on_decision=on_decision,
                      on_error=lambda *a: errors.append(a))
    app = make_app(limiter, Rate(1, "1m"))
    async with client(app) as c:
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/")).status_code == 429
        assert (await c.get("/health")).status_code == 200  # a bucket per route
    assert [d[:3] for d in decisions] == [("/", "middleware", True), ("/", "middleware", False),
                                          ("/health", "middleware", True)]
    assert all(d[3] > 0 for d in decisions) and errors == []
    await limiter.shutdown()


async def test_check_policy_on_duck_typed_requests(app_name):
    from unittest.mock import MagicMock

    limiter = Limiter(redis_url=None, app_name=app_name)
    request = MagicMock()
    request.client.host = "203.0.113.5"
    request.headers = {}
    request.url.path = "/api/items"
    request.method = "GET"
    policy = Policy([Rate(2, "1m", burst=1)], name="p")
    results = [await limiter.check_policy(request, policy) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert results[2].retry_after_ms > 0 and results[2].retry_after_seconds == 30
    response = MagicMock()
    response.headers = {}
    limiter.add_headers(response, results[0], policy)
    assert response.headers == {"RateLimit-Limit": "2", "RateLimit-Remaining": "1",
                                "RateLimit-Reset": "30"}
    response.headers = {}
    limiter.add_headers(response, results[2], policy)
    assert response.headers["Retry-After"] == "30"
    with pytest.raises(ValueError, match="No policy provided"):
        await limiter.check_policy(request)
    legacy = await limiter.check_rate_limit(request, Rate(5, "1m"))
    assert legacy.allowed


async def test_global_limiter_and_missing_limiter(app_name):
    import pacer.dependencies as deps

    saved = deps._limiter
    deps._limiter = None
    try:
        with pytest.raises(RuntimeError, match="Limiter not configured"):
            get_limiter()
        limiter = Limiter(redis_url=None, app_name=app_name, default_policy=Rate(1, "1m"))
        set_limiter(limiter)
        assert get_limiter() is limiter
        app = FastAPI()

        @app.get("/x", dependencies=[Depends(limit())])
        async def x():
            return {}

        async with client(app) as c:
            assert (await c.get("/x")).status_code == 200
            r = await c.get("/x")
            # The default policy's limit, not FastAPI Pacer's "0".
            assert r.status_code == 429 and r.headers["ratelimit-limit"] == "1"
    finally:
        deps._limiter = saved


async def test_decorator_with_a_request_parameter_and_a_response(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = FastAPI()

    @app.get("/r")
    @rate_limit(Rate(5, "1m"), limiter=limiter)
    async def r(request: Request):
        return Response("plain")

    async with client(app) as c:
        res = await c.get("/r")
        assert res.text == "plain" and res.headers["ratelimit-limit"] == "5"


@pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not installed")
@pytest.mark.parametrize("mode", ["open", "closed", "local"])
async def test_redis_killed(mode, app_name):
    server = RedisServer()
    errors = []
    limiter = Limiter(redis_url=server.url, app_name=app_name, fail_mode=mode,
                      command_timeout_ms=50, on_error=lambda *a: errors.append(a[2]))
    app = make_app(limiter, Rate(100, "1m", burst=10))
    try:
        await limiter.startup()
        assert await limiter.is_healthy()
        async with client(app) as c:
            assert (await c.get("/")).status_code == 200
            server.kill()
            statuses = [(await c.get("/")) for _ in range(5)]
            dep = await c.get("/dep")
        if mode == "closed":
            assert all(r.status_code == 503 for r in statuses)
            assert statuses[0].text == '{"detail":"Service temporarily unavailable"}'
            assert statuses[0].headers["retry-after"] == "5"
        else:
            assert all(r.status_code == 200 for r in statuses)
        assert errors and all("store error" not in str(e) for e in errors)
        assert limiter.metrics.redis_errors >= 5
        assert not await limiter.is_healthy()
        if mode == "closed":
            assert dep.status_code == 503
            assert dep.json() == {"detail": "Service temporarily unavailable"}
    finally:
        await limiter.shutdown()
        server.stop()


@pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not installed")
async def test_startup_fail_closed_raises_and_open_goes_on(app_name):
    from conftest import free_port

    dead = f"redis://127.0.0.1:{free_port()}"
    closed = Limiter(redis_url=dead, app_name=app_name, fail_mode="closed", connect_timeout_ms=200)
    with pytest.raises(ConnectionError):
        await closed.startup()
    opened = Limiter(redis_url=dead, app_name=app_name, connect_timeout_ms=200)
    await opened.startup()
    assert not await opened.is_healthy()
    await closed.shutdown()
    await opened.shutdown()


async def test_selector_error_follows_the_fail_mode(app_name):
    def broken(_):
        raise KeyError("no tenant")

    for mode, status in (("open", 200), ("closed", 503)):
        limiter = Limiter(redis_url=None, app_name=app_name, fail_mode=mode)
        app = make_app(limiter, Policy([Rate(1, "1m")], key=broken, name="t"))
        async with client(app) as c:
            r = await c.get("/")
            assert r.status_code == status


async def test_hostile_requests_do_not_hurt_the_next_one(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = make_app(limiter, Policy([Rate(1000, "1m", burst=100)], key="api_key", name="k"))
    async with client(app) as c:
        for headers in ({"X-API-Key": "x" * 8000}, {"X-API-Key": "{}\x01"},
                        {"Authorization": ("Bearer " + "\u00e9" * 100).encode()},
                        {"X-API-Key": b"\xff\xfe"},
                        {"X-Forwarded-For": ",,," * 500}):
            assert (await c.get("/", headers=headers)).status_code == 200
        assert (await c.get("/")).status_code == 200


@pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not installed")
async def test_redis_over_tls(redis_tls, app_name):
    limiter = Limiter(redis_url=redis_tls.url, app_name=app_name, fail_mode="closed",
                      tls_ca_file=redis_tls.tls["ca"])
    app = make_app(limiter, Rate(1, "1m"))
    async with client(app) as c:
        assert (await c.get("/")).status_code == 200
        assert (await c.get("/")).status_code == 429
    assert limiter.metrics.redis_errors == 0
    await limiter.shutdown()
    # A CA that did not sign the server's certificate: refused, named in the error.
    wrong = Limiter(redis_url=redis_tls.url, app_name=app_name, fail_mode="closed",
                    tls_ca_file=redis_tls.tls["other"], connect_timeout_ms=500)
    with pytest.raises(ConnectionError, match="certificate|verify|handshake"):
        await wrong.startup()
    await wrong.shutdown()
