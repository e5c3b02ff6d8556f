"""The public surface of FastAPI Pacer v0.2.0: names, Rate and Policy, selectors, extractors."""

import dataclasses
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

import pacer
from pacer import (BUILTIN_SELECTORS, Limiter, Policy, Rate, compose, get_selector,
                   key_api_key, key_ip, key_org, key_user)
from pacer.extractors import extract_api_key, extract_combined, extract_ip, extract_user_id


def test_every_public_name():
    for name in ["Limiter", "LimiterMetrics", "RateLimitResult", "LimiterMiddleware", "Policy",
                 "Rate", "limit", "rate_limit", "set_limiter", "get_limiter",
                 "RateLimitDecorator", "key_ip", "key_api_key", "key_user", "key_org", "compose",
                 "get_selector", "BUILTIN_SELECTORS", "SimpleRedisStorage", "OTelHooks",
                 "create_otel_hooks", "OTEL_AVAILABLE"]:
        assert hasattr(pacer, name), name
    # One version everywhere: the package, its metadata and the C++ engine it runs on.
    assert pacer.__version__ == "0.3.0"
    assert pacer._pacer.__version__ == pacer.__version__
    from pacer.extractors import Extractor  # noqa: F401
    from pacer.limiter import OnDecisionHook, OnErrorHook  # noqa: F401
    from pacer.policies import Selector  # noqa: F401
    from pacer.storage_cluster import RedisClusterStorage  # noqa: F401


# -- Rate --------------------------------------------------------------------------------------

