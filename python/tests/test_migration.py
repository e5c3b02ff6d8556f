"""Migrating from FastAPI Pacer (issue 21, item 7): errors that say what is accepted, a missing
set_limiter(), the engine's warnings through `logging`, redis-py's URLs, float timeouts, hooks
that chain, live metrics, pickling, and `limiter.storage.redis` as a redis-py client."""

import asyncio
import copy
import logging
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from unittest.mock import MagicMock

import httpx
import pytest
from fastapi import Depends, FastAPI

import pacer
from pacer import (Limiter, LimiterMetrics, Policy, Rate, limit, rate_limit, set_limiter)
from pacer.dependencies import get_limiter

from conftest import HAVE_REDIS

try:
    import redis.asyncio  # noqa: F401
    HAVE_REDIS_PY = True
except ImportError:
    HAVE_REDIS_PY = False


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.5", 1)),
                             base_url="http://test")


def good_check(limiter=None):
    limiter = limiter or Limiter(redis_url=None)
    assert limiter.check_blocking("good", Policy([Rate(10, "1s", burst=5)], name="good")).allowed


# -- 1. errors name the parameter and list the accepted forms ---------------------------------

@pytest.mark.parametrize("per", ["1x", "", "5 minutes", "1M", "-1s"])
def test_bad_duration_names_it_and_lists_the_units(per):
    with pytest.raises(ValueError) as info:
        Rate(5, per)
    text = str(info.value)
    assert text.startswith(f"Invalid duration format: {per} (per={per!r}: ")  # the seed's start
    assert "ns, us, ms, s, m, h or d" in text and "500ms" in text
    assert "pacer._pacer" not in text
    good_check()


def test_bad_per_type_says_what_a_duration_is():
    with pytest.raises(TypeError, match=r"got 'int' \(per must be a duration string such as "
                                        r"'1s', '10s', '1m'"):
        Rate(5, 60)


@pytest.mark.parametrize("url,scheme", [("http://localhost:6379", "http"),
                                        ("redis-cluster://h:1", "redis-cluster"),
                                        ("memcached://h", "memcached")])
def test_bad_scheme_lists_the_accepted_ones(url, scheme):
    with pytest.raises(ValueError) as info:
        Limiter(redis_url=url)
    text = str(info.value)
    assert f"unknown scheme '{scheme}'" in text
    for accepted in ("redis://", "rediss://", "redis+cluster://", "redis+sentinel://"):
        assert accepted in text
    good_check()


def test_bad_key_type_lists_the_selectors():
    with pytest.raises(ValueError, match=r"Invalid key type: ipaddr \(key must be one of 'ip', "
                                         r"'api_key', 'user', 'org' or a function"):
        Policy([Rate(1, "1s")], key="ipaddr")


# -- 2. plain TypeError / ValueError for permits and burst ------------------------------------

@pytest.mark.parametrize("kwargs,error,text", [
    ({"permits": 2.5}, ValueError, r"permits must be a whole number, got 2\.5 \(a fraction; use 2 "
                                   r"or 3\)"),
    ({"permits": "10"}, TypeError, r"permits must be a whole number, got '10' \(str\)"),
    ({"permits": [10]}, TypeError, r"permits must be a whole number, got \[10\] \(list\)"),
    ({"burst": 0.5}, ValueError, r"burst must be a whole number, got 0\.5"),
    ({"burst": None}, TypeError, r"burst must be a whole number, got None \(NoneType\)"),
    ({"burst": False}, TypeError, r"burst must be a whole number, got False \(bool\)"),
])
def test_bad_permits_and_burst_are_plain_errors(kwargs, error, text):
    arguments = {"permits": 10, "per": "1s", "burst": 0, **kwargs}
    with pytest.raises(error, match=text) as info:
        Rate(**arguments)
    assert type(info.value) is error  # not a subclass from the bindings
    assert "pacer._pacer" not in str(info.value) and "incompatible" not in str(info.value)
    good_check()


def test_integral_float_permits_and_burst_are_ints():
    rate = Rate(10.0, "1s", burst=2.0)
    assert rate == Rate(10, "1s", burst=2) and type(rate.permits) is int and type(rate.burst) is int
    assert hash(rate) == hash(Rate(10, "1s", burst=2))


