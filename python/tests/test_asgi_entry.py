"""LimiterMiddleware's C entry (pacer._pacer.MiddlewareCall, python/src/asgi_entry.h): the
common request runs no Python function of the middleware; every other request is answered by
the Python fallback, as before; what the entry keeps follows the middleware's attributes; and
code that runs during a request cannot pull the entry's objects from under it."""

import copy
import gc
import sys

import pytest
from fastapi import FastAPI

import pacer.middleware
from pacer import Limiter, LimiterMiddleware, Policy, Rate, _pacer
from pacer.limiter import _as_policy

RATE = Rate(100, "1m", burst=99)
SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
         "server": ("127.0.0.1", 8000), "client": ("198.51.100.7", 40000), "root_path": "",
         "query_string": b"", "headers": [(b"host", b"test")]}


def fastapi_app():
    app = FastAPI()

    @app.get("/a")
    async def a():
        return {"ok": "a"}

    @app.get("/items/{i}")
    async def item(i: int):
        return {"ok": i}

    return app


class Recording:
    """A bare ASGI app: answers 200 and keeps each scope and send it was called with."""

    def __init__(self):
        self.calls = []

    async def __call__(self, scope, receive, send):
        self.calls.append((scope, send))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


async def request(middleware, path="/a", method="GET", scope_type=dict, **fields):
    """Calls the middleware as a server would: (status, headers as a dict)."""
    scope = scope_type(SCOPE, path=path, raw_path=path.encode(), method=method, **fields)
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await middleware(scope, receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


async def planned(middleware, path="/a"):
    """Two requests: the first starts the engine, the second makes the entry's plan."""
    assert [remaining(await request(middleware, path)) for _ in range(2)] == [99, 98]
    assert middleware._state.planned


def remaining(answer):
    status, headers = answer
    assert status == 200, answer
    return int(headers["ratelimit-remaining"])


async def test_the_common_request_runs_no_python_function_of_the_middleware(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    middleware = LimiterMiddleware(fastapi_app(), limiter=limiter, policy=RATE)
    await planned(middleware)
    ours = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == pacer.middleware.__file__:
            ours.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        counts = [remaining(await request(middleware)) for _ in range(3)]
        templated = remaining(await request(middleware, "/items/3"))
    finally:
        sys.setprofile(None)
    assert counts == [97, 96, 95]
    # A path the table does not answer asks _key_path for its template, and nothing else.
    assert templated == 99 and ours == ["_key_path"]
    assert remaining(await request(middleware, "/items/4")) == 98  # one bucket: /items/{i}
    await limiter.shutdown()


async def test_requests_the_entry_leaves_to_python_are_answered_as_before(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = Recording()
    middleware = LimiterMiddleware(app, limiter=limiter, policy=RATE,
                                   exclude_paths=["/health", "/static/*"])
    await planned(middleware, "/p")

    class Scope(dict):
        """A scope of another mapping type: the fallback reads it."""

    assert remaining(await request(middleware, "/p", scope_type=Scope)) == 97
    assert remaining(await request(middleware, "/p", root_path="/root")) == 99  # /root/p
    assert remaining(await request(middleware, "/p", root_path="/root")) == 98
    for path, method in [("/p", "OPTIONS"), ("/health", "GET"), ("/static/x.css", "GET")]:
        assert await request(middleware, path, method) == (200, {})  # excluded: not limited
        assert app.calls[-1][1].__class__ is not _pacer.HeaderSend
    await middleware({"type": "lifespan"}, None, None)
    assert app.calls[-1][0] == {"type": "lifespan"}
    with pytest.raises(KeyError):
        await middleware({"path": "/p", "method": "GET"}, None, None)  # as before: no type
    assert remaining(await request(middleware, "/p")) == 96  # and the next one is answered
    await limiter.shutdown()


async def test_what_the_entry_keeps_follows_the_middlewares_attributes(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    first, second = Recording(), Recording()
    middleware = LimiterMiddleware(first, limiter=limiter, policy=RATE)
    await planned(middleware)
    middleware.exclude_methods.add("GET")  # the same set, changed in place
    assert await request(middleware) == (200, {})
    middleware.exclude_methods = {"OPTIONS"}
    assert remaining(await request(middleware)) == 97
    middleware.app = second
    assert remaining(await request(middleware)) == 96 and len(second.calls) == 1
    assert remaining(await request(middleware)) == 95 and len(second.calls) == 2
    other = Limiter(redis_url=None, app_name=app_name + "-other")
    middleware.limiter = other
    assert remaining(await request(middleware)) == 99  # the new limiter's store
    middleware.policy = _as_policy(Rate(5, "1m"), "replaced")
    status, headers = await request(middleware)
    assert status == 200 and headers["ratelimit-limit"] == "5"
    await limiter.shutdown()
    await other.shutdown()


async def test_a_route_list_compared_by_code_that_drops_the_plan(app_name):
    """The entry compares the app's route list with its copy; a route's __eq__ is Python code,
    which here empties the entry's state and collects garbage mid-request. The request is
    answered from the references the entry took, and the next one plans again."""
    limiter = Limiter(redis_url=None, app_name=app_name)
    app = fastapi_app()
    middleware = LimiterMiddleware(app, limiter=limiter, policy=RATE)
    await planned(middleware)
    dropped = []
    original = app.router.routes[-2]
    assert original.path == "/a"

    class Dropping(type(original)):
        def __eq__(self, other):
            if not dropped:  # once
                object.__setattr__(middleware, "_plan", None)
                middleware._state.forget()
                gc.collect()
                dropped.append(self.path)
            return super().__eq__(other)

        __hash__ = type(original).__hash__

    dropping = copy.copy(original)
    dropping.__class__ = Dropping
    app.router.routes[-2] = dropping
    assert remaining(await request(middleware)) == 97
    assert dropped and not middleware._state.planned
    assert remaining(await request(middleware)) == 96
    assert middleware._state.planned
    await limiter.shutdown()


async def test_a_subclass_reaches_the_entry_through_super(app_name):
    limiter = Limiter(redis_url=None, app_name=app_name)
    seen = []

    class Counting(LimiterMiddleware):
        async def __call__(self, scope, receive, send):
            seen.append(scope["path"])
            await super().__call__(scope, receive, send)

    class Early(Counting):
        def __init__(self, app, **options):
            self.app = app  # before LimiterMiddleware.__init__ made the state
            super().__init__(app, **options)

    middleware = Early(Recording(), limiter=limiter, policy=RATE)
    assert [remaining(await request(middleware)) for _ in range(3)] == [99, 98, 97]
    assert seen == ["/a"] * 3 and middleware._state.planned
    await limiter.shutdown()


@pytest.mark.parametrize("fail_mode, status", [("open", 200), ("closed", 503)])
async def test_an_error_before_the_app_goes_to_the_fail_mode(app_name, fail_mode, status):
    limiter = Limiter(redis_url=None, app_name=app_name, fail_mode=fail_mode)
    keys = iter([ValueError("selector broke"), "k1"])

    def key(request):
        value = next(keys)
        if isinstance(value, Exception):
            raise value
        return value

    middleware = LimiterMiddleware(Recording(), limiter=limiter,
                                   policy=Policy([Rate(10, "1m", burst=9)], key=key, name="keyed"))
    assert (await request(middleware))[0] == status
    assert remaining(await request(middleware)) == 9  # the next request is answered
    await limiter.shutdown()


def test_the_entry_names_bad_input():
    with pytest.raises(TypeError, match="fallback must be callable, got int"):
        _pacer.MiddlewareCall(1)
    with pytest.raises(TypeError, match="takes no arguments"):
        _pacer.MiddlewareState(1)
    state = _pacer.MiddlewareState()
    with pytest.raises(TypeError, match="takes 10 arguments; got 2"):
        state.plan(1, 2)
    args = [None, None, set(), set(), (), 0, None, object(), True, True]
    with pytest.raises(TypeError, match="gate must be a pacer._pacer.Gate, got object"):
        state.plan(*args)
    args[4] = ["/static/"]
    with pytest.raises(TypeError, match="prefixes must be a tuple of str, got list"):
        state.plan(*args)
    with pytest.raises(TypeError, match=r"table must map a str to a \(dict, str or None\) "
                                        r"tuple, got int"):
        state.routes([], [], {"/a": 1})
    with pytest.raises(TypeError, match="table must be a dict, got list"):
        state.routes([], [], [])
    assert not state.planned