def test_rate_is_a_frozen_value():
    rate = Rate(10, "1s")
    assert rate == Rate(permits=10, per="1s", burst=0)
    assert repr(rate) == "Rate(permits=10, per='1s', burst=0)"
    assert Rate(60, "1m") != Rate(60, "60s")
    assert hash(Rate(1, "1s")) == hash(Rate(1, "1s"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.permits = 5


@pytest.mark.parametrize("per,ms", [("1s", 1000), ("10s", 10000), ("1m", 60000),
                                    ("5m", 300000), ("1h", 3600000), ("1d", 86400000),
                                    ("1.5m", 90000), ("01m", 60000), ("500ms", 500)])
def test_rate_durations(per, ms):
    assert Rate(1, per).period_ms == ms


@pytest.mark.parametrize("per", ["0s", "1S", "10", "", "1x", "-1s", "s", "1m\n", "abc"])
def test_rate_bad_duration_names_the_value(per):
    with pytest.raises(ValueError, match=f"Invalid duration format: {per}"):
        Rate(1, per)


def test_rate_validation_order_and_messages():
    with pytest.raises(ValueError, match="permits must be positive"):
        Rate(0, "bad", burst=-1)
    with pytest.raises(ValueError, match="burst must be non-negative"):
        Rate(1, "bad", burst=-1)
    with pytest.raises(TypeError):
        Rate(1, 60)


def test_rate_properties():
    rate = Rate(10, "1m", burst=5)
    assert (rate.period_ms, rate.emission_interval_ms, rate.burst_capacity_ms, rate.ttl_ms) == (
        60000, 6000, 30000, 120000)


def test_rate_that_the_engine_cannot_represent_is_refused():
    with pytest.raises(ValueError, match="1000000000000"):
        Rate(10**12, "1s")


# -- Policy ------------------------------------------------------------------------------------

def test_policy_defaults_and_errors():
    policy = Policy()
    assert policy.rates == [Rate(10, "1s", burst=10)] and policy.key == "ip"
    assert policy.name == "default" and policy.max_rates == 3
    assert "max_rates" not in repr(policy)
    with pytest.raises(TypeError):
        hash(policy)
    with pytest.raises(ValueError, match="Policy must have at least one rate"):
        Policy(rates=[])
    with pytest.raises(ValueError, match="Policy cannot have more than 3 rates"):
        Policy(rates=[Rate(1, "1s")] * 4)
    with pytest.raises(ValueError, match="Policy cannot have more than 2 rates"):
        Policy(rates=[Rate(1, "1s")] * 3, max_rates=2)
    with pytest.raises(ValueError, match="Invalid key type: email"):
        Policy(key="email")
    assert len(Policy(rates=[Rate(1, "1s")] * 5, max_rates=8).rates) == 5
    assert Policy(key=lambda r: "x").key is not None


def test_policy_describe_is_pinned():
    assert Policy([Rate(100, "1m", burst=10)], name="single_rate").describe() == \
        "Policy(single_rate): 100/1m (burst=10)"
    assert Policy([Rate(1000, "1h"), Rate(100, "1m", burst=20), Rate(10, "1s", burst=5)],
                  name="multi_rate").describe() == \
        "Policy(multi_rate): 1000/1h, 100/1m (burst=20), 10/1s (burst=5)"
    assert Policy([Rate(50, "10s")], name="custom").describe() == "Policy(custom): 50/10s"


def test_policy_keys_and_ttl():
    policy = Policy([Rate(10, "1s"), Rate(100, "1m"), Rate(1000, "1h")], name="api")
    assert policy.max_ttl_ms == 7200000
    assert policy.generate_keys("fastapi", "route", "/api/items", "203.0.113.5") == [
        "fastapi:{api.rb493c368846e:/api/items:203.0.113.5}"]  # name and rates digest (issue 19)
    # Hostile identities never break the key's hash tag.
    (key,) = policy.generate_keys("fastapi", "route", "/x", "a}b{c")
    assert key.count("{") == 1 and key.count("}") == 1


# -- selectors ---------------------------------------------------------------------------------

def mock_request(host="10.0.0.1", headers=None, query=None):
    request = MagicMock()
    request.client.host = host
    request.headers = headers or {}
    request.query_params = query or {}
    return request


def test_key_ip_from_the_peer_and_trusted_proxies():
    assert key_ip(mock_request("203.0.113.9")) == "203.0.113.9"
    assert key_ip(mock_request("10.0.0.1", {"X-Forwarded-For": "203.0.113.5, 10.0.0.1, 10.0.0.2"})) \
        == "203.0.113.5"
    assert key_ip(mock_request("10.0.0.3", {"X-Real-IP": "198.51.100.7"})) == "198.51.100.7"
    assert key_ip(mock_request("10.0.0.3", {"CF-Connecting-IP": "198.51.100.8",
                                            "X-Real-IP": "198.51.100.7"})) == "198.51.100.8"


def test_key_ip_ignores_headers_from_untrusted_peers():
    spoofed = {"X-Forwarded-For": "1.2.3.4", "X-Real-IP": "1.2.3.4", "CF-Connecting-IP": "1.2.3.4"}
    assert key_ip(mock_request("203.0.113.9", spoofed)) == "203.0.113.9"
    # A client behind a trusted proxy cannot choose its identity by prepending hops.
    assert key_ip(mock_request("10.0.0.1", {"X-Forwarded-For": "1.2.3.4, 203.0.113.5"})) \
        == "203.0.113.5"


def test_client_ip_over_repeated_header_lines():
    """Raw ASGI header pairs may repeat a name: list headers are read as one list, and a
    single-value header sent twice is refused (the peer is used), as in C++."""
    from pacer import _pacer

    resolver = _pacer.ClientIp("10.0.0.0/8", ["X-Forwarded-For", "X-Real-IP"])
    xff = [("x-forwarded-for", "203.0.113.5"), ("X-Forwarded-For", "198.51.100.7, 10.0.0.2")]
    assert resolver.resolve("10.0.0.1", xff, "missing") == "198.51.100.7"
    one = [("X-Real-IP", "198.51.100.8")]
    assert resolver.resolve("10.0.0.1", one, "missing") == "198.51.100.8"
    twice = one + [("x-real-ip", "198.51.100.9")]
    assert resolver.resolve("10.0.0.1", twice, "missing") == "10.0.0.1"
    # The "ip" selector's rule over an ASGI scope reads repeated lines the same way.
    rule = _pacer.Rule(Policy([Rate(1, "1s")])._native, "app", _pacer.ScopeKind.PATH, "ip",
                       "shared")
    scope = {"type": "http", "method": "GET", "client": ("10.0.0.1", 1),
             "headers": [(b"x-forwarded-for", b"203.0.113.5"),
                         (b"x-forwarded-for", b"198.51.100.7")]}
    assert rule.request_key(scope, "/") == rule.key("/", "198.51.100.7")


def test_key_ip_ipv6_and_odd_peers():
    assert key_ip(mock_request("2001:db8::1")) == "2001:db8::1"
    assert key_ip(mock_request("2001:db8::2")) != key_ip(mock_request("2001:db8::1"))
    assert key_ip(mock_request("::1")) == "::1"
    assert key_ip(mock_request("::ffff:192.0.2.1")) == "192.0.2.1"
    assert key_ip(mock_request("user1")) == "user1"
    request = mock_request()
    request.client = None
    assert key_ip(request) == "unknown"


def test_key_api_key():
    import hashlib
    digest = hashlib.sha256(b"secret").hexdigest()[:32]
    assert key_api_key(mock_request(headers={"X-API-Key": "secret"})) == digest
    assert key_api_key(mock_request(headers={"Authorization": "Bearer  secret "})) == digest
    assert key_api_key(mock_request(headers={"Authorization": "bearer secret"})) == "no_api_key"
    assert key_api_key(mock_request(query={"api_key": "secret"})) == digest
    assert key_api_key(mock_request()) == "no_api_key"


def test_key_user_and_org():
    request = SimpleNamespace(state=SimpleNamespace(user_id="user123"))
    assert key_user(request) == "user123"
    assert key_user(SimpleNamespace(state=SimpleNamespace(user=SimpleNamespace(id=7)))) == "7"
    assert key_user(SimpleNamespace(state=SimpleNamespace(), user=SimpleNamespace(id=8))) == "8"
    assert key_user(SimpleNamespace(state=SimpleNamespace())) == "anonymous"
    assert key_org(SimpleNamespace(state=SimpleNamespace(org_id="o1"))) == "o1"
    assert key_org(SimpleNamespace(state=SimpleNamespace(organization_id="o2"))) == "o2"
    assert key_org(SimpleNamespace(state=SimpleNamespace(org=SimpleNamespace(id=3)))) == "3"
    assert key_org(SimpleNamespace(state=SimpleNamespace())) == "no_org"


def test_key_user_on_a_starlette_request_without_authentication():
    from starlette.requests import Request
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                       "query_string": b"", "client": ("1.2.3.4", 1)})
    assert key_user(request) == "anonymous"