@pytest.mark.parametrize("kwargs,error,text", [
    ({"rates": [10]}, TypeError, r"rates must be a list of Rate, got 10 \(int\)"),
    ({"rates": "10/1m"}, TypeError, r"rates must be a list of Rate, got '10/1m'"),
    ({"rates": []}, ValueError, "Policy must have at least one rate"),
    ({"name": 7}, TypeError, "name must be a string, got 7"),
    ({"max_rates": "3"}, TypeError, r"max_rates must be a whole number, got '3'"),
    ({"max_rates": 0}, ValueError, "max_rates must be at least 1, got 0"),
])
def test_bad_policy_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        Policy(**{"rates": [Rate(1, "1s")], **kwargs})
    good_check()


# -- 3. a limit without a Limiter --------------------------------------------------------------

async def test_missing_set_limiter_is_one_clear_log_record_and_a_plain_500(caplog):
    set_limiter(None)
    app = FastAPI(debug=True)  # even in debug mode, no traceback reaches the client

    @app.get("/dep", dependencies=[Depends(limit(Rate(5, "1m")))])
    async def dep():
        return {"ok": True}

    @app.get("/deco")
    @rate_limit(Rate(5, "1m"))
    async def deco():
        return {"ok": True}

    caplog.set_level(logging.ERROR, logger="pacer")
    async with client(app) as c:
        for path, surface in (("/dep", "limit()"), ("/deco", "rate_limit()")):
            caplog.clear()
            pacer.dependencies._not_configured_log = pacer.limiter._LogThrottle()
            r = await c.get(path)
            assert r.status_code == 500
            assert r.json() == {"detail": "Internal Server Error"}
            assert "Traceback" not in r.text and "set_limiter" not in r.text
            records = [rec for rec in caplog.records if rec.name == "pacer"]
            assert len(records) == 1, records
            message = records[0].getMessage()
            assert f"{surface} on GET {path} has no Limiter" in message
            assert "call set_limiter(limiter) when the app starts" in message
            assert f"{surface[:-2]}(..., limiter=limiter)" in message
            assert records[0].exc_info is None  # no traceback in the log either
        # The seed's get_limiter() is unchanged for code that calls it.
        with pytest.raises(RuntimeError, match="Limiter not configured"):
            get_limiter()
        # Once configured, the same routes work.
        set_limiter(Limiter(redis_url=None))
        try:
            assert (await c.get("/dep")).status_code == 200
            assert (await c.get("/deco")).status_code == 200
        finally:
            set_limiter(None)


@pytest.mark.parametrize("call", [
    lambda: limit(policy="5/1m"),
    lambda: limit(Rate(5, "1m"), limiter="redis://localhost"),
    lambda: rate_limit(policy=5),
    lambda: rate_limit(limiter=Rate(5, "1m")),
])
def test_bad_limit_arguments_fail_where_written(call):
    with pytest.raises(TypeError, match="must be a"):
        call()


# -- 4. the engine's warnings through logging.getLogger("pacer") -------------------------------

