"""Issue 19: the built-in selectors are the http layer's (pacer._pacer.Rule), not Python's.

A policy's key is built by its compiled rule from the ASGI scope (the middleware, `limit()`,
`@rate_limit`) or from a request object (`check_policy`, the selector functions): both must give
the same key for the same request, in FastAPI Pacer's text, and a request without the identity
gets the selector's shared bucket or 401, decided in C++."""

from types import SimpleNamespace
from unittest.mock import MagicMock

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from starlette.requests import Request as StarletteRequest

from pacer import (Limiter, LimiterMiddleware, Policy, Rate, key_api_key, key_ip, key_org,
                   key_user, limit)
from pacer import _pacer

SELECTORS = {"ip": key_ip, "api_key": key_api_key, "user": key_user, "org": key_org}


def scope_of(headers=(), query=b"", state=None, user=None, client=("10.0.0.7", 5)):
    scope = {"type": "http", "method": "GET", "path": "/items/7", "root_path": "",
             "query_string": query, "client": client,
             "headers": [(n.lower().encode(), v.encode("latin-1")) for n, v in headers]}
    if state is not None:
        scope["state"] = state
    if user is not None:
        scope["user"] = user
    return scope


CASES = [
    scope_of(),
    scope_of(client=None),
    scope_of(client=("testclient", 1)),
    scope_of(headers=[("X-Forwarded-For", "203.0.113.9, 10.0.0.2")]),
    scope_of(headers=[("X-Real-IP", "198.51.100.3")], client=("203.0.113.1", 1)),  # spoofed
    scope_of(headers=[("X-API-Key", "k-1")]),
    scope_of(headers=[("Authorization", "Bearer  tok ")]),
    scope_of(headers=[("Authorization", "bearer tok")]),
    scope_of(headers=[("X-API-Key", "caf\u00e9")]),
    scope_of(query=b"a=1&api_key=q%2Bkey+x"),
    scope_of(state={"user_id": 42, "org_id": "acme"}),
    scope_of(state={"user_id": 0, "user": SimpleNamespace(id="u7"), "organization_id": "o9"}),
    scope_of(state={"org": SimpleNamespace(id=5)}, user=SimpleNamespace(id="auth-user")),
    scope_of(state={"user_id": "{evil}|x" * 40}),
]


@pytest.mark.parametrize("selector", sorted(SELECTORS))
@pytest.mark.parametrize("index", range(len(CASES)))
def test_scope_and_request_object_give_one_key(selector, index):
    """The middleware's view (the scope) and check_policy's (a Request over it) agree, and the
    selector function answers the identity in that key."""
    scope = CASES[index]
    policy = Policy([Rate(1, "1s")], key=selector, name="p")
    rule = _pacer.Rule(policy._native, "app", _pacer.ScopeKind.METHOD_PATH, selector, "shared")
    request = StarletteRequest(scope)
    identity = SELECTORS[selector](request)
    assert rule.request_key(scope, "/items/{id}") == rule.request_key(request, "/items/{id}")
    assert rule.request_key(scope, "/items/{id}") == rule.key("GET:/items/{id}", identity)


def test_selector_text_is_fastapi_pacers():
    scope = scope_of(headers=[("X-API-Key", "k-1")], state={"user_id": 42})
    request = StarletteRequest(scope)
    assert key_ip(request) == "10.0.0.7"
    assert key_api_key(request) == _pacer.hash_identity("k-1")
    assert key_user(request) == "42"
    assert key_org(request) == "no_org"
    assert key_ip(StarletteRequest(scope_of(client=None))) == "unknown"
    assert key_api_key(StarletteRequest(scope_of(query=b"api_key=q%2Bkey+x"))) == \
        _pacer.hash_identity("q+key x")
    # Mocks with plain dicts, as FastAPI Pacer's tests use.
    mock = MagicMock()
    mock.headers = {"X-API-Key": "k-1"}
    assert key_api_key(mock) == _pacer.hash_identity("k-1")


def test_refused_identity_raises_the_engines_exception():
    policy = Policy([Rate(1, "1s")], key="user", name="p", missing_identity="refuse")
    rule = _pacer.Rule(policy._native, "app", _pacer.ScopeKind.PATH, "user", "refuse")
    with pytest.raises(_pacer.IdentityMissing):
        rule.request_key(scope_of(), "/")
    assert rule.request_key(scope_of(state={"user_id": "u"}), "/") == rule.key("/", "u")


