"""Hostile Python arguments: every bad value gets a clear error naming it, and the next good
call still works."""


import pytest

from pacer import Limiter, Policy, Rate


def good_check(limiter):
    assert limiter.check_blocking("good", Policy([Rate(10, "1s", burst=5)], name="good")).allowed


@pytest.mark.parametrize("args,error,text", [
    ((0, "1s"), ValueError, "permits must be positive"),
    ((-5, "1s"), ValueError, "permits must be positive"),
    ((1, "1s", -1), ValueError, "burst must be non-negative"),
    ((1, None), TypeError, "NoneType"),
    ((1, b"1s"), TypeError, "bytes"),
    ((1, "1" * 400 + "s"), ValueError, "Invalid duration format"),
    ((1, "1s\x00"), ValueError, "Invalid duration format"),
    ((1, "\u0661s"), ValueError, "Invalid duration format"),  # Arabic-Indic digit one
    # Plain TypeError / ValueError naming the parameter, never the bindings' pacer._pacer.Policy.
    ((2**70, "1s"), ValueError, "permits must be at most 9223372036854775807, got 1180591620717411303424"),
    ((1.5, "1s"), ValueError, r"permits must be a whole number, got 1\.5"),
    ((float("nan"), "1s"), ValueError, "permits must be a whole number, got nan"),
    ((float("inf"), "1s"), ValueError, "permits must be a whole number, got inf"),
    (("5", "1s"), TypeError, r"permits must be a whole number, got '5' \(str\)"),
    ((True, "1s"), TypeError, r"permits must be a whole number, got True \(bool\)"),
    ((None, "1s"), TypeError, "permits must be a whole number, got None"),
    ((1, "1s", 0.5), ValueError, r"burst must be a whole number, got 0\.5"),
    ((1, "1s", "2"), TypeError, r"burst must be a whole number, got '2' \(str\)"),
    ((1, "1s", 2**64), ValueError, "burst must be at most"),
    ((1, "1s", -1.0), ValueError, "burst must be non-negative"),
])
def test_bad_rates(args, error, text):
    with pytest.raises(error, match=text):
        Rate(*args)
    assert Rate(1, "1s").permits == 1


def test_odd_policy_names_get_their_own_key_space():
    odd = [" spaced name ", "caf\u00e9", "{tag}", "x" * 500, "\x00", ""]
    limiter = Limiter(redis_url=None)
    for name in odd:
        policy = Policy([Rate(1, "1h")], name=name)
        assert limiter.check_blocking("who", policy).allowed
        assert not limiter.check_blocking("who", policy).allowed
    good_check(limiter)


@pytest.mark.parametrize("kwargs,error,text", [
    ({"redis_url": "http://localhost"}, ValueError, "http://localhost"),
    ({"redis_url": "redis://user:hunter2@"}, ValueError, "redis"),
    ({"redis_url": 42}, TypeError, "42"),
    ({"app_name": "a{b}"}, ValueError, "a{b}"),
    ({"app_name": ""}, ValueError, "app_name"),
    ({"app_name": None}, TypeError, "None"),
    ({"connect_timeout_ms": -1}, ValueError, "-1"),
    ({"command_timeout_ms": "100"}, ValueError, "'100'"),
    ({"fail_mode": "OPEN"}, ValueError, "fail_mode"),
])
def test_bad_limiter_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        Limiter(**{"redis_url": None, **kwargs})
    good_check(Limiter(redis_url=None))


def test_password_is_not_echoed():
    with pytest.raises(ValueError) as info:
        Limiter(redis_url="redis://user:hunter2@:notaport")
    assert "hunter2" not in str(info.value)


def test_bad_principals_and_costs():
    limiter = Limiter(redis_url=None)
    policy = Policy([Rate(100, "1s", burst=100)], name="p")
    for principal in ["", "x" * 1_000_000, "a}b{", "\x00\x01", "\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"), 12345]:
        assert limiter.check_blocking(principal, policy).allowed
    with pytest.raises(ValueError, match="-1"):
        limiter.check_blocking("k", policy, cost=-1)
    with pytest.raises(TypeError):
        limiter.check_blocking("k", policy, cost="1")
    too_much = limiter.check_blocking("k", policy, cost=10**6)
    assert too_much.outcome == "exceeds_capacity" and not too_much.allowed
    good_check(limiter)


async def test_bad_key_type_fails_at_check_time_like_the_seed():
    from unittest.mock import MagicMock

    limiter = Limiter(redis_url=None)
    policy = Policy([Rate(1, "1s")], key=42, name="bad")
    request = MagicMock()
    with pytest.raises(TypeError, match="Selector must be string or callable"):
        await limiter.check_policy(request, policy)
    assert (await limiter.check_policy(request, Policy([Rate(5, "1s")], name="ok"))).allowed


async def test_selector_returning_odd_values():
    from unittest.mock import MagicMock

    limiter = Limiter(redis_url=None)
    request = MagicMock()
    request.url.path = "/"
    for i, value in enumerate([None, 3.5, "", "\n" * 10, "é" * 300]):
        policy = Policy([Rate(5, "1s")], key=lambda r, v=value: v, name=f"odd{i}")
        assert (await limiter.check_policy(request, policy)).allowed
    # None and "" mean no identity: one shared bucket ("anonymous") under "shared".
    shared = [Policy([Rate(5, "1s")], key=lambda r, v=v: v, name="none") for v in (None, "")]
    assert (await limiter.check_policy(request, shared[0])).allowed
    assert not (await limiter.check_policy(request, shared[1])).allowed


async def test_odd_asgi_scopes():
    """Headers as lists or tuples, str instead of bytes, no client, a broken header item:
    decided or answered by the fail mode, and the next request is unaffected."""
    from pacer import LimiterMiddleware

    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    limiter = Limiter(redis_url=None)
    middleware = LimiterMiddleware(app, limiter, Rate(100, "1s", burst=100))
    base = {"type": "http", "method": "GET", "path": "/", "root_path": ""}
    scopes = [
        {**base, "headers": [[b"x-forwarded-for", b"1.2.3.4"]], "client": ["10.0.0.1", 1]},
        {**base, "headers": ((b"x-real-ip", b"5.6.7.8"),), "client": ("127.0.0.1", 1)},
        {**base, "headers": [("X-Forwarded-For", "9.9.9.9")], "client": ("10.0.0.2", 1)},
        {**base, "headers": [], "client": None},
        {**base, "headers": [(b"x-forwarded-for",)], "client": ("10.0.0.1", 1)},
        {**base, "headers": [(b"\xff\xfe", b"\xff")], "client": ("10.0.0.1", 1)},
        {**base, "headers": [], "client": (1234, 1)},
    ]
    for scope in scopes:
        sent.clear()
        await middleware(scope, None, send)
        assert sent[0]["status"] == 200, scope
    sent.clear()
    await middleware({**base, "headers": [], "client": ("203.0.113.1", 1)}, None, send)
    assert sent[0]["status"] == 200
    assert (b"ratelimit-limit", b"100") in sent[0]["headers"]
