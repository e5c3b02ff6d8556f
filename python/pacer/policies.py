"""Rate and Policy: what a limit is (FastAPI Pacer v0.2.0's classes, Pacer's engine).

Durations, rate validity and everything a decision depends on are checked by the C++ library
when a Rate or Policy is made; the classes keep FastAPI Pacer's fields, errors and strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Union

from . import _pacer
from ._validate import whole_number

Selector = Callable[[Any], str]

_VALID_KEYS = ("ip", "api_key", "user", "org")
_PER_EXAMPLES = "'1s', '10s', '1m', '1.5m', '1h', '1d' or '500ms'"
_PER_FORMS = f"expected a number followed by ns, us, ms, s, m, h or d, e.g. {_PER_EXAMPLES}"
_NS_PER_MS = 1_000_000
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def _rates_digest(rates: List["Rate"]) -> str:
    """"r" and 12 hex digits: FNV-1a over each rate's permits, period in nanoseconds and burst
    (8 bytes each, little-endian), the digest pacerd puts in its keys (apps/pacerd/config.cc).
    It depends on the rates' values only: the same rates give the same digest in every process
    and after a restart ("1m" and "60s" are one period); other rates, another digest."""
    value = _FNV_OFFSET
    for rate in rates:
        for number in (rate.permits, rate._period_ns, rate.burst):
            for i in range(8):
                value ^= (number >> (8 * i)) & 0xFF
                value = (value * _FNV_PRIME) & _U64
    return f"r{value & 0xFFFFFFFFFFFF:012x}"


@dataclass(frozen=True)
class Rate:
    """`permits` per `per` ("1s", "10s", "1m", "1.5m", "1h", "1d"; also "500ms"), plus `burst`
    extra requests at once: a fresh key admits burst + 1 requests, then one per permits/per."""

    permits: int
    per: str
    burst: int = 0

    def __post_init__(self) -> None:
        # FastAPI Pacer's checks and texts first; an integral float (5.0) is taken as the int.
        permits = whole_number("permits", self.permits, minimum=1,
                               too_small="permits must be positive")
        burst = whole_number("burst", self.burst, minimum=0,
                             too_small="burst must be non-negative")
        object.__setattr__(self, "permits", permits)
        object.__setattr__(self, "burst", burst)
        if not isinstance(self.per, str):
            raise TypeError(f"expected string or bytes-like object, got '{type(self.per).__name__}'"
                            f" (per must be a duration string such as {_PER_EXAMPLES})")
        try:
            period_ns = _pacer.parse_duration_ns(self.per)
        except ValueError as error:
            # The engine's own explanation: which units it reads, with examples.
            reason = str(error).partition("': ")[2]
            if "ns, us, ms, s, m, h or d" not in reason:
                reason = f"{reason}; {_PER_FORMS}" if reason else _PER_FORMS
            raise ValueError(f"Invalid duration format: {self.per} (per={self.per!r}: {reason})"
                             ) from None
        # Anything else the engine refuses (an emission interval below 1 ns, overflow).
        _pacer.Policy("rate", [(self.permits, period_ns, self.burst)], "")
        object.__setattr__(self, "_period_ns", period_ns)

    def __reduce__(self) -> Any:
        # Pickled by its fields and rebuilt (validated again) by the constructor.
        return (Rate, (self.permits, self.per, self.burst))

    @property
    def period_ms(self) -> int:
        return self._period_ns // _NS_PER_MS

    @property
    def emission_interval_ms(self) -> int:
        """FastAPI Pacer's integer view; decisions use the exact interval in nanoseconds."""
        return self.period_ms // self.permits

    @property
    def burst_capacity_ms(self) -> int:
        return self.burst * self.emission_interval_ms

    @property
    def ttl_ms(self) -> int:
        return max(self.period_ms + self.burst_capacity_ms, 2 * self.period_ms)


def _default_rates() -> List[Rate]:
    return [Rate(10, "1s", burst=10)]


def _policy(rates: List[Rate], key: Any, name: str, max_rates: int, shadow: bool,
            missing_identity: str = "shared") -> "Policy":
    """Unpickles a Policy (shadow and missing_identity are keyword only)."""
    return Policy(rates, key, name, max_rates, shadow=shadow, missing_identity=missing_identity)


