"""Pacer for FastAPI: FastAPI Pacer's API (v0.2.0), every decision made by Pacer's C++ engine.

    from pacer import Limiter, LimiterMiddleware, Policy, Rate, limit, set_limiter
"""

from .dependencies import RateLimitDecorator, get_limiter, limit, rate_limit, set_limiter
from .limiter import IdentityMissing, Limiter, LimiterMetrics, RateLimitResult, StoreError
from .middleware import LimiterMiddleware
from .otel import OTEL_AVAILABLE, OTelHooks, create_otel_hooks
from .policies import Policy, Rate
from .selectors import (BUILTIN_SELECTORS, compose, get_selector, key_api_key, key_ip, key_org,
                        key_user)
from .storage_simple import SimpleRedisStorage

__version__ = "0.3.0"  # pyproject.toml and the engine's pacer/version.h say the same

__all__ = [
    "Limiter",
    "LimiterMetrics",
    "RateLimitResult",
    "LimiterMiddleware",
    "Policy",
    "Rate",
    "limit",
    "rate_limit",
    "set_limiter",
    "get_limiter",
    "RateLimitDecorator",
    "key_ip",
    "key_api_key",
    "key_user",
    "key_org",
    "compose",
    "get_selector",
    "BUILTIN_SELECTORS",
    "SimpleRedisStorage",
    "OTelHooks",
    "create_otel_hooks",
    "OTEL_AVAILABLE",
    "StoreError",
    "IdentityMissing",
]
