"""Issue 23, item 3: Redis I/O on the event loop's own thread (`io="loop"`, the default).

The store's descriptor is watched by the running loop; these tests show that nothing an I/O
thread used to do for the engine is lost: exact counts, deadlines with nothing else happening,
reconnects, NOSCRIPT, Sentinel, blocking calls (from a worker thread, from the loop's own
thread, with no loop at all), several loops, and shutdown. The other Python suites run in both
modes (CTest: python.<file> and python.<file>.thread)."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from starlette.requests import Request

from conftest import HAVE_REDIS, RedisServer, cli, free_port
from pacer import Limiter, Policy, Rate
from pacer.storage_simple import SimpleRedisStorage

pytestmark = pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not installed")

ROOMY = Policy([Rate(1000, "1s", burst=1000)], name="roomy")


def request(host: str = "203.0.113.9") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/x", "headers": [],
                    "client": (host, 1234), "query_string": b""})


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def evalsha_calls(port: int) -> int:
    for line in cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_the_loop_mode_starts_no_thread(redis_server, app_name):
    warm = SimpleRedisStorage(redis_server.url, app_name=app_name, io="loop")
    warm._engine_or_start()  # the logging thread, once per process
    before = threads()
    loop_mode = SimpleRedisStorage(redis_server.url, app_name=app_name, io="loop")
    assert loop_mode._engine_or_start().io_mode == "loop" and threads() == before
    thread_mode = SimpleRedisStorage(redis_server.url, app_name=app_name, io="thread")
    assert thread_mode._engine_or_start().io_mode == "thread" and threads() == before + 1
    for storage in (warm, loop_mode, thread_mode):
        storage._close()
    assert threads() == before


async def test_every_decision_reaches_redis_once(redis_server, app_name):
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name, io="loop")
    await limiter.startup()
    assert limiter.storage._engine.io_mode == "loop"
    calls = evalsha_calls(redis_server.port)
    exact = Policy([Rate(10, "1h", burst=299)], name="exact")
    results = await asyncio.gather(*[limiter.check_policy(request(), exact) for _ in range(300)])
    assert sum(r.allowed for r in results) == 300
    assert not any(r.degraded for r in results)
    # One EVALSHA per decision: none lost, none sent twice.
    assert evalsha_calls(redis_server.port) - calls == 300
    refused = await limiter.check_policy(request(), exact)
    assert not refused.allowed and not refused.degraded
    await limiter.shutdown()


async def test_a_deadline_fires_while_the_loop_has_nothing_else_to_do(app_name):
    server = RedisServer()
    try:
        limiter = Limiter(redis_url=server.url, app_name=app_name, command_timeout_ms=50)
        await limiter.startup()
        assert (await limiter.check_policy(request(), ROOMY)).allowed
        os.kill(server.proc.pid, signal.SIGSTOP)  # written, never answered
        try:
            started = time.monotonic()
            result = await limiter.check_policy(request(), ROOMY)
            waited = time.monotonic() - started
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert result.degraded and result.allowed  # fail open, after the deadline
        assert 0.04 <= waited < 0.5, waited
        await limiter.shutdown()
    finally:
        server.stop()


async def test_reconnects_after_a_restart_and_reloads_the_script(app_name):
    server = RedisServer()
    try:
        limiter = Limiter(redis_url=server.url, app_name=app_name)
        await limiter.startup()
        assert not (await limiter.check_policy(request(), ROOMY)).degraded
        server.kill()
        assert (await limiter.check_policy(request(), ROOMY)).degraded
        server.start()  # same port, no script loaded
        deadline = time.monotonic() + 5
        while (await limiter.check_policy(request(), ROOMY)).degraded:
            assert time.monotonic() < deadline, "no reconnect within 5 s"
            await asyncio.sleep(0.02)
        cli(server.port, "SCRIPT", "FLUSH")  # NOSCRIPT: sent again with EVAL, within the call
        exact = Policy([Rate(10, "1h", burst=49)], name="after")
        results = await asyncio.gather(*[limiter.check_policy(request(), exact) for _ in range(60)])
        assert sum(r.allowed for r in results) == 50 and not any(r.degraded for r in results)
        await limiter.shutdown()
    finally:
        server.stop()


async def test_blocking_calls_from_a_worker_thread_and_from_the_loop_thread(redis_server,
                                                                            app_name):
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)
    await limiter.startup()
    assert not (await limiter.check_policy(request(), ROOMY)).degraded  # the loop drives it
    exact = Policy([Rate(10, "1h", burst=39)], name="mixed")
    loop = asyncio.get_running_loop()

    def worker():  # a sync endpoint in a thread pool
        return [limiter.check_blocking("203.0.113.9", exact) for _ in range(20)]

    from_thread, from_loop = await asyncio.gather(
        loop.run_in_executor(None, worker),
        asyncio.gather(*[limiter.check_policy(request(), exact, scope_override="global")
                         for _ in range(20)]))
    # On the loop's own thread, blocking: it drives the I/O itself while it waits.
    on_loop = [limiter.check_blocking("203.0.113.9", exact) for _ in range(20)]
    answers = from_thread + list(from_loop) + on_loop
    assert not any(r.degraded for r in answers)
    assert sum(r.allowed for r in answers) == 40  # one bucket, 60 checks
    await limiter.shutdown()


def test_blocking_use_with_no_event_loop_at_all(redis_server, app_name):
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name, io="loop")
    exact = Policy([Rate(10, "1h", burst=4)], name="sync")
    answers = [limiter.check_blocking("u", exact) for _ in range(8)]
    assert [r.allowed for r in answers] == [True] * 5 + [False] * 3
    assert not any(r.degraded for r in answers)
    assert limiter.storage._engine.io_mode == "loop"
    limiter.storage._close()


def test_several_loops_share_one_engine(redis_server, app_name):
    """The first loop drives the I/O; a loop in another thread is answered through it while it
    runs, and takes over once it has closed."""
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)
    exact = Policy([Rate(10, "1h", burst=99)], name="loops")
    first_started, first_done, second_done = threading.Event(), threading.Event(), []

    async def first():
        await limiter.startup()
        assert not (await limiter.check_policy(request("10.0.0.1"), exact)).degraded
        first_started.set()
        await asyncio.get_running_loop().run_in_executor(None, first_done.wait, 10)

    async def second():
        first_started.wait(10)
        started = time.monotonic()
        answers = [await limiter.check_policy(request(f"10.0.1.{i}"), exact) for i in range(20)]
        second_done.append((answers, time.monotonic() - started))
        first_done.set()

    runner = threading.Thread(target=lambda: asyncio.run(second()))
    runner.start()
    asyncio.run(first())  # closes the first loop
    runner.join(20)
    answers, took = second_done[0]
    assert all(r.allowed and not r.degraded for r in answers) and took < 1.0

    async def third():  # the first loop is closed: this one takes over
        answers = [await limiter.check_policy(request("10.0.2.1"), exact) for _ in range(5)]
        assert all(r.allowed and not r.degraded for r in answers)
        await limiter.shutdown()

    asyncio.run(third())


async def test_after_shutdown_the_loop_does_not_spin(redis_server, app_name):
    limiter = Limiter(redis_url=redis_server.url, app_name=app_name)
    await limiter.startup()
    await asyncio.gather(*[limiter.check_policy(request(), ROOMY) for _ in range(50)])
    await limiter.shutdown()
    await asyncio.sleep(0.05)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(0.3)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime) < 0.1


def test_by_default_the_loop_drives_when_there_is_one(redis_server, app_name, monkeypatch):
    monkeypatch.delenv("PACER_IO", raising=False)
    sync = SimpleRedisStorage(redis_server.url, app_name=app_name)
    assert sync.io is None and sync._engine_or_start().io_mode == "thread"  # no loop running
    sync._close()

    async def started_in_a_loop():
        storage = SimpleRedisStorage(redis_server.url, app_name=app_name)
        assert storage._engine_or_start().io_mode == "loop"
        storage._close()

    asyncio.run(started_in_a_loop())


def test_a_bad_io_mode_names_the_value_and_what_is_accepted(monkeypatch):
    with pytest.raises(ValueError, match=r"io must be \"loop\" .* or \"thread\" .*got 'fast'"):
        SimpleRedisStorage("redis://127.0.0.1:1", io="fast")
    monkeypatch.setenv("PACER_IO", "threads")
    with pytest.raises(ValueError, match=r"PACER_IO must be .*got 'threads'"):
        SimpleRedisStorage("redis://127.0.0.1:1")
    monkeypatch.setenv("PACER_IO", "thread")
    assert SimpleRedisStorage("redis://127.0.0.1:1").io == "thread"


async def test_sentinel_on_the_loop(app_name):
    """The master found through Sentinel: the monitor's connections and timers run on the loop
    too. (Failovers: tests/redis/sentinel_integration_test.cc, the same client code.)"""
    master = RedisServer()
    sentinel_dir = tempfile.mkdtemp(prefix="pacer-py-sentinel-")
    sentinel_port = free_port()
    config = os.path.join(sentinel_dir, "sentinel.conf")
    with open(config, "w") as f:
        f.write(f"port {sentinel_port}\nbind 127.0.0.1\ndir {sentinel_dir}\n"
                f"sentinel monitor pacer 127.0.0.1 {master.port} 1\n"
                "sentinel down-after-milliseconds pacer 1000\n"
                "sentinel failover-timeout pacer 2000\n")
    sentinel = subprocess.Popen(["redis-server", config, "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while cli(sentinel_port, "PING") != "PONG":
            assert time.monotonic() < deadline, "the sentinel did not start"
            time.sleep(0.05)
        limiter = Limiter(redis_url=f"redis+sentinel://127.0.0.1:{sentinel_port}/pacer",
                          app_name=app_name)
        await limiter.startup()
        assert limiter.storage._engine.io_mode == os.environ.get("PACER_IO", "loop")
        exact = Policy([Rate(10, "1h", burst=9)], name="sentinel")
        calls = evalsha_calls(master.port)
        results = [await limiter.check_policy(request(), exact) for _ in range(12)]
        assert [r.allowed for r in results] == [True] * 10 + [False] * 2
        assert not any(r.degraded for r in results)
        assert evalsha_calls(master.port) - calls >= 10  # decided on the master it found
        await limiter.shutdown()
    finally:
        sentinel.kill()
        sentinel.wait()
        shutil.rmtree(sentinel_dir, ignore_errors=True)
        master.stop()
