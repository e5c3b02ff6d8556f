"""The awaitable of a middleware request that Redis decides (pacer._pacer.StoreAwait,
python/src/store_await.h): it runs no Python frame of the middleware, it answers as the
coroutines it replaced did (admitted, refused, failed, cancelled), and it behaves as a coroutine
for whoever drives it: asyncio's tasks, and send, throw and close called by hand."""

import asyncio
import gc
import sys
import weakref

import pytest

import pacer.middleware
from pacer import Limiter, LimiterMiddleware, Policy, Rate, _pacer
from pacer._bridge import bridge_for

RATE = Rate(100, "1m", burst=99)
SCOPE = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
         "server": ("127.0.0.1", 8000), "client": ("198.51.100.7", 40000), "root_path": "",
         "query_string": b"", "headers": [(b"host", b"test")], "path": "/a",
         "raw_path": b"/a", "method": "GET"}


class App:
    """A bare ASGI app: answers 200 after `pauses` turns of the loop, and records what it saw."""

    def __init__(self, pauses=0):
        self.pauses = pauses
        self.sends = []
        self.finished = []

    async def __call__(self, scope, receive, send):
        self.sends.append(send)
        try:
            for _ in range(self.pauses):
                await asyncio.sleep(0)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return "the app's return value"
        finally:
            self.finished.append(sys.exc_info()[0])


class Client:
    """receive and send as a server gives them; `status` and `headers` of the response."""

    def __init__(self):
        self.sent = []

    async def receive(self):
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message):
        self.sent.append(message)

    @property
    def status(self):
        return self.sent[0]["status"]

    @property
    def remaining(self):
        headers = dict(self.sent[0]["headers"])
        return int(headers[b"ratelimit-remaining"])


async def call(middleware, **fields):
    client = Client()
    await middleware(dict(SCOPE, **fields), client.receive, client.send)
    return client


@pytest.fixture
async def limiter(redis_server, app_name):
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)
    yield limiter
    await limiter.shutdown()


async def planned(middleware):
    """Two requests: the first starts the engine, the second makes the entry's plan."""
    assert [(await call(middleware)).remaining for _ in range(2)] == [99, 98]
    assert middleware._state.planned


async def test_a_redis_decision_runs_no_python_function_of_the_middleware(limiter):
    middleware = LimiterMiddleware(App(), limiter=limiter, policy=RATE)
    await planned(middleware)
    ours = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == pacer.middleware.__file__:
            ours.append(frame.f_code.co_name)

    sys.setprofile(profile)  # the interpreter then drives awaitables by __next__ and send
    try:
        counts = [(await call(middleware)).remaining for _ in range(3)]
    finally:
        sys.setprofile(None)
    # A bare app has no route table: _key_path answers the key's path, and nothing else runs.
    assert counts == [97, 96, 95] and ours == ["_key_path"] * 3
    # Concurrent requests: one EVALSHA each, every one answered.
    clients = await asyncio.gather(*(call(middleware) for _ in range(20)))
    assert sorted(c.remaining for c in clients) == list(range(75, 95))


async def test_it_is_a_coroutine_to_asyncio_and_returns_the_apps_value(limiter):
    app = App(pauses=3)  # the app's own awaits pass through it
    middleware = LimiterMiddleware(app, limiter=limiter, policy=RATE)
    await planned(middleware)
    client = Client()
    awaitable = middleware(dict(SCOPE), client.receive, client.send)
    assert type(awaitable) is _pacer.StoreAwait and asyncio.iscoroutine(awaitable)
    assert await asyncio.create_task(awaitable) == "the app's return value"
    assert client.remaining == 97 and type(app.sends[-1]) is _pacer.HeaderSend


async def test_a_refusal_and_an_error_are_answered_as_before(redis_server, app_name):
    def key(request):
        value = next(keys)
        if isinstance(value, Exception):
            raise value
        return value

    for fail_mode, status in [("open", 200), ("closed", 503)]:
        limiter = Limiter(redis_url=redis_server.url, app_name=f"{app_name}{fail_mode}",
                          fail_mode=fail_mode)
        keys = iter(["k1", "k1", ValueError("selector broke"), "k1", "k1"])
        middleware = LimiterMiddleware(
            App(), limiter=limiter, policy=Policy([Rate(3, "1m", burst=2)], key=key, name="k"))
        assert [(await call(middleware)).remaining for _ in range(2)] == [2, 1]
        assert middleware._state.planned
        assert (await call(middleware)).status == status  # the selector raised
        assert (await call(middleware)).remaining == 0
        refused = await call(middleware)
        assert refused.status == 429 and b'"rate_limited"' in refused.sent[1]["body"]
        await limiter.shutdown()


async def test_a_cancelled_request_never_reaches_the_app_and_the_next_is_answered(limiter):
    app = App()
    middleware = LimiterMiddleware(app, limiter=limiter, policy=RATE)
    await planned(middleware)
    task = asyncio.create_task(call(middleware))
    await asyncio.sleep(0)  # the task now waits for the store
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(app.sends) == 2
    await asyncio.sleep(0.05)  # the decision arrives for a cancelled future: dropped
    assert (await call(middleware)).remaining == 96  # the cancelled one was decided: 97


async def test_cancelling_the_app_while_it_runs_reaches_the_app(limiter):
    app = App(pauses=1000)
    middleware = LimiterMiddleware(app, limiter=limiter, policy=RATE)
    await planned(middleware)
    task = asyncio.create_task(call(middleware))
    while len(app.sends) < 3:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert app.finished[-1] is asyncio.CancelledError


