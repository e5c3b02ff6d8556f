"""The FastAPI dependency `limit()` and the decorator `rate_limit()`."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional, Union

from fastapi import HTTPException, Request, Response
from fastapi.responses import JSONResponse

from . import _pacer
from .limiter import (NOT_READY, UNAVAILABLE_RETRY_AFTER_S, IdentityMissing, Limiter,
                      RateLimitResult, _as_policy, _LogThrottle, _result_of, check_failure_log,
                      rate_limited_detail)
from .policies import Policy, Rate


_Verdict = _pacer.Verdict
_limiter: Optional[Limiter] = None
_UNAVAILABLE = "Service temporarily unavailable"


def get_limiter() -> Limiter:
    if _limiter is None:
        raise RuntimeError(
            "Limiter not configured. Call set_limiter() or use limit() with explicit limiter.")
    return _limiter


_NOT_CONFIGURED = (
    "pacer: %s on %s %s has no Limiter: call set_limiter(limiter) when the app starts (before "
    "the first request), or pass one: %s(..., limiter=limiter). The request was answered 500.")
_not_configured_log = _LogThrottle()


def set_limiter(limiter: Optional[Limiter]) -> None:
    """The Limiter of every `limit()` and `rate_limit()` given none (None: unset again)."""
    global _limiter
    _limiter = limiter


def _check_arguments(surface: str, policy: Any, limiter: Any) -> None:
    """Mistakes in `limit(...)` / `rate_limit(...)` fail where they are written, not at the
    first request."""
    if policy is not None and not isinstance(policy, (Policy, Rate)):
        raise TypeError(f"{surface} policy must be a Policy, a Rate or None, got {policy!r}")
    if limiter is not None and not callable(getattr(limiter, "check_policy", None)):
        raise TypeError(f"{surface} limiter must be a pacer.Limiter or None, got {limiter!r}")


def _limiter_for(explicit: Optional[Limiter], request: Any, surface: str) -> Limiter:
    """The limiter a dependency or decorator uses: its own, else set_limiter()'s. Neither is a
    mistake in the app: one clear log record (no traceback), and the client gets a plain 500
    (FastAPI's JSON body, no traceback even with debug=True)."""
    lim = explicit or _limiter
    if lim is None:
        method = getattr(request, "method", "?")
        path = getattr(getattr(request, "url", None), "path", "?")
        _not_configured_log.error(_NOT_CONFIGURED, surface, method, path, surface[:-2])
        raise HTTPException(status_code=500, detail="Internal Server Error")
    return lim


def _unavailable() -> HTTPException:
    return HTTPException(status_code=503, detail=_UNAVAILABLE,
                         headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)})


def _headers(limiter: Limiter, result: RateLimitResult, policy: Optional[Policy]) -> dict:
    policy = policy or limiter.default_policy
    if not limiter.expose_headers or policy is None:
        return {}
    return dict(limiter._header_pairs(result, policy))


def _add_headers(lim: Limiter, response: Any, admitted: Any, policy: Optional[Policy]) -> None:
    """`lim.add_headers(response, result, policy)`, or for the engine's ASGI headers the same
    as `response.headers[name] = value` for each: appended when the response has none of those
    names (a response's own fields are few: one pass over them), else set one by one."""
    if type(admitted) is not list:
        lim.add_headers(response, admitted, policy)
        return
    if not admitted:
        return
    raw = getattr(response, "raw_headers", None)
    if type(raw) is list:
        if not raw:  # FastAPI's sub-response of a dependency: no field of its own yet
            raw.extend(admitted)
            return
        names = {name for name, _ in admitted}
        if not any(name.lower() in names for name, _ in raw):
            raw.extend(admitted)
            return
    headers = response.headers
    for name, value in admitted:
        headers[name.decode("latin-1")] = value.decode("latin-1")


class _Refused(Exception):
    """A 429 (or the 401 of a missing identity) the dependency and the decorator answer, each
    in its own shape: the dependency's is FastAPI's HTTPException, {"detail": <detail>}; the
    decorator's 429 is the engine's object itself, its 401 the same body as everywhere."""

    def __init__(self, detail: Any, headers: dict, status: int = 429) -> None:
        super().__init__("rate limited" if status == 429 else "identity missing")
        self.detail = detail
        self.headers = headers
        self.status = status


