"""Issue 19, Python side: two policies that differ in rates never share a bucket.

`limit(Rate(...))` is always named "dependency" and an unnamed `Policy` is "default", so before
the fix a router-level and a route-level limit on one route shared a key: the route's limit was
spent by the router's checks. A policy's key now carries a digest of its rates next to its name,
`<app_name>:{<name>.r<digest>:<route>:<identity>}`; one Policy (or two with the same name and
the same rates, as after a restart) is still one bucket."""

import re

import httpx
from fastapi import APIRouter, Depends, FastAPI

from pacer import Limiter, Policy, Rate, limit, rate_limit

ROUTER_RATE = Rate(100, "1s", burst=50)
ROUTE_RATE = Rate(3, "1m", burst=2)  # admits exactly 3 at once
WIDE_RATE = Rate(100, "1h", burst=50)  # admits 51 at once, refills one per 36 s
THREE_OF_TEN = [200] * 3 + [429] * 7
HOST = "203.0.113.5"


def client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(HOST, 1234)),
                             base_url="http://test")


async def statuses(app, path, n=10):
    async with client(app) as c:
        return [(await c.get(path)).status_code for _ in range(n)]


def one_route(*dependencies, router_dependencies=()):
    app = FastAPI()
    router = APIRouter(dependencies=[Depends(d) for d in router_dependencies])

    @router.get("/things/{t}", dependencies=[Depends(d) for d in dependencies])
    async def thing(t: int):
        return {"thing": t}

    app.include_router(router)
    return app


# -- (1) the example: a router-level and a route-level limit() -------------------------

