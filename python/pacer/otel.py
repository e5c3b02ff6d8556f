"""OpenTelemetry hooks (FastAPI Pacer's `OTelHooks`); no-ops when opentelemetry is absent."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Tuple

logger = logging.getLogger("pacer")

try:  # pragma: no cover - opentelemetry is optional and not in Debian 12
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.trace import Status, StatusCode

    OTEL_AVAILABLE = True
except ImportError:
    OTEL_AVAILABLE = False


def _request_attrs(request: Any) -> dict:
    url = getattr(request, "url", None)
    path = str(getattr(url, "path", "")) if url is not None else ""
    return {"method": str(getattr(request, "method", "")), "path": path, "route": path}


class OTelHooks:
    def __init__(self, service_name: str = "fastapi-pacer", meter_name: Optional[str] = None,
                 tracer_name: Optional[str] = None, include_request_attrs: bool = True,
                 include_policy_attrs: bool = True) -> None:
        self.service_name = service_name
        self.include_request_attrs = include_request_attrs
        self.include_policy_attrs = include_policy_attrs
        self.enabled = OTEL_AVAILABLE
        if not self.enabled:
            return
        meter = _otel_metrics.get_meter(meter_name or "pacer")
        self.tracer = _otel_trace.get_tracer(tracer_name or "pacer")
        self.requests_total = meter.create_counter("rate_limit_requests_total")
        self.allowed_total = meter.create_counter("rate_limit_requests_allowed_total")
        self.denied_total = meter.create_counter("rate_limit_requests_denied_total")
        self.errors_total = meter.create_counter("rate_limit_errors_total")
        self.duration = meter.create_histogram("rate_limit_check_duration_ms", unit="ms")

    def on_decision(self, request: Any, policy: Any, result: Any, duration_ms: float) -> None:
        if not self.enabled:
            return
        attrs = {"service": self.service_name, "allowed": "true" if result.allowed else "false"}
        if self.include_request_attrs:
            attrs.update(_request_attrs(request))
        if self.include_policy_attrs:
            attrs["policy"] = policy.name
            attrs["matched_rate"] = str(result.matched_rate_index)
        self.requests_total.add(1, attrs)
        (self.allowed_total if result.allowed else self.denied_total).add(1, attrs)
        self.duration.record(duration_ms, attrs)
        span = _otel_trace.get_current_span()
        if span.is_recording():
            event = {"rate_limit.allowed": result.allowed,
                     "rate_limit.remaining": result.remaining,
                     "rate_limit.duration_ms": duration_ms, "rate_limit.policy": policy.name,
                     "rate_limit.matched_rate": result.matched_rate_index}
            if not result.allowed:
                event["rate_limit.retry_after_ms"] = result.retry_after_ms
            span.add_event("rate_limit_check", event)

    def on_error(self, request: Any, policy: Any, error: Exception, duration_ms: float) -> None:
        if not self.enabled:
            return
        attrs = {"service": self.service_name, "error_type": type(error).__name__}
        if self.include_request_attrs:
            attrs.update({k: v for k, v in _request_attrs(request).items() if k != "route"})
        attrs["policy"] = policy.name
        self.errors_total.add(1, attrs)
        span = _otel_trace.get_current_span()
        if span.is_recording():
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR))
            span.add_event("rate_limit_error", {"error.type": type(error).__name__,
                                                "error.message": str(error),
                                                "rate_limit.duration_ms": duration_ms})


def create_otel_hooks(service_name: str = "fastapi-pacer",
                      **kwargs: Any) -> Tuple[Callable[..., None], Callable[..., None]]:
    if not OTEL_AVAILABLE:
        def on_decision(request: Any, policy: Any, result: Any, duration_ms: float) -> None:
            return None

        def on_error(request: Any, policy: Any, error: Exception, duration_ms: float) -> None:
            return None

        return on_decision, on_error
    hooks = OTelHooks(service_name=service_name, **kwargs)
    return hooks.on_decision, hooks.on_error
