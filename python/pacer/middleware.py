"""LimiterMiddleware: a pure ASGI middleware (no BaseHTTPMiddleware) limiting every request.

The identity, the decision, the header values and the 429/503 bodies come from the C++ engine;
this class only reads the ASGI scope and writes ASGI messages.
"""

from __future__ import annotations

from asyncio import get_running_loop
from typing import Any, Iterable, List, Optional, Tuple, Union

from .limiter import (_TEMPLATE_SCOPES, UNAVAILABLE_RETRY_AFTER_S, Limiter, _as_policy,
                      check_failure_log)
from . import _pacer
from ._bridge import bridge_for
from ._routes import _MAX_CHAIN, UNMATCHED, match_template, routes_of
from .policies import Policy, Rate


_Verdict = _pacer.Verdict
_JSON = (b"content-type", b"application/json")
_RETRY_503 = (b"retry-after", str(UNAVAILABLE_RETRY_AFTER_S).encode())


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
        self._plan: Optional[Tuple[Any, ...]] = None  # _plan_now's, while it holds

    def _key_path(self, scope: dict, path: str) -> str:
        """The path part of the key: the matched route's template, "<unmatched>", or `path`
        (the concrete one) when the app's routes are unknown."""
        routes = self._routes
        if routes is False:
            routes = self._routes = self._find_routes(scope)
        if routes is None:
            return path
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
        return plan

    async def _general(self, scope: dict, path: str, limiter: Limiter) -> Any:
        policy = self.policy or limiter.default_policy
        if policy is None:
            raise ValueError("No policy provided and no default policy configured")
        if limiter.route_scope in _TEMPLATE_SCOPES:
            path = self._key_path(scope, path)
        return await limiter._check_scope(scope, path, policy)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("root_path", "") + scope["path"]
        if (scope["method"] in self.exclude_methods or path in self._exact
                or (self._prefixes and path.startswith(self._prefixes))):
            await self.app(scope, receive, send)
            return
        limiter = self.limiter
        try:
            plan = self._plan
            if (plan is None or plan[0] != limiter._version or plan[1] is not self.policy
                    or plan[2] is not limiter.storage._engine):
                plan = self._plan_now(limiter)
            gate = plan[3]
            if gate is None:
                answer = await self._general(scope, path, limiter)
            else:
                # The common case in one call into C++ (docs/DESIGN.md §1): the identity from the
                # scope (by the policy's rule), the decision, and for an admitted request `send`
                # wrapped to add the headers (a C++ callable: no Python frame per message). A
                # Verdict means refused.
                if plan[4]:
                    path = self._key_path(scope, path)
                if plan[5]:
                    answer = gate(scope, path, send)
                else:
                    loop = get_running_loop()
                    future = loop.create_future()
                    answer = gate(scope, path, send, bridge_for(loop), future)
                    if answer is None:
                        answer = await future
        except _pacer.IdentityMissing:
            await _answer(send, 401, _pacer.IDENTITY_MISSING_BODY, [])
            return
        except Exception:
            # A selector or configuration error, not a store failure (those the engine answers
            # with the fail mode): the request is not limited in "open" mode, refused in "closed".
            check_failure_log.exception("pacer: rate limit check failed")
            if limiter.fail_mode == "closed":
                await answer_unavailable(send)
            else:
                await self.app(scope, receive, send)
            return

        if type(answer) is _Verdict:
            outcome = answer.outcome
            if outcome == "allowed":  # from _check_scope: hooks, or the engine not warm
                headers = answer.headers
                answer = _pacer.HeaderSend(send, headers) if headers else send
            elif outcome == "unavailable":
                await answer_unavailable(send)
                return
            else:
                await _answer(send, 429, answer.body(False), answer.headers)
                return
        # Exceptions from the application propagate: it never runs twice, and its errors stay
        # its own (FastAPI Pacer re-ran it, or turned them into 503s).
        await self.app(scope, receive, answer)
