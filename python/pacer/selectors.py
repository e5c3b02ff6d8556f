"""Selectors: who a request is counted against (request -> str).

They work on Starlette requests and on duck-typed objects (tests pass mocks whose `headers` is a
plain dict), reading only the attributes FastAPI Pacer's selectors read. Client addresses are
resolved by the C++ HTTP layer: proxy headers count only from trusted proxies (loopback and
private networks by default), walked from the right past trusted hops.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _pacer

logger = logging.getLogger("pacer")

# Trusted by key_ip: loopback and the private ranges (RFC 1918, fc00::/7), where the proxies of
# a typical deployment live. Headers from anyone else are ignored.
DEFAULT_TRUSTED_PROXIES = "loopback, private"
_IP_HEADERS = ("CF-Connecting-IP", "X-Real-IP", "X-Forwarded-For")
_CLIENT_IP = _pacer.ClientIp(DEFAULT_TRUSTED_PROXIES, list(_IP_HEADERS))

try:  # Starlette's Headers keeps repeated fields; a plain mapping has one value per name.
    from starlette.datastructures import Headers as _Headers
except ImportError:  # pragma: no cover - starlette is a dependency of FastAPI
    _Headers = ()


def _header_values(headers: Any, name: str) -> List[str]:
    if isinstance(headers, _Headers):
        return headers.getlist(name)
    value = headers.get(name) if headers is not None else None
    return [value] if isinstance(value, str) else []


def _header(headers: Any, name: str) -> Optional[str]:
    values = _header_values(headers, name)
    return values[0] if values else None


def _peer(request: Any) -> Optional[str]:
    client = getattr(request, "client", None)
    if client is None:
        return None
    host = getattr(client, "host", None)
    return host if isinstance(host, str) else None


def client_ip(request: Any, resolver: Any = _CLIENT_IP, missing: str = "unknown",
              headers: Tuple[str, ...] = _IP_HEADERS) -> str:
    pairs = []
    request_headers = getattr(request, "headers", None)
    for name in headers:
        for value in _header_values(request_headers, name):
            pairs.append((name, value))
    return resolver.resolve(_peer(request), pairs, missing)


def key_ip(request: Any) -> str:
    """The client address: the peer, or from a trusted proxy CF-Connecting-IP, X-Real-IP or
    X-Forwarded-For; "unknown" without a client."""
    return client_ip(request)


# What each built-in selector answers for a request without its identity: FastAPI Pacer's shared
# buckets, and what Policy(missing_identity="refuse") refuses.
FALLBACKS = {"api_key": "no_api_key", "user": "anonymous", "org": "no_org"}


def identity_missing(key: Any, value: Any) -> bool:
    """Whether `value`, the identity answered by the built-in selector named `key` (or by a
    function or an extractor: `key` is then not a str), means the request has none."""
    return value is None or value == "" or (isinstance(key, str) and value == FALLBACKS.get(key))


def key_api_key(request: Any) -> str:
    """X-API-Key, `Authorization: Bearer <token>`, or the api_key query parameter, as the first
    32 hex digits of its SHA-256; "no_api_key" without one."""
    headers = getattr(request, "headers", None)
    value = _header(headers, "X-API-Key")
    if not value:
        auth = _header(headers, "Authorization")
        if auth and auth.startswith("Bearer "):
            value = auth[len("Bearer "):].strip()
    if not value:
        params = getattr(request, "query_params", None)
        candidate = params.get("api_key") if params is not None else None
        value = candidate if isinstance(candidate, str) else None
    return _pacer.hash_identity(value) if value else FALLBACKS["api_key"]


def _attr(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name)
    except (AttributeError, AssertionError, KeyError):
        return None


def key_user(request: Any) -> str:
    """request.state.user_id, request.state.user.id or request.user.id; "anonymous" otherwise
    (also on Starlette requests without AuthenticationMiddleware)."""
    state = _attr(request, "state")
    user_id = _attr(state, "user_id")
    if user_id:
        return str(user_id)
    for user in (_attr(state, "user"), _attr(request, "user")):
        uid = _attr(user, "id") if user is not None else None
        if uid is not None:
            return str(uid)
    return FALLBACKS["user"]


def key_org(request: Any) -> str:
    """request.state.org_id, .organization_id or .org.id; "no_org" otherwise."""
    state = _attr(request, "state")
    for name in ("org_id", "organization_id"):
        value = _attr(state, name)
        if value:
            return str(value)
    org = _attr(state, "org")
    oid = _attr(org, "id") if org is not None else None
    return str(oid) if oid is not None else FALLBACKS["org"]


def compose(*selectors: Callable[[Any], str]) -> Callable[[Any], str]:
    """Joins the non-empty results of `selectors` with ':'; a selector that raises contributes
    "error"; nothing at all gives "unknown"."""

    def composed(request: Any) -> str:
        parts = []
        for selector in selectors:
            try:
                value = selector(request)
            except Exception:
                logger.exception("pacer: selector %s failed", getattr(selector, "__name__", selector))
                value = "error"
            if value:
                parts.append(str(value))
        return ":".join(parts) if parts else "unknown"

    composed.__name__ = "compose(" + ",".join(getattr(s, "__name__", repr(s)) for s in selectors) + ")"
    return composed


BUILTIN_SELECTORS: Dict[str, Callable[[Any], str]] = {
    "ip": key_ip,
    "api_key": key_api_key,
    "user": key_user,
    "org": key_org,
}


def get_selector(key: Any) -> Callable[[Any], str]:
    if callable(key):
        return key
    if isinstance(key, str):
        try:
            return BUILTIN_SELECTORS[key]
        except KeyError:
            raise ValueError(f"Unknown selector: {key}. Available: {list(BUILTIN_SELECTORS)}") from None
    raise TypeError(f"Selector must be string or callable, got {type(key)}")
