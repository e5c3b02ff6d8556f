"""One engine, one answer (issue 19; docs/DESIGN.md §7): trace.json replayed in lockstep through
every front end, which must answer each step alike.

Front ends:
- cpp: the C++ HTTP layer behind the Beast adapter (conformance-cpp, cpp_frontend.cc);
- pacerd: /v1/auth/{policy} for requests (204 -> 200, 403 -> 429 or 503 as auth_request maps
  them), /v1/check, /v1/peek, /v1/reset for explicit identities;
- py-middleware and py-dependency: the Python package's LimiterMiddleware and Depends(limit())
  under httpx.ASGITransport, Limiter.check_blocking / peek / reset for explicit identities.

Each front end has its own key space (key prefix, app name) on one store, so they replay the same
history side by side. Compared per step: the status, RateLimit-Limit, -Remaining, -Reset,
Retry-After, and the body's retry_after_ms (the whole seconds of Reset and Retry-After within 1).
Runs on the in-process store (fail mode open) and on Redis with fail modes open, closed and local
(the trace stops and restarts Redis).

The front ends answer a step one after another, so a time-dependent answer differs by how far
apart they decided, at this step and at the step that last anchored the bucket to the clock.
The replay times each step: retry_after_ms may differ by this step's span (first call sent to
last answer received) plus the widest span of an earlier step of its policy, plus SLACK_MS for
rounding. A machine that stalls the replay widens the bound by what was measured, not by a guess.

Named differences (docs/API.md, "Conformance"): requests reach cpp and pacerd from 127.0.0.1
with the peer appended to X-Forwarded-For, as a proxy in front of them would; steps marked
`only` skip the Python front ends (none do now).
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import httpx
import pytest
from fastapi import Depends, FastAPI

from pacer import Limiter, LimiterMiddleware, Policy, Rate, limit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from redis_server import RedisServer  # noqa: E402  (tests/support)
TRACE = json.load(open(os.path.join(HERE, "trace.json")))
HEADERS = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after")
SLACK_MS = 10  # each front end rounds retry_after_ms to whole milliseconds
SECONDS = ("ratelimit-reset", "retry-after")
ALL = ("cpp", "pacerd", "py-middleware", "py-dependency")


def launch(command):
    """Starts a front end that prints its port (pacerd logs "... port=N"); returns (process, port)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 15
    seen = []
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        match = re.search(r"(?:^port |listening on http://127\.0\.0\.1:)(\d+)", line)
        if match:
            # Keep reading its output, so a full pipe never stops it.
            threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
            return process, int(match.group(1))
    process.kill()
    raise RuntimeError("front end did not start: " + "".join(seen))


def pacerd_config(store_url, fail_mode):
    lines = ["[server]", 'listen = "127.0.0.1:0"', "threads = 2",
             f'trusted_proxies = "{TRACE["trusted_proxies"]}"', "", "[store]",
             f'url = "{store_url}"', f'fail_mode = "{fail_mode}"', 'timeout = "200ms"',
             'key_prefix = "pacerd"', ""]
    for p in TRACE["policies"]:
        rates = ", ".join(f'{{ limit = "{r["limit"]}", burst = {r.get("burst", 0)} }}'
                          for r in p["rates"])
        lines += ["[[policy]]", f'name = "{p["name"]}"', f"rates = [{rates}]",
                  f'identity = "{p["identity"]}"',
                  f'missing_identity = "{p.get("missing_identity", "refuse")}"',
                  f'shadow = {"true" if p.get("shadow") else "false"}', ""]
    return "\n".join(lines)


# -- the Python front ends ---------------------------------------------------------------------

def python_policy(p):
    rates = []
    for r in p["rates"]:
        permits, per = r["limit"].split("/")
        rates.append(Rate(int(permits), per, burst=r.get("burst", 0)))
    selector = {"client_ip": "ip", "api_key": "api_key"}.get(p["identity"])
    if selector is None:  # header:<Name>, as a custom selector; no header: the shared bucket
        name = p["identity"].split(":", 1)[1]
        selector = lambda request, name=name: request.headers.get(name) or "anonymous"  # noqa: E731
    return Policy(rates, key=selector, name=p["name"], shadow=p.get("shadow", False),
                  missing_identity=p.get("missing_identity", "refuse"))


POLICIES = {p["name"]: p for p in TRACE["policies"]}


