"""FastAPI Pacer's Redis URLs (redis-py's forms) read for Pacer's engine.

FastAPI Pacer handed its URL to redis-py, which reads query parameters (`?socket_timeout=0.1`,
`?ssl_cert_reqs=none`, `?db=1`, ...) and `unix://` sockets. Pacer's engine parses URLs itself
(`include/pacer/redis/url.h`): here the redis-py parameters it can honour become its options,
those that only tune redis-py's own client are accepted and left to `limiter.storage.redis`,
and the rest are refused, saying what to write instead. What remains goes to the engine, whose
errors name the URL (password masked) and list the schemes it accepts.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List
from urllib.parse import unquote_plus

from ._validate import MAX_TIMEOUT_MS, whole_number

# Query parameters the engine reads itself (kept in the URL).
_ENGINE_PARAMETERS = ("sentinel_password", "sentinel_username")
# redis-py parameters that set an engine option: name -> what it sets.
_OPTION_PARAMETERS = {
    "db": "the database (the URL's path: redis://host:6379/1)",
    "socket_timeout": "command_timeout_ms (seconds here)",
    "socket_connect_timeout": "connect_timeout_ms (seconds here)",
    "ssl_cert_reqs": "tls_verify (required or none)",
    "ssl_ca_certs": "tls_ca_file",
    "ssl_certfile": "tls_cert_file",
    "ssl_keyfile": "tls_key_file",
}
# redis-py parameters that tune only redis-py's client (the engine has its own connections,
# health checks and replies): accepted, checked, and passed to `limiter.storage.redis`.
_CLIENT_PARAMETERS = {
    "decode_responses": "bool",
    "socket_keepalive": "bool",
    "retry_on_timeout": "bool",
    "health_check_interval": "int",
    "max_connections": "int",
    "client_name": "str",
}
# redis-py parameters refused, with what to use instead.
_INSTEAD = {
    "password": "put it in the URL: redis://:password@host:6379 (or redis://user:password@...)",
    "username": "put it in the URL: redis://user:password@host:6379",
    "ssl_check_hostname": "Pacer checks the host name whenever it verifies the certificate; "
                          "Limiter(tls_server_name=...) names the host to expect",
    "ssl": "use a rediss:// URL",
}
_BOOLS = {"1": True, "true": True, "yes": True, "y": True, "on": True,
          "0": False, "false": False, "no": False, "n": False, "off": False, "": False}
_CERT_REQS = {"required": True, "none": False}
_TLS_SCHEMES = ("rediss://", "rediss+cluster://", "rediss+sentinel://")


def _accepted() -> str:
    return ", ".join(list(_OPTION_PARAMETERS) + list(_CLIENT_PARAMETERS)
                     + list(_ENGINE_PARAMETERS))


def _seconds_to_ms(url: str, name: str, text: str) -> int:
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        seconds = None
    if seconds is None or not seconds.is_finite():
        raise ValueError(f"invalid Redis URL {url!r}: {name}={text!r} is not a number of "
                         f"seconds (e.g. {name}=0.05 for 50 ms)")
    ms = seconds * 1000
    if ms != ms.to_integral_value():
        raise ValueError(f"invalid Redis URL {url!r}: {name}={text!r} is not a whole number of "
                         "milliseconds (Pacer's timeouts are in ms; e.g. 0.05 for 50 ms)")
    value = int(ms)
    if value < 1 or value > MAX_TIMEOUT_MS:
        raise ValueError(f"invalid Redis URL {url!r}: {name}={text!r} must be from 0.001 to "
                         f"{MAX_TIMEOUT_MS // 1000} seconds")
    return value


class ParsedUrl:
    """What a FastAPI Pacer URL says: the engine's URL, the options its query sets, and the
    redis-py client settings it carries."""

    def __init__(self, engine_url: str, options: Dict[str, Any], client: Dict[str, Any]) -> None:
        self.engine_url = engine_url
        self.options = options  # connect_timeout_ms, command_timeout_ms, tls_* overrides
        self.client = client    # redis-py-only settings, for limiter.storage.redis


def read_url(url: str, mask: Any) -> ParsedUrl:
    """Splits `url` into the engine's URL, option overrides and redis-py client settings.
    `mask(url)` is the URL with its passwords hidden, for messages."""
    shown = mask(url)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("unix", "redis+unix", "rediss+unix"):
        raise ValueError(
            f"invalid Redis URL {shown!r}: Unix sockets are not supported by Pacer's engine; "
            "let Redis listen on TCP (redis.conf: `port 6379`, `bind 127.0.0.1`) and use "
            "redis://127.0.0.1:6379/0 (or rediss://, redis+cluster://, redis+sentinel://)")
    base, question, query = url.partition("?")
    if not question:
        return ParsedUrl(url, {}, {})
    if "#" in query:
        raise ValueError(f"invalid Redis URL {shown!r}: a '#' fragment is not allowed "
                         "(percent-encode it as %23 in a value)")
    kept: List[str] = []
    seen: Dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = unquote_plus(raw_name)
        if name in seen:
            raise ValueError(f"invalid Redis URL {shown!r}: query parameter {name!r} is given "
                             "twice")
        if name in _ENGINE_PARAMETERS:
            kept.append(part)
            seen[name] = ""
            continue
        if name in _INSTEAD:
            raise ValueError(f"invalid Redis URL {shown!r}: query parameter {name!r} is not "
                             f"supported: {_INSTEAD[name]}")
        if name not in _OPTION_PARAMETERS and name not in _CLIENT_PARAMETERS:
            raise ValueError(f"invalid Redis URL {shown!r}: unknown query parameter {name!r}; "
                             f"accepted: {_accepted()}")
        seen[name] = unquote_plus(raw_value)

    options: Dict[str, Any] = {}
    client: Dict[str, Any] = {}
    tls = url.lower().startswith(_TLS_SCHEMES)
    for name, value in seen.items():
        if name in _ENGINE_PARAMETERS:
            continue
        if name.startswith("ssl_") and not tls:
            raise ValueError(f"invalid Redis URL {shown!r}: {name} needs TLS: use rediss:// "
                             "(or rediss+cluster://, rediss+sentinel://)")
        if name == "socket_timeout":
            options["command_timeout_ms"] = _seconds_to_ms(shown, name, value)
        elif name == "socket_connect_timeout":
            options["connect_timeout_ms"] = _seconds_to_ms(shown, name, value)
        elif name == "ssl_cert_reqs":
            verify = _CERT_REQS.get(value.lower())
            if verify is None:
                raise ValueError(f"invalid Redis URL {shown!r}: ssl_cert_reqs={value!r}: Pacer "
                                 "accepts required (verify the server; the default) or none "
                                 "(do not verify)")
            options["tls_verify"] = verify
        elif name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if not value:
                raise ValueError(f"invalid Redis URL {shown!r}: {name} is empty (a file path)")
            options[{"ssl_ca_certs": "tls_ca_file", "ssl_certfile": "tls_cert_file",
                     "ssl_keyfile": "tls_key_file"}[name]] = value
        elif name == "db":
            base = _with_db(shown, base, value)
        else:
            client[name] = _client_value(shown, name, value)
    engine_url = base + ("?" + "&".join(kept) if kept else "")
    return ParsedUrl(engine_url, options, client)


def _with_db(shown: str, base: str, value: str) -> str:
    """`base` with the database of `?db=` as its path (the engine's form)."""
    if not value.isdigit() or not value.isascii():
        raise ValueError(f"invalid Redis URL {shown!r}: db={value!r} is not a number from 0 up")
    scheme, _, rest = base.partition("://")
    if "cluster" in scheme.lower():
        if int(value) != 0:
            raise ValueError(f"invalid Redis URL {shown!r}: Redis Cluster has only database 0 "
                             f"(db={value})")
        return base
    authority, slash, path = rest.partition("/")
    if "sentinel" in scheme.lower():
        master, _, db = path.partition("/")
        if db and db != value:
            raise ValueError(f"invalid Redis URL {shown!r}: two databases ({db} in the path, "
                             f"db={value}); give one")
        return f"{scheme}://{authority}/{master}/{value}"
    if slash and path and path != value:
        raise ValueError(f"invalid Redis URL {shown!r}: two databases (/{path} in the path, "
                         f"db={value}); give one")
    return f"{scheme}://{authority}/{value}"


def _client_value(shown: str, name: str, value: str) -> Any:
    kind = _CLIENT_PARAMETERS[name]
    if kind == "bool":
        parsed = _BOOLS.get(value.lower())
        if parsed is None:
            raise ValueError(f"invalid Redis URL {shown!r}: {name}={value!r}: expected true or "
                             "false (also 1/0, yes/no)")
        return parsed
    if kind == "int":
        if not value.isdigit() or not value.isascii():
            raise ValueError(f"invalid Redis URL {shown!r}: {name}={value!r}: expected a whole "
                             "number from 0 up")
        return whole_number(name, int(value), minimum=0, maximum=(1 << 31) - 1,
                            bad_type=ValueError)
    return value