@dataclass(frozen=True)
class Policy:
    """One or more rates that must all pass (all-or-nothing), and whose requests they count:
    a selector name ("ip", "api_key", "user", "org") or a function request -> str.

    `shadow=True` (Pacer's, keyword only): decided and counted, never enforced. A would-be
    denial is answered as allowed, with no RateLimit-* headers (the engine's metrics count it
    as denied), as pacerd's and the C++ layer's shadow policies are (docs/DESIGN.md §7).

    `missing_identity` (Pacer's, keyword only): what a request without the identity gets.
    "shared" (FastAPI Pacer's): the selector's own fallback bucket (`no_api_key`, `anonymous`,
    `no_org`). "refuse": 401 {"detail":"identity_missing"} before anything is spent, as pacerd
    and the C++ layer answer. Missing means the built-in selector's fallback, or None or "" from
    a selector function or an extractor."""

    rates: List[Rate] = field(default_factory=_default_rates)
    key: Union[str, Selector] = "ip"
    name: str = "default"
    max_rates: int = field(default=3, repr=False)
    shadow: bool = field(default=False, kw_only=True)
    missing_identity: str = field(default="shared", kw_only=True)

    def __post_init__(self) -> None:
        if isinstance(self.rates, (str, bytes)) or not hasattr(self.rates, "__iter__"):
            raise TypeError(f"rates must be a list of Rate, got {self.rates!r}")
        if not isinstance(self.rates, list):  # a tuple or generator: kept as the list it gives
            object.__setattr__(self, "rates", list(self.rates))
        if not self.rates:
            raise ValueError("Policy must have at least one rate")
        for rate in self.rates:
            if not isinstance(rate, Rate):
                raise TypeError(f"rates must be a list of Rate, got {rate!r} "
                                f"({type(rate).__name__}) in it; e.g. [Rate(100, '1m')]")
        max_rates = whole_number("max_rates", self.max_rates, minimum=1)
        object.__setattr__(self, "max_rates", max_rates)
        if len(self.rates) > max_rates:
            raise ValueError(f"Policy cannot have more than {max_rates} rates")
        if isinstance(self.key, str):
            if self.key not in _VALID_KEYS:
                raise ValueError(f"Invalid key type: {self.key} (key must be one of "
                                 f"{', '.join(map(repr, _VALID_KEYS))} or a function request -> str)")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {self.name!r}")
        if not isinstance(self.shadow, bool):
            raise TypeError(f"shadow must be True or False, got {self.shadow!r}")
        if self.missing_identity not in ("shared", "refuse"):
            raise ValueError("missing_identity must be \"shared\" (the selector's fallback "
                             "bucket) or \"refuse\" (401), got " + repr(self.missing_identity))
        # The key's policy part is the name and the rates (issue 19): `limit(Rate(...))` is
        # always "dependency" and an unnamed Policy "default", so by name alone a router's and a
        # route's limit shared one bucket. `<name>.r<digest>`; a name outside [A-Za-z0-9_.-] or
        # longer than 50 characters makes it too long or unsafe for a key, and the engine uses
        # a hash of the whole text instead (still one per name and rates).
        native = _pacer.Policy(
            f"{self.name}.{_rates_digest(self.rates)}",
            [(r.permits, r._period_ns, r.burst) for r in self.rates],
            self.describe(),
            self.shadow,
        )
        object.__setattr__(self, "_native", native)

    def __reduce__(self) -> Any:
        # The engine's policy (`_native`) is not pickled: the constructor makes it again. A key
        # function pickles as functions do (by name: a lambda does not).
        return (_policy, (self.rates, self.key, self.name, self.max_rates, self.shadow,
                          self.missing_identity))

    def describe(self) -> str:
        parts = []
        for rate in self.rates:
            text = f"{rate.permits}/{rate.per}"
            if rate.burst > 0:
                text += f" (burst={rate.burst})"
            parts.append(text)
        return f"Policy({self.name}): " + ", ".join(parts)

    def generate_keys(self, app: str, scope: str, route: str, principal: str) -> List[str]:
        """The storage key of `principal` on `route` (the scope value: a path, "METHOD:path" or
        "global"). Pacer keeps every rate of a policy in one key,
        `app:{<name>.r<rates digest>:route:principal}`, so the list has one element (FastAPI
        Pacer made one key per rate). Two policies share a key only with the same name and rates."""
        del scope  # the scope kind is already in the value (path, METHOD:path, global)
        return [_pacer.storage_key(app, self._native.name, route, principal)]

    @property
    def max_ttl_ms(self) -> int:
        return max(rate.ttl_ms for rate in self.rates)