def python_apps(store_url, fail_mode):
    url = None if store_url == "memory" else store_url
    middleware_limiter = Limiter(redis_url=url, app_name="pym", route_scope="app",
                                 fail_mode=fail_mode, command_timeout_ms=200)
    dependency_limiter = Limiter(redis_url=url, app_name="pyd", route_scope="app",
                                 fail_mode=fail_mode, command_timeout_ms=200)
    policies = {name: python_policy(p) for name, p in POLICIES.items()}
    middleware_apps = {}
    for name, policy in policies.items():
        app = FastAPI()

        @app.api_route("/p/{name}", methods=["GET", "POST", "PUT", "DELETE"])
        async def ok(name: str):
            return {"ok": True}

        app.add_middleware(LimiterMiddleware, limiter=middleware_limiter, policy=policy)
        middleware_apps[name] = app
    dependency_app = FastAPI()
    for name, policy in policies.items():
        dependency_app.add_api_route(
            f"/p/{name}", lambda: {"ok": True}, methods=["GET", "POST", "PUT", "DELETE"],
            dependencies=[Depends(limit(policy, limiter=dependency_limiter))])
    return middleware_limiter, dependency_limiter, policies, middleware_apps, dependency_app


# -- answers -----------------------------------------------------------------------------------

def retry_after_ms(body):
    """The body's retry_after_ms, flat or nested in "detail"."""
    if isinstance(body, dict):
        if "retry_after_ms" in body:
            return body["retry_after_ms"]
        return retry_after_ms(body.get("detail"))
    return None


def answer_of(status, headers, body):
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return {"status": status, **{h: lowered.get(h) for h in HEADERS},
            "retry_after_ms": retry_after_ms(parsed)}


def op_answer(allowed, outcome, remaining, retry):
    return {"allowed": allowed, "outcome": outcome, "remaining": remaining, "retry_after_ms": retry}