def wait_for_record(records, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in list(records):
            if text in record.getMessage():
                return record
        time.sleep(0.02)
    return None


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_connection_refused_is_a_pacer_warning():
    collect = Collect()
    logger = logging.getLogger("pacer")
    logger.addHandler(collect)
    try:
        port = closed_port()
        limiter = Limiter(redis_url=f"redis://127.0.0.1:{port}", connect_timeout_ms=200,
                          default_policy=Rate(5, "1s"))
        result = limiter.check_blocking("who")
        assert result.degraded and result.allowed  # fail open
        record = wait_for_record(collect.records, f"127.0.0.1:{port}: connect failed")
        assert record is not None, [r.getMessage() for r in collect.records]
        assert record.levelno == logging.WARNING and record.name == "pacer"
        assert "Connection refused" in record.getMessage()
        assert record.threadName == "pacer-log"  # delivered by the package's thread, not I/O's
        limiter._close_engine()
        good_check()
    finally:
        logger.removeHandler(collect)


def test_logging_level_filters_engine_lines():
    collect = Collect()
    logger = logging.getLogger("pacer")
    logger.addHandler(collect)
    old = logger.level
    logger.setLevel(logging.ERROR)
    try:
        limiter = Limiter(redis_url=f"redis://127.0.0.1:{closed_port()}", connect_timeout_ms=100)
        limiter.check_blocking("who", Policy([Rate(1, "1s")]))
        time.sleep(0.3)
        assert not [r for r in collect.records if "connect failed" in r.getMessage()]
        limiter._close_engine()
    finally:
        logger.setLevel(old)
        logger.removeHandler(collect)


EXIT_SCRIPT = textwrap.dedent("""
    import logging, socket, sys, threading, time
    logging.basicConfig(level=logging.DEBUG, stream=sys.stdout,
                        format="%(name)s %(levelname)s %(message)s")
    from pacer import Limiter, Policy, Rate
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()

    class Slow(logging.Handler):  # a handler that holds the GIL-holding thread up
        def emit(self, record):
            time.sleep(0.01)
    logging.getLogger("pacer").addHandler(Slow())

    limiters = [Limiter(redis_url=f"redis://127.0.0.1:{port}", connect_timeout_ms=50,
                        command_timeout_ms=20, fail_mode=mode)
                for mode in ("open", "closed", "local")]
    policy = Policy([Rate(5, "1s")])
    stop = time.monotonic() + 1.0
    def hammer(limiter):
        while time.monotonic() < stop:
            limiter.check_blocking("k", policy)
    threads = [threading.Thread(target=hammer, args=(l,)) for l in limiters]
    for t in threads: t.start()
    for t in threads: t.join()
    limiters[0].storage._close()  # a shutdown while the others go on logging
    print("MODE", sys.argv[1], flush=True)
    if sys.argv[1] == "exit":
        sys.exit(0)   # interpreter exit with engines running and lines in flight
    import os; os._exit(0)
""")


@pytest.mark.parametrize("how", ["exit", "hard"])
def test_exit_while_the_engine_logs_never_hangs(how):
    env = dict(os.environ)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, how], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"MODE {how}" in proc.stdout
    assert "pacer WARNING redis 127.0.0.1:" in proc.stdout  # lines reached logging
    assert "Fatal Python error" not in proc.stderr
    assert time.monotonic() - started < 30


def test_exit_with_a_logging_handler_slower_than_the_stop_timeout():
    script = textwrap.dedent("""
        import logging, socket, sys, time
        from pacer import Limiter, Policy, Rate
        class Stuck(logging.Handler):
            def emit(self, record):
                print("EMIT", flush=True)
                time.sleep(3)   # longer than the 2 s the exit handler waits for the thread
        logging.getLogger("pacer").addHandler(Stuck())
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        limiter = Limiter(redis_url=f"redis://127.0.0.1:{port}", connect_timeout_ms=50)
        limiter.check_blocking("k", Policy([Rate(5, "1s")]))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            limiter.check_blocking("k", Policy([Rate(5, "1s")]))
            time.sleep(0.05)
        sys.exit(0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "EMIT" in proc.stdout
    assert "terminate" not in proc.stderr and "Fatal Python error" not in proc.stderr


def test_a_forked_child_logs_through_its_own_thread():
    script = textwrap.dedent("""
        import logging, os, socket, sys, time
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                            format="%(process)d %(threadName)s %(message)s")
        from pacer import Limiter, Policy, Rate
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        limiter = Limiter(redis_url=f"redis://127.0.0.1:{port}", connect_timeout_ms=100)
        limiter.check_blocking("k", Policy([Rate(5, "1s")]))   # the parent's engine and thread
        pid = os.fork()
        if pid == 0:
            limiter.check_blocking("k", Policy([Rate(5, "1s")]))   # the child's own
            time.sleep(0.5)
            print("CHILD", os.getpid(), flush=True)
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("CHILD")]
    assert child, proc.stdout
    assert any(line.startswith(f"{child[0]} pacer-log ") and "connect failed" in line
               for line in proc.stdout.splitlines()), proc.stdout


# -- 5. redis-py's URLs -----------------------------------------------------------------------

@pytest.mark.parametrize("url", ["unix:///var/run/redis/redis.sock",
                                 "unix://:secret@/tmp/redis.sock?db=1",
                                 "redis+unix:///tmp/redis.sock"])