def test_compose_and_get_selector():
    request = mock_request("192.168.1.1")
    request.state.user_id = "user123"
    assert compose(key_user, key_ip)(request) == "user123:192.168.1.1"

    def failing(_):
        raise RuntimeError("boom")

    assert compose(failing, key_ip)(request) == "error:192.168.1.1"
    assert compose(lambda r: "", lambda r: None)(request) == "unknown"
    assert compose(key_user, key_ip).__name__ == "compose(key_user,key_ip)"
    assert get_selector("ip") is key_ip and get_selector(key_org) is key_org
    assert set(BUILTIN_SELECTORS) == {"ip", "api_key", "user", "org"}
    with pytest.raises(ValueError, match="Unknown selector: nope"):
        get_selector("nope")
    with pytest.raises(TypeError, match="Selector must be string or callable"):
        get_selector(42)


def test_extractors():
    request = mock_request("127.0.0.1", {"X-Forwarded-For": "203.0.113.5"})
    assert extract_ip(trusted_proxies=["127.0.0.1"])(request) == "203.0.113.5"
    assert extract_ip()(request) == "127.0.0.1"
    assert extract_ip(trusted_proxies=["not-an-ip", "127.0.0.0/8"])(request) == "203.0.113.5"
    fwd = mock_request("10.0.0.1", {"Forwarded": 'for="[2001:db8::7]:443"'})
    assert extract_ip(trusted_proxies=["10.0.0.0/8"])(fwd) == "2001:db8::7"
    key = extract_api_key()(mock_request(headers={"X-API-Key": "k"}))
    assert key.startswith("api_key:") and "k" != key[8:]
    assert extract_api_key()(mock_request("203.0.113.1")) == "203.0.113.1"
    assert extract_user_id(lambda r: 42)(mock_request()) == "user:42"
    assert extract_user_id(lambda r: None)(mock_request("203.0.113.2")) == "203.0.113.2"

    def failing(_):
        raise RuntimeError("x")

    assert extract_combined(failing, lambda r: "", lambda r: "b")(mock_request()) == "b"
    assert extract_combined(failing)(mock_request()) == "unknown"


def test_limiter_arguments():
    with pytest.raises(ValueError, match="fail_mode must be 'open' or 'closed'"):
        Limiter(redis_url=None, fail_mode="maybe")
    with pytest.raises(ValueError, match="route_scope must be 'route', 'method', or 'app'"):
        Limiter(redis_url=None, route_scope="host")
    with pytest.raises(ValueError, match="ftp://x"):
        Limiter(redis_url="ftp://x")
    with pytest.raises(ValueError, match="command_timeout_ms"):
        Limiter(redis_url=None, command_timeout_ms=0)
    limiter = Limiter(redis_url=None, default_policy=Rate(5, "1m"))
    assert limiter.default_policy.rates == [Rate(5, "1m")]
    assert (limiter.fail_mode, limiter.app_name, limiter.route_scope, limiter.expose_headers) == (
        "open", "fastapi", "route", True)
    assert limiter.get_metrics() == {"limiter": {"requests_allowed": 0, "requests_blocked": 0,
                                                 "redis_errors": 0}, "connected": False}
    Limiter(redis_url=None, extractor=lambda r: "x", trust_proxies=["127.0.0.1"],
            cluster_mode=False)
