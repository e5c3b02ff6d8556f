// pacer/http/response.h — how a Decision is told to HTTP clients (DESIGN §7).
//
// Every limited response carries RateLimit-Limit / -Remaining / -Reset; a 429 adds
// Retry-After (whole seconds, rounded up, so a client never retries too early). Optional:
// X-RateLimit-Reset (Unix time), X-RateLimit-Policy, and the IETF draft-10 structured fields
// RateLimit-Policy / RateLimit.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pacer/decision.h"
#include "pacer/rate.h"

namespace pacer::http {

struct HeaderOptions {
  bool ratelimit = true;            // RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset
  bool x_ratelimit_reset = false;   // X-RateLimit-Reset: <unix seconds>
  bool x_ratelimit_policy = false;  // X-RateLimit-Policy: Policy(api): 100/1m (burst=10)
  bool ietf_draft = false;  // RateLimit-Policy: "api";q=100;w=60 and RateLimit: "api";r=5;t=30
};

// Whether a 429 body stands alone or is nested in "detail" (per-route limits of the demo,
// compatible with the original FastAPI service).
enum class BodyStyle { kFlat, kNested };

using HeaderList = std::vector<std::pair<std::string_view, std::string>>;

// Whole seconds, rounded up, at least 1.
std::int64_t ceil_seconds(std::chrono::nanoseconds duration);
// Milliseconds, rounded up (a client never retries early); 0 for a duration <= 0.
std::int64_t ceil_milliseconds(std::chrono::nanoseconds duration);

// Retry-After of a 503 (the store is unreachable and the fail mode is "closed"): nothing says
// when it is back, so clients are asked to wait this long.
inline constexpr std::chrono::seconds kUnavailableRetryAfter{5};

// Appends the headers for `decision` under `policy`. The wall clock is read only for
// X-RateLimit-Reset.
void append_headers(const Policy& policy, const Decision& decision, const HeaderOptions& options,
                    HeaderList& out);

// {"detail": "rate_limited", "retry_after_ms": N}, nested as {"detail": {...}} when asked;
// for a cost that can never pass: {"detail": "cost_exceeds_capacity", "retry_after_ms": null}.
std::string too_many_requests_body(const Decision& decision, BodyStyle style);

// {"detail": "Service temporarily unavailable"}
std::string unavailable_body();

}  // namespace pacer::http
