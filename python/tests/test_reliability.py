"""Issue 20, Python side: nothing bypasses a limit by spelling a path another way or by asking
with HEAD instead of GET.

FastAPI Pacer keyed `route_scope="route"` by the concrete path (`/items/7`, `/items/07` and
`/items/007` were three buckets) and its middleware skipped HEAD; each let one client pass a
limit as many times as it liked. Every test sends 30 requests against a limit that admits
exactly 6 at once (`Rate(6, "1m", burst=5)`)."""

import httpx
import pytest
from fastapi import Depends, FastAPI

from pacer import Limiter, LimiterMiddleware, Policy, Rate, limit, rate_limit

SIX = Rate(6, "1m", burst=5)
ADMITTED = [200] * 6 + [429] * 24
# Thirty spellings of one item: /items/7, /items/07, /items/007, ...
SPELLINGS = ["/items/" + "0" * k + "7" for k in range(30)]


def client(app, host="203.0.113.5"):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 1234)),
                             base_url="http://test")


async def statuses(app, paths, method="GET"):
    async with client(app) as c:
        return [(await c.request(method, path)).status_code for path in paths]


def items_app(limiter, middleware=True, **kwargs):
    app = FastAPI()
    if middleware:
        app.add_middleware(LimiterMiddleware, limiter=limiter, policy=SIX, **kwargs)

    @app.get("/items/{i}")
    async def item(i: int):
        return {"item": i}

    @app.api_route("/page", methods=["GET", "HEAD"])
    async def page():
        return {"page": True}

    return app


# -- Item A: the route template, not the concrete path -----------------------------------------

