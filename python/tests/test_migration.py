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


