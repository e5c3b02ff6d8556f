"""Limiter: FastAPI Pacer's API over Pacer's C++ engine.

Every decision is made by the C++ library (`pacer._pacer.Engine`: a Limiter on the in-process
store or on Redis, with the fail mode, GCRA, keys, headers and bodies); this class keeps
FastAPI Pacer's constructor, attributes, hooks and results. An in-process decision is answered inline;
a Redis decision completes on Pacer's I/O thread and reaches the event loop through a Bridge,
in batches.
"""

from __future__ import annotations

import atexit
import json
import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple, Union

from . import _pacer
from ._routes import request_template, scope_template
from ._validate import whole_number
from .policies import Policy, Rate
from .storage_simple import SimpleRedisStorage

logger = logging.getLogger("pacer")

OnDecisionHook = Callable[[Any, Policy, "RateLimitResult", float], None]
OnErrorHook = Callable[[Any, Policy, Exception, float], None]

# route_scope -> the engine's scope kind (PATH: the path given, METHOD_PATH: "METHOD:path",
# GLOBAL: "global"). "route" and "method" are given the route template, "path" and
# "method_path" the concrete path (FastAPI Pacer's "route" and "method").
_SCOPE_KINDS = {
    "route": _pacer.ScopeKind.PATH,
    "method": _pacer.ScopeKind.METHOD_PATH,
    "app": _pacer.ScopeKind.GLOBAL,
    "path": _pacer.ScopeKind.PATH,
    "method_path": _pacer.ScopeKind.METHOD_PATH,
}
_TEMPLATE_SCOPES = ("route", "method")
_MAX_RULES = 256  # compiled rules a Limiter keeps (Limiter._rule); more are compiled again

# (expose_headers, legacy_timestamp_header, expose_policy_header) -> the engine's HeaderFlag.
_HEADER_FLAGS = {
    (expose, reset, policy): (
        (_pacer.HeaderFlag.EXPOSE if expose else _pacer.HeaderFlag.NONE)
        | (_pacer.HeaderFlag.X_RATELIMIT_RESET if reset else _pacer.HeaderFlag.NONE)
        | (_pacer.HeaderFlag.X_RATELIMIT_POLICY if policy else _pacer.HeaderFlag.NONE))
    for expose in (False, True) for reset in (False, True) for policy in (False, True)
}

# What Limiter._admission answers before the engine has started.
NOT_READY = object()

# Retry-After of a 503 (fail mode "closed"): the engine's, as in FastAPI Pacer (5 s).
UNAVAILABLE_RETRY_AFTER_S = int(_pacer.UNAVAILABLE_RETRY_AFTER_S)


class _LogThrottle:
    """At most one log record a second per site, saying how many were left out: a selector or
    hook that fails on every request must not flood the log."""

    def __init__(self) -> None:
        self._next = 0.0
        self._suppressed = 0

    def _allow(self, message: str) -> Optional[str]:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return None
        self._next = now + 1.0
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += f" ({suppressed} more since the last report)"
        return message

    def exception(self, message: str, *args: Any, error: Optional[BaseException] = None) -> None:
        """A record with the traceback of `error`, or of the exception being handled."""
        text = self._allow(message)
        if text is not None:
            logger.exception(text, *args, exc_info=error or True)

    def error(self, message: str, *args: Any) -> None:
        """A record without a traceback: for mistakes the message explains."""
        text = self._allow(message)
        if text is not None:
            logger.error(text, *args)


class StoreError(RuntimeError):
    """The store could not decide (Redis unreachable, timeout, ...); the fail mode answered.
    Passed to `on_error` hooks."""


class IdentityMissing(_pacer.IdentityMissing):
    """The request has no identity for a policy with `missing_identity="refuse"` (no API key,
    no user, ...): raised by `check_policy` before anything is spent; the middleware, `limit()`
    and `@rate_limit` answer it with 401 {"detail":"identity_missing"}. (The engine raises its
    base class, `_pacer.IdentityMissing`, which the package's own paths catch.)"""

    def __init__(self, policy: Any) -> None:
        super().__init__(f"identity missing for policy {getattr(policy, 'name', policy)!r}")
        self.policy = policy



