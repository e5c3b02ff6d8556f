// One table of GCRA cases, {rates, stored TATs, cost} at a fixed `now` -> decision and stored
// TATs after, read by the C++ test of gcra_step (tests/core/gcra_cases_test.cc) and by the test
// of the Redis script (tests/redis/script_test.cc), so the two implementations cannot drift.
//
// The expected numbers are worked out by hand from docs/DESIGN.md §2-3 (the comment of each case
// shows the arithmetic). Every emission interval, TAT and duration is a whole number of
// microseconds (Redis' unit), so the same case is exact in both stores; `GcraCaseRate::rate()`
// checks that.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "pacer/decision.h"
#include "pacer/rate.h"

namespace pacer::testing {

struct GcraCaseRate {
  std::int64_t permits;
  std::int64_t period_ns;
  std::int64_t burst;

  Rate rate() const {
    Rate r(permits, Nanos{period_ns}, burst);
    if (r.emission_interval().count() % 1000 != 0)
      throw std::logic_error("gcra case rate " + r.to_string() + " is not in whole microseconds");
    return r;
  }
};

struct GcraCase {
  std::string name;
  std::vector<GcraCaseRate> rates;
  // One TAT per rate, relative to now (ns); nullopt: no stored state (a fresh key).
  std::optional<std::vector<std::int64_t>> tats;
  std::int64_t cost;
  // Expected decision (limit is the permits of rates[rate_index]).
  Outcome outcome;
  std::int64_t remaining;
  std::int64_t retry_after_ns;
  std::int64_t reset_after_ns;
  std::uint8_t rate_index;
  // The stored TATs after the step, relative to now (ns); nullopt: still no stored state.
  std::optional<std::vector<std::int64_t>> tats_after;
};

// 2023-11-14T22:13:20.123456Z in ns: a whole microsecond, like Redis TIME.
inline constexpr std::int64_t kGcraCaseNow = 1'700'000'000'123'456'000;

inline const std::vector<GcraCase>& gcra_cases() {
  constexpr std::int64_t us = 1'000;
  constexpr std::int64_t ms = 1'000'000;
  constexpr std::int64_t s = 1'000'000'000;
  constexpr std::int64_t day = 86'400 * s;
  constexpr std::int64_t fifty_years = 18'250 * day;  // 1.5768e18 ns, below the 73-year cap
  constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
  // 10/1s burst 4: T = 100 ms, tau = 500 ms.
  const GcraCaseRate ten_per_s{10, s, 4};
  // 1/1s burst 0: T = tau = 1 s.
  const GcraCaseRate one_per_s{1, s, 0};
  // 100/1s burst 99: T = 10 ms, tau = 1 s.
  const GcraCaseRate hundred_per_s{100, s, 99};
  using O = Outcome;
  using V = std::vector<std::int64_t>;
  // One case per line group: {name, rates, tats, cost, outcome, remaining, retry_after,
  // reset_after, rate_index, tats_after} (clang-format would put every field on its own line).
  // clang-format off
  static const std::vector<GcraCase> cases = {
      // new = now + 100; remaining = (500 - 100) / 100 = 4.
      {"fresh key, cost 1", {ten_per_s}, std::nullopt, 1, O::kAllowed, 4, 0, 100 * ms, 0,
       V{100 * ms}},
      // new = now + 1 s; new - tau = now: allowed; remaining = (1 s - 1 s) / 1 s = 0.
      {"burst 0: the first request passes", {one_per_s}, std::nullopt, 1, O::kAllowed, 0, 0, s, 0,
       V{s}},
      // new = now + 2 s; retry = 2 s - 1 s = 1 s; remaining = (1 s - 1 s) / 1 s = 0.
      {"burst 0: the second request waits one T", {one_per_s}, V{s}, 1, O::kDenied, 0, s, s, 0,
       V{s}},
      // new = now + 500 = now + tau: the last cell passes exactly on the boundary.
      {"new_tat - tau == now is allowed", {ten_per_s}, V{400 * ms}, 1, O::kAllowed, 0, 0, 500 * ms,
       0, V{500 * ms}},
      // new = now + 500 ms + 1 us: denied for 1 us; remaining = (500 - 400.001) / 100 -> 0.
      {"one microsecond past the boundary is denied", {ten_per_s}, V{400 * ms + us}, 1, O::kDenied,
       0, us, 400 * ms + us, 0, V{400 * ms + us}},
      // tat = now + tau (now == tat - tau): new = now + 600 ms, retry = T.
      {"now == tat - tau: a full T to wait", {ten_per_s}, V{500 * ms}, 1, O::kDenied, 0, 100 * ms,
       500 * ms, 0, V{500 * ms}},
      // A peek reports (500 - 0) / 100 = 5 and writes nothing.
      {"cost 0 peek on a fresh key", {ten_per_s}, std::nullopt, 0, O::kAllowed, 5, 0, 0, 0,
       std::nullopt},
      // (500 - 250) / 100 = 2.
      {"cost 0 peek on a busy key", {ten_per_s}, V{250 * ms}, 0, O::kAllowed, 2, 0, 250 * ms, 0,
       V{250 * ms}},
      // A TAT beyond tau (the clock stepped back): the peek still allows, with 0 remaining.
      {"cost 0 peek never denies", {ten_per_s}, V{700 * ms}, 0, O::kAllowed, 0, 0, 700 * ms, 0,
       V{700 * ms}},
      // 6 * 100 ms > 500 ms: can never pass; remaining 5 and reset 0 on a fresh key.
      {"cost above capacity on a fresh key", {ten_per_s}, std::nullopt, 6, O::kExceedsCapacity, 5,
       0, 0, 0, std::nullopt},
      {"cost above capacity on a busy key", {ten_per_s}, V{250 * ms}, 6, O::kExceedsCapacity, 2, 0,
       250 * ms, 0, V{250 * ms}},
      // cost * T overflows int64: still just "exceeds capacity".
      {"cost overflowing int64", {ten_per_s}, V{250 * ms}, kMax, O::kExceedsCapacity, 2, 0,
       250 * ms, 0, V{250 * ms}},
      // 5 * 100 ms == tau: the whole capacity at once.
      {"cost equal to capacity", {ten_per_s}, std::nullopt, 5, O::kAllowed, 0, 0, 500 * ms, 0,
       V{500 * ms}},
      // new = 250 + 300 = 550 ms; retry = 550 - 500 = 50 ms.
      {"cost 3 denied", {ten_per_s}, V{250 * ms}, 3, O::kDenied, 2, 50 * ms, 250 * ms, 0,
       V{250 * ms}},
      // A TAT in the past is the same as none.
      {"a past TAT is a fresh key", {ten_per_s}, V{-10 * s}, 1, O::kAllowed, 4, 0, 100 * ms, 0,
       V{100 * ms}},
      {"a past TAT reports reset 0 when nothing is written", {ten_per_s}, V{-10 * s}, 6,
       O::kExceedsCapacity, 5, 0, 0, 0, V{-10 * s}},
      // 1/1s burst 2 (tau 3 s), tat now + 1.5 s: (3 - 1.5) / 1 = 1.5 -> 1.
      {"remaining rounds down", {{1, s, 2}}, V{1500 * ms}, 0, O::kAllowed, 1, 0, 1500 * ms, 0,
       V{1500 * ms}},
      // 1M/1s burst 1M: T = 1 us, tau = 1,000,001 us; remaining = 1,000,000.
      {"a large burst", {{1'000'000, s, 1'000'000}}, std::nullopt, 1, O::kAllowed, 1'000'000, 0,
       us, 0, V{us}},
      // 1 per 50 years: T = tau = 1.5768e18 ns.
      {"a 50-year interval: the first request passes", {{1, fifty_years, 0}}, std::nullopt, 1,
       O::kAllowed, 0, 0, fifty_years, 0, V{fifty_years}},
      {"a 50-year interval: the second waits 50 years", {{1, fifty_years, 0}}, V{fifty_years}, 1,
       O::kDenied, 0, fifty_years, fifty_years, 0, V{fifty_years}},
      // 100/1s b99 (T 10 ms, tau 1 s) and 3/1m b0 (T = tau = 20 s). The per-minute rate denies:
      // new = 40 s, retry = 40 - 20 = 20 s; the per-second rate is not charged either.
      // remaining = min((1000 - 10) / 10, (20 - 20) / 20) = 0.
      {"several rates: one denies, nothing is charged", {hundred_per_s, {3, 60 * s, 0}},
       V{10 * ms, 20 * s}, 1, O::kDenied, 0, 20 * s, 20 * s, 1, V{10 * ms, 20 * s}},
      // Fresh: remaining 99 and 0; the rate with fewer remaining reports.
      {"several rates: the fewest remaining decides", {hundred_per_s, {3, 60 * s, 0}},
       std::nullopt, 1, O::kAllowed, 0, 0, 20 * s, 1, V{10 * ms, 20 * s}},
      // 2/1s b1 (T 500 ms, tau 1 s) and 1/1s b1 (T 1 s, tau 2 s): both leave 1; the one that
      // takes longer to recover (1 s) reports.
      {"several rates: a tie goes to the longer reset", {{2, s, 1}, {1, s, 1}}, std::nullopt, 1,
       O::kAllowed, 1, 0, s, 1, V{500 * ms, s}},
      // Waits 1 s and 10 s: the longest wait decides.
      {"several rates: the longest wait decides", {one_per_s, {1, 10 * s, 0}, hundred_per_s},
       V{s, 10 * s, 0}, 1, O::kDenied, 0, 10 * s, 10 * s, 1, V{s, 10 * s, 0}},
      // 4 * 1 s > 3 s for 1/1s b2: exceeds; remaining = min((1000 - 100) / 10, (3 - 1) / 1) = 2.
      {"several rates: one rate's capacity exceeded", {hundred_per_s, {1, s, 2}},
       V{100 * ms, s}, 4, O::kExceedsCapacity, 2, 0, s, 1, V{100 * ms, s}},
      {"several rates: a peek", {hundred_per_s, {1, s, 2}}, V{100 * ms, s}, 0, O::kAllowed, 2, 0,
       s, 1, V{100 * ms, s}},
      // 1 per 1.001 ms: reset 1001 us, so the key's PX is rounded up to 2 ms (one rate and
      // several rates store through different code in the script).
      {"a TTL that is not whole milliseconds", {{1, 1001 * us, 0}}, std::nullopt, 1,
       O::kAllowed, 0, 0, 1001 * us, 0, V{1001 * us}},
      {"a TTL that is not whole milliseconds, two rates",
       {{1, 1001 * us, 0}, {1'000'000, s, 1'000'000}}, std::nullopt, 1, O::kAllowed, 0, 0,
       1001 * us, 0, V{1001 * us, us}},
      // 10/1s b4, 100/1m b9 (T 600 ms, tau 6 s), 1000/1h b0 (T = tau = 3.6 s), TATs 200 ms,
      // 3 s and a past one: new = 300 ms, 3.6 s, 3.6 s; remaining (500-300)/100 = 2,
      // (6-3.6)/0.6 = 4, (3.6-3.6)/3.6 = 0: the hourly rate reports.
      {"three rates, all pass", {ten_per_s, {100, 60 * s, 9}, {1000, 3600 * s, 0}},
       V{200 * ms, 3 * s, -1 * s}, 1, O::kAllowed, 0, 0, 3600 * ms, 2,
       V{300 * ms, 3600 * ms, 3600 * ms}},
  };
  // clang-format on
  return cases;
}

}  // namespace pacer::testing