def test_unix_sockets_are_refused_saying_what_to_use(url):
    with pytest.raises(ValueError) as info:
        Limiter(redis_url=url)
    text = str(info.value)
    assert "Unix sockets are not supported" in text
    assert "redis://127.0.0.1:6379/0" in text and "bind 127.0.0.1" in text
    assert "secret" not in text
    good_check()


def storage_of(url, **kwargs):
    return Limiter(redis_url=url, **kwargs).storage


def test_query_parameters_become_engine_options():
    s = storage_of("redis://h:6380/0?socket_timeout=0.25&socket_connect_timeout=2")
    assert (s.command_timeout_ms, s.connect_timeout_ms) == (250, 2000)
    assert s._engine_url == "redis://h:6380/0"
    assert s.redis_url == "redis://h:6380/0?socket_timeout=0.25&socket_connect_timeout=2"
    # The URL wins over the arguments, as with redis-py's from_url.
    s = storage_of("redis://h?socket_timeout=0.1", command_timeout_ms=900)
    assert s.command_timeout_ms == 100
    s = storage_of("redis://h?db=3")
    assert s._engine_url == "redis://h/3"
    s = storage_of("redis://h/3?db=3")
    assert s._engine_url == "redis://h/3"
    s = storage_of("redis+cluster://a:1,b:2?db=0")
    assert s._engine_url == "redis+cluster://a:1,b:2"
    s = storage_of("redis://h?decode_responses=True&health_check_interval=30&client_name=app"
                   "&max_connections=10&socket_keepalive=yes&retry_on_timeout=0")
    assert s._engine_url == "redis://h"
    assert s._client_settings == {"decode_responses": True, "health_check_interval": 30,
                                  "client_name": "app", "max_connections": 10,
                                  "socket_keepalive": True, "retry_on_timeout": False}
    s = storage_of("rediss://h?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem"
                   "&ssl_keyfile=/k.pem")
    assert s._tls == {"tls_ca_file": "/ca.pem", "tls_cert_file": "/c.pem",
                      "tls_key_file": "/k.pem", "tls_verify": False, "tls_server_name": ""}
    assert storage_of("rediss://h?ssl_cert_reqs=required")._tls["tls_verify"] is True
    # The engine's own parameters stay in the URL it reads.
    s = storage_of("redis+sentinel://s:26379/mymaster?sentinel_password=pw&socket_timeout=0.05")
    assert s._engine_url == "redis+sentinel://s:26379/mymaster?sentinel_password=pw"
    assert s.command_timeout_ms == 50
    s = storage_of("redis+sentinel://s:26379/mymaster?db=2")
    assert s._engine_url == "redis+sentinel://s:26379/mymaster/2"


@pytest.mark.parametrize("url,text", [
    ("redis://h?socket_timeout=abc", r"socket_timeout='abc' is not a number of seconds"),
    ("redis://h?socket_timeout=0.0005", "not a whole number of milliseconds"),
    ("redis://h?socket_timeout=0", "must be from 0.001 to 86400 seconds"),
    ("redis://h?socket_timeout=-1", "must be from 0.001 to 86400 seconds"),
    ("redis://h?socket_timeout=inf", "is not a number of seconds"),
    ("redis://h?socket_connect_timeout=1e9", "must be from 0.001 to 86400 seconds"),
    ("redis://h?ssl_cert_reqs=none", "ssl_cert_reqs needs TLS: use rediss://"),
    ("rediss://h?ssl_cert_reqs=optional", "accepts required .* or none"),
    ("rediss://h?ssl_ca_certs=", "ssl_ca_certs is empty"),
    ("redis://h?password=secret", "put it in the URL: redis://:password@host:6379"),
    ("redis://h?username=u", "put it in the URL: redis://user:password@host:6379"),
    ("rediss://h?ssl_check_hostname=false", "tls_server_name"),
    ("redis://h?timeout=1", r"unknown query parameter 'timeout'; accepted: db, socket_timeout, "
                            r"socket_connect_timeout, ssl_cert_reqs"),
    ("redis://h?db=1&db=2", "query parameter 'db' is given twice"),
    ("redis://h?db=x", r"db='x' is not a number from 0 up"),
    ("redis://h/1?db=2", r"two databases \(/1 in the path, db=2\)"),
    ("redis+cluster://h:1?db=1", "Redis Cluster has only database 0"),
    ("redis://h?decode_responses=maybe", "expected true or false"),
    ("redis://h?max_connections=-1", "expected a whole number from 0 up"),
    ("redis://h?max_connections=99999999999", "max_connections must be at most"),
    ("redis://h?db=1#frag", "fragment is not allowed"),
    ("redis://:hunter2@h?nope=1", "unknown query parameter 'nope'"),
    ("redis://h?sentinel_password=x", r"supported only with redis\+sentinel://"),
])
def test_bad_query_parameters(url, text):
    with pytest.raises(ValueError, match=text) as info:
        Limiter(redis_url=url)
    assert "hunter2" not in str(info.value)
    good_check()


@pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not installed")
async def test_query_parameters_work_on_a_real_redis(redis_server, app_name):
    url = f"{redis_server.url}?db=3&socket_timeout=0.5&decode_responses=true"
    limiter = Limiter(redis_url=url, app_name=app_name)
    policy = Policy([Rate(2, "1m")], name="q")
    assert limiter.check_blocking("who", policy).allowed
    key = limiter._rule(policy, limiter.storage._engine).key("global", "who")
    out = subprocess.run(["redis-cli", "-p", str(redis_server.port), "-n", "3", "EXISTS", key],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    assert out == "1"  # in database 3
    limiter._close_engine()


# -- 6. float timeouts ------------------------------------------------------------------------

def test_integral_float_timeouts_are_accepted():
    limiter = Limiter(redis_url=None, connect_timeout_ms=500.0, command_timeout_ms=100.0)
    assert limiter.storage.connect_timeout_ms == 500
    assert type(limiter.storage.connect_timeout_ms) is int
    assert limiter.storage.command_timeout_ms == 100
    good_check(limiter)


@pytest.mark.parametrize("kwargs,text", [
    ({"connect_timeout_ms": 500.5}, r"connect_timeout_ms must be a positive whole number of "
                                    r"milliseconds, got 500\.5 \(a fraction; use 500 or 501\)"),
    ({"command_timeout_ms": 0.5}, r"got 0\.5"),
    ({"command_timeout_ms": float("nan")}, "got nan"),
    ({"command_timeout_ms": float("inf")}, "got inf"),
    ({"command_timeout_ms": 0.0}, r"command_timeout_ms must be a positive whole number of "
                                  r"milliseconds, got 0\.0"),
    ({"command_timeout_ms": -5}, "got -5"),
    ({"command_timeout_ms": True}, r"got True \(bool\)"),
    ({"command_timeout_ms": None}, "got None"),
    ({"connect_timeout_ms": 10**12}, "connect_timeout_ms must be at most 86400000"),
])
def test_bad_timeouts(kwargs, text):
    with pytest.raises(ValueError, match=text):
        Limiter(redis_url=None, **kwargs)
    good_check()


# -- 7. default hooks are no-op callables -----------------------------------------------------

async def test_default_hooks_are_callables_that_chain():
    limiter = Limiter(redis_url=None, default_policy=Rate(1, "1m"))
    assert callable(limiter.on_decision) and callable(limiter.on_error)
    assert limiter.on_decision(None, None, None, 0.0) is None  # the 4-argument shape
    assert limiter.on_error(None, None, RuntimeError(), 0.0) is None
    seen = []
    old = limiter.on_decision
    limiter.on_decision = lambda *a: (old(*a), seen.append(("first", a[2].allowed)))
    old2 = limiter.on_decision
    limiter.on_decision = lambda *a: (old2(*a), seen.append(("second", a[2].allowed)))
    request = MagicMock()
    request.client.host = "203.0.113.9"
    request.headers = {}
    await limiter.check_policy(request)
    await limiter.check_policy(request)
    assert seen == [("first", True), ("second", True), ("first", False), ("second", False)]
    limiter.on_decision = None  # back to the no-op, still callable
    assert callable(limiter.on_decision)
    await limiter.check_policy(request)
    assert len(seen) == 4


def test_default_error_hook_chains_on_store_failure():
    limiter = Limiter(redis_url=f"redis://127.0.0.1:{closed_port()}", connect_timeout_ms=100,
                      default_policy=Rate(5, "1s"))
    errors = []
    old = limiter.on_error
    limiter.on_error = lambda req, pol, err, ms: (old(req, pol, err, ms), errors.append(err))
    request = MagicMock()
    request.client.host = "203.0.113.9"
    request.headers = {}
    result = asyncio.run(limiter.check_policy(request))
    assert result.degraded and len(errors) == 1 and isinstance(errors[0], pacer.StoreError)
    limiter._close_engine()


@pytest.mark.parametrize("name", ["on_decision", "on_error"])
def test_hooks_must_be_callable(name):
    with pytest.raises(TypeError, match=f"{name} must be a function"):
        Limiter(redis_url=None, **{name: "print"})
    limiter = Limiter(redis_url=None)
    with pytest.raises(TypeError, match=f"{name} must be a function .* got 42"):
        setattr(limiter, name, 42)
    assert callable(getattr(limiter, name))
    good_check(limiter)


# -- 8. live metrics ----------------------------------------------------------------------------

def test_metrics_stay_live():
    limiter = Limiter(redis_url=None, default_policy=Rate(1, "1m"))
    held = limiter.metrics  # taken at startup, before any request
    assert held == LimiterMetrics() and held is limiter.metrics
    limiter.check_blocking("a")
    limiter.check_blocking("a")
    assert held.requests_allowed == 1 and held.requests_blocked == 1
    assert held.to_dict() == {"requests_allowed": 1, "requests_blocked": 1, "redis_errors": 0}
    assert held == LimiterMetrics(1, 1, 0) and held != LimiterMetrics(1, 0, 0)
    assert repr(held) == "LimiterMetrics(requests_allowed=1, requests_blocked=1, redis_errors=0)"
    assert isinstance(held, LimiterMetrics)
    limiter.metrics = LimiterMetrics()  # FastAPI Pacer's reset: the held reference follows
    assert held.to_dict() == {"requests_allowed": 0, "requests_blocked": 0, "redis_errors": 0}
    limiter.check_blocking("b")
    assert held.requests_allowed == 1
    held.requests_allowed = 0  # the seed's mutable dataclass
    assert limiter.metrics.requests_allowed == 0
    limiter.check_blocking("c")
    assert held.requests_allowed == 1
    assert limiter.get_metrics()["limiter"] == held.to_dict()
    # Across an engine restart (shutdown, then a new check) the counts go on.
    limiter._close_engine()
    limiter.check_blocking("d")
    assert held.requests_allowed == 2


def test_bad_metrics_values():
    limiter = Limiter(redis_url=None)
    with pytest.raises(TypeError, match="metrics must be a LimiterMetrics, got 0"):
        limiter.metrics = 0
    with pytest.raises(ValueError, match="requests_allowed must be at least 0, got -1"):
        limiter.metrics.requests_allowed = -1
    with pytest.raises(TypeError, match="requests_blocked must be a whole number, got '1'"):
        limiter.metrics.requests_blocked = "1"
    assert limiter.metrics == LimiterMetrics()


# -- 9. pickle and deepcopy ----------------------------------------------------------------------

def key_by_header(request):
    return request.headers.get("x-tenant", "none")


@pytest.mark.parametrize("value", [
    Rate(5, "1m"),
    Rate(100, "1.5m", burst=20),
    Policy(),
    Policy([Rate(5, "1s", burst=1), Rate(100, "1h")], key="api_key", name="api"),
    Policy([Rate(1, "1s")] * 5, name="many", max_rates=8),
    Policy([Rate(1, "1s")], key=key_by_header, name="custom"),
])
def test_pickle_and_deepcopy_round_trip(value):
    for copied in (pickle.loads(pickle.dumps(value)), copy.deepcopy(value), copy.copy(value),
                   pickle.loads(pickle.dumps(value, protocol=0))):
        assert copied == value and type(copied) is type(value)
        if isinstance(value, Policy):
            assert copied._native.name == value._native.name  # the same bucket
            assert copied.describe() == value.describe()


def test_a_pickled_policy_shares_its_bucket():
    limiter = Limiter(redis_url=None)
    policy = Policy([Rate(1, "1m")], name="shared")
    assert limiter.check_blocking("who", policy).allowed
    assert not limiter.check_blocking("who", pickle.loads(pickle.dumps(policy))).allowed


# -- 10. storage.redis is redis-py's asyncio client ---------------------------------------------

def test_storage_redis_is_none_in_process():
    assert Limiter(redis_url=None).storage.redis is None
    assert Limiter(redis_url="memory://").storage.redis is None
    assert Limiter(redis_url="redis+sentinel://127.0.0.1:26379/m").storage.redis is None


@pytest.mark.skipif(not (HAVE_REDIS and HAVE_REDIS_PY), reason="redis-server or redis-py missing")
async def test_storage_redis_fixtures_keep_working(redis_server, app_name):
    import redis.asyncio as aioredis

    limiter = Limiter(redis_url=f"{redis_server.url}/0?decode_responses=true",
                      app_name=app_name, default_policy=Rate(1, "1m"))
    await limiter.startup()
    client_ = limiter.storage.redis
    assert isinstance(client_, aioredis.Redis) and limiter.storage.redis is client_
    policy = limiter.default_policy
    assert limiter.check_blocking("who", policy).allowed
    key = limiter._rule(policy, limiter.storage._engine).key("global", "who")
    assert await client_.exists(key) == 1
    assert 0 < await client_.ttl(key) <= 120
    assert await client_.delete(key) == 1  # a fixture resetting one key
    assert limiter.check_blocking("who", policy).allowed
    # A denial the engine cached (docs/DESIGN.md §5, deny cache) stands until its retry time
    # even when the key is deleted behind its back; limiter.reset() forgets both.
    assert not limiter.check_blocking("who", policy).allowed
    assert await client_.delete(key) == 1
    assert not limiter.check_blocking("who", policy).allowed
    limiter.reset("who", policy)
    assert limiter.check_blocking("who", policy).allowed
    await client_.set(f"{app_name}:other", "v")
    assert await client_.get(f"{app_name}:other") == "v"  # decode_responses reached redis-py
    await limiter.storage.redis.flushdb()  # FastAPI Pacer's fixture
    assert await client_.exists(key) == 0
    assert limiter.check_blocking("who", policy).allowed  # the engine goes on after a flush
    await limiter.shutdown()


@pytest.mark.skipif(not (HAVE_REDIS and HAVE_REDIS_PY), reason="redis-server or redis-py missing")
async def test_storage_redis_on_tls(redis_tls, app_name):
    limiter = Limiter(redis_url=redis_tls.url, app_name=app_name, tls_ca_file=redis_tls.tls["ca"],
                      default_policy=Rate(1, "1m"))
    assert limiter.check_blocking("who").allowed
    key = limiter._rule(limiter.default_policy, limiter.storage._engine).key("global", "who")
    assert await limiter.storage.redis.exists(key) == 1
    await limiter.shutdown()


@pytest.mark.skipif(not (HAVE_REDIS and HAVE_REDIS_PY), reason="redis-server or redis-py missing")
async def test_storage_redis_on_a_cluster(redis_cluster, app_name):
    from redis.asyncio.cluster import RedisCluster

    # redis-py reads the slot map with COMMAND, whose reply its pure-Python parser takes ~20 ms
    # to read here and ~130 ms under ASan: more than the default 100 ms socket timeout.
    limiter = Limiter(redis_url=redis_cluster.url, app_name=app_name,
                      default_policy=Rate(1, "1m"), command_timeout_ms=2000)
    await limiter.startup()  # also reads the slot map for redis-py's cluster client
    assert limiter.check_blocking("who").allowed
    assert isinstance(limiter.storage.redis, RedisCluster)
    key = limiter._rule(limiter.default_policy, limiter.storage._engine).key("global", "who")
    assert await limiter.storage.redis.exists(key) == 1
    await limiter.shutdown()


@pytest.mark.skipif(not (HAVE_REDIS and HAVE_REDIS_PY), reason="redis-server or redis-py missing")
def test_storage_redis_follows_the_event_loop(redis_server, app_name):
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)

    async def ping():
        return await limiter.storage.redis.ping()

    assert asyncio.run(ping()) is True
    assert asyncio.run(ping()) is True  # a second loop gets a client of its own
