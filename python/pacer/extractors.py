"""FastAPI Pacer's older extractor API (v0.1), still used by existing apps: an extractor is a
function request -> principal, passed to `Limiter(extractor=...)`.

Client addresses come from the C++ HTTP layer like `key_ip`'s, with the trusted proxies given
here; API keys are hashed (never kept in clear in a storage key).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional

from . import _pacer
from .selectors import client_ip

logger = logging.getLogger("pacer")

Extractor = Callable[[Any], str]


def _trusted(proxies: Optional[Iterable[str]]) -> str:
    valid = []
    for entry in proxies or ():
        try:
            _pacer.ClientIp(str(entry), [])
        except ValueError as error:
            logger.warning("pacer: ignoring trusted proxy %r: %s", entry, error)
            continue
        valid.append(str(entry))
    return ", ".join(valid)


def extract_ip(trusted_proxies: Optional[list] = None,
               real_ip_header: str = "X-Forwarded-For") -> Extractor:
    """The peer address; from a peer inside `trusted_proxies` (IPs or CIDRs), `real_ip_header`
    or else RFC 7239 Forwarded, walked from the right past trusted hops. No client: 127.0.0.1."""
    headers = (real_ip_header, "Forwarded")
    resolver = _pacer.ClientIp(_trusted(trusted_proxies), list(headers))

    def extractor(request: Any) -> str:
        return client_ip(request, resolver, "127.0.0.1", headers)

    return extractor


def extract_api_key(header_name: str = "X-API-Key") -> Extractor:
    """"api_key:<hash of the key>", or the peer address without the header."""
    fallback = extract_ip()

    def extractor(request: Any) -> str:
        headers = getattr(request, "headers", None)
        value = headers.get(header_name) if headers is not None else None
        if isinstance(value, str) and value:
            return "api_key:" + _pacer.hash_identity(value)
        return fallback(request)

    return extractor


def extract_user_id(user_id_func: Callable[[Any], Any], fallback_to_ip: bool = True) -> Extractor:
    """"user:<id>" from `user_id_func`, else the peer address (or "anonymous")."""
    fallback = extract_ip()

    def extractor(request: Any) -> str:
        try:
            user_id = user_id_func(request)
        except Exception:
            logger.exception("pacer: user id function failed")
            user_id = None
        if user_id:
            return f"user:{user_id}"
        if fallback_to_ip and getattr(request, "client", None) is not None:
            return fallback(request)
        return "anonymous"

    return extractor


def extract_combined(*extractors: Extractor) -> Extractor:
    """The first non-empty result (extractors that raise are skipped), else "unknown"."""

    def extractor(request: Any) -> str:
        for candidate in extractors:
            try:
                value = candidate(request)
            except Exception:
                continue
            if value:
                return value
        return "unknown"

    return extractor
