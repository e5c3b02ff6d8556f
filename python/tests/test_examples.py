"""The examples run (each is loaded from python/examples and exercised through httpx), and the
seed's configurable demo app answers byte for byte what pacer-demo, the C++ server, answers."""

import importlib.util
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name, **env):
    os.environ.update(env)  # the configurable app reads its settings at import
    spec = importlib.util.spec_from_file_location(f"pacer_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def client(app, host="203.0.113.5"):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 1234)),
                             base_url="http://test")


async def statuses(c, path, n, method="GET", **kwargs):
    return [(await c.request(method, path, **kwargs)).status_code for _ in range(n)]


async def test_middleware_example():
    app = load("middleware").app
    async with client(app) as c:
        assert await statuses(c, "/", 22) == [200] * 21 + [429]
        assert await statuses(c, "/health", 30) == [200] * 30


async def test_dependency_example():
    app = load("dependency").app
    async with client(app) as c:
        assert await statuses(c, "/limited", 7) == [200] * 6 + [429]
        assert await statuses(c, "/login", 2, "POST") == [200, 429]
        assert await statuses(c, "/search?q=x", 5) == [200] * 4 + [429]
        r = await c.get("/admin/stats")
        assert r.status_code == 200 and r.json()["limiter"]["limiter"]["requests_blocked"] == 3


async def test_multi_rate_example():
    app = load("multi_rate").app
    async with client(app) as c:
        r = await c.get("/api/items")
        assert r.headers["x-ratelimit-policy"] == \
            "Policy(api): 10/1s (burst=5), 100/1m (burst=20), 1000/1h (burst=100)"
        assert await statuses(c, "/api/items", 6) == [200] * 5 + [429]


async def test_identities_example():
    app = load("identities").app
    async with client(app) as c:
        assert await statuses(c, "/by-key", 7, headers={"X-API-Key": "k1"}) == [200] * 6 + [429]
        assert await statuses(c, "/by-key", 1, headers={"X-API-Key": "k2"}) == [200]
        assert await statuses(c, "/by-user", 2, headers={"X-User": "u1"}) == [200, 429]
        assert await statuses(c, "/by-user", 1, headers={"X-User": "u2"}) == [200]
        assert await statuses(c, "/by-org", 1, headers={"X-Org": "o1"}) == [200]
        assert await statuses(c, "/by-user-and-ip", 2, headers={"X-User": "u1"}) == [200, 429]
        assert await statuses(c, "/by-tenant", 2, headers={"X-Tenant": "a"}) == [200, 429]
        assert await statuses(c, "/by-tenant", 1, headers={"X-Tenant": "b"}) == [200]


async def test_hooks_example(caplog):
    app = load("hooks").app
    async with client(app) as c:
        assert await statuses(c, "/", 4) == [200] * 3 + [429]
        assert "limited 203.0.113.5 on /" in caplog.text
        metrics = (await c.get("/metrics")).json()
        assert metrics["limiter"] == {"requests_allowed": 3, "requests_blocked": 1,
                                      "redis_errors": 0}
        text = (await c.get("/metrics/prometheus")).text
        assert "pacer_decisions_total" in text or "pacer_" in text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_get(port, path, method="GET", data=None, headers=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.skipif(not os.environ.get("PACER_DEMO"), reason="PACER_DEMO (the pacer-demo binary) not given")
async def test_configurable_app_bodies_equal_pacer_demo():
    app = load("configurable_app", REDIS_URL="memory://", SERVICE_NAME="shop").app
    port = free_port()
    demo = subprocess.Popen([os.environ["PACER_DEMO"], "--port", str(port), "--threads", "1"],
                            env={**{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
                                 "SERVICE_NAME": "shop"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                demo_get(port, "/config")
                break
            except OSError:
                time.sleep(0.05)
        body = b'{"order":[1,2,3],"note":"hi"}'
        json_headers = {"Content-Type": "application/json"}
        cases = [("GET", "/", None), ("GET", "/config", None), ("GET", "/limited", None),
                 ("GET", "/custom", None), ("GET", "/api-key", None),
                 ("POST", "/post", body)]
        async with client(app, "127.0.0.1") as c:
            for method, path, data in cases:
                mine = await c.request(method, path, content=data, headers=json_headers)
                status, theirs = demo_get(port, path, method, data, json_headers)
                assert (mine.status_code, mine.content) == (status, theirs), path
            # The 429s: nested body from a per-route limit, the same on both sides but for the
            # milliseconds that passed between the two requests.
            mine = await c.post("/post", content=body, headers=json_headers)
            status, theirs = demo_get(port, "/post", "POST", body, json_headers)
            retry = __import__("json").loads(theirs)["detail"]["retry_after_ms"]
            assert mine.status_code == status == 429
            assert abs(mine.json()["detail"]["retry_after_ms"] - retry) < 1000
            assert mine.content.replace(str(mine.json()["detail"]["retry_after_ms"]).encode(),
                                        str(retry).encode()) == theirs
            for _ in range(6):
                await c.get("/limited")
                demo_get(port, "/limited")
            mine = await c.get("/limited")
            status, theirs = demo_get(port, "/limited")
            assert mine.status_code == status == 429
            assert mine.json()["detail"]["detail"] == "rate_limited"
            assert set(mine.json()["detail"]) == set(__import__("json").loads(theirs)["detail"])
    finally:
        demo.terminate()
        demo.wait(timeout=10)
