"""SimpleRedisStorage: FastAPI Pacer's storage class, here the owner of Pacer's C++ engine.

A Limiter keeps one in `limiter.storage`. The engine (store, Limiter, I/O threads) starts on
first use, not at construction, so an app module can be imported before a server forks its
workers; a process that finds itself forked starts its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from . import _log, _pacer
from ._urls import read_url
from ._validate import MAX_TIMEOUT_MS, whole_number

try:  # redis-py (Debian: python3-redis), for `storage.redis` only; the engine does not use it
    import redis.asyncio as _redis_asyncio
except ImportError:  # pragma: no cover - depends on the machine
    _redis_asyncio = None

_MEMORY_URLS = (None, "", "memory", "memory://")
_IO_MODES = ("loop", "thread")
# Engines of a parent process, kept (never destroyed) in a forked child: their threads do not
# exist here, so their destructors must not run.
_inherited: List[Any] = []


class SimpleRedisStorage:
    def __init__(self, redis_url: Optional[str] = "redis://localhost:6379",
                 connect_timeout_ms: int = 1000, command_timeout_ms: int = 100,
                 max_retries: int = 1, *, fail_mode: str = "open",
                 app_name: str = "fastapi", tls: Optional[Dict[str, Any]] = None,
                 io: Optional[str] = None) -> None:
        # Timeouts: whole milliseconds; an integral float (500.0) is taken as the int.
        connect_timeout_ms, command_timeout_ms = (
            whole_number(name, value, minimum=1, maximum=MAX_TIMEOUT_MS, bad_type=ValueError,
                         what="a positive whole number of milliseconds",
                         too_small=f"{name} must be a positive whole number of milliseconds, "
                                   f"got {value!r}")
            for name, value in (("connect_timeout_ms", connect_timeout_ms),
                                ("command_timeout_ms", command_timeout_ms)))
        self._tls = dict(tls or {})
        self._client_settings: Dict[str, Any] = {}
        self._engine_url: Optional[str] = None
        if redis_url not in _MEMORY_URLS:
            if not isinstance(redis_url, str):
                raise TypeError(f"redis_url must be a string or None, got {redis_url!r}")
            # redis-py's query parameters (FastAPI Pacer's URLs) become the engine's options:
            # the URL's values win over the arguments, as they did in redis-py.
            parsed = read_url(redis_url, _pacer.mask_redis_url)
            _pacer.check_redis_url(parsed.engine_url)
            self._engine_url = parsed.engine_url
            self._client_settings = parsed.client
            connect_timeout_ms = parsed.options.pop("connect_timeout_ms", connect_timeout_ms)
            command_timeout_ms = parsed.options.pop("command_timeout_ms", command_timeout_ms)
            self._tls.update(parsed.options)
        if not isinstance(app_name, str):
            raise TypeError(f"app_name must be a string, got {app_name!r}")
        # Where Redis I/O runs: "loop" (the event loop's thread) or "thread" (a thread of the
        # engine's own). PACER_IO sets it for a deployment; neither: "loop" when the engine
        # starts inside a running event loop (startup(), the first request), else "thread".
        where = "io"
        if io is None and os.environ.get("PACER_IO"):
            io, where = os.environ["PACER_IO"], "PACER_IO"
        if io is not None and io not in _IO_MODES:
            raise ValueError(f"{where} must be \"loop\" (Redis I/O on the event loop's thread) "
                             f"or \"thread\" (on a thread of its own), got {io!r}")
        self.io: Optional[str] = io
        _pacer.check_key_prefix(app_name)
        self.redis_url = redis_url
        self.connect_timeout_ms = connect_timeout_ms
        self.command_timeout_ms = command_timeout_ms
        self.max_retries = max_retries  # unused, as in FastAPI Pacer
        self._fail_mode = fail_mode
        self._app_name = app_name
        self._engine: Any = None
        self._warm = False  # the engine's first connection attempt is over
        self._pid = 0
        self._lock = threading.Lock()
        self._base = {"allowed": 0, "denied": 0, "errors": 0}
        self._client: Any = None  # the redis-py client of `redis`, and the loop it was made on
        self._client_loop: Any = None

    @property
    def is_memory(self) -> bool:
        return self.redis_url in _MEMORY_URLS

    def _engine_or_start(self) -> Any:
        engine = self._engine
        if engine is not None and self._pid == os.getpid():
            return engine
        with self._lock:
            if self._engine is not None and self._pid != os.getpid():
                _inherited.append(self._engine)
                self._engine = None
            if self._engine is None:
                _log.start()  # the engine's log lines reach logging.getLogger("pacer")
                io = self.io
                if io is None:
                    try:
                        asyncio.get_running_loop()
                        io = "loop"
                    except RuntimeError:
                        io = "thread"
                self._engine = _pacer.Engine(
                    self._engine_url, self._fail_mode, self._app_name,
                    self.connect_timeout_ms, self.command_timeout_ms, io=io, **self._tls)
                if io == "loop" and self._engine.io_mode == "thread":
                    _log.logger.warning("pacer: Redis I/O cannot run on the event loop here; "
                                        "it runs on a thread of its own")
                self._pid = os.getpid()
                self._warm = self._engine.completes_inline
            return self._engine

    def _close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
            if engine is None or self._pid != os.getpid():
                return
            counts = engine.metrics()
            for name in self._base:
                self._base[name] += counts[name]
            engine.shutdown()

    def _connected(self) -> bool:
        engine = self._engine
        return engine is not None and engine.connected()

    def _metrics(self) -> Dict[str, int]:
        engine = self._engine
        counts = dict(self._base)
        if engine is not None:
            live = engine.metrics()
            for name in counts:
                counts[name] += live[name]
        return counts

    def _prometheus(self, prefix: str) -> str:
        return self._engine_or_start().prometheus(prefix)

    @property
    def redis(self) -> Any:
        """A redis-py asyncio client on the store's Redis (FastAPI Pacer's `storage.redis`), so
        code written for it keeps working: `await limiter.storage.redis.flushdb()`, `.delete`,
        `.exists`, `.ttl`. Decisions never use it: the engine has its own connections. None for
        the in-process store, for Sentinel URLs, and when redis-py is not installed. Made on
        first use, once per event loop (redis-py's connections belong to one loop)."""
        if self._engine_url is None or _redis_asyncio is None:
            return None
        try:
            loop: Any = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        client = self._client
        if client is not None and (self._client_loop is None or loop is None
                                   or self._client_loop is loop):
            if self._client_loop is None:
                self._client_loop = loop
            return client
        client = _redis_py_client(self._engine_url, self.connect_timeout_ms,
                                  self.command_timeout_ms, self._tls, self._client_settings)
        self._client, self._client_loop = client, loop
        return client

    async def _close_client(self) -> None:
        client, loop = self._client, self._client_loop
        if client is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is running:
            self._client = self._client_loop = None
            try:
                await client.close()
            except Exception:  # a connection already broken: nothing to close
                pass

    async def connect(self) -> None:
        engine = self._engine_or_start()
        if engine.completes_inline:
            return
        if self._engine_url is not None and "+cluster://" in self._engine_url:
            # redis-py's cluster client must read the slot map before a multi-key command
            # (`exists`, `delete`) on it; single-key commands read it themselves.
            try:
                client = self.redis
                if client is not None:
                    await client.initialize()
            except Exception:  # unreachable: the engine's own connect below reports it
                pass
        loop = asyncio.get_running_loop()
        connected = await loop.run_in_executor(None, engine.wait_connected, self.connect_timeout_ms)
        self._warm = True
        if not connected:
            raise ConnectionError(f"cannot reach Redis: {engine.last_error() or 'timed out'}")

    async def ready_engine(self) -> Any:
        """The engine, after its first connection attempt (up to connect_timeout_ms, waited in
        a worker thread), so the first requests of a lazily started limiter are not answered by
        the fail mode merely because the connection was still being made."""
        engine = self._engine_or_start()
        if not self._warm:
            try:
                await self.connect()
            except ConnectionError:
                pass  # the fail mode answers
        return engine

    def ready_engine_blocking(self) -> Any:
        engine = self._engine_or_start()
        if not self._warm:
            engine.wait_connected(self.connect_timeout_ms)
            self._warm = True
        return engine

    async def disconnect(self) -> None:
        self._close()
        await self._close_client()

    async def check_policy(self, keys: List[str], policy: Any,
                           now_ms: Optional[int] = None) -> Tuple[bool, int, int, int, int]:
        """Decides one request on the storage key `keys[0]` (see Policy.generate_keys):
        (allowed, retry_after_ms, reset_ms, remaining, matched_rate_index). The store's clock
        decides: `now_ms` is ignored. Raises RuntimeError when the store cannot answer."""
        del now_ms
        engine = self._engine
        if engine is None or not self._warm:
            raise RuntimeError("Storage not connected. Call connect() first.")
        bridge = future = None
        if not engine.completes_inline:
            bridge, future = _pacer.loop_future()
        verdict = engine.submit(policy._native, keys[0], 1, bridge, future)
        if verdict is None:
            verdict = await future
        if verdict.degraded:
            raise RuntimeError(f"store error: {verdict.error}")
        return (verdict.allowed, verdict.retry_after_ms, verdict.reset_ms, verdict.remaining,
                verdict.rate_index)


def _redis_py_client(url: str, connect_timeout_ms: int, command_timeout_ms: int,
                     tls: Dict[str, Any], settings: Dict[str, Any]) -> Any:
    """A redis-py asyncio client on what the engine reads from `url`: its host(s), user,
    password, database and TLS files; None for Sentinel URLs."""
    parsed = _pacer.parse_redis_url(url)
    if parsed["sentinel"]:
        return None
    kwargs: Dict[str, Any] = {
        "username": parsed["username"] or None,
        "password": parsed["password"] or None,
        "socket_timeout": command_timeout_ms / 1000.0,
        "socket_connect_timeout": connect_timeout_ms / 1000.0,
        **settings,
    }
    if parsed["tls"]:
        kwargs.update(ssl=True, ssl_cert_reqs="required" if tls.get("tls_verify", True) else "none",
                      ssl_ca_certs=tls.get("tls_ca_file") or None,
                      ssl_certfile=tls.get("tls_cert_file") or None,
                      ssl_keyfile=tls.get("tls_key_file") or None)
    host, port = parsed["hosts"][0]
    if parsed["cluster"]:
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        kwargs.pop("max_connections", None)  # per node in redis-py's cluster client
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parsed["hosts"]],
                            **kwargs)
    return _redis_asyncio.Redis(host=host, port=port, db=parsed["db"], **kwargs)
