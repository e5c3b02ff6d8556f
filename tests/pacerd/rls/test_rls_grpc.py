"""pacerd as Envoy's rate limit service, asked by a real gRPC client (grpcio) over loopback:
ShouldRateLimit per descriptor, health, reload through a Kubernetes-style symlink swap, a bad
file refused while the running limits keep answering, bad requests, metrics and a clean stop
(docs/API.md, "Envoy rate limit service")."""

import importlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import pytest
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "support"))
from redis_server import RedisServer  # noqa: E402  (tests/support)

PROTO_DIRS = [HERE.parent.parent.parent / "apps" / "pacerd" / "rls" / "proto", HERE / "proto"]


@pytest.fixture(scope="module")
def pb():
    """Python stubs generated from Pacer's .proto files (the ones pacerd is built from)."""
    out = tempfile.mkdtemp(prefix="pacer-rls-pb-")
    protos = [str(p.relative_to(d)) for d in PROTO_DIRS for p in d.rglob("*.proto")]
    include = [f"-I{d}" for d in PROTO_DIRS]
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = ["protoc", *include, f"-I{well_known}", "-I/usr/include", f"--python_out={out}",
            f"--grpc_python_out={out}", *protos]
    assert protoc.main(args) == 0, args
    for root, dirs, _ in os.walk(out):
        for d in dirs:
            (pathlib.Path(root) / d / "__init__.py").touch()
    sys.path.insert(0, out)
    mods = {name: importlib.import_module(name) for name in [
        "envoy.service.ratelimit.v3.rls_pb2", "envoy.service.ratelimit.v3.rls_pb2_grpc",
        "envoy.extensions.common.ratelimit.v3.ratelimit_pb2", "pacer_health.health_pb2",
        "pacer_health.health_pb2_grpc"]}
    yield mods
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)


EDGE_V1 = """domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3, name: per_address}
  - key: tenant
    rate_limit: {unit: hour, requests_per_unit: 2}
    shadow_mode: true
"""
EDGE_V2 = EDGE_V1.replace("requests_per_unit: 3", "requests_per_unit: 5")


