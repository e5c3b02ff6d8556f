#include "pacer/gcra.h"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace pacer {
namespace {

// Capacity left for cost-1 requests when the key's effective TAT is `tat` (>= now).
std::int64_t remaining_at(const Rate& rate, std::int64_t tat, std::int64_t now) {
  const std::int64_t used = tat - now;
  const std::int64_t left = rate.tolerance().count() - used;
  // A TAT more than tau ahead only happens if the clock stepped back; report no capacity.
  return left <= 0 ? 0 : rate.intervals_in(Nanos{left});
}

}  // namespace

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAllowed:
      return "allowed";
    case Outcome::kDenied:
      return "denied";
    case Outcome::kExceedsCapacity:
      return "exceeds_capacity";
    case Outcome::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

Decision gcra_step(std::span<const Rate> rates, std::span<std::int64_t> tats, std::int64_t now,
                   std::int64_t cost) {
  Decision d;
  gcra_step(rates, tats, now, cost, d);
  return d;
}

void gcra_step(std::span<const Rate> rates, std::span<std::int64_t> tats, std::int64_t now,
               std::int64_t cost, Decision& d) {
  if (rates.empty() || rates.size() > Policy::kMaxRates || tats.size() != rates.size() || cost < 0)
    throw std::invalid_argument("gcra_step: needs 1 to 8 rates, one TAT per rate and cost >= 0");
  const std::size_t n = rates.size();
  std::array<std::int64_t, Policy::kMaxRates> new_tats;  // only [0, n) is used

  d = Decision{};
  // Pass 1: capacity and denial per rate. The deciding rate among deniers is the longest wait.
  int exceeding = -1;
  int longest_denial = -1;
  std::int64_t longest_wait = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t t = rates[i].emission_interval().count();
    const std::int64_t tau = rates[i].tolerance().count();
    std::int64_t increment = 0;
    if (__builtin_mul_overflow(cost, t, &increment) || increment > tau) {
      if (exceeding < 0) exceeding = static_cast<int>(i);
      continue;
    }
    const std::int64_t base = std::max(tats[i], now);
    new_tats[i] = base + increment;
    // A peek never denies, even when a clock step left a TAT more than tau ahead.
    const std::int64_t wait = new_tats[i] - tau - now;
    if (cost > 0 && wait > longest_wait) {
      longest_wait = wait;
      longest_denial = static_cast<int>(i);
    }
  }

  if (exceeding >= 0 || longest_denial >= 0) {
    // Nothing is written; report every rate's current capacity.
    d.outcome = exceeding >= 0 ? Outcome::kExceedsCapacity : Outcome::kDenied;
    const auto decider = static_cast<std::size_t>(exceeding >= 0 ? exceeding : longest_denial);
    d.retry_after = exceeding >= 0 ? Nanos{0} : Nanos{longest_wait};
    d.remaining = INT64_MAX;
    for (std::size_t i = 0; i < n; ++i)
      d.remaining = std::min(d.remaining, remaining_at(rates[i], std::max(tats[i], now), now));
    d.rate_index = static_cast<std::uint8_t>(decider);
    d.limit = rates[decider].permits();
    d.reset_after = Nanos{std::max<std::int64_t>(tats[decider] - now, 0)};
    return;
  }

  // Admitted by every rate: report the rate with the fewest remaining (ties: longer reset).
  // The TATs are written in the same loop (a separate copy compiles to a slow `rep movs`).
  d.outcome = Outcome::kAllowed;
  d.remaining = INT64_MAX;
  std::int64_t decider_reset = -1;
  const bool write = cost > 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t left = remaining_at(rates[i], new_tats[i], now);
    const std::int64_t reset = new_tats[i] - now;
    if (left < d.remaining || (left == d.remaining && reset > decider_reset)) {
      d.remaining = left;
      d.rate_index = static_cast<std::uint8_t>(i);
      decider_reset = reset;
    }
    if (write) tats[i] = new_tats[i];
  }
  d.limit = rates[d.rate_index].permits();
  d.reset_after = Nanos{decider_reset};
}

std::int64_t gcra_expiry(std::span<const std::int64_t> tats) {
  return *std::max_element(tats.begin(), tats.end());
}

}  // namespace pacer