async def test_send_throw_and_close_by_hand(limiter):
    app = App()
    middleware = LimiterMiddleware(app, limiter=limiter, policy=RATE)
    await planned(middleware)
    client = Client()

    def awaitable():
        return middleware(dict(SCOPE), client.receive, client.send)

    first = awaitable()
    with pytest.raises(TypeError, match="non-None value to a just-started coroutine"):
        first.send(1)
    future = first.send(None)  # the store decides: the future, as `await future` yields it
    assert isinstance(future, asyncio.Future) and future._asyncio_future_blocking
    future._asyncio_future_blocking = False
    assert first.send(None) is future  # resumed before it is done: the future again
    await asyncio.wait_for(asyncio.shield(future), 5)
    with pytest.raises(StopIteration) as returned:
        first.send(None)  # the app ran to its end
    assert returned.value.value == "the app's return value" and client.remaining == 97
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        first.send(None)

    # Thrown while the store decides: an Exception is the fail mode's (open: the app runs).
    thrown = awaitable()
    thrown.send(None)
    with pytest.raises(StopIteration):
        thrown.throw(ValueError("thrown"))
    assert app.sends[-1] == client.send  # unwrapped: no headers
    cancelled = awaitable()
    cancelled.send(None)
    with pytest.raises(asyncio.CancelledError):
        cancelled.throw(asyncio.CancelledError)
    with pytest.raises(KeyError, match="before it started"):
        awaitable().throw(KeyError("before it started"))
    with pytest.raises(TypeError, match="third argument must be a traceback"):
        awaitable().throw(KeyError, None, 1)
    try:
        raise LookupError("where")
    except LookupError as error:
        given = error.__traceback__
    with pytest.raises(KeyError) as thrown_with_traceback:
        awaitable().throw(KeyError, None, given)
    chain = thrown_with_traceback.value.__traceback__
    while chain is not None and chain is not given:
        chain = chain.tb_next
    assert chain is given  # the traceback given is the raised exception's
    with pytest.raises(TypeError, match="deriving from BaseException, not int"):
        awaitable().throw(1)

    # Closed while the app runs: the app's coroutine is closed (its finally runs).
    slow = App(pauses=5)
    middleware.app = slow
    await planned_again(middleware)
    closing = middleware(dict(SCOPE), client.receive, client.send)
    future = closing.send(None)
    await asyncio.wait_for(asyncio.shield(future), 5)
    closing.send(None)  # the app's first pause
    assert closing.close() is None and slow.finished[-1] is GeneratorExit
    closing.close()  # again: nothing to do
    slow.finished.clear()
    exiting = middleware(dict(SCOPE), client.receive, client.send)
    await asyncio.wait_for(asyncio.shield(exiting.send(None)), 5)
    exiting.send(None)
    with pytest.raises(GeneratorExit):  # an instance, as a generator takes it: the app closed
        exiting.throw(GeneratorExit())
    assert slow.finished == [GeneratorExit]


async def planned_again(middleware):
    await call(middleware)
    await call(middleware)
    assert middleware._state.planned


async def test_code_it_runs_cannot_reenter_it(redis_server, app_name):
    seen = []

    def key(request):
        awaitable = request.scope.get("awaitable")
        if awaitable is not None:  # the selector runs inside the awaitable's first send
            for reenter in (awaitable.close, lambda: awaitable.send(None),
                            lambda: awaitable.throw(KeyError), lambda: next(awaitable)):
                with pytest.raises(ValueError, match="coroutine already executing"):
                    reenter()
            seen.append(awaitable)
        return "k"

    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)
    middleware = LimiterMiddleware(App(), limiter=limiter,
                                   policy=Policy([RATE], key=key, name="keyed"))
    await planned(middleware)
    client = Client()
    scope = dict(SCOPE)
    scope["awaitable"] = awaitable = middleware(scope, client.receive, client.send)
    await awaitable
    assert seen == [awaitable] and client.remaining == 97
    await limiter.shutdown()


async def test_a_cycle_through_it_is_collected(limiter):
    middleware = LimiterMiddleware(App(), limiter=limiter, policy=RATE)
    await planned(middleware)

    class Marker:
        pass

    marker = Marker()
    scope = dict(SCOPE, marker=marker)
    client = Client()
    awaitable = middleware(scope, client.receive, client.send)
    scope["awaitable"] = awaitable  # scope -> awaitable -> scope
    gone = weakref.ref(marker)
    del marker, scope, awaitable
    gc.collect()
    assert gone() is None


def test_loop_future_answers_for_the_running_loop():
    with pytest.raises(RuntimeError, match="no running event loop"):
        _pacer.loop_future()

    async def ask():
        bridge, future = _pacer.loop_future()
        loop = asyncio.get_running_loop()
        assert future.get_loop() is loop and not future.done()
        assert bridge is bridge_for(loop)  # the one Bridge of this loop
        return bridge

    assert asyncio.run(ask()) is not asyncio.run(ask())  # each loop has its own


def test_it_names_bad_input():
    with pytest.raises(TypeError, match=r"takes 7 positional arguments \(middleware, app, gate, "
                                        r"scope, receive, send, route\); got 2"):
        _pacer.StoreAwait(1, 2)
    with pytest.raises(TypeError, match="gate must be a pacer._pacer.Gate, got int"):
        _pacer.StoreAwait(*range(7))