class Pacerd:
    """pacerd with [grpc], its YAML in a ConfigMap-like directory: edge.yaml -> ..data/edge.yaml,
    ..data -> a timestamped directory swapped by rename."""

    def __init__(self, store_url="memory://", fail_mode="open", unavailable="unavailable"):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="pacer-rls-"))
        self.rls = self.dir / "ratelimit"
        self.rls.mkdir()
        self.version = 0
        self.publish(EDGE_V1)
        (self.rls / "edge.yaml").symlink_to("..data/edge.yaml")
        self.toml = self.dir / "pacerd.toml"
        self.toml.write_text(f"""
[server]
listen = "127.0.0.1:0"
watch_settle = "100ms"
[store]
url = "{store_url}"
fail_mode = "{fail_mode}"
timeout = "200ms"
[grpc]
listen = "127.0.0.1:0"
config_dir = "{self.rls}"
response_headers = "ratelimit"
unavailable = "{unavailable}"
""")
        self.log = open(self.dir / "pacerd.log", "w+")
        self.process = subprocess.Popen([os.environ["PACERD"], "--config", str(self.toml)],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.http_port = self.grpc_port = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (self.http_port and self.grpc_port):
            text = (self.dir / "pacerd.log").read_text()
            m = re.search(r"event=started .*?listen=127\.0\.0\.1:(\d+)", text)
            g = re.search(r"event=grpc_started .*?listen=127\.0\.0\.1:(\d+)", text)
            self.http_port = m and int(m.group(1))
            self.grpc_port = g and int(g.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        assert self.http_port and self.grpc_port, (self.dir / "pacerd.log").read_text()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    def publish(self, text):
        """Writes a new ..data directory and swaps the link, as the kubelet does."""
        self.version += 1
        target = self.rls / f"..v{self.version}"
        target.mkdir()
        (target / "edge.yaml").write_text(text)
        tmp = self.rls / "..data_tmp"
        tmp.symlink_to(target.name)
        os.replace(tmp, self.rls / "..data")

    def http(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return r.read().decode()

    def stop(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def redis():
    server = RedisServer(prefix="pacer-rls-redis-")
    yield server
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def pacerd(request, redis):
    """The same tests on the in-process store and on Redis."""
    if request.param == "redis":
        redis.flush()
    p = Pacerd("memory://" if request.param == "memory" else redis.url)
    yield p
    p.stop()


def request(pb, *descriptors, hits=0, domain="edge"):
    rls = pb["envoy.service.ratelimit.v3.rls_pb2"]
    common = pb["envoy.extensions.common.ratelimit.v3.ratelimit_pb2"]
    return rls.RateLimitRequest(
        domain=domain, hits_addend=hits,
        descriptors=[common.RateLimitDescriptor(entries=[
            common.RateLimitDescriptor.Entry(key=k, value=v) for k, v in d]) for d in descriptors])


def ask(pb, pacerd, req):
    stub = pb["envoy.service.ratelimit.v3.rls_pb2_grpc"].RateLimitServiceStub(pacerd.channel)
    return stub.ShouldRateLimit(req, timeout=5)


def test_each_descriptor_is_answered_and_the_request_is_over_when_one_is(pb, pacerd):
    rls = pb["envoy.service.ratelimit.v3.rls_pb2"]
    req = request(pb, [("remote_address", "10.0.0.1")], [("tenant", "acme")])
    for i in range(3):
        r = ask(pb, pacerd, req)
        assert r.overall_code == rls.RateLimitResponse.OK
        assert r.statuses[0].current_limit.requests_per_unit == 3
        assert r.statuses[0].current_limit.unit == rls.RateLimitResponse.RateLimit.MINUTE
        assert r.statuses[0].current_limit.name == "per_address"
        assert r.statuses[0].limit_remaining == 2 - i
    over = ask(pb, pacerd, req)
    assert over.overall_code == rls.RateLimitResponse.OVER_LIMIT
    assert over.statuses[0].code == rls.RateLimitResponse.OVER_LIMIT
    assert over.statuses[1].code == rls.RateLimitResponse.OK  # shadow mode: counted, never over
    headers = {h.key: h.value for h in over.response_headers_to_add}
    assert headers["Retry-After"] == "20" and headers["RateLimit-Remaining"] == "0"
    # An unknown descriptor has no limit; another domain knows nothing.
    free = ask(pb, pacerd, request(pb, [("nothing", "x")]))
    assert free.overall_code == rls.RateLimitResponse.OK and not free.statuses[0].HasField(
        "current_limit")
    assert ask(pb, pacerd, request(pb, [("remote_address", "10.0.0.1")],
                                   domain="other")).overall_code == rls.RateLimitResponse.OK
    metrics = pacerd.http("/metrics")
    assert 'pacerd_rls_total_hits_total{domain="edge",descriptor="edge.remote_address"} 4' in metrics
    assert 'pacerd_rls_over_limit_total{domain="edge",descriptor="edge.remote_address"} 1' in metrics
    assert 'pacerd_rls_shadow_mode_total{domain="edge",descriptor="edge.tenant"} 2' in metrics


def test_health_says_serving(pb, pacerd):
    health = pb["pacer_health.health_pb2"]
    stub = pb["pacer_health.health_pb2_grpc"].HealthStub(pacerd.channel)
    deadline = time.monotonic() + 5
    while True:
        status = stub.Check(health.HealthCheckRequest(service=""), timeout=5).status
        if status == health.HealthCheckResponse.SERVING or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == health.HealthCheckResponse.SERVING
    named = stub.Check(health.HealthCheckRequest(
        service="envoy.service.ratelimit.v3.RateLimitService"), timeout=5)
    assert named.status == health.HealthCheckResponse.SERVING


def wait_for(predicate, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_symlink_swap_reloads_and_a_bad_file_keeps_the_running_limits(pb, pacerd):
    pacerd.publish(EDGE_V2)
    assert wait_for(lambda: '"requests_per_unit":5' in pacerd.http("/v1/config")), \
        pacerd.http("/v1/config")
    r = ask(pb, pacerd, request(pb, [("remote_address", "10.0.0.9")]))
    assert r.statuses[0].current_limit.requests_per_unit == 5
    assert r.statuses[0].limit_remaining == 4
    pacerd.publish("domain: edge\ndescriptors:\n  - key: remote_address\n    rate_limit: "
                   "{unit: fortnight, requests_per_unit: 1}\n")
    assert wait_for(lambda: "fortnight" in pacerd.http("/v1/config")), pacerd.http("/v1/config")
    config = pacerd.http("/v1/config")
    assert re.search(r"edge\.yaml:4:\d+: `unit` 'fortnight' is not a unit", config), config
    r = ask(pb, pacerd, request(pb, [("remote_address", "10.0.0.9")]))
    assert r.statuses[0].current_limit.requests_per_unit == 5  # still the running limits


def test_bad_requests_are_refused_naming_the_field_and_the_next_is_answered(pb, pacerd):
    with pytest.raises(grpc.RpcError) as e:
        ask(pb, pacerd, request(pb, [("remote_address", "x")], domain=""))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "domain: must not be empty"
    with pytest.raises(grpc.RpcError) as e:
        ask(pb, pacerd, request(pb))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        ask(pb, pacerd, request(pb, [("remote_address", "x" * (2 << 20))]))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as e:
        ask(pb, pacerd, request(pb, *[[("remote_address", str(i))] for i in range(1000)]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "descriptors: at most 64, got 1000"
    # NUL bytes and braces are an identity like any other (hashed into a key of its own).
    rls = pb["envoy.service.ratelimit.v3.rls_pb2"]
    odd = ask(pb, pacerd, request(pb, [("remote_address", "a\0b}{|")]))
    assert odd.overall_code == rls.RateLimitResponse.OK and odd.statuses[0].limit_remaining == 2
    # Bytes that are no RateLimitRequest at all.
    raw = pacerd.channel.unary_unary(
        "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError):
        raw(b"\xff\xff\xff\xff\x0f", timeout=5)
    rls = pb["envoy.service.ratelimit.v3.rls_pb2"]
    assert ask(pb, pacerd, request(pb, [("remote_address", "fine")])).overall_code == \
        rls.RateLimitResponse.OK


def test_reloads_under_traffic_fail_no_call(pb, pacerd):
    import threading
    rls = pb["envoy.service.ratelimit.v3.rls_pb2"]
    stop = threading.Event()
    calls, failures = [0], []

    def traffic():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = ask(pb, pacerd, request(pb, [("remote_address", f"t{i % 50}")]))
                assert r.overall_code in (rls.RateLimitResponse.OK, rls.RateLimitResponse.OVER_LIMIT)
                calls[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure is the test's business
                failures.append(repr(e))

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    for version in range(6):
        pacerd.publish(EDGE_V2 if version % 2 == 0 else EDGE_V1)
        want = "5" if version % 2 == 0 else "3"
        assert wait_for(lambda: f'"requests_per_unit":{want}' in pacerd.http("/v1/config"))
    stop.set()
    for t in threads:
        t.join()
    assert failures == [] and calls[0] > 100, (calls, failures[:3])


@pytest.mark.parametrize("fail_mode,unavailable,expected", [
    ("open", "unavailable", "OK"),
    ("closed", "unavailable", grpc.StatusCode.UNAVAILABLE),
    ("closed", "over_limit", "OVER_LIMIT"),
    ("local", "unavailable", "OK"),
])
def test_redis_killed_follows_the_fail_mode(pb, fail_mode, unavailable, expected):
    rls = pb["envoy.service.ratelimit.v3.rls_pb2"]
    health = pb["pacer_health.health_pb2"]
    server = RedisServer(prefix="pacer-rls-down-")
    p = Pacerd(server.url, fail_mode, unavailable)
    try:
        stub = pb["pacer_health.health_pb2_grpc"].HealthStub(p.channel)
        serving = lambda: stub.Check(health.HealthCheckRequest(), timeout=5).status  # noqa: E731
        assert wait_for(lambda: serving() == health.HealthCheckResponse.SERVING)
        assert ask(pb, p, request(pb, [("remote_address", "k")])).overall_code == \
            rls.RateLimitResponse.OK
        server.stop()
        assert wait_for(lambda: serving() == health.HealthCheckResponse.NOT_SERVING)
        req = request(pb, [("remote_address", "k")])
        if isinstance(expected, grpc.StatusCode):
            with pytest.raises(grpc.RpcError) as e:
                ask(pb, p, req)
            assert e.value.code() == expected
        else:
            r = ask(pb, p, req)
            assert r.overall_code == getattr(rls.RateLimitResponse, expected)
    finally:
        p.stop()
        server.stop()


def test_sigterm_stops_cleanly(pb, pacerd):
    ask(pb, pacerd, request(pb, [("remote_address", "x")]))
    pacerd.process.send_signal(signal.SIGTERM)
    assert pacerd.process.wait(15) == 0
