"""LimiterMiddleware: a pure ASGI middleware (no BaseHTTPMiddleware) limiting every request.

The identity, the decision, the header values and the 429/503 bodies come from the C++ engine;
this class only reads the ASGI scope and writes ASGI messages.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Dict, Iterable, List, Optional, Tuple, Union

from .limiter import (_TEMPLATE_SCOPES, UNAVAILABLE_RETRY_AFTER_S, Limiter, _as_policy,
                      check_failure_log)
from . import _pacer
from ._routes import _MATCHER, _MAX_CHAIN, UNMATCHED, match_template, routes_of
from .policies import Policy, Rate


_Verdict = _pacer.Verdict
_JSON = (b"content-type", b"application/json")
_RETRY_503 = (b"retry-after", str(UNAVAILABLE_RETRY_AFTER_S).encode())
# The attributes whose values the C entry keeps (MiddlewareState.plan).
_STATE_INPUTS = frozenset({"app", "limiter", "policy", "exclude_methods", "_exact", "_prefixes"})


def _mark_coroutine_function(function: Any) -> None:
    """Marks `function` as a coroutine function for `asyncio.iscoroutinefunction` (which uvicorn
    asks of an app it is given directly) though it only returns an awaitable."""
    mark = getattr(inspect, "markcoroutinefunction", None)  # Python 3.12 and later
    if mark is not None:
        mark(function)
    else:
        function._is_coroutine = asyncio.coroutines._is_coroutine


async def _answer(send: Any, status: int, body: bytes, headers: List[tuple]) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(body)).encode()), _JSON, *headers],
    })
    await send({"type": "http.response.body", "body": body})


async def answer_unavailable(send: Any) -> None:
    """503 {"detail": "Service temporarily unavailable"} with Retry-After: 5."""
    await _answer(send, 503, _pacer.UNAVAILABLE_BODY, [_RETRY_503])


class LimiterMiddleware:
    """Limits every http request of `app`.

    HEAD is limited like GET: FastAPI Pacer excluded it by default, so any route answering
    HEAD ran unlimited. `exclude_methods={"OPTIONS", "HEAD"}` restores that; an empty or None
    `exclude_methods` means the default, {"OPTIONS"} (CORS preflights carry no credentials).

    Under `route_scope` "route" and "method" a request is keyed by the template of the route it
    matches among the app's routes (`/items/{i}`, mount templates included); a path that
    matches none is keyed by "<unmatched>"; an app whose routes cannot be found (no Starlette
    router under the middleware) by the concrete path."""

    def __init__(self, app: Any, limiter: Limiter, policy: Union[Policy, Rate, None] = None,
                 exclude_paths: Optional[List[str]] = None,
                 exclude_methods: Optional[Iterable[str]] = None) -> None:
        # What the C entry (__call__) knows; emptied whenever one of _STATE_INPUTS is set.
        self._state = _pacer.MiddlewareState()
        self.app = app
        self.limiter = limiter
        self.policy = _as_policy(policy, "middleware")
        self.exclude_paths = list(exclude_paths or [])
        self.exclude_methods = set(exclude_methods) if exclude_methods else {"OPTIONS"}
        self._exact = {p for p in self.exclude_paths if not p.endswith("*")}
        self._prefixes = tuple(p[:-1] for p in self.exclude_paths if p.endswith("*"))
        # The app's route list, found on the first request (one way needs its scope); None:
        # there is none, False: not looked up yet.
        self._routes: Any = False
        # (the route list, a copy of it, RouteMatcher.first_static of it): the templates of the
        # common requests, read inline while the list is as copied; None until routes are found.
        self._direct: Optional[Tuple[List[Any], List[Any], Dict[str, Any]]] = None
        self._plan: Optional[Tuple[Any, ...]] = None  # _plan_now's, while it holds

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _STATE_INPUTS:
            # The C entry holds what it read of these: it takes the fallback (`_call`) until
            # _plan_now has made the plan again. (A subclass may set them before our __init__.)
            object.__setattr__(self, "_plan", None)
            state = self.__dict__.get("_state")
            if state is not None:
                state.forget()

    def _key_path(self, scope: dict, path: str) -> str:
        """The path part of the key: the matched route's template, "<unmatched>", or `path`
        (the concrete one) when the app's routes are unknown."""
        routes = self._routes
        if routes is False:
            routes = self._routes = self._find_routes(scope)
        if routes is None:
            return path
        direct = self._direct
        if direct is None or direct[1] != routes:
            copy = list(routes)
            table = _MATCHER.first_static(copy)
            self._direct = (routes, copy, table)
            self._state.routes(routes, copy, table)
        template = match_template(routes, scope)
        return template if template == UNMATCHED else scope.get("root_path", "") + template

    def _find_routes(self, scope: dict) -> Optional[List[Any]]:
        # Under add_middleware the chain of `.app` links below us reaches the app's router.
        routes = routes_of(self.app)
        if routes is not None:
            return routes
        # A middleware below us that keeps its app under another name breaks that chain; then
        # the Starlette app that called us is ours if its middleware stack leads to us (it is
        # not when we wrap a mounted sub-app: scope["app"] is then the outer app).
        app = scope.get("app")
        node = getattr(app, "middleware_stack", None)
        for _ in range(_MAX_CHAIN):
            if node is None:
                return None
            if node is self:
                return routes_of(app)
            node = getattr(node, "app", None)
        return None

    def _plan_now(self, limiter: Limiter) -> Tuple[Any, ...]:
        """What the settings make of a request now: (the limiter's settings version, our own
        `policy`, the engine, the Gate or None, keyed by a route template, decided in process).
        With no Gate a request takes the general path (`_general`): no policy, hooks to call,
        or an engine not started. Kept in `_plan` once the engine has started."""
        storage = limiter.storage
        engine = storage._engine
        policy = self.policy or limiter.default_policy
        warm = engine is not None and storage._warm
        gate = None
        if warm and policy is not None and not limiter._has_hooks():
            gate = limiter._gate(policy, engine)
        plan = (limiter._version, self.policy, engine, gate,
                limiter.route_scope in _TEMPLATE_SCOPES, warm and engine.completes_inline)
        # Not kept before the engine has started (it would outlive the start), nor the one
        # before (it would keep an old engine alive).
        self._plan = plan if warm else None
        if warm and gate is not None:
            version, _, _, _, templated, inline = plan
            self._state.plan(self.app, limiter, self.exclude_methods, self._exact, self._prefixes,
                             version, engine, gate, templated, inline)
        return plan

    def _call(self, scope: dict, receive: Any, send: Any) -> Awaitable[None]:
        """__call__'s fallback: what the C entry does not answer itself (the first request, a
        mounted app, settings changed since the plan). Not a coroutine function: each path
        returns an awaitable, and a request admitted in process is answered by the app's own,
        with no coroutine of ours around it (docs/DESIGN.md §1)."""
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = root + scope["path"] if root else scope["path"]
            method = scope["method"]
            if not (method in self.exclude_methods or path in self._exact
                    or (self._prefixes and path.startswith(self._prefixes))):
                limiter = self.limiter
                plan = self._plan
                if (plan is None or plan[0] != limiter._version or plan[1] is not self.policy
                        or plan[2] is not limiter.storage._engine):
                    return self._plan_then_admit(scope, receive, send, path)
                return self._admit(plan, scope, receive, send, path)
        return self.app(scope, receive, send)

    # The common request in C (python/src/asgi_entry.h): no Python frame runs for it. Marked as
    # a coroutine function, for servers that ask (uvicorn, to tell ASGI 3 from 2).
    __call__ = _pacer.MiddlewareCall(_call)
    _mark_coroutine_function(__call__)

    def _admit(self, plan: Tuple[Any, ...], scope: dict, receive: Any,
               send: Any, path: str) -> Awaitable[None]:
        """The request under `plan` (_plan_now's). With a Gate, the common case is one call
        into C++: the identity from the scope (by the policy's rule), the decision, and for an
        admitted request `send` wrapped to add the headers (a C++ callable: no Python frame per
        message); a Verdict means refused."""
        gate = plan[3]
        if gate is None:
            return self._general(scope, receive, send, path)
        try:
            if plan[4]:
                path = self._key_path(scope, path)
            if not plan[5]:  # Redis: the decision awaited in C (python/src/store_await.h)
                return _pacer.StoreAwait(self, self.app, gate, scope, receive, send, path)
            answer = gate(scope, path, send)
        except Exception as error:
            return self._failed(error, scope, receive, send)
        if type(answer) is _Verdict:
            return self._respond(answer, scope, receive, send)
        # Exceptions from the application propagate: it never runs twice, and its errors stay
        # its own (FastAPI Pacer re-ran it, or turned them into 503s).
        return self.app(scope, receive, answer)

    async def _plan_then_admit(self, scope: dict, receive: Any, send: Any, path: str) -> None:
        try:
            plan = self._plan_now(self.limiter)
        except Exception as error:
            await self._failed(error, scope, receive, send)
            return
        await self._admit(plan, scope, receive, send, path)

    async def _general(self, scope: dict, receive: Any, send: Any, path: str) -> None:
        """No Gate: no policy, hooks to call, or the engine not started."""
        limiter = self.limiter
        try:
            policy = self.policy or limiter.default_policy
            if policy is None:
                raise ValueError("No policy provided and no default policy configured")
            if limiter.route_scope in _TEMPLATE_SCOPES:
                path = self._key_path(scope, path)
            answer = await limiter._check_scope(scope, path, policy)
        except Exception as error:
            await self._failed(error, scope, receive, send)
            return
        await self._respond(answer, scope, receive, send)

    async def _failed(self, error: Exception, scope: dict, receive: Any, send: Any) -> None:
        if isinstance(error, _pacer.IdentityMissing):
            await _answer(send, 401, _pacer.IDENTITY_MISSING_BODY, [])
            return
        # A selector or configuration error, not a store failure (those the engine answers with
        # the fail mode): the request is not limited in "open" mode, refused in "closed".
        check_failure_log.exception("pacer: rate limit check failed", error=error)
        if self.limiter.fail_mode == "closed":
            await answer_unavailable(send)
        else:
            await self.app(scope, receive, send)

    async def _respond(self, answer: Any, scope: dict, receive: Any, send: Any) -> None:
        """`answer` is the Gate's (the wrapped send, or a Verdict when refused) or the general
        path's (a Verdict)."""
        if type(answer) is not _Verdict:
            await self.app(scope, receive, answer)
            return
        outcome = answer.outcome
        if outcome == "allowed":  # from _check_scope: hooks, or the engine not warm
            headers = answer.headers
            await self.app(scope, receive, _pacer.HeaderSend(send, headers) if headers else send)
        elif outcome == "unavailable":
            await answer_unavailable(send)
        else:
            await _answer(send, 429, answer.body(False), answer.headers)