def same(a, b, tolerance_ms):
    if set(a) != set(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if key == "retry_after_ms" and isinstance(x, int) and isinstance(y, int):
            if abs(x - y) > tolerance_ms:
                return False
        elif key in SECONDS and x is not None and y is not None:
            # Whole seconds rounded up: answers a few ms apart may straddle a second.
            if abs(int(x) - int(y)) > 1:
                return False
        elif x != y:
            return False
    return True


# -- the replay --------------------------------------------------------------------------------

def expand(steps):
    for step in steps:
        for _ in range(step.get("repeat", 1)):
            yield step


async def replay(store_url, fail_mode, redis=None):
    if redis is not None:
        redis.flush()  # each run starts from empty buckets
    cpp, cpp_port = launch([os.environ["PACER_CONFORMANCE_CPP"],
                            os.path.join(HERE, "trace.json"), store_url, fail_mode])
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(pacerd_config(store_url, fail_mode))
    config.close()
    pacerd, pacerd_port = launch([os.environ["PACERD"], "--config", config.name])
    pym, pyd, policies, middleware_apps, dependency_app = python_apps(store_url, fail_mode)
    await pym.startup()
    await pyd.startup()
    answers = []  # (step number, step, {front end: answer}, the step's span in ms)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cpp_port}") as cpp_client, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{pacerd_port}") as pacerd_client:
            if redis is not None:  # every front end connected before the first step
                for _ in range(100):
                    r = await pacerd_client.get("/v1/config")
                    if r.json()["store"]["connected"]:
                        break
                    await asyncio.sleep(0.05)
            for number, step in enumerate(expand(TRACE["steps"])):
                if "sleep_ms" in step:
                    await asyncio.sleep(step["sleep_ms"] / 1000)
                    continue
                if "store" in step:
                    if redis is None:
                        continue
                    if step["store"] == "down":
                        redis.stop()
                    else:
                        redis.start()
                        await asyncio.sleep(2.0)  # reconnects back off to 500 ms at most
                    continue
                fronts = step.get("only", ALL)
                started = time.monotonic()
                if "request" in step:
                    got = await send_request(step["request"], fronts, cpp_client, pacerd_client,
                                             middleware_apps, dependency_app)
                else:
                    got = await send_op(step["op"], fronts, cpp_client, pacerd_client, pym,
                                        policies)
                answers.append((number, step, got, (time.monotonic() - started) * 1000))
    finally:
        for process in (cpp, pacerd):
            process.send_signal(signal.SIGTERM)
        for process in (cpp, pacerd):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        await pym.shutdown()
        await pyd.shutdown()
        os.unlink(config.name)
    return answers


async def send_request(request, fronts, cpp_client, pacerd_client, middleware_apps,
                       dependency_app):
    policy, peer = request["policy"], request["peer"]
    method = request.get("method", "GET")
    headers = dict(request.get("headers", {}))
    # cpp and pacerd sit behind a proxy on 127.0.0.1, which appends the peer it saw.
    proxied = dict(headers)
    forwarded = headers.get("X-Forwarded-For")
    proxied["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
    got = {}
    if "cpp" in fronts:
        r = await cpp_client.request(method, f"/p/{policy}", headers=proxied)
        got["cpp"] = answer_of(r.status_code, r.headers, r.content)
    if "pacerd" in fronts:
        r = await pacerd_client.request(method, f"/v1/auth/{policy}", headers=proxied)
        outcome = r.headers.get("x-pacer-outcome")
        status = {204: 200, 403: 503 if outcome == "unavailable" else 429}.get(r.status_code,
                                                                               r.status_code)
        got["pacerd"] = answer_of(status, r.headers, r.content)
    for name, app in (("py-middleware", middleware_apps[policy]),
                      ("py-dependency", dependency_app)):
        if name not in fronts:
            continue
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.request(method, f"/p/{policy}", headers=headers)
        got[name] = answer_of(r.status_code, r.headers, r.content)
    return got


async def send_op(op, fronts, cpp_client, pacerd_client, python_limiter, policies):
    what, policy, identity = op["op"], op["policy"], op["identity"]
    cost = op.get("cost", 1)
    got = {}
    if "cpp" in fronts:
        r = await cpp_client.post("/_op", json=op)
        # A front end that fails is an answer too (it differs from the others').
        got["cpp"] = r.json() if r.status_code == 200 else {"status": r.status_code}
    if "pacerd" in fronts:
        if what == "reset":
            r = await pacerd_client.post("/v1/reset", json={"policy": policy, "key": identity})
            got["pacerd"] = {"reset": r.json().get("reset")}
        else:
            r = await pacerd_client.post(f"/v1/{what}",
                                         json={"policy": policy, "key": identity, "cost": cost})
            b = r.json()
            got["pacerd"] = (op_answer(b["allowed"], b["outcome"], b["remaining"],
                                       b["retry_after_ms"]) if r.status_code == 200
                             else {"status": r.status_code})
    if "cpp" in got and "allowed" in got["cpp"]:
        c = got["cpp"]
        got["cpp"] = op_answer(c["allowed"], c["outcome"], c["remaining"],
                               None if c["outcome"] == "exceeds_capacity" else c["retry_after_ms"])
    if "py-middleware" in fronts:
        p = policies[policy]
        if what == "reset":
            python_limiter.reset(identity, p, scope="global")
            got["python"] = {"reset": True}
        else:
            call = python_limiter.peek if what == "peek" else python_limiter.check_blocking
            res = call(identity, p, scope="global", cost=cost)
            got["python"] = op_answer(res.allowed, res.outcome, res.remaining,
                                      None if res.outcome == "exceeds_capacity"
                                      else res.retry_after_ms)
    return got


def mismatches(answers):
    out = []
    widest = {}  # policy -> its widest step span so far: any such step may have anchored a bucket
    for number, step, got, span in answers:
        policy = (step.get("request") or step.get("op"))["policy"]
        tolerance = SLACK_MS + span + widest.get(policy, 0.0)
        widest[policy] = max(widest.get(policy, 0.0), span)
        names = list(got)
        for other in names[1:]:
            if not same(got[names[0]], got[other], tolerance):
                out.append(f"step {number} {json.dumps(step)} (retry_after_ms within "
                           f"{tolerance:.0f} ms: this step's span {span:.0f} ms):\n  " +
                           "\n  ".join(f"{n}: {got[n]}" for n in names))
                break
    return out


def requests_compared(answers):
    return sum(1 for _, step, got, _ in answers if len(got) >= 2)


@pytest.fixture(scope="module")
def redis():
    server = RedisServer(prefix="pacer-conformance-")
    yield server
    server.stop()


@pytest.mark.parametrize("fail_mode", ["open"])
async def test_every_front_end_answers_alike_in_process(fail_mode):
    answers = await replay("memory", fail_mode)
    assert not mismatches(answers), "\n".join(mismatches(answers))
    assert requests_compared(answers) >= 200


@pytest.mark.parametrize("fail_mode", ["open", "closed", "local"])
async def test_every_front_end_answers_alike_on_redis(redis, fail_mode):
    answers = await replay(redis.url, fail_mode, redis)
    assert not mismatches(answers), "\n".join(mismatches(answers))
    assert requests_compared(answers) >= 200
