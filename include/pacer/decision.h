// pacer/decision.h — the answer to "may this pass?", as every layer reports it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace pacer {

enum class Outcome : std::uint8_t {
  kAllowed,          // admitted (or a peek, which admits nothing and writes nothing)
  kDenied,           // over the limit; retry_after says when the same request would pass
  kExceedsCapacity,  // cost * T > tau: this request can never pass, retrying is pointless
  kUnavailable,      // the store failed and the fail mode is "closed"
};

std::string_view to_string(Outcome outcome);

struct Decision {
  Outcome outcome = Outcome::kAllowed;
  // Permits of the rate that decided (the denying rate with the longest wait, else the rate
  // with the fewest remaining).
  std::int64_t limit = 0;
  // Further cost-1 requests that would pass right now (minimum over all rates).
  std::int64_t remaining = 0;
  // When the same request would pass; zero unless denied.
  std::chrono::nanoseconds retry_after{0};
  // Until the deciding rate is back to full capacity.
  std::chrono::nanoseconds reset_after{0};
  // Index of the deciding rate within the policy.
  std::uint8_t rate_index = 0;
  // True when the store could not be asked and the fail mode answered instead.
  bool degraded = false;

  bool allowed() const { return outcome == Outcome::kAllowed; }
};

}  // namespace pacer
