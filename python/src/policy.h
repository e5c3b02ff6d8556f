// Policies, verdicts and header rendering of the Python extension (pacer._pacer).
//
// A NativePolicy is a Python policy compiled for the C++ library (its name made acceptable to
// it); a Verdict is what a check answers Python: the Decision, the store's error when the fail
// mode answered, and the ASGI headers when the check asked for them. Header values and bodies
// come from the http layer (pacer/http/response.h), never from Python.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "pacer/decision.h"
#include "pacer/http/response.h"
#include "pacer/rate.h"

namespace pacer::python {

namespace py = pybind11;

struct NativePolicy {
  Policy policy;
  std::string description;  // the seed's describe(), the X-RateLimit-Policy value
  // Decided and counted, never enforced: the client is told http::shadow_told() of each
  // decision, with no RateLimit-* headers (docs/DESIGN.md §7).
  bool shadow = false;

  // `rates`: (permits, period in ns, burst) per rate.
  static NativePolicy make(
      const std::string& name,
      const std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>& rates,
      std::string description, bool shadow);

  // What the client is told of `decision` (a shadow policy's would-be denial is allowed).
  Decision told(const Decision& decision) const;
};

// Which headers a check renders, a bit set (Python: pacer._pacer.HeaderFlag, combined with |).
enum class HeaderFlag : std::uint8_t {
  kNone = 0,
  kExpose = 1,           // RateLimit-* and Retry-After at all
  kXRateLimitReset = 2,  // X-RateLimit-Reset (the seed's legacy_timestamp_header)
  kXRateLimitPolicy = 4  // X-RateLimit-Policy (the seed's expose_policy_header)
};

constexpr HeaderFlag operator|(HeaderFlag a, HeaderFlag b) {
  return static_cast<HeaderFlag>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}

struct HeaderChoice {
  bool expose = true;
  bool legacy = false;  // X-RateLimit-Reset
  bool policy = false;  // X-RateLimit-Policy

  static HeaderChoice of(HeaderFlag flags);
};

// What a check's ASGI headers are rendered with (the policy is shared data: a copy keeps it
// alive however long the call takes).
struct HeaderRendering {
  NativePolicy policy;
  HeaderChoice choice;
};

// `text` with A-Z in lower case.
std::string ascii_lower(std::string_view text);

// ASGI form: [(b"ratelimit-limit", b"10"), ...]
py::list asgi_headers(const NativePolicy& p, const Decision& d, HeaderChoice choice);

// Mapping form, the seed's spelling: [("RateLimit-Limit", "10"), ...]
std::vector<std::pair<std::string, std::string>> named_headers(const NativePolicy& p,
                                                               const Decision& d,
                                                               HeaderChoice choice);

struct Verdict {
  Decision decision;
  std::string error;  // the store's error when the fail mode answered
  // ASGI headers, rendered under the GIL when the check asked for them (else None).
  py::object headers;

  std::string_view outcome() const { return to_string(decision.outcome); }
  py::bytes body(bool nested) const;
};

// What an admission answers (Engine::admit): a Verdict when the request is refused
// (denied, or unavailable in fail mode "closed"); when it is admitted, `send` wrapped in a
// HeaderSend (fast_path.h; `send` itself when no header is rendered), or without a `send` (None)
// the rendered ASGI header list.
py::object admission(Verdict verdict, const py::object& send);

// A Decision rebuilt from the seed's RateLimitResult fields, for add_headers on results the
// caller made itself. py::index_error for a rate index the policy does not have.
Decision decision_from_fields(const NativePolicy& p, bool allowed, std::int64_t retry_after_ms,
                              std::int64_t reset_ms, std::int64_t remaining, std::size_t index);

}  // namespace pacer::python
