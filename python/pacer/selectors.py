"""Selectors: who a request is counted against (request -> str).

The built-in selectors ("ip", "api_key", "user", "org") are the C++ HTTP layer's, in FastAPI
Pacer's text (docs/DESIGN.md §7): a policy with one of them is keyed by the engine's rule, which
reads the ASGI scope itself; the functions below answer the same for a request object. They
work on Starlette requests and on duck-typed objects (tests pass mocks whose `headers` is a plain
dict), reading only the attributes FastAPI Pacer's selectors read. Proxy headers count only from
trusted proxies (loopback and private networks), walked from the right past trusted hops.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _pacer

logger = logging.getLogger("pacer")

# Trusted by key_ip: loopback and the private ranges (RFC 1918, fc00::/7), where the proxies of
# a typical deployment live. Headers from anyone else are ignored.
DEFAULT_TRUSTED_PROXIES = _pacer.DEFAULT_TRUSTED_PROXIES

try:  # Starlette's Headers keeps repeated fields; a plain mapping has one value per name.
    from starlette.datastructures import Headers as _Headers
except ImportError:  # pragma: no cover - starlette is a dependency of FastAPI
    _Headers = ()


def _header_values(headers: Any, name: str) -> List[str]:
    if isinstance(headers, _Headers):
        return headers.getlist(name)
    value = headers.get(name) if headers is not None else None
    return [value] if isinstance(value, str) else []


def _peer(request: Any) -> Optional[str]:
    client = getattr(request, "client", None)
    if client is None:
        return None
    host = getattr(client, "host", None)
    return host if isinstance(host, str) else None


def client_ip(request: Any, resolver: Any, missing: str, headers: Tuple[str, ...]) -> str:
    """The client address by `resolver` (a `_pacer.ClientIp`) reading `headers`: the
    extractors' (pacer.extractors), whose trusted proxies and headers are their own."""
    pairs = []
    request_headers = getattr(request, "headers", None)
    for name in headers:
        for value in _header_values(request_headers, name):
            pairs.append((name, value))
    return resolver.resolve(_peer(request), pairs, missing)


def key_ip(request: Any) -> str:
    """The client address: the peer, or from a trusted proxy CF-Connecting-IP, X-Real-IP or
    X-Forwarded-For; "unknown" without a client."""
    return _pacer.select("ip", request)


def key_api_key(request: Any) -> str:
    """X-API-Key, `Authorization: Bearer <token>`, or the api_key query parameter, as the first
    32 hex digits of its SHA-256; "no_api_key" without one."""
    return _pacer.select("api_key", request)


def key_user(request: Any) -> str:
    """request.state.user_id, request.state.user.id or request.user.id; "anonymous" otherwise
    (also on Starlette requests without AuthenticationMiddleware)."""
    return _pacer.select("user", request)


def key_org(request: Any) -> str:
    """request.state.org_id, .organization_id or .org.id; "no_org" otherwise."""
    return _pacer.select("org", request)


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
