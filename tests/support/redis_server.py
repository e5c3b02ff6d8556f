"""A redis-server of a Python test's own, on a free loopback port, stopped (or killed to play a
failure) by the test. Used by tests/conformance and tests/pacerd/rls."""

import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, prefix="pacer-redis-"):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.process = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def flush(self):
        with socket.create_connection(("127.0.0.1", self.port), 2) as s:
            s.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            assert s.recv(16).startswith(b"+OK")

    def stop(self):
        if self.process:
            self.process.kill()
            self.process.wait()
            self.process = None