async def test_router_and_route_limits_keep_their_own_buckets(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = one_route(limit(ROUTE_RATE, limiter=limiter),
                    router_dependencies=[limit(ROUTER_RATE, limiter=limiter)])
    assert await statuses(app, "/things/1") == THREE_OF_TEN
    # The router's bucket saw ten requests (it checks first), the route's is empty.
    router_policy = Policy([ROUTER_RATE], name="dependency")
    route_policy = Policy([ROUTE_RATE], name="dependency")
    router_probe = limiter.check_blocking(HOST, router_policy, "/things/{t}")
    assert router_probe.allowed and router_probe.remaining >= 51 - 11  # refills at 100/s
    assert not limiter.check_blocking(HOST, route_policy, "/things/{t}").allowed
    await limiter.shutdown()


async def test_decorator_and_dependency_auto_names_with_other_rates(app_name):
    """A route-level `rate_limit` ("decorator") under a router-level `limit` ("dependency"):
    apart before the fix too (other names); kept apart now by the rates as well."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = FastAPI()
    router = APIRouter(dependencies=[Depends(limit(ROUTER_RATE, limiter=limiter))])

    @router.get("/x")
    @rate_limit(ROUTE_RATE, limiter=limiter)
    async def x():
        return {}

    app.include_router(router)
    assert await statuses(app, "/x") == THREE_OF_TEN


async def test_default_policy_and_unnamed_policy_keep_their_own_buckets(store_url, app_name):
    """`limit()` uses the limiter's default policy, named "default" like an unnamed Policy."""
    limiter = Limiter(redis_url=store_url, app_name=app_name, default_policy=ROUTER_RATE)
    app = one_route(limit(limiter=limiter), limit(Policy([ROUTE_RATE]), limiter=limiter))
    assert await statuses(app, "/things/1") == THREE_OF_TEN
    await limiter.shutdown()


# -- (2) two unnamed Policy objects with different rates --------------------------------------

async def test_two_unnamed_policies_keep_their_own_buckets(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    wide, narrow = Policy([WIDE_RATE]), Policy([ROUTE_RATE])
    assert wide.name == narrow.name == "default"
    app = one_route(limit(wide, limiter=limiter), limit(narrow, limiter=limiter))
    assert await statuses(app, "/things/1") == THREE_OF_TEN
    # Each kept its own count: the wide one saw 10 requests, the narrow one admitted 3.
    probe = limiter.check_blocking(HOST, wide, "/things/{t}")
    assert probe.allowed and probe.remaining == 51 - 11
    assert not limiter.check_blocking(HOST, narrow, "/things/{t}").allowed
    await limiter.shutdown()


async def test_unnamed_multi_rate_policies_differ_by_any_rate(app_name):
    """Same first rate, another second rate: still two buckets."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    a = Policy([Rate(3, "1m", burst=2), Rate(100, "1h", burst=50)])
    b = Policy([Rate(3, "1m", burst=2), Rate(200, "1h", burst=50)])
    app = one_route(limit(a, limiter=limiter), limit(b, limiter=limiter))
    # Each request spends one from each bucket: 3 pass. Shared, it would have been 1.
    assert await statuses(app, "/things/1") == THREE_OF_TEN


# -- (3) one policy is still one bucket ---------------------------------------------------------

async def test_the_same_policy_twice_shares_its_bucket(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    six = Policy([Rate(6, "1m", burst=5)])  # 6 at once; each request spends 2
    app = one_route(limit(six, limiter=limiter),
                    router_dependencies=[limit(six, limiter=limiter)])
    assert await statuses(app, "/things/1") == THREE_OF_TEN
    await limiter.shutdown()


async def test_equal_policies_share_a_bucket(store_url, app_name):
    """Same name and same rates, made twice (as after a restart): one bucket."""
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    app = one_route(limit(Policy([Rate(6, "1m", burst=5)], name="api"), limiter=limiter),
                    router_dependencies=[limit(Policy([Rate(6, "1m", burst=5)], name="api"),
                                               limiter=limiter)])
    assert await statuses(app, "/things/1") == THREE_OF_TEN
    # limit(Rate) twice with the same rate: one policy, "dependency", one bucket.
    app = one_route(limit(Rate(6, "1m", burst=5), limiter=limiter),
                    router_dependencies=[limit(Rate(6, "1m", burst=5), limiter=limiter)])
    assert await statuses(app, "/things/2") == THREE_OF_TEN
    await limiter.shutdown()


def test_keys_are_stable_and_carry_the_rates():
    """The key depends on the name and the rates only (no per-process salt), so a restart keeps
    the counts; a different name, rate, period or burst is another key."""
    policy = Policy([Rate(10, "1s"), Rate(100, "1m"), Rate(1000, "1h")], name="api")
    (key,) = policy.generate_keys("fastapi", "route", "/api/items", "203.0.113.5")
    assert re.fullmatch(r"fastapi:\{api\.r[0-9a-f]{12}:/api/items:203\.0\.113\.5\}", key)
    again = Policy([Rate(10, "1s"), Rate(100, "1m"), Rate(1000, "1h")], name="api")
    assert again.generate_keys("fastapi", "route", "/api/items", "203.0.113.5") == [key]
    # Durations are compared by value: "1m" and "60s" are the same rate.
    assert Policy([Rate(10, "1s"), Rate(100, "60s"), Rate(1000, "1h")], name="api") \
        .generate_keys("fastapi", "route", "/api/items", "203.0.113.5") == [key]
    others = [
        Policy([Rate(10, "1s"), Rate(100, "1m"), Rate(1000, "1h")], name="apj"),
        Policy([Rate(11, "1s"), Rate(100, "1m"), Rate(1000, "1h")], name="api"),
        Policy([Rate(10, "2s"), Rate(100, "1m"), Rate(1000, "1h")], name="api"),
        Policy([Rate(10, "1s", burst=1), Rate(100, "1m"), Rate(1000, "1h")], name="api"),
        Policy([Rate(100, "1m"), Rate(10, "1s"), Rate(1000, "1h")], name="api"),
        Policy([Rate(10, "1s"), Rate(100, "1m")], name="api"),
    ]
    keys = {p.generate_keys("fastapi", "route", "/api/items", "203.0.113.5")[0] for p in others}
    assert len(keys) == len(others) and key not in keys
    # The digest is pacerd's for the same rates (docs/API.md: 10/1m burst 5 is rb0a5585f6a68).
    assert Policy([Rate(10, "1m", burst=5)], name="api").generate_keys(
        "fastapi", "route", "/x", "1.2.3.4") == ["fastapi:{api.rb0a5585f6a68:/x:1.2.3.4}"]


def test_names_that_need_hashing_still_carry_the_rates():
    """Names outside [A-Za-z0-9_.-] or too long are hashed; the rates are hashed with them."""
    for name in ("my policy", "n" * 60, "api:v2"):
        a = Policy([ROUTER_RATE], name=name).generate_keys("app", "route", "/x", "1.2.3.4")
        b = Policy([ROUTE_RATE], name=name).generate_keys("app", "route", "/x", "1.2.3.4")
        assert a != b
        assert a == Policy([ROUTER_RATE], name=name).generate_keys("app", "route", "/x",
                                                                   "1.2.3.4")
    # A name that looks like another policy's name and digest is not that policy.
    (plain,) = Policy([ROUTE_RATE], name="p").generate_keys("app", "route", "/x", "1.2.3.4")
    native = plain.split("{", 1)[1].split(":", 1)[0]
    (lookalike,) = Policy([ROUTE_RATE], name=native).generate_keys("app", "route", "/x",
                                                                   "1.2.3.4")
    assert lookalike != plain


# -- (4) the same explicit name with different rates -------------------------------------------

async def test_same_name_different_rates_kept_apart(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    wide, narrow = Policy([WIDE_RATE], name="api"), Policy([ROUTE_RATE], name="api")
    app = one_route(limit(narrow, limiter=limiter),
                    router_dependencies=[limit(wide, limiter=limiter)])
    assert await statuses(app, "/things/1") == THREE_OF_TEN
    probe = limiter.check_blocking(HOST, wide, "/things/{t}")
    assert probe.allowed and probe.remaining == 51 - 11
    await limiter.shutdown()
