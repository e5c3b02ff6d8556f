"""Fixtures: real redis-server processes on free loopback ports (standalone and a 3-master
cluster), started by the tests and stopped at the end of the session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import List

import pytest

HAVE_REDIS = shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def free_port(with_bus: bool = False) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not with_bus or port + 10000 > 65535:
            if not with_bus:
                return port
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def make_certificates(directory: str) -> dict:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    ca_ext = "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
    with open(os.path.join(directory, "server.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    script = (f"openssl req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj '/CN=Pacer Test CA' "
              f"{ca_ext} && openssl req -x509 {ec} -keyout other.key -out other.crt -days 2 "
              f"-subj '/CN=Other CA' {ca_ext} && openssl req {ec} -keyout server.key "
              f"-out server.csr -subj '/CN=pacer-test' && openssl x509 -req -in server.csr "
              f"-CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile server.ext")
    subprocess.run(["sh", "-c", script], cwd=directory, check=True, capture_output=True, timeout=60)
    return {name: os.path.join(directory, f"{name}.{ext}") for name, ext in
            (("ca", "crt"), ("other", "crt"), ("server", "crt"), ("key", "key"))}


class RedisServer:
    def __init__(self, cluster: bool = False, tls: bool = False) -> None:
        self.port = free_port(with_bus=cluster)
        self.dir = tempfile.mkdtemp(prefix="pacer-py-redis-")
        self.tls = make_certificates(self.dir) if tls else None
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir]
        if tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file",
                     self.tls["server"], "--tls-key-file", os.path.join(self.dir, "server.key"),
                     "--tls-ca-cert-file", self.tls["ca"], "--tls-auth-clients", "no"]
        if cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     f"nodes-{self.port}.conf", "--cluster-node-timeout", "5000"]
        self._args = args
        self.start()

    def start(self) -> None:
        """Starts the server (again, after kill(): same port, empty data)."""
        self.proc = subprocess.Popen(self._args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        tls_args = ("--tls", "--cacert", self.tls["ca"]) if self.tls else ()
        while time.time() < deadline:
            if cli(self.port, *tls_args, "PING") == "PONG":
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    def __init__(self, masters: int = 3) -> None:
        self.nodes: List[RedisServer] = [RedisServer(cluster=True) for _ in range(masters)]
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{n.port}" for n in self.nodes],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       capture_output=True, timeout=30, check=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if all("cluster_state:ok" in cli(n.port, "CLUSTER", "INFO") for n in self.nodes):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Redis cluster did not reach cluster_state:ok")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_server():
    if not HAVE_REDIS:
        pytest.skip("redis-server not installed")
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_tls():
    if not HAVE_REDIS or shutil.which("openssl") is None:
        pytest.skip("redis-server or openssl not installed")
    server = RedisServer(tls=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster():
    if not HAVE_REDIS:
        pytest.skip("redis-server not installed")
    cluster = RedisCluster(3)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["memory", "redis", "cluster"])
def store_url(request):
    """Every behaviour test runs on the in-process store, on Redis and on a Redis Cluster."""
    if request.param == "memory":
        return None
    if request.param == "redis":
        return request.getfixturevalue("redis_server").url
    return request.getfixturevalue("redis_cluster").url


_counter = [0]


@pytest.fixture
def app_name():
    """A key prefix of its own for each test, so tests sharing a Redis never share a key."""
    _counter[0] += 1
    return f"t{os.getpid()}x{_counter[0]}"
