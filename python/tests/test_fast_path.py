"""The one-call paths (issue 23): the middleware's C++ send wrapper (HeaderSend) and the
dependency's and decorator's headers taken from the verdict answer exactly what the general
paths (check_policy + add_headers, a Python send wrapper) answered."""

import asyncio
import gc
import re
import weakref

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import Route

from pacer import Limiter, LimiterMiddleware, Policy, Rate, limit, rate_limit
from pacer import _pacer
from pacer.limiter import _as_policy

OURS = [(b"ratelimit-limit", b"10"), (b"ratelimit-remaining", b"9")]


def collecting():
    sent = []

    async def send(message):
        sent.append(message)

    return sent, send


async def test_header_send_adds_the_headers_to_the_start_message_only():
    sent, send = collecting()
    wrapped = _pacer.HeaderSend(send, OURS)
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/plain"), (b"RateLimit-Limit", b"99"),
                         (b"x-other", b"1")]}
    await wrapped(start)
    body = {"type": "http.response.body", "body": b"hi"}
    await wrapped(body)
    # The app's field of the same name (any case) is replaced; the others keep their order.
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-other", b"1"), *OURS]
    assert sent[1] is body and "headers" not in body
    await wrapped({"type": "http.response.start", "status": 204})
    assert sent[2]["headers"] == OURS


async def test_header_send_lowers_names_given_in_another_case():
    sent, send = collecting()
    wrapped = _pacer.HeaderSend(send, [(b"RateLimit-Limit", b"10"), [b"X-Extra", b"1"]])
    await wrapped({"type": "http.response.start", "status": 200,
                   "headers": [[b"ratelimit-limit", b"5"], (b"x-extra", b"0"), (b"a", b"b")]})
    assert sent[0]["headers"] == [(b"a", b"b"), (b"ratelimit-limit", b"10"), (b"x-extra", b"1")]


def test_header_send_returns_the_wrapped_sends_answer():
    marker = object()
    seen = []
    wrapped = _pacer.HeaderSend(lambda message: seen.append(message) or marker, OURS)
    assert wrapped({"type": "http.response.body", "body": b""}) is marker
    assert wrapped({"type": "http.response.start", "status": 200, "headers": []}) is marker
    assert seen[1]["headers"] == OURS


async def test_a_bridge_of_another_type_is_named_in_the_error():
    limiter = Limiter(redis_url=None, app_name="bad-bridge")
    engine = await limiter.storage.ready_engine()
    rule = limiter._rule(_as_policy(Rate(10, "1s"), "bridge"), engine)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
             "client": ("127.0.0.1", 1)}
    flags = _pacer.HeaderFlag.EXPOSE
    for call in (lambda b: engine.admit(rule, scope, "/", flags, b, None, None),
                 lambda b: engine.check(rule, scope, "/", b, None)):
        with pytest.raises(TypeError, match="bridge must be a pacer._pacer.Bridge or None, got"):
            call("not a bridge")
        assert call(None) is not None  # the next call is answered


def test_header_send_bad_input():
    with pytest.raises(TypeError, match="header names must be bytes"):
        _pacer.HeaderSend(lambda m: None, [("ratelimit-limit", b"10")])
    wrapped = _pacer.HeaderSend(lambda m: None, OURS)
    with pytest.raises(KeyError):
        wrapped({"status": 200})
    with pytest.raises(TypeError):  # a field that is not a pair
        wrapped({"type": "http.response.start", "headers": [5]})


def client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 1)),
                             base_url="http://test")


class GeneralLimiter(Limiter):
    """A subclass: the dependency and the decorator take check_policy and add_headers."""


def make_app(limiter, hooks=False):
    app = FastAPI()
    if hooks:  # a hook: the middleware takes _check_scope and the verdict's headers
        limiter.on_decision = lambda request, policy, result, duration_ms: None

    @app.get("/dep", dependencies=[Depends(limit(Rate(3, "1m", burst=1), limiter=limiter))])
    async def dep():
        return {"ok": "dep"}

    @app.get("/deco")
    @rate_limit(Rate(2, "1m"), limiter=limiter)
    async def deco():
        # Its own RateLimit-Limit is replaced, as add_headers did.
        return JSONResponse({"ok": "deco"}, headers={"RateLimit-Limit": "mine", "X-Own": "1"})

    sub = FastAPI()

    @sub.get("/mw")
    async def mw():
        return JSONResponse({"ok": "mw"}, headers={"ratelimit-remaining": "mine"})

    sub.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(2, "1m"))
    app.mount("/sub", sub)
    return app


