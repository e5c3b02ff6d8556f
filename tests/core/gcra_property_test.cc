// Property tests of the GCRA step (pacer/gcra.h) with RapidCheck.
//
// Each property simulates one key on a fake integer timeline with random rates and random
// request sequences, and checks a consequence of DESIGN.md sections 2 and 3 that must hold for
// every input: the rate is never exceeded over any window, the documented numbers (remaining,
// retry_after) are exact, and nothing but an admitted request changes state.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "pacer/decision.h"
#include "pacer/gcra.h"
#include "pacer/rate.h"

namespace pacer {
namespace {

__extension__ typedef __int128 i128;  // exact window arithmetic

constexpr std::int64_t kT0 = 1'000'000'000'000;
constexpr std::int64_t kMaxInt64 = std::numeric_limits<std::int64_t>::max();

// One step of a simulated client: wait `gap` ns, then ask for `cost` permits.
struct Request {
  std::int64_t gap = 0;
  std::int64_t cost = 0;
};

// permits 1..1000, a usual period or an arbitrary one in ns (including ones that round T up
// and tiny T of a few ns), burst 0..50.
Rate GenRate() {
  using std::chrono::nanoseconds;
  const auto permits = *rc::gen::inRange<std::int64_t>(1, 1001);
  const auto period = *rc::gen::oneOf(
      rc::gen::element<std::int64_t>(nanoseconds(std::chrono::milliseconds(1)).count(),
                                     nanoseconds(std::chrono::seconds(1)).count(),
                                     nanoseconds(std::chrono::minutes(1)).count(),
                                     nanoseconds(std::chrono::hours(1)).count(),
                                     nanoseconds(std::chrono::hours(24)).count()),
      rc::gen::inRange<std::int64_t>(permits, 1'000'000'000'000),
      rc::gen::inRange<std::int64_t>(permits, 4 * permits));
  const auto burst = *rc::gen::inRange<std::int64_t>(0, 51);
  return Rate(permits, Nanos{period}, burst);
}

std::vector<Rate> GenRates(int max_rates) {
  const int n = *rc::gen::inRange(1, max_rates + 1);
  std::vector<Rate> rates;
  for (int i = 0; i < n; ++i) rates.push_back(GenRate());
  return rates;
}

// Gaps are drawn around the time scales of the rates (their T and tau) so that sequences mix
// bursts at one instant, near-T spacing, partial recovery and full recovery; costs cover 0
// (peeks), every cost up to just over capacity, and rarely costs whose product with T
// overflows int64 (kMaxInt64 / T + 1 is the smallest such cost when T > 1).
std::vector<Request> GenRequests(const std::vector<Rate>& rates, int max_count,
                                 bool allow_backwards = false) {
  std::vector<std::int64_t> scales;
  std::int64_t max_cost = 0;
  for (const Rate& r : rates) {
    scales.push_back(r.emission_interval().count());
    scales.push_back(r.tolerance().count());
    max_cost = std::max(max_cost, r.burst() + 2);
  }
  const std::int64_t t0 = rates.front().emission_interval().count();

  const int count = *rc::gen::inRange(1, max_count + 1);
  std::vector<Request> requests(static_cast<std::size_t>(count));
  for (Request& r : requests) {
    const std::int64_t scale = *rc::gen::elementOf(scales);
    r.gap = *rc::gen::weightedOneOf<std::int64_t>({
        {4, rc::gen::just<std::int64_t>(0)},
        {2, rc::gen::just(scale)},
        {4, rc::gen::inRange<std::int64_t>(0, scale + 1)},
        {2, rc::gen::inRange<std::int64_t>(std::max<std::int64_t>(0, scale - 2), scale + 3)},
        {1, rc::gen::inRange<std::int64_t>(0, 3 * scale + 1)},
    });
    if (allow_backwards && *rc::gen::inRange(0, 10) == 0)
      r.gap = -*rc::gen::inRange<std::int64_t>(1, scale + 1);
    r.cost = *rc::gen::weightedOneOf<std::int64_t>({
        {20, rc::gen::inRange<std::int64_t>(0, max_cost + 1)},
        {1, rc::gen::element(kMaxInt64, kMaxInt64 / t0 + (t0 > 1 ? 1 : 0))},
    });
  }
  return requests;
}

Decision StepOne(const Rate& rate, std::int64_t& tat, std::int64_t now, std::int64_t cost) {
  return gcra_step(std::span<const Rate>(&rate, 1), std::span<std::int64_t>(&tat, 1), now, cost);
}

// Number of cost-1 requests admitted at `now` one after another, on a copy of the state.
// Capped so that a broken step cannot loop forever; the cap is above any burst + 1 generated.
std::int64_t CountAdmittedNow(const std::vector<Rate>& rates, std::vector<std::int64_t> tats,
                              std::int64_t now) {
  constexpr std::int64_t kCap = 1000;
  std::int64_t admitted = 0;
  while (admitted < kCap && gcra_step(rates, tats, now, 1).allowed()) ++admitted;
  return admitted;
}

// ---------------------------------------------------------------------------------------------
// 1. The configured rate is never exceeded: over every window [a, b] between request times the
//    admitted cost is at most permits * (b - a) / period + burst + 1.

RC_GTEST_PROP(GcraProperty, AdmittedCostNeverExceedsRateOverAnyWindow, ()) {
  const Rate rate = GenRate();
  const std::vector<Request> requests = GenRequests({rate}, 100);

  std::vector<std::int64_t> times;
  std::vector<i128> admitted_prefix{0};  // admitted cost of requests [0, i)
  std::int64_t tat = kT0;
  std::int64_t now = kT0;
  for (const Request& r : requests) {
    now += r.gap;
    const Decision d = StepOne(rate, tat, now, r.cost);
    times.push_back(now);
    admitted_prefix.push_back(admitted_prefix.back() + (d.allowed() ? r.cost : 0));
  }

  // Windows start at the first request of a timestamp and end at the last one of a timestamp,
  // so every request at either end is inside.
  const i128 period = rate.period().count();
  const i128 slack = i128{rate.burst() + 1} * period;
  const std::size_t n = times.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0 && times[i] == times[i - 1]) continue;
    for (std::size_t j = i; j < n; ++j) {
      if (j + 1 < n && times[j + 1] == times[j]) continue;
      const i128 admitted = admitted_prefix[j + 1] - admitted_prefix[i];
      const i128 allowance = i128{rate.permits()} * (times[j] - times[i]) + slack;
      if (admitted * period > allowance) {
        RC_FAIL("window [" + std::to_string(times[i]) + ", " + std::to_string(times[j]) +
                "] admitted " + std::to_string(static_cast<std::int64_t>(admitted)) + " for " +
                rate.to_string());
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 2. A client that sends cost-1 requests exactly T apart never gets denied, starting from a
//    fresh key or from any state after waiting at least tau.

RC_GTEST_PROP(GcraProperty, RequestsSpacedExactlyTAreNeverDenied, ()) {
  const Rate rate = GenRate();
  const std::int64_t t = rate.emission_interval().count();
  const std::int64_t tau = rate.tolerance().count();

  std::int64_t tat = kT0;
  std::int64_t now = kT0;
  if (*rc::gen::arbitrary<bool>()) {
    // Warm up with arbitrary traffic, then stay idle for tau or longer.
    for (const Request& r : GenRequests({rate}, 30)) {
      now += r.gap;
      StepOne(rate, tat, now, r.cost);
    }
    now += tau + *rc::gen::inRange<std::int64_t>(0, 2 * t + 1);
  }

  const int count = *rc::gen::inRange(1, 300);
  for (int k = 0; k < count; ++k) {
    const Decision d = StepOne(rate, tat, now, 1);
    RC_ASSERT(to_string(d.outcome) == to_string(Outcome::kAllowed));
    // The key stays one T ahead of now, so exactly the burst is left every time.
    RC_ASSERT(d.remaining == rate.burst());
    RC_ASSERT(tat == now + t);
    now += t;
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Only an admitted request with cost > 0 writes: denials, capacity rejections and peeks
//    leave every TAT byte-identical. Also checks the per-outcome invariants of Decision, with
//    occasional backward clock steps.

RC_GTEST_PROP(GcraProperty, OnlyAdmittedCostlyRequestsChangeState, ()) {
  const std::vector<Rate> rates = GenRates(4);
  const std::vector<Request> requests = GenRequests(rates, 100, /*allow_backwards=*/true);

  std::vector<std::int64_t> tats(rates.size(), kT0);
  std::int64_t now = kT0;
  for (const Request& r : requests) {
    now += r.gap;
    const std::vector<std::int64_t> before = tats;
    const Decision d = gcra_step(rates, tats, now, r.cost);

    if (!d.allowed() || r.cost == 0) RC_ASSERT(tats == before);
    switch (d.outcome) {
      case Outcome::kAllowed:
        RC_ASSERT(d.retry_after == Nanos{0});
        break;
      case Outcome::kDenied:
        RC_ASSERT(d.retry_after > Nanos{0});
        break;
      case Outcome::kExceedsCapacity:
        RC_ASSERT(d.retry_after == Nanos{0});
        break;
      case Outcome::kUnavailable:
        RC_FAIL("the pure GCRA step never reports unavailable");
    }
    RC_ASSERT(d.remaining >= 0);
    RC_ASSERT(d.reset_after >= Nanos{0});
    RC_ASSERT(d.rate_index < rates.size());
    RC_ASSERT(d.limit == rates[d.rate_index].permits());
    RC_ASSERT(!d.degraded);
  }
}

// ---------------------------------------------------------------------------------------------
// 4. A policy of several rates is all-or-nothing and agrees with each rate evaluated alone.

RC_GTEST_PROP(GcraProperty, MultiRateStepAgreesWithEachRateAlone, ()) {
  const std::vector<Rate> rates = GenRates(4);
  const std::vector<Request> requests = GenRequests(rates, 80);
  const std::size_t n = rates.size();

  std::vector<std::int64_t> tats(n, kT0);
  std::int64_t now = kT0;
  for (const Request& r : requests) {
    now += r.gap;

    std::vector<Decision> alone(n);
    std::vector<Decision> peeks(n);
    std::vector<std::int64_t> alone_tats = tats;
    for (std::size_t i = 0; i < n; ++i) {
      std::int64_t peek_tat = tats[i];
      peeks[i] = StepOne(rates[i], peek_tat, now, 0);
      alone[i] = StepOne(rates[i], alone_tats[i], now, r.cost);
    }
    const std::vector<std::int64_t> before = tats;
    const Decision d = gcra_step(rates, tats, now, r.cost);

    const bool any_exceeds = std::any_of(alone.begin(), alone.end(), [](const Decision& a) {
      return a.outcome == Outcome::kExceedsCapacity;
    });
    const bool all_allow =
        std::all_of(alone.begin(), alone.end(), [](const Decision& a) { return a.allowed(); });

    if (any_exceeds) {
      // Can never pass, whatever the other rates say.
      RC_ASSERT(to_string(d.outcome) == to_string(Outcome::kExceedsCapacity));
      RC_ASSERT(to_string(alone[d.rate_index].outcome) == to_string(Outcome::kExceedsCapacity));
      RC_ASSERT(d.retry_after == Nanos{0});
    } else if (all_allow) {
      RC_ASSERT(to_string(d.outcome) == to_string(Outcome::kAllowed));
      // Every rate moves exactly as it would alone (peeks move nothing).
      RC_ASSERT(tats == (r.cost > 0 ? alone_tats : before));
      std::int64_t min_remaining = kMaxInt64;
      for (const Decision& a : alone) min_remaining = std::min(min_remaining, a.remaining);
      RC_ASSERT(d.remaining == min_remaining);
      // Reported by a rate with the fewest remaining, with that rate's numbers.
      RC_ASSERT(alone[d.rate_index].remaining == min_remaining);
      RC_ASSERT(d.reset_after == alone[d.rate_index].reset_after);
    } else {
      RC_ASSERT(to_string(d.outcome) == to_string(Outcome::kDenied));
      RC_ASSERT(tats == before);
      Nanos longest{0};
      for (const Decision& a : alone)
        if (a.outcome == Outcome::kDenied) longest = std::max(longest, a.retry_after);
      RC_ASSERT(d.retry_after == longest);
      // Reported by a denying rate with the longest wait, with that rate's reset_after.
      RC_ASSERT(to_string(alone[d.rate_index].outcome) == to_string(Outcome::kDenied));
      RC_ASSERT(alone[d.rate_index].retry_after == longest);
      RC_ASSERT(d.reset_after == alone[d.rate_index].reset_after);
    }
    RC_ASSERT(d.limit == rates[d.rate_index].permits());
    if (!d.allowed()) {
      // Nothing consumed: remaining is the current capacity, the minimum over the rates.
      std::int64_t min_now = kMaxInt64;
      for (const Decision& p : peeks) min_now = std::min(min_now, p.remaining);
      RC_ASSERT(d.remaining == min_now);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 5. remaining is exact: it equals the number of further cost-1 requests that are admitted at
//    the same instant (after this request if it was admitted, else from the unchanged state).

RC_GTEST_PROP(GcraProperty, RemainingEqualsFurtherCostOneAdmissionsNow, ()) {
  const std::vector<Rate> rates = GenRates(3);
  const std::vector<Request> requests = GenRequests(rates, 60);

  std::vector<std::int64_t> tats(rates.size(), kT0);
  std::int64_t now = kT0;
  for (const Request& r : requests) {
    now += r.gap;
    const Decision d = gcra_step(rates, tats, now, r.cost);
    RC_ASSERT(d.remaining == CountAdmittedNow(rates, tats, now));
  }
}

// ---------------------------------------------------------------------------------------------
// 6. retry_after is exact: the same request one nanosecond earlier is still denied (with 1 ns
//    left), and exactly at now + retry_after it is admitted.

RC_GTEST_PROP(GcraProperty, RetryAfterIsExact, ()) {
  const std::vector<Rate> rates = GenRates(3);
  const std::vector<Request> requests = GenRequests(rates, 60);

  std::vector<std::int64_t> tats(rates.size(), kT0);
  std::int64_t now = kT0;
  for (const Request& r : requests) {
    now += r.gap;
    const Decision d = gcra_step(rates, tats, now, r.cost);
    if (d.outcome != Outcome::kDenied) continue;
    const std::int64_t retry = d.retry_after.count();
    RC_ASSERT(retry > 0);

    std::vector<std::int64_t> early = tats;
    const Decision too_early = gcra_step(rates, early, now + retry - 1, r.cost);
    RC_ASSERT(to_string(too_early.outcome) == to_string(Outcome::kDenied));
    RC_ASSERT(too_early.retry_after == Nanos{1});

    std::vector<std::int64_t> on_time = tats;
    RC_ASSERT(gcra_step(rates, on_time, now + retry, r.cost).allowed());
  }
}

// ---------------------------------------------------------------------------------------------
// 7. reset_after is exact for a single rate: after waiting it out, the key is back to full
//    capacity (burst + 1), and one nanosecond earlier it is not.

RC_GTEST_PROP(GcraProperty, ResetAfterRestoresFullCapacity, ()) {
  const Rate rate = GenRate();
  const std::vector<Request> requests = GenRequests({rate}, 60);

  std::int64_t tat = kT0;
  std::int64_t now = kT0;
  for (const Request& r : requests) {
    now += r.gap;
    const Decision d = StepOne(rate, tat, now, r.cost);
    const std::int64_t reset = d.reset_after.count();
    std::int64_t copy = tat;
    RC_ASSERT(StepOne(rate, copy, now + reset, 0).remaining == rate.burst() + 1);
    if (reset > 0) {
      // Capacity comes back in whole T steps, so one ns before the reset it is one short.
      RC_ASSERT(StepOne(rate, copy, now + reset - 1, 0).remaining == rate.burst());
    }
  }
}

}  // namespace
}  // namespace pacer