async def test_middleware_keys_spellings_of_one_route_together(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    assert await statuses(items_app(limiter), SPELLINGS) == ADMITTED
    await limiter.shutdown()


async def test_dependency_keys_spellings_of_one_route_together(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = FastAPI()

    @app.get("/items/{i}", dependencies=[Depends(limit(SIX, limiter=limiter))])
    async def item(i: int):
        return {"item": i}

    assert await statuses(app, SPELLINGS) == ADMITTED
    await limiter.shutdown()


async def test_decorator_keys_spellings_of_one_route_together(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = FastAPI()

    @app.get("/items/{i}")
    @rate_limit(SIX, limiter=limiter)
    async def item(i: int):
        return {"item": i}

    assert await statuses(app, SPELLINGS) == ADMITTED


async def test_method_scope_keys_by_method_and_template(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name, route_scope="method")
    app = items_app(limiter)
    assert await statuses(app, SPELLINGS) == ADMITTED
    # Another method on the same template is another bucket (POST: the router's 405).
    assert await statuses(app, SPELLINGS[:7], "POST") == [405] * 6 + [429]


@pytest.mark.parametrize("route_scope", ["path", "method_path"])
async def test_concrete_path_scopes_keep_fastapi_pacers_buckets(route_scope, app_name):
    """FastAPI Pacer's "route" (and "method"): a bucket per concrete path, on request."""
    limiter = Limiter(redis_url=None, app_name=app_name, route_scope=route_scope)
    assert await statuses(items_app(limiter), SPELLINGS) == [200] * 30
    app = FastAPI()

    @app.get("/items/{i}", dependencies=[Depends(limit(SIX, limiter=limiter))])
    async def item(i: int):
        return {"item": i}

    assert await statuses(app, SPELLINGS) == [200] * 30
    # Each concrete path is still limited.
    assert await statuses(app, ["/items/7"] * 6) == [200] * 5 + [429]


async def test_unmatched_paths_share_one_bucket(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = items_app(limiter)
    unknown = [f"/nothing/{k}" for k in range(15)] + [f"/items/7/{k}" for k in range(15)]
    assert await statuses(app, unknown) == [404] * 6 + [429] * 24
    # The routes' own buckets are untouched by 404s.
    assert await statuses(app, ["/items/7"]) == [200]


async def test_mounts_key_by_the_full_template(app_name):
    """A sub-app under a parameterised mount: `/t/{tenant}/things/{t}`, whoever the tenant."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    sub = FastAPI()

    @sub.get("/things/{t}")
    async def thing(t: int):
        return {"thing": t}

    @sub.get("/deps/{t}", dependencies=[Depends(limit(SIX, limiter=limiter))])
    async def dep(t: int):
        return {"dep": t}

    app = FastAPI()
    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=SIX)
    app.mount("/t/{tenant}", sub)
    things = [f"/t/{k}/things/{'0' * k}1" for k in range(30)]
    assert await statuses(app, things) == ADMITTED
    assert await statuses(app, ["/t/a/nothing", "/t/b/nothing"]) == [404, 404]  # <unmatched>
    # The dependency inside the mounted app (no middleware in front of it this time).
    bare = FastAPI()
    bare.mount("/t/{tenant}", sub)
    deps = [f"/t/{k}/deps/{'0' * k}1" for k in range(30)]
    assert await statuses(bare, deps) == ADMITTED


async def test_middleware_wrapping_the_app_from_outside(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = LimiterMiddleware(items_app(limiter, middleware=False), limiter=limiter, policy=SIX)
    assert await statuses(app, SPELLINGS) == ADMITTED


async def test_a_middleware_below_that_hides_its_app(app_name):
    """The `.app` chain from the limiter to the router is broken: the routes are found through
    the Starlette app that called the middleware."""

    class Hiding:
        def __init__(self, app):
            self._inner = app

        async def __call__(self, scope, receive, send):
            await self._inner(scope, receive, send)

    limiter = Limiter(redis_url=None, app_name=app_name)
    app = items_app(limiter, middleware=False)
    app.add_middleware(Hiding)
    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=SIX)
    assert await statuses(app, SPELLINGS) == ADMITTED


async def test_check_policy_before_routing(app_name):
    """`check_policy` from the application's own middleware, before FastAPI routed: the
    template from the app's routes."""
    from starlette.requests import Request

    limiter = Limiter(redis_url=None, app_name=app_name)
    app = items_app(limiter, middleware=False)
    allowed = []
    for path in SPELLINGS[:8] + ["/nothing/1", "/nothing/2"]:
        request = Request({"type": "http", "method": "GET", "path": path, "root_path": "",
                           "headers": [], "query_string": b"", "client": ("203.0.113.5", 1),
                           "app": app})
        allowed.append((await limiter.check_rate_limit(request, SIX)).allowed)
    assert allowed == [True] * 6 + [False] * 2 + [True, True]


async def test_a_plain_asgi_app_keeps_concrete_paths(app_name):
    """No routes to match (no Starlette router under the middleware): the concrete path."""

    async def plain(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limiter = Limiter(redis_url=None, app_name=app_name)
    app = LimiterMiddleware(plain, limiter=limiter, policy=SIX)
    assert await statuses(app, SPELLINGS[:10]) == [200] * 10
    assert await statuses(app, ["/a"] * 7) == [200] * 6 + [429]


@pytest.mark.parametrize("value", ["host", "ROUTE", "", None, ["route"]])
def test_unknown_route_scope_names_the_value_and_the_accepted_ones(value):
    with pytest.raises(ValueError) as error:
        Limiter(redis_url=None, route_scope=value)
    text = str(error.value)
    assert repr(value) in text
    for accepted in ("'route'", "'method'", "'app'", "'path'", "'method_path'"):
        assert accepted in text


# -- Item B: HEAD is limited like GET ----------------------------------------------------------

async def test_head_is_limited_by_default(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    assert await statuses(items_app(limiter), ["/page"] * 30, "HEAD") == ADMITTED


async def test_head_and_get_share_the_route_bucket(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = items_app(limiter)
    assert await statuses(app, ["/page"] * 3) == [200] * 3
    assert await statuses(app, ["/page"] * 27, "HEAD") == [200] * 3 + [429] * 24


async def test_fastapi_pacers_method_exclusions_on_request(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = items_app(limiter, exclude_methods={"OPTIONS", "HEAD"})
    assert await statuses(app, ["/page"] * 30, "HEAD") == [200] * 30
    assert limiter.metrics.requests_allowed == 0


async def test_options_stays_excluded_by_default(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    async with client(items_app(limiter)) as c:
        for _ in range(10):
            r = await c.options("/page")
            assert r.status_code != 429 and "ratelimit-limit" not in r.headers
    assert limiter.metrics.requests_allowed == 0


# -- Item 6: the key space is one-to-one ----------------------------------------------------------

async def test_a_raw_key_that_reads_as_a_hash_never_shares_the_hashed_keys_bucket(store_url, app_name):
    """A long identity is stored as "h:" + 32 hex digits of its SHA-256; a client sending that
    text as its own identity used to land in the same bucket (issue 20: denied with 0 left)."""
    from pacer import _pacer
    long_key = "k" * 200
    # The package's hash_identity is FastAPI Pacer's (32 hex digits); the key holds "h:" + it.
    raw = "h:" + _pacer.hash_identity(long_key)
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = FastAPI()
    who = Policy(rates=[SIX], key=lambda request: request.headers["X-Who"])
    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=who)

    @app.get("/x")
    async def x():
        return {}

    async with client(app) as c:
        spent = [(await c.get("/x", headers={"X-Who": long_key})).status_code for _ in range(7)]
        assert spent == [200] * 6 + [429]
        assert (await c.get("/x", headers={"X-Who": raw})).status_code == 200
    await limiter.shutdown()
