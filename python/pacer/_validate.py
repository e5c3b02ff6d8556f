"""Checks of numbers given by users: every refusal names the parameter, the value and what is
accepted, as a plain TypeError or ValueError (never an error from the extension's bindings)."""

from __future__ import annotations

from typing import Any, Optional

INT64_MAX = (1 << 63) - 1
MAX_TIMEOUT_MS = 86_400_000  # one day


def whole_number(name: str, value: Any, *, minimum: int, maximum: int = INT64_MAX,
                 too_small: Optional[str] = None, bad_type: type = TypeError,
                 what: str = "a whole number") -> int:
    """`value` as an int: an int, or a float with no fractional part (`500.0`); bool is not a
    number here. `too_small` replaces the message for a value below `minimum` (FastAPI Pacer's
    texts); `bad_type` is the exception for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_type(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{name} must be {what}, got {value!r}"
                             + ("" if value != value or value in (float("inf"), float("-inf"))
                                else f" (a fraction; use {int(value)} or {int(value) + 1})"))
        value = int(value)
    if value < minimum:
        raise ValueError(too_small or f"{name} must be at least {minimum}, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
    return value