def test_bad_selectors_are_refused_naming_them():
    native = Policy([Rate(1, "1s")])._native
    with pytest.raises(TypeError, match="Selector must be string or callable, got <class 'int'>"):
        _pacer.Rule(native, "app", _pacer.ScopeKind.PATH, 42, "shared")
    with pytest.raises(ValueError, match="Unknown selector: who"):
        _pacer.Rule(native, "app", _pacer.ScopeKind.PATH, "who", "shared")
    with pytest.raises(ValueError, match="expected refuse or shared"):
        _pacer.Rule(native, "app", _pacer.ScopeKind.PATH, "ip", "deny")
    with pytest.raises(ValueError, match="key prefix"):
        _pacer.Rule(native, "a{b", _pacer.ScopeKind.PATH, "ip", "shared")


def test_a_selector_function_that_raises_propagates_and_the_next_request_is_decided():
    def broken(request):
        raise RuntimeError("selector broke")

    rule = _pacer.Rule(Policy([Rate(1, "1s")])._native, "app", _pacer.ScopeKind.PATH, broken,
                       "shared")
    with pytest.raises(RuntimeError, match="selector broke"):
        rule.request_key(scope_of(), "/")
    ok = _pacer.Rule(Policy([Rate(1, "1s")])._native, "app", _pacer.ScopeKind.PATH,
                     lambda request: request.client.host, "shared")
    assert ok.request_key(scope_of(), "/") == ok.key("/", "10.0.0.7")  # a Request made for it


async def test_user_and_api_key_limits_in_the_middleware_and_the_dependency(store_url, app_name):
    """Users set by an earlier middleware and API keys from the query string are counted per
    user and per key, in one call into C++ per request; a request without a user is 401 where
    the policy refuses it."""
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    per_user = Policy([Rate(2, "1m", burst=1)], key="user", name="u", missing_identity="refuse")
    per_key = Policy([Rate(1, "1m")], key="api_key", name="k")
    app = FastAPI()

    @app.get("/u")
    async def users():
        return {"ok": True}

    @app.get("/k", dependencies=[Depends(limit(per_key, limiter=limiter))])
    async def keys():
        return {"ok": True}

    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=per_user, exclude_paths=["/k"])

    @app.middleware("http")
    async def login(request: Request, call_next):  # outermost: runs before the limiter
        who = request.headers.get("x-user")
        if who:
            request.state.user_id = who
        return await call_next(request)

    transport = httpx.ASGITransport(app=app, client=("203.0.113.40", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        alice = [(await c.get("/u", headers={"x-user": "alice"})).status_code for _ in range(3)]
        assert alice == [200, 200, 429]
        assert (await c.get("/u", headers={"x-user": "bob"})).status_code == 200
        missing = await c.get("/u")
        assert missing.status_code == 401 and missing.json() == {"detail": "identity_missing"}
        assert [(await c.get("/k?api_key=one")).status_code for _ in range(2)] == [200, 429]
        assert (await c.get("/k", headers={"X-API-Key": "one"})).status_code == 429  # same key
        assert (await c.get("/k?api_key=two")).status_code == 200
    await limiter.shutdown()


async def test_a_shadow_policy_skips_a_request_without_the_identity(app_name):
    """A shadow policy never refuses: a request it cannot count (no user) passes uncounted,
    without headers, as a shadow rule in the C++ layer is skipped."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    dry = Policy([Rate(1, "1m")], key="user", name="dry", shadow=True, missing_identity="refuse")
    rule = _pacer.Rule(dry._native, app_name, _pacer.ScopeKind.PATH, "user", "refuse")
    assert rule.request_key(scope_of(), "/") is None
    app = FastAPI()

    @app.get("/")
    async def root():
        return {"ok": True}

    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=dry)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.41", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        for _ in range(3):
            r = await c.get("/")
            assert r.status_code == 200 and "ratelimit-limit" not in r.headers
    result = await limiter.check_policy(StarletteRequest(scope_of()), dry)
    assert result.allowed
    assert limiter.metrics.requests_allowed + limiter.metrics.requests_blocked == 0
    await limiter.shutdown()