async def _decide(lim: Limiter, request: Request, policy: Optional[Policy]):
    """The one refusal path of the dependency and the decorator: the decision, or 503 (fail
    mode closed: HTTPException) or 429 (_Refused). Returns what `_add_headers` adds to an
    admitted request's response: the ASGI headers the engine rendered (a list) or the
    RateLimitResult; None when the check itself failed and the fail mode lets the request
    through."""
    try:
        chosen = policy or getattr(lim, "default_policy", None)
        answer = None
        if type(lim) is Limiter and chosen is not None:
            answer = lim._admission(request, chosen)
            if answer is NOT_READY:
                await lim.storage.ready_engine()
                answer = lim._admission(request, chosen)
                if answer is NOT_READY:  # closed again meanwhile: the general path starts it
                    answer = None
        if answer is None:
            result = await lim.check_policy(request, policy)
        else:
            if type(answer) is not list and type(answer) is not _Verdict:
                answer = await answer  # a Redis decision's future
            if type(answer) is list:
                return answer
            result = _result_of(answer)  # refused: the body and headers below, as before
    except IdentityMissing:
        raise _Refused("identity_missing", {}, 401) from None
    except Exception:
        check_failure_log.exception("pacer: rate limit check failed")
        if lim.fail_mode == "closed":
            raise _unavailable() from None
        return None
    if result.outcome == "unavailable":
        raise _unavailable()
    if not result.allowed:
        raise _Refused(rate_limited_detail(result), _headers(lim, result, policy))
    return result


def limit(policy: Union[Policy, Rate, None] = None, limiter: Optional[Limiter] = None):
    """A dependency: `dependencies=[Depends(limit(Rate(10, "1m")))]`. A 429 is FastAPI's
    HTTPException: its body nests the engine's object in "detail" (docs/API.md)."""
    _check_arguments("limit()", policy, limiter)
    policy = _as_policy(policy, "dependency")

    async def dependency(request: Request, response: Response) -> None:
        lim = limiter or _limiter
        if lim is None:
            lim = _limiter_for(limiter, request, "limit()")  # raises: none configured
        try:
            result = await _decide(lim, request, policy)
        except _Refused as refused:
            raise HTTPException(status_code=refused.status, detail=refused.detail,
                                headers=refused.headers or None) from None
        if result is not None:
            _add_headers(lim, response, result, policy)

    return dependency


def _request_parameter(signature: inspect.Signature) -> Optional[str]:
    for name, parameter in signature.parameters.items():
        if parameter.annotation is Request or name == "request":
            return name
    return None


class RateLimitDecorator:
    """`@rate_limit(policy)` under `@app.get(...)`. The endpoint need not take a `request`."""

    _EXTRA = "pacer_request"

    def __init__(self, policy: Union[Policy, Rate, None] = None,
                 limiter: Optional[Limiter] = None) -> None:
        _check_arguments("rate_limit()", policy, limiter)
        self.policy = _as_policy(policy, "decorator")
        self.limiter = limiter

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        own = _request_parameter(signature)
        name = own or self._EXTRA
        decorator = self

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = kwargs[name] if own else kwargs.pop(name)
            lim = _limiter_for(decorator.limiter, request, "rate_limit()")
            try:
                result = await _decide(lim, request, decorator.policy)
            except _Refused as refused:  # the engine's object as the body itself (flat)
                if refused.status == 401:
                    return Response(_pacer.IDENTITY_MISSING_BODY, status_code=401,
                                    media_type="application/json")
                return JSONResponse(status_code=429, content=refused.detail,
                                    headers=refused.headers)
            value = func(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
            if result is not None and isinstance(value, Response):
                _add_headers(lim, value, result, decorator.policy)
            return value

        if not own:
            extra = inspect.Parameter(self._EXTRA, inspect.Parameter.KEYWORD_ONLY,
                                      annotation=Request)
            params = list(signature.parameters.values())
            at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
            params.insert(at, extra)
            wrapper.__signature__ = signature.replace(parameters=params)
        return wrapper


def rate_limit(policy: Union[Policy, Rate, None] = None,
               limiter: Optional[Limiter] = None) -> RateLimitDecorator:
    return RateLimitDecorator(policy, limiter)