async def answers(app):
    out = []
    async with client(app) as c:
        for path in ["/dep"] * 4 + ["/deco"] * 3 + ["/sub/mw"] * 3:
            r = await c.get(path)
            # The body's milliseconds move between the two apps' requests; its seconds do not.
            body = re.sub(rb'"retry_after_ms":(\d+)',
                          lambda m: b'"retry_after_s":%d' % -(-int(m.group(1)) // 1000), r.content)
            out.append((path, r.status_code, body,
                        [(k, v) for k, v in r.headers.raw if k.lower() != b"date"]))
    return out


@pytest.mark.parametrize("options", [{}, {"expose_policy_header": True},
                                     {"expose_headers": False}])
async def test_fast_paths_answer_as_the_general_ones(store_url, app_name, options, monkeypatch):
    calls = []
    check_policy = Limiter.check_policy

    async def counting(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return await check_policy(self, *args, **kwargs)

    monkeypatch.setattr(Limiter, "check_policy", counting)
    fast = Limiter(redis_url=store_url, app_name=app_name + "f", **options)
    general = GeneralLimiter(redis_url=store_url, app_name=app_name + "g", **options)
    fast_answers = await answers(make_app(fast))
    general_answers = await answers(make_app(general, hooks=True))
    assert fast_answers == general_answers
    statuses = [status for _, status, _, _ in fast_answers]
    assert statuses == [200, 200, 429, 429, 200, 429, 429, 200, 429, 429]
    if not options.get("expose_headers", True):
        # Only the endpoints' own fields.
        assert {v for _, _, _, h in fast_answers for k, v in h
                if k.lower().startswith(b"ratelimit")} == {b"mine"}
    else:
        assert (b"ratelimit-remaining", b"0") in fast_answers[1][3]
    # The fast paths never called check_policy; the general ones did for every decision.
    assert calls.count("Limiter") == 0 and calls.count("GeneralLimiter") == 7
    await fast.shutdown()
    await general.shutdown()


async def test_admit_answers(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    engine = await limiter.storage.ready_engine()
    from pacer.limiter import _as_policy

    rule = limiter._rule(_as_policy(Rate(1, "1m"), "t"), engine)
    scope = {"type": "http", "method": "GET", "headers": [], "client": ("198.51.100.1", 1)}
    flags = _pacer.HeaderFlag.EXPOSE
    sent, send = collecting()
    wrapped = engine.admit(rule, scope, "/a", flags, None, None, send)
    assert isinstance(wrapped, _pacer.HeaderSend)
    refused = engine.admit(rule, scope, "/a", flags, None, None, send)
    assert isinstance(refused, _pacer.Verdict) and refused.outcome == "denied"
    headers = engine.admit(rule, scope, "/b", flags, None, None, None)
    assert [name for name, _ in headers] == [b"ratelimit-limit", b"ratelimit-remaining",
                                             b"ratelimit-reset"]
    # No header rendered: the send itself.
    assert engine.admit(rule, scope, "/c", _pacer.HeaderFlag.NONE, None, None, send) is send
    await limiter.shutdown()


async def test_admission_through_the_bridge(redis_server, app_name):
    """On Redis the future gets the admission: the wrapped send, or the Verdict."""
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)
    engine = await limiter.storage.ready_engine()
    from pacer._bridge import bridge_for
    from pacer.limiter import _as_policy

    rule = limiter._rule(_as_policy(Rate(1, "1m"), "t"), engine)
    scope = {"type": "http", "method": "GET", "headers": [], "client": ("198.51.100.2", 1)}
    loop = asyncio.get_running_loop()
    sent, send = collecting()
    got = []
    for _ in range(2):
        future = loop.create_future()
        answer = engine.admit(rule, scope, "/a", _pacer.HeaderFlag.EXPOSE, bridge_for(loop), future,
                              send)
        got.append(await future if answer is None else answer)
    assert isinstance(got[0], _pacer.HeaderSend)
    assert isinstance(got[1], _pacer.Verdict) and got[1].outcome == "denied"
    await limiter.shutdown()


def test_header_send_takes_the_message_by_keyword_and_nothing_else():
    seen = []
    wrapped = _pacer.HeaderSend(seen.append, OURS)
    wrapped(message={"type": "http.response.start", "status": 200, "headers": []})
    assert seen[0]["headers"] == OURS
    for bad in (lambda: wrapped(), lambda: wrapped({}, {}), lambda: wrapped(msg={})):
        with pytest.raises(TypeError, match="HeaderSend takes one argument, the ASGI message"):
            bad()
    with pytest.raises(TypeError, match="header names must be bytes, got str"):
        _pacer.HeaderSend(seen.append, [("x", b"1")])
    with pytest.raises(TypeError):  # not iterable
        _pacer.HeaderSend(seen.append, 5)
    wrapped({"type": "http.response.body", "body": b""})  # still answers
    assert len(seen) == 2


def test_a_header_send_in_a_reference_cycle_is_collected():
    import gc
    import weakref

    class Holder:
        async def send(self, message):
            del message

    holder = Holder()
    holder.wrapped = _pacer.HeaderSend(holder.send, OURS)  # holder -> wrapped -> send -> holder
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


async def test_gate_answers_as_admit_and_names_bad_input(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    engine = await limiter.storage.ready_engine()
    rule = limiter._rule(_as_policy(Rate(2, "1m", burst=1), "gate"), engine)
    flags = _pacer.HeaderFlag.EXPOSE
    gate = _pacer.Gate(engine, rule, flags)
    assert gate.engine is engine and gate.rule is rule
    scope = {"type": "http", "method": "GET", "headers": [], "client": ("198.51.100.3", 1)}
    sent, send = collecting()
    assert isinstance(gate(scope, "/g", send), _pacer.HeaderSend)
    assert [name for name, _ in gate(scope, "/g", None)] == [
        b"ratelimit-limit", b"ratelimit-remaining", b"ratelimit-reset"]
    refused = gate(scope, "/g", send, None, None)
    assert isinstance(refused, _pacer.Verdict) and refused.outcome == "denied"
    for bad, message in [
            (lambda: gate(scope, "/g"), "Gate takes .scope, route, send. or"),
            (lambda: gate(scope, "/g", send, None), "got 4 argument"),
            (lambda: gate(scope, route="/g", send=send), "got 3 argument"),
            (lambda: gate(scope, b"/g", send), "route must be a str, got bytes"),
            (lambda: gate(scope, "/g", send, "no bridge", None),
             "bridge must be a pacer._pacer.Bridge or None, got str"),
            (lambda: _pacer.Gate("engine", rule, flags),
             "engine must be a pacer._pacer.Engine, got str"),
            (lambda: _pacer.Gate(engine, None, flags), "rule must be a pacer._pacer.Rule, got None"),
            (lambda: _pacer.Gate(engine, rule, 1), "headers must be a pacer._pacer.HeaderFlag"),
            (lambda: _pacer.Gate(engine, rule), "Gate.. missing required argument")]:
        with pytest.raises(TypeError, match=message):
            bad()
    with pytest.raises(ValueError, match="surrogates not allowed"):
        gate(scope, "/\udc80", send)
    other = Limiter(redis_url=None, app_name=app_name + "-other")
    foreign = _pacer.Gate(await other.storage.ready_engine(), rule, flags)
    with pytest.raises(ValueError, match="a rule compiled for app_name"):
        foreign(scope, "/g", send)
    # The next request is answered.
    assert isinstance(gate(scope, "/h", send), _pacer.HeaderSend)
    await limiter.shutdown()
    await other.shutdown()


async def headers_and_hooks_follow(c, limiter, path, remaining):
    """expose_headers turned off and on again, then a hook set and unset: each shows on the
    next request (the hooked request leaves `remaining`)."""
    limiter.expose_headers = False
    assert "ratelimit-remaining" not in (await c.get(path)).headers
    limiter.expose_headers = True
    seen = []
    limiter.on_decision = lambda request, policy, result, ms: seen.append(result.remaining)
    await c.get(path)
    assert seen == [remaining]
    limiter.on_decision = None


def middleware_of(app):
    node = app.middleware_stack
    while not isinstance(node, LimiterMiddleware):
        node = node.app
    return node


async def test_the_middleware_follows_every_setting_changed_between_requests(app_name):
    """The middleware keeps what the settings compile to (a Gate) until one of them is set
    again: each change below shows on the very next request."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = FastAPI()

    @app.get("/a")
    async def a():
        return {"ok": "a"}

    @app.get("/b")
    async def b():
        return {"ok": "b"}

    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(100, "1m", burst=99))
    async with client(app) as c:
        r = await c.get("/a")
        assert r.headers["ratelimit-limit"] == "100" and r.headers["ratelimit-remaining"] == "99"
        assert "x-ratelimit-reset" not in r.headers
        limiter.legacy_timestamp_header = True
        assert "x-ratelimit-reset" in (await c.get("/a")).headers
        await headers_and_hooks_follow(c, limiter, "/a", 96)
        assert (await c.get("/b")).headers["ratelimit-remaining"] == "99"  # a bucket per route
        limiter.route_scope = "app"
        assert (await c.get("/a")).headers["ratelimit-remaining"] == "99"  # one for the app
        assert (await c.get("/b")).headers["ratelimit-remaining"] == "98"
        middleware_of(app).policy = _as_policy(Rate(7, "1m"), "replaced")
        assert (await c.get("/a")).headers["ratelimit-limit"] == "7"
        middleware_of(app).policy = None
        assert (await c.get("/a")).status_code == 200  # no policy: logged, let through (open)
        limiter.default_policy = _as_policy(Rate(3, "1m", burst=2), "default")
        r = await c.get("/a")
        assert r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-remaining"] == "2"
        old = limiter.storage._engine
        await limiter.shutdown()  # a new engine (and store) on the next request
        assert (await c.get("/a")).headers["ratelimit-remaining"] == "2"
        assert limiter.storage._engine is not old
        await c.get("/a")
        assert middleware_of(app)._plan[2] is limiter.storage._engine
    await limiter.shutdown()


async def test_the_dependency_follows_every_setting_changed_between_requests(app_name):
    """The dependency keeps its plan (a Gate, or the general path) per policy until a setting
    is set or deleted: each change below shows on the very next request."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = FastAPI()
    policy = Rate(100, "1m", burst=99)

    @app.get("/d", dependencies=[Depends(limit(policy, limiter=limiter))])
    async def d():
        return {"ok": "d"}

    @app.get("/e", dependencies=[Depends(limit(policy, limiter=limiter))])
    async def e():
        return {"ok": "e"}

    async with client(app) as c:
        assert (await c.get("/d")).headers["ratelimit-remaining"] == "99"
        await headers_and_hooks_follow(c, limiter, "/d", 97)
        calls = []

        async def replaced(request, policy=None, scope_override=None):
            calls.append(policy)
            return await Limiter.check_policy(limiter, request, policy, scope_override)

        limiter.check_policy = replaced  # the instance's own: the general path
        assert (await c.get("/d")).headers["ratelimit-remaining"] == "96"
        assert len(calls) == 1
        del limiter.check_policy
        assert (await c.get("/d")).headers["ratelimit-remaining"] == "95"
        assert len(calls) == 1
        assert (await c.get("/e")).headers["ratelimit-remaining"] == "99"  # a bucket per route
        limiter.route_scope = "app"
        assert (await c.get("/d")).headers["ratelimit-remaining"] == "99"  # one for the app
        assert (await c.get("/e")).headers["ratelimit-remaining"] == "98"
    await limiter.shutdown()


async def test_the_middleware_keys_by_the_route_list_as_it_is_now(app_name):
    """A path without parameters is keyed by a table read inline (RouteMatcher.first_static)
    while the app's route list is unchanged: a method the table lacks, and a route put in front
    after the first request, both show on the next request."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = FastAPI()

    @app.post("/x")
    async def x():
        return {"ok": "x"}

    @app.get("/{p}")
    async def p(p: str):
        return {"ok": p}

    app.add_middleware(LimiterMiddleware, limiter=limiter, policy=Rate(100, "1m", burst=99))

    async def remaining(method, path):
        r = await c.request(method, path)
        assert r.status_code == 200, (method, path, r.status_code)
        return int(r.headers["ratelimit-remaining"])

    async with client(app) as c:
        assert await remaining("POST", "/x") == 99  # bucket /x
        assert await remaining("POST", "/x") == 98
        assert await remaining("GET", "/y") == 99  # bucket /{p}
        assert await remaining("GET", "/x") == 98  # GET /x is routed to /{p}
        assert middleware_of(app)._direct is not None  # the table was read

        async def anything(request):
            return JSONResponse({"ok": "anything"})

        app.router.routes.insert(0, Route("/{anything}", anything, methods=["POST"]))
        assert await remaining("POST", "/x") == 99  # bucket /{anything}
        assert await remaining("POST", "/x") == 98
        del app.router.routes[0]
        assert await remaining("POST", "/x") == 97  # bucket /x again
    await limiter.shutdown()


def test_uvicorn_runs_the_middleware_as_an_asgi3_app(app_name):
    """__call__ returns the app's awaitable (no coroutine of its own) and is marked as a
    coroutine function: uvicorn, given the middleware itself, must not take it for ASGI 2."""
    uvicorn_config = pytest.importorskip("uvicorn.config")
    middleware = LimiterMiddleware(FastAPI(), limiter=Limiter(redis_url=None, app_name=app_name),
                                   policy=Rate(1, "1m"))
    assert asyncio.iscoroutinefunction(middleware.__call__)
    config = uvicorn_config.Config(middleware, log_config=None)
    config.load()
    assert config.interface == "asgi3"


async def test_header_pairs_follow_their_values(app_name):
    """The (name, value) pair of a header is given again while its value repeats (an immutable
    tuple), and made anew when the value moves."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    engine = await limiter.storage.ready_engine()
    rule = limiter._rule(_as_policy(Rate(3, "1m", burst=2), "pairs"), engine)
    gate = _pacer.Gate(engine, rule, _pacer.HeaderFlag.EXPOSE)
    scope = {"type": "http", "method": "GET", "headers": [], "client": ("198.51.100.4", 1)}
    first, second = gate(scope, "/p", None), gate(scope, "/p", None)
    assert first[0] == (b"ratelimit-limit", b"3") and first[0] is second[0]
    assert first[1] == (b"ratelimit-remaining", b"2")
    assert second[1] == (b"ratelimit-remaining", b"1")
    other = _pacer.Gate(engine, limiter._rule(_as_policy(Rate(7, "1m"), "other"), engine),
                        _pacer.HeaderFlag.EXPOSE)
    assert other(scope, "/p", None)[0] == (b"ratelimit-limit", b"7")
    assert gate(scope, "/p", None)[1] == (b"ratelimit-remaining", b"0")
    await limiter.shutdown()


async def test_a_header_pair_that_changes_the_scope_list_is_read_safely(app_name):
    """scope["headers"] is read by index: a pair that is not bytes runs Python code, which may
    empty the list under the reader. What was read stays valid; the next request is answered."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    engine = await limiter.storage.ready_engine()
    policy = Policy([Rate(1, "1m")], key="api_key", name="keyed")
    gate = _pacer.Gate(engine, limiter._rule(policy, engine), _pacer.HeaderFlag.EXPOSE)
    headers = []

    class Emptying:
        def __getitem__(self, i):
            headers.clear()
            return ("X-API-Key", "k1")[i]

        def __len__(self):
            return 2

    headers.extend([(b"x-first", b"1"), Emptying(), (b"x-api-key", b"k2"), (b"x-last", b"3")])
    scope = {"type": "http", "method": "GET", "headers": headers, "client": ("198.51.100.5", 1)}
    assert gate(scope, "/s", None) is not None and headers == []
    assert gate(dict(scope, headers=[(b"x-api-key", b"k1")]), "/s", None).outcome == "denied"
    assert gate(dict(scope, headers=[(b"x-api-key", b"k2")]), "/s", None)[0][0] == \
        b"ratelimit-limit"
    # Pairs made by an iterator, held by nothing else: read from the view's own copy.
    made = lambda: ((name.encode(), ("k" + str(n)).encode()) for name, n in [("x-api-key", 3)])
    assert gate(dict(scope, headers=made()), "/s", None)[0][0] == b"ratelimit-limit"
    assert gate(dict(scope, headers=made()), "/s", None).outcome == "denied"
    assert gate(dict(scope, headers=iter([["X-Api-Key", "k4"]])), "/s", None) is not None
    await limiter.shutdown()


async def test_a_restarted_storage_leaves_no_engine_in_the_caches(app_name):
    """The rule and plan caches keep no engine but the current one: policies not asked for
    again after a restart do not keep the old engine (its store, its connections) alive."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    engine = await limiter.storage.ready_engine()
    policies = [_as_policy(Rate(n, "1m"), f"cached{n}") for n in (1, 2, 3)]
    for policy in policies:
        limiter._rule(policy, engine)
        limiter._dependency_plan(policy, engine)
    old = weakref.ref(engine)
    version = limiter._version
    del engine
    await limiter.shutdown()
    new = await limiter.storage.ready_engine()
    assert limiter._rule(policies[0], new) is limiter._rule(policies[0], new)  # cached again
    gc.collect()
    assert old() is None
    assert len(limiter._rules) == 1 and not limiter._plans
    assert limiter._version == version  # the cache's own bookkeeping is not a setting
    await limiter.shutdown()