@dataclass
class RateLimitResult:
    allowed: bool
    retry_after_ms: int
    reset_ms: int
    remaining: int
    matched_rate_index: int = 0
    # Pacer: "allowed", "denied", "exceeds_capacity" or "unavailable" (fail mode "closed"),
    # and whether the fail mode answered because the store failed.
    outcome: Optional[str] = None
    degraded: bool = False
    _verdict: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.outcome is None:
            self.outcome = "allowed" if self.allowed else "denied"

    @property
    def retry_after_seconds(self) -> int:
        return max(1, -(-self.retry_after_ms // 1000))

    @property
    def reset_seconds(self) -> int:
        return max(1, -(-self.reset_ms // 1000))

    @property
    def reset_timestamp(self) -> int:
        return int(time.time()) + -(-self.reset_ms // 1000)


@dataclass
class LimiterMetrics:
    requests_allowed: int = 0
    requests_blocked: int = 0
    redis_errors: int = 0

    def to_dict(self) -> Dict[str, int]:
        return {
            "requests_allowed": self.requests_allowed,
            "requests_blocked": self.requests_blocked,
            "redis_errors": self.redis_errors,
        }


def _live_counter(field_name: str, engine_name: str) -> property:
    def get(self: "_LiveMetrics") -> int:
        return self._storage._metrics()[engine_name] - self._base[engine_name]

    def set_(self: "_LiveMetrics", value: Any) -> None:
        value = whole_number(field_name, value, minimum=0)
        self._base[engine_name] = self._storage._metrics()[engine_name] - value

    return property(get, set_)


class _LiveMetrics(LimiterMetrics):
    """`limiter.metrics`: one object for the Limiter's life whose counters are the engine's,
    read when asked, so a reference taken at startup keeps counting (as FastAPI Pacer's
    mutable LimiterMetrics did). Assigning a counter (`metrics.requests_allowed = 0`) rebases
    that counter; `to_dict()`, `==` with a LimiterMetrics and `repr` show the current values."""

    requests_allowed = _live_counter("requests_allowed", "allowed")  # type: ignore[assignment]
    requests_blocked = _live_counter("requests_blocked", "denied")  # type: ignore[assignment]
    redis_errors = _live_counter("redis_errors", "errors")  # type: ignore[assignment]

    def __init__(self, storage: Any) -> None:  # pylint: disable=super-init-not-called
        self._storage = storage
        self._base = {"allowed": 0, "denied": 0, "errors": 0}

    def set(self, value: LimiterMetrics) -> None:
        """Rebases every counter to `value`'s."""
        self.requests_allowed = value.requests_allowed
        self.requests_blocked = value.requests_blocked
        self.redis_errors = value.redis_errors

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, LimiterMetrics):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "LimiterMetrics(" + ", ".join(f"{k}={v}" for k, v in self.to_dict().items()) + ")"


def _no_decision_hook(request: Any, policy: Any, result: Any, duration_ms: float) -> None:
    """The default `on_decision`: does nothing (a callable, so hooks can be chained onto it)."""


def _no_error_hook(request: Any, policy: Any, error: Exception, duration_ms: float) -> None:
    """The default `on_error`: does nothing (a callable, so hooks can be chained onto it)."""


_NO_HOOKS = (_no_decision_hook, _no_error_hook)


def _hook(name: str, value: Any, default: Callable[..., None]) -> Callable[..., None]:
    if value is None:
        return default
    if not callable(value):
        raise TypeError(f"{name} must be a function (request, policy, "
                        f"{'result' if name == 'on_decision' else 'error'}, duration_ms) or "
                        f"None, got {value!r}")
    return value


def _result_of(verdict: Any) -> RateLimitResult:
    retry = verdict.retry_after_ms
    if verdict.outcome == "unavailable":
        retry = UNAVAILABLE_RETRY_AFTER_S * 1000
    return RateLimitResult(
        allowed=verdict.allowed,
        retry_after_ms=retry,
        reset_ms=verdict.reset_ms,
        remaining=verdict.remaining,
        matched_rate_index=verdict.rate_index,
        outcome=verdict.outcome,
        degraded=verdict.degraded,
        _verdict=verdict,
    )


def _as_policy(policy: Union[Policy, Rate, None], name: str) -> Optional[Policy]:
    if isinstance(policy, Rate):
        return Policy(rates=[policy], key="ip", name=name)
    return policy


_engines: "weakref.WeakSet[Any]" = weakref.WeakSet()
_hook_log = _LogThrottle()
check_failure_log = _LogThrottle()


@atexit.register
def _shutdown_all() -> None:
    """Interpreter exit with checks in flight: answer them all, stop the I/O threads."""
    for limiter in list(_engines):
        limiter._close_engine()
    _pacer._release_orphans()


class Limiter:
    def __init__(
        self,
        redis_url: Optional[str] = "redis://localhost:6379",
        default_policy: Union[Policy, Rate, None] = None,
        fail_mode: str = "open",
        app_name: str = "fastapi",
        route_scope: str = "route",
        expose_headers: bool = True,
        connect_timeout_ms: int = 1000,
        command_timeout_ms: int = 100,
        legacy_timestamp_header: bool = False,
        expose_policy_header: bool = False,
        on_decision: Optional[OnDecisionHook] = None,
        on_error: Optional[OnErrorHook] = None,
        *,
        extractor: Optional[Callable[[Any], str]] = None,
        trust_proxies: Optional[list] = None,
        cluster_mode: bool = False,
        tls_ca_file: str = "",
        tls_cert_file: str = "",
        tls_key_file: str = "",
        tls_verify: bool = True,
        tls_server_name: str = "",
        io: Optional[str] = None,
    ) -> None:
        if fail_mode not in ("open", "closed", "local"):
            raise ValueError("fail_mode must be 'open' or 'closed' (Pacer also accepts 'local')")
        if not isinstance(route_scope, str) or route_scope not in _SCOPE_KINDS:
            raise ValueError("route_scope must be 'route', 'method', or 'app' (Pacer also "
                             f"accepts 'path' and 'method_path'), got {route_scope!r}")
        if cluster_mode and redis_url and redis_url.startswith(("redis://", "rediss://")):
            redis_url = redis_url.replace("redis", "redis+cluster", 1).replace(
                "redis+clusters://", "rediss+cluster://", 1)
        if extractor is None and trust_proxies is not None:
            from .extractors import extract_ip

            extractor = extract_ip(trusted_proxies=trust_proxies)
        self.default_policy = _as_policy(default_policy, "default")
        self.fail_mode = fail_mode
        self.app_name = app_name
        self.route_scope = route_scope
        self.expose_headers = expose_headers
        self.legacy_timestamp_header = legacy_timestamp_header
        self.expose_policy_header = expose_policy_header
        self.on_decision = on_decision  # None: a no-op (properties below)
        self.on_error = on_error
        self.extractor = extractor
        self._rules: Dict[Any, Any] = {}  # Limiter._rule's cache
        self._plans: Dict[int, Any] = {}  # Limiter._dependency_plan's cache
        tls = {"tls_ca_file": tls_ca_file, "tls_cert_file": tls_cert_file,
               "tls_key_file": tls_key_file, "tls_verify": tls_verify,
               "tls_server_name": tls_server_name}
        for name, value in tls.items():
            if not isinstance(value, bool if name == "tls_verify" else str):
                raise TypeError(f"{name} must be a {'bool' if name == 'tls_verify' else 'str'}, "
                                f"got {value!r}")
        self.storage = SimpleRedisStorage(redis_url, connect_timeout_ms, command_timeout_ms,
                                          fail_mode=fail_mode, app_name=app_name, tls=tls,
                                          io=io)
        self._metrics = _LiveMetrics(self.storage)
        _engines.add(self)

    def __setattr__(self, name: str, value: Any) -> None:
        # The settings are public attributes, read by the middleware and the dependency on every
        # request. What they compile to (a Gate: the engine, the rule, the header flags) is kept
        # with the `_version` it was made at, and made again once any attribute was set since.
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_version", self.__dict__.get("_version", 0) + 1)

    def __delattr__(self, name: str) -> None:
        object.__delattr__(self, name)  # `del limiter.check_policy`: the class's again
        object.__setattr__(self, "_version", self.__dict__.get("_version", 0) + 1)

    # -- hooks: callables always (no-ops by default), so `old = limiter.on_decision` can be
    # chained; None sets the no-op again ----------------------------------------------------

    @property
    def on_decision(self) -> OnDecisionHook:
        return self._on_decision

    @on_decision.setter
    def on_decision(self, hook: Optional[OnDecisionHook]) -> None:
        self._on_decision = _hook("on_decision", hook, _no_decision_hook)

    @property
    def on_error(self) -> OnErrorHook:
        return self._on_error

    @on_error.setter
    def on_error(self, hook: Optional[OnErrorHook]) -> None:
        self._on_error = _hook("on_error", hook, _no_error_hook)

    def _has_hooks(self) -> bool:
        """Whether a hook other than the no-ops is set (the middleware's fast path skips
        building a Starlette Request when none is)."""
        return (self._on_decision is not _no_decision_hook
                or self._on_error is not _no_error_hook)

    # -- lifecycle ---------------------------------------------------------------------------

    def _close_engine(self) -> None:
        self.storage._close()

    async def startup(self) -> None:
        """Connects (waits up to connect_timeout_ms for Redis). Fail mode "closed" raises
        ConnectionError when Redis cannot be reached; the others log and go on."""
        # No asyncio.Lock: one would bind to the first event loop that waits on it, and the
        # engine's start is already serialised (a threading lock in the storage).
        try:
            await self.storage.connect()
        except Exception as error:
            logger.error("pacer: cannot connect to the store: %s", error)
            if self.fail_mode == "closed":
                raise

    async def shutdown(self) -> None:
        """Answers every check in flight and closes the store; a later check starts it again."""
        await self.storage.disconnect()

    # -- decisions ---------------------------------------------------------------------------

    def _rule(self, policy: Policy, engine: Any, kind: Any = None) -> Any:
        """The engine's Rule for `policy` under this limiter's settings (docs/DESIGN.md §7): its
        identity (the extractor, else the policy's key), the scope kind (`route_scope`'s, or
        the ScopeKind `kind`) and the engine's key prefix. Compiled once and cached per policy;
        the settings are public attributes, so a hit checks they are the same objects still
        (this runs on every request)."""
        scope = self.route_scope if kind is None else kind
        selector = self.extractor
        if selector is None:
            selector = policy.key
        slot = id(policy) if kind is None else (id(policy), kind)
        hit = self._rules.get(slot)
        if (hit is not None and hit[0] is policy and hit[1] is engine and hit[2] is scope
                and hit[3] is selector):
            return hit[4]
        scope_kind = _SCOPE_KINDS[scope] if kind is None else kind
        self._caches_for(engine)
        rule = _pacer.Rule(policy._native, engine.prefix, scope_kind, selector,
                           policy.missing_identity)
        if len(self._rules) >= _MAX_RULES:
            self._rules.clear()
        # The references keep the ids unique while the entry lives.
        self._rules[slot] = (policy, engine, scope, selector, rule)
        return rule

    def _caches_for(self, engine: Any) -> None:
        """Empties the rule and plan caches when their entries were made for another engine:
        after the storage restarts, an old engine's entries would keep it (its store, its
        connections) alive for as long as their policies were not asked for again."""
        if self.__dict__.get("_cached_engine") is not engine:
            self._rules.clear()
            self._plans.clear()
            object.__setattr__(self, "_cached_engine", engine)  # not a setting: no new version

    def _gate(self, policy: Policy, engine: Any) -> Any:
        """The engine's admission for `policy` under the settings now (`_pacer.Gate`: the rule
        and the header flags bound). Its callers keep it with the settings version they made
        it at (the middleware's `_plan`, `_dependency_plan`)."""
        return _pacer.Gate(engine, self._rule(policy, engine), self._header_flags())

    def _request_path(self, request: Any) -> str:
        """What a routed request is keyed by under `route_scope`: the route template for
        "route" and "method" (FastAPI Pacer's concrete path let `/items/07` pass `/items/7`'s
        limit), the concrete path for "path" and "method_path" (FastAPI Pacer's "route" and
        "method"). Duck-typed requests without an ASGI scope keep the concrete path."""
        url = getattr(request, "url", None)
        path = getattr(url, "path", None)
        path = path if isinstance(path, str) else "/"
        if self.route_scope in _TEMPLATE_SCOPES:
            scope = getattr(request, "scope", None)
            if isinstance(scope, dict):
                return request_template(scope, path) or path
        return path

    async def _decide(self, policy: Policy, request: Any, kind: Any,
                      route: str) -> Tuple[Any, float]:
        engine = self.storage._engine
        if engine is None or not self.storage._warm:
            engine = await self.storage.ready_engine()
        rule = self._rule(policy, engine, kind)
        started = time.perf_counter()
        try:
            if engine.completes_inline:
                verdict = engine.check(rule, request, route, None, None)
            else:
                bridge, future = _pacer.loop_future()
                verdict = engine.check(rule, request, route, bridge, future)
                if verdict is None:
                    verdict = await future
        except _pacer.IdentityMissing:
            raise IdentityMissing(policy) from None
        return verdict, (time.perf_counter() - started) * 1000.0

    def _report(self, request: Any, policy: Policy, verdict: Any, duration_ms: float,
                result: Optional[RateLimitResult] = None) -> RateLimitResult:
        """Calls the hook that applies; a hook that raises is logged and ignored."""
        result = result or _result_of(verdict)
        hook = self._on_error if verdict.degraded else self._on_decision
        if hook not in _NO_HOOKS:
            try:
                if verdict.degraded:
                    hook(request, policy, StoreError(verdict.error), duration_ms)
                else:
                    hook(request, policy, result, duration_ms)
            except Exception:
                _hook_log.exception("pacer: %s hook raised",
                                    "on_error" if verdict.degraded else "on_decision")
        return result

    async def check_policy(self, request: Any, policy: Optional[Policy] = None,
                           scope_override: Optional[str] = None) -> RateLimitResult:
        policy = policy or self.default_policy
        if policy is None:
            raise ValueError("No policy provided and no default policy configured")
        if scope_override:
            kind, route = _pacer.ScopeKind.PATH, scope_override
        else:
            kind = _SCOPE_KINDS[self.route_scope]
            route = "" if kind == _pacer.ScopeKind.GLOBAL else self._request_path(request)
        verdict, duration_ms = await self._decide(policy, request, kind, route)
        return self._report(request, policy, verdict, duration_ms)

    async def check_rate_limit(self, request: Any, policy: Union[Rate, Policy, None] = None,
                               scope_override: Optional[str] = None) -> RateLimitResult:
        return await self.check_policy(request, _as_policy(policy, "legacy"), scope_override)

    def check_blocking(self, principal: str, policy: Optional[Policy] = None,
                       scope: str = "global", cost: int = 1) -> RateLimitResult:
        """For synchronous code: decides `cost` for `principal` and waits, without the GIL.
        Thread-safe. Calls no hooks."""
        policy = policy or self.default_policy
        if policy is None:
            raise ValueError("No policy provided and no default policy configured")
        engine = self.storage.ready_engine_blocking()
        rule = self._rule(policy, engine, _pacer.ScopeKind.PATH)
        return _result_of(engine.check_blocking(rule, scope, str(principal), cost))

    def peek(self, principal: str, policy: Optional[Policy] = None,
             scope: str = "global", cost: int = 1) -> RateLimitResult:
        """What `check_blocking` with the same arguments would answer now (allowed or not,
        remaining, retry-after), spending nothing. Waits without the GIL; thread-safe. Counted
        in no metric and calls no hooks. `cost=0` reports the state as it is."""
        policy = policy or self.default_policy
        if policy is None:
            raise ValueError("No policy provided and no default policy configured")
        engine = self.storage.ready_engine_blocking()
        rule = self._rule(policy, engine, _pacer.ScopeKind.PATH)
        return _result_of(engine.check_blocking(rule, scope, str(principal), cost, True))

    def reset(self, principal: str, policy: Optional[Policy] = None, scope: str = "global") -> None:
        """Forgets `principal`'s state under `policy` (blocking)."""
        policy = policy or self.default_policy
        if policy is None:
            raise ValueError("No policy provided and no default policy configured")
        engine = self.storage.ready_engine_blocking()
        error = engine.reset(self._rule(policy, engine, _pacer.ScopeKind.PATH), scope,
                             str(principal))
        if error:
            raise StoreError(error)

    # -- headers, health, metrics ------------------------------------------------------------

    def _header_pairs(self, result: RateLimitResult, policy: Policy):
        return policy._native.headers(
            result.allowed, result.retry_after_ms, result.reset_ms, result.remaining,
            result.matched_rate_index, True, self.legacy_timestamp_header,
            self.expose_policy_header)

    def add_headers(self, response: Any, result: RateLimitResult,
                    policy: Optional[Policy] = None) -> None:
        if not self.expose_headers:
            return
        policy = policy or self.default_policy
        if policy is None or result.outcome == "unavailable":
            return
        for name, value in self._header_pairs(result, policy):
            response.headers[name] = value

    async def is_healthy(self) -> bool:
        return self.storage._connected()

    @property
    def metrics(self) -> LimiterMetrics:
        """The engine's counters, live: the same object every time, whose values are read when
        asked, so a reference held from startup keeps counting. Assign a LimiterMetrics to
        rebase them (`limiter.metrics = LimiterMetrics()` starts again from zero; held
        references follow), or one counter (`limiter.metrics.requests_allowed = 0`)."""
        return self._metrics

    @metrics.setter
    def metrics(self, value: LimiterMetrics) -> None:
        if not isinstance(value, LimiterMetrics):
            raise TypeError(f"metrics must be a LimiterMetrics, got {value!r}")
        if value is not self._metrics:
            self._metrics.set(value)

    def get_metrics(self) -> Dict[str, Any]:
        return {"limiter": self.metrics.to_dict(), "connected": self.storage._connected()}

    def prometheus(self, prefix: str = "pacer") -> str:
        """Counters and the decision latency histogram in Prometheus text format."""
        return self.storage._prometheus(prefix)

    # -- the middleware's path: everything from the ASGI scope -------------------------------

    def _header_flags(self) -> _pacer.HeaderFlag:
        """The engine's HeaderFlag for this limiter's header options (read on every request:
        they are public attributes)."""
        return _HEADER_FLAGS[(bool(self.expose_headers), bool(self.legacy_timestamp_header),
                              bool(self.expose_policy_header))]

    def _dependency_plan(self, policy: Policy, engine: Any) -> Tuple[Any, ...]:
        """How the dependency and the decorator decide for `policy` under the settings now:
        (settings version, policy, engine, the Gate or None, decided in process, the rule reads
        the scope itself). No Gate: through `check_policy` and `add_headers`, as before: a
        subclass, hooks, or `check_policy` / `add_headers` replaced on the instance. Cached per
        policy until a setting is set again (`__setattr__`)."""
        fast = (type(self) is Limiter and not self._has_hooks()
                and "check_policy" not in self.__dict__ and "add_headers" not in self.__dict__)
        plan = (self._version, policy, engine, self._gate(policy, engine) if fast else None,
                engine.completes_inline, self.extractor is None and type(policy.key) is str)
        self._caches_for(engine)
        if len(self._plans) >= _MAX_RULES:
            self._plans.clear()
        self._plans[id(policy)] = plan  # not a setattr
        return plan

    def _admission(self, request: Any, policy: Policy) -> Any:
        """check_policy for a request of the dependency or the decorator, in one call into C++
        when it can be (`_dependency_plan`): the admitted request's ASGI headers (a list, empty
        when none are exposed), the Verdict of a refused one, or on Redis a future of one of
        those. None: the general path decides (`check_policy`); NOT_READY: the engine has not
        started. The headers are the verdict's, rendered once in C++, not rebuilt from the
        result's milliseconds (docs/DESIGN.md §7)."""
        scope = getattr(request, "scope", None)
        if type(scope) is not dict:
            return None
        storage = self.storage
        engine = storage._engine
        if engine is None or not storage._warm:
            return NOT_READY
        plan = self._plans.get(id(policy))
        if (plan is None or plan[0] != self._version or plan[1] is not policy
                or plan[2] is not engine):
            plan = self._dependency_plan(policy, engine)
        gate = plan[3]
        if gate is None:
            return None
        route_scope = self.route_scope
        path = ""
        if route_scope in _TEMPLATE_SCOPES:
            template = scope_template(scope)  # no URL built in the common case
            path = template if template is not None else self._request_path(request)
        elif route_scope != "app":
            path = self._request_path(request)
        # A built-in selector reads the scope in C++; a function gets the Request itself.
        subject = scope if plan[5] else request
        try:
            if plan[4]:
                return gate(subject, path, None)
            bridge, future = _pacer.loop_future()
            answer = gate(subject, path, None, bridge, future)
        except _pacer.IdentityMissing:
            raise IdentityMissing(policy) from None
        return future if answer is None else answer

    async def _check_scope(self, scope: dict, path: str, policy: Policy) -> Any:
        """Decides for an ASGI request; returns the verdict, its ASGI headers rendered.
        `path` is what `route_scope` keys by (the middleware found the template).

        The engine's rule reads the scope itself (one call into C++); a selector function gets a
        Starlette Request made from it."""
        storage = self.storage
        engine = storage._engine
        if engine is None or not storage._warm:
            engine = await storage.ready_engine()
        hooks = self._has_hooks()
        started = time.perf_counter() if hooks else 0.0
        inline = engine.completes_inline
        if inline:
            bridge = future = None
        else:
            bridge, future = _pacer.loop_future()
        verdict = engine.check(self._rule(policy, engine), scope, path, bridge, future,
                               self._header_flags())
        if verdict is None:
            verdict = await future
        if hooks:
            from starlette.requests import Request

            request = Request(scope)
            self._report(request, policy, verdict, (time.perf_counter() - started) * 1000.0)
        return verdict


def rate_limited_detail(result: RateLimitResult) -> Dict[str, Any]:
    """The 429 body's object, as the engine renders it."""
    verdict = result._verdict
    if verdict is not None:
        return json.loads(verdict.body())
    return {"detail": "rate_limited", "retry_after_ms": result.retry_after_ms}
