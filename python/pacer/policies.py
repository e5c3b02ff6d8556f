"""Rate and Policy: what a limit is (FastAPI Pacer v0.2.0's classes, Pacer's engine).

Durations, rate validity and everything a decision depends on are checked by the C++ library
when a Rate or Policy is made; the classes keep the seed's fields, errors and strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Union

from . import _pacer

Selector = Callable[[Any], str]

_VALID_KEYS = ("ip", "api_key", "user", "org")
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
        if self.permits <= 0:
            raise ValueError("permits must be positive")
        if self.burst < 0:
            raise ValueError("burst must be non-negative")
        if not isinstance(self.per, str):
            raise TypeError(f"expected string or bytes-like object, got '{type(self.per).__name__}'")
        try:
            period_ns = _pacer.parse_duration_ns(self.per)
        except ValueError:
            raise ValueError(f"Invalid duration format: {self.per}") from None
        # Anything else the engine refuses (an emission interval below 1 ns, overflow).
        _pacer.Policy("rate", [(self.permits, period_ns, self.burst)], "")
        object.__setattr__(self, "_period_ns", period_ns)

    @property
    def period_ms(self) -> int:
        return self._period_ns // _NS_PER_MS

    @property
    def emission_interval_ms(self) -> int:
        """The seed's integer view; decisions use the exact interval in nanoseconds."""
        return self.period_ms // self.permits

    @property
    def burst_capacity_ms(self) -> int:
        return self.burst * self.emission_interval_ms

    @property
    def ttl_ms(self) -> int:
        return max(self.period_ms + self.burst_capacity_ms, 2 * self.period_ms)


def _default_rates() -> List[Rate]:
    return [Rate(10, "1s", burst=10)]


@dataclass(frozen=True)
class Policy:
    """One or more rates that must all pass (all-or-nothing), and whose requests they count:
    a selector name ("ip", "api_key", "user", "org") or a function request -> str."""

    rates: List[Rate] = field(default_factory=_default_rates)
    key: Union[str, Selector] = "ip"
    name: str = "default"
    max_rates: int = field(default=3, repr=False)

    def __post_init__(self) -> None:
        if not self.rates:
            raise ValueError("Policy must have at least one rate")
        if len(self.rates) > self.max_rates:
            raise ValueError(f"Policy cannot have more than {self.max_rates} rates")
        if isinstance(self.key, str) and self.key not in _VALID_KEYS:
            raise ValueError(f"Invalid key type: {self.key}")
        # The key's policy part is the name and the rates (issue 19): `limit(Rate(...))` is
        # always "dependency" and an unnamed Policy "default", so by name alone a router's and a
        # route's limit shared one bucket. `<name>.r<digest>`; a name outside [A-Za-z0-9_.-] or
        # longer than 50 characters makes it too long or unsafe for a key, and the engine uses
        # a hash of the whole text instead (still one per name and rates).
        native = _pacer.Policy(
            f"{self.name}.{_rates_digest(self.rates)}",
            [(r.permits, r._period_ns, r.burst) for r in self.rates],
            self.describe(),
        )
        object.__setattr__(self, "_native", native)

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
        `app:{<name>.r<rates digest>:route:principal}`, so the list has one element (the seed
        made one key per rate). Two policies share a key only with the same name and rates."""
        del scope  # the scope kind is already in the value (path, METHOD:path, global)
        return [_pacer.storage_key(app, self._native.name, route, principal)]

    @property
    def max_ttl_ms(self) -> int:
        return max(rate.ttl_ms for rate in self.rates)
