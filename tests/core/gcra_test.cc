// Unit tests of the GCRA step (pacer/gcra.h) on a fake timeline: `now` is just an integer.
//
// Every expected number is worked out by hand from DESIGN.md section 2:
//   new_tat = max(tat, now) + n*T; allowed iff new_tat - tau <= now
//   allowed:  remaining = floor((tau - (new_tat - now)) / T)
//   denied:   retry_after = new_tat - tau - now;
//             remaining = floor((tau - (max(tat, now) - now)) / T)
//   reset_after = stored tat - now (>= 0)
// and section 3 for policies of several rates (all-or-nothing, min/max reporting).
#include "pacer/gcra.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <vector>

#include "pacer/decision.h"
#include "pacer/rate.h"

namespace pacer {
namespace {

using namespace std::chrono_literals;

// Far from zero so that "tat = 0" (a missing key) and "tat = now" are distinguishable, and so
// that stepping the clock back stays positive.
constexpr std::int64_t kT0 = 1'000'000'000'000;

constexpr std::int64_t Ns(Nanos d) { return d.count(); }

// One rate, one TAT.
Decision Step(const Rate& rate, std::int64_t& tat, std::int64_t now, std::int64_t cost = 1) {
  return gcra_step(std::span<const Rate>(&rate, 1), std::span<std::int64_t>(&tat, 1), now, cost);
}

Decision Step(const std::vector<Rate>& rates, std::vector<std::int64_t>& tats, std::int64_t now,
              std::int64_t cost = 1) {
  return gcra_step(rates, tats, now, cost);
}

// 10 per minute with burst 5: T = 6 s, tau = 36 s, 6 requests pass at once.
const Rate kTenPerMinuteBurstFive(10, 1min, 5);
constexpr std::int64_t kT = 6'000'000'000;
constexpr std::int64_t kTau = 36'000'000'000;

// ---------------------------------------------------------------------------------------------
// Single rate: fresh key, burst, steady state

TEST(GcraTest, FirstRequestOnFreshKeyIsAllowedWithFullBurstLeft) {
  std::int64_t tat = kT0;  // missing key = now
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_TRUE(d.allowed());
  // floor((36 - 6) / 6) = 5 further requests.
  EXPECT_EQ(d.remaining, 5);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.reset_after, Nanos{kT});
  EXPECT_EQ(d.rate_index, 0);
  EXPECT_FALSE(d.degraded);
  EXPECT_EQ(tat, kT0 + kT);
}

TEST(GcraTest, MissingKeyAndExpiredTatBehaveExactlyLikeTatEqualToNow) {
  // DESIGN.md: a TAT <= now carries no information, same as a missing key.
  for (const std::int64_t stale : {std::int64_t{0}, kT0 - 1, kT0 - kTau, kT0}) {
    SCOPED_TRACE(stale);
    std::int64_t tat = stale;
    const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 2);
    EXPECT_EQ(d.outcome, Outcome::kAllowed);
    EXPECT_EQ(d.remaining, 4);  // floor((36 - 12) / 6)
    EXPECT_EQ(d.reset_after, Nanos{2 * kT});
    EXPECT_EQ(tat, kT0 + 2 * kT);
  }
}

TEST(GcraTest, ExactlyBurstPlusOnePassAtOnceWithExactRemaining) {
  std::int64_t tat = kT0;
  for (std::int64_t i = 1; i <= 6; ++i) {
    SCOPED_TRACE(i);
    const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0);
    ASSERT_EQ(d.outcome, Outcome::kAllowed);
    EXPECT_EQ(d.remaining, 6 - i);
    EXPECT_EQ(d.reset_after, Nanos{i * kT});
    EXPECT_EQ(tat, kT0 + i * kT);
  }
  // The 7th at the same instant: new_tat = now + 42 s, 42 - 36 = 6 s to wait, i.e. exactly T.
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(d.retry_after, Nanos{kT});
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.reset_after, Nanos{kTau});
  EXPECT_EQ(tat, kT0 + kTau);
}

TEST(GcraTest, AfterBurstExactlyOneRequestPassesPerEmissionInterval) {
  std::int64_t tat = kT0;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0).allowed());

  for (std::int64_t k = 1; k <= 5; ++k) {
    SCOPED_TRACE(k);
    const std::int64_t now = kT0 + k * kT;
    // One nanosecond early is still too early.
    const Decision early = Step(kTenPerMinuteBurstFive, tat, now - 1);
    EXPECT_EQ(early.outcome, Outcome::kDenied);
    EXPECT_EQ(early.retry_after, Nanos{1});

    const Decision on_time = Step(kTenPerMinuteBurstFive, tat, now);
    EXPECT_EQ(on_time.outcome, Outcome::kAllowed);
    EXPECT_EQ(on_time.remaining, 0);
    EXPECT_EQ(on_time.reset_after, Nanos{kTau});
    EXPECT_EQ(tat, now + kTau);

    // Exactly one: the next one at the same instant waits a full T again.
    const Decision again = Step(kTenPerMinuteBurstFive, tat, now);
    EXPECT_EQ(again.outcome, Outcome::kDenied);
    EXPECT_EQ(again.retry_after, Nanos{kT});
  }
}

TEST(GcraTest, DeniedRequestWritesNothing) {
  std::int64_t tat = kT0;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0).allowed());
  const std::int64_t before = tat;
  for (int i = 0; i < 3; ++i) {
    // Repeated denials must not push the TAT further out (no penalty for retrying).
    EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, kT0 + 1'000'000'000).outcome, Outcome::kDenied);
    EXPECT_EQ(tat, before);
  }
  // And the retry time does not grow either: at kT0 + 1 s the wait is 6 - 1 = 5 s.
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, kT0 + 1'000'000'000).retry_after, 5s);
}

// ---------------------------------------------------------------------------------------------
// Idle recovery

TEST(GcraTest, KeyIsFullyFreshAfterIdlingForTau) {
  std::int64_t tat = kT0;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0).allowed());
  const std::int64_t later = kT0 + kTau;

  const Decision peek = Step(kTenPerMinuteBurstFive, tat, later, 0);
  EXPECT_EQ(peek.remaining, 6);  // the full burst + 1
  EXPECT_EQ(peek.reset_after, Nanos{0});

  for (std::int64_t i = 1; i <= 6; ++i) {
    const Decision d = Step(kTenPerMinuteBurstFive, tat, later);
    ASSERT_EQ(d.outcome, Outcome::kAllowed);
    EXPECT_EQ(d.remaining, 6 - i);
  }
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, later).outcome, Outcome::kDenied);
}

TEST(GcraTest, PartialIdleRecoversWholeEmissionIntervalsOnly) {
  std::int64_t tat = kT0;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0).allowed());
  // 13 s later: tat - now = 23 s used, 13 s of tolerance left -> floor(13 / 6) = 2.
  const std::int64_t now = kT0 + 13'000'000'000;

  const Decision peek = Step(kTenPerMinuteBurstFive, tat, now, 0);
  EXPECT_EQ(peek.outcome, Outcome::kAllowed);
  EXPECT_EQ(peek.remaining, 2);
  EXPECT_EQ(peek.reset_after, 23s);

  // new_tat = 36 + 6 = 42 s, 42 - 36 = 6 <= 13: allowed, remaining floor((36 - 29) / 6) = 1.
  Decision d = Step(kTenPerMinuteBurstFive, tat, now);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 1);
  EXPECT_EQ(d.reset_after, 29s);
  // new_tat = 48 s, 12 <= 13: allowed, remaining floor((36 - 35) / 6) = 0.
  d = Step(kTenPerMinuteBurstFive, tat, now);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.reset_after, 35s);
  // new_tat = 54 s, 18 - 13 = 5 s to wait.
  d = Step(kTenPerMinuteBurstFive, tat, now);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 5s);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.reset_after, 35s);
  EXPECT_EQ(tat, kT0 + 48'000'000'000);
}

// ---------------------------------------------------------------------------------------------
// Cost > 1

TEST(GcraTest, CostThreeOnFreshKeyLeavesThree) {
  std::int64_t tat = kT0;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 3);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 3);  // floor((36 - 18) / 6)
  EXPECT_EQ(d.reset_after, 18s);
  EXPECT_EQ(tat, kT0 + 18'000'000'000);
}

TEST(GcraTest, CostOfWholeCapacityPassesOnFreshKey) {
  // n*T = 6 * 6 s = 36 s = tau: exactly at capacity, allowed.
  std::int64_t tat = kT0;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 6);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.reset_after, Nanos{kTau});
  EXPECT_EQ(tat, kT0 + kTau);
}

TEST(GcraTest, CostAboveCapacityIsRejectedEvenOnFreshKeyAndWritesNothing) {
  // n*T = 7 * 6 s = 42 s > tau: can never pass; no retry time (no endless retry loop).
  std::int64_t tat = kT0;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 7);
  EXPECT_EQ(d.outcome, Outcome::kExceedsCapacity);
  EXPECT_FALSE(d.allowed());
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.remaining, 6);  // nothing was consumed
  EXPECT_EQ(d.reset_after, Nanos{0});
  EXPECT_EQ(tat, kT0);
}

TEST(GcraTest, CostAboveCapacityIsRejectedOnPartlyUsedKey) {
  std::int64_t tat = kT0;
  ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0, 2).allowed());
  const std::int64_t before = tat;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 7);
  EXPECT_EQ(d.outcome, Outcome::kExceedsCapacity);
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.remaining, 4);
  EXPECT_EQ(d.reset_after, 12s);
  EXPECT_EQ(tat, before);
}

TEST(GcraTest, CostWithinCapacityButOverRemainingIsDeniedWithExactRetry) {
  std::int64_t tat = kT0;
  ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0, 4).allowed());  // tat = +24 s
  // cost 3: new_tat = 24 + 18 = 42 s, 42 - 36 = 6 s to wait.
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 3);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 6s);
  EXPECT_EQ(d.remaining, 2);  // floor((36 - 24) / 6): two cost-1 requests would still pass
  EXPECT_EQ(tat, kT0 + 24'000'000'000);
}

TEST(GcraTest, CostWhoseProductWithEmissionIntervalOverflowsExceedsCapacity) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  // kMax / T + 1 is the smallest cost with cost * T > int64 max.
  for (const std::int64_t cost : {kMax / kT + 1, kMax / 2, kMax}) {
    SCOPED_TRACE(cost);
    std::int64_t tat = kT0;
    const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, cost);
    EXPECT_EQ(d.outcome, Outcome::kExceedsCapacity);
    EXPECT_EQ(d.retry_after, Nanos{0});
    EXPECT_EQ(tat, kT0);
  }
  // Also with the finest rate (T = 1 ns) where cost * T never overflows but is still > tau.
  const Rate finest(1'000'000'000, 1s);
  std::int64_t tat = kT0;
  EXPECT_EQ(Step(finest, tat, kT0, kMax).outcome, Outcome::kExceedsCapacity);
  EXPECT_EQ(tat, kT0);
}

// ---------------------------------------------------------------------------------------------
// Peek (cost 0)

TEST(GcraTest, PeekOnFreshKeyReportsFullCapacityAndWritesNothing) {
  std::int64_t tat = kT0;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 6);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.reset_after, Nanos{0});
  EXPECT_EQ(tat, kT0);

  // A missing key stored as 0 must not be rewritten to `now` by a peek either.
  std::int64_t missing = 0;
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, missing, kT0, 0).remaining, 6);
  EXPECT_EQ(missing, 0);
}

TEST(GcraTest, PeekReportsStateWithoutConsuming) {
  std::int64_t tat = kT0;
  ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0, 2).allowed());
  const std::int64_t before = tat;
  for (int i = 0; i < 3; ++i) {
    const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0 + 1'000'000'000, 0);
    EXPECT_EQ(d.outcome, Outcome::kAllowed);
    // 12 - 1 = 11 s used, 25 s left -> floor(25 / 6) = 4.
    EXPECT_EQ(d.remaining, 4);
    EXPECT_EQ(d.reset_after, 11s);
    EXPECT_EQ(tat, before);
  }
}

TEST(GcraTest, PeekOnExhaustedKeyIsAllowedWithNothingRemaining) {
  std::int64_t tat = kT0;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0).allowed());
  const std::int64_t before = tat;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, kT0, 0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.reset_after, Nanos{kTau});
  EXPECT_EQ(tat, before);
}

// ---------------------------------------------------------------------------------------------
// reset_after

TEST(GcraTest, ResetAfterIsStoredTatMinusNowAndNeverNegative) {
  std::int64_t tat = kT0;
  ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0, 3).allowed());  // tat = +18 s
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, kT0 + 5'000'000'000, 0).reset_after, 13s);
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, kT0 + 18'000'000'000, 0).reset_after, Nanos{0});
  // Long after the TAT has passed: 0, not negative.
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, kT0 + 100'000'000'000, 0).reset_after, Nanos{0});
  // A request after expiry starts from now: reset_after = T.
  EXPECT_EQ(Step(kTenPerMinuteBurstFive, tat, kT0 + 100'000'000'000).reset_after, Nanos{kT});
}

TEST(GcraTest, ClockSteppingBackwardsNeverReportsNegativeNumbers) {
  std::int64_t tat = kT0;
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(Step(kTenPerMinuteBurstFive, tat, kT0).allowed());
  const std::int64_t before = tat;  // kT0 + 36 s
  // The clock goes back 10 s: tat - now = 46 s > tau.
  const std::int64_t now = kT0 - 10'000'000'000;
  const Decision d = Step(kTenPerMinuteBurstFive, tat, now);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.remaining, 0);
  // new_tat = 36 + 6 = 42 s after kT0, i.e. 52 s after now; 52 - 36 = 16 s.
  EXPECT_EQ(d.retry_after, 16s);
  EXPECT_EQ(d.reset_after, 46s);
  EXPECT_EQ(tat, before);

  const Decision peek = Step(kTenPerMinuteBurstFive, tat, now, 0);
  EXPECT_EQ(peek.remaining, 0);
  EXPECT_GE(peek.retry_after, Nanos{0});
  EXPECT_EQ(peek.reset_after, 46s);
  EXPECT_EQ(tat, before);
}

// ---------------------------------------------------------------------------------------------
// Extreme rates

TEST(GcraTest, HundredThousandPerSecondAdmitsEveryRequestSpacedExactlyT) {
  const Rate rate(100'000, 1s);  // T = tau = 10 us
  constexpr std::int64_t kStep = 10'000;
  std::int64_t tat = kT0;
  for (std::int64_t i = 0; i < 100'000; ++i) {
    const Decision d = Step(rate, tat, kT0 + i * kStep);
    ASSERT_EQ(d.outcome, Outcome::kAllowed) << "request " << i;
    ASSERT_EQ(d.remaining, 0);
  }
  // One extra at the same instant as the last: must wait exactly T.
  const Decision extra = Step(rate, tat, kT0 + 99'999 * kStep);
  EXPECT_EQ(extra.outcome, Outcome::kDenied);
  EXPECT_EQ(extra.retry_after, Nanos{kStep});
  EXPECT_EQ(tat, kT0 + 100'000 * kStep);
}

TEST(GcraTest, HundredThousandPerSecondAdmitsExactlyThatManyUnderOneMicrosecondHammering) {
  // A client asking every microsecond for one second gets exactly 100000 admissions: those at
  // kT0 + k * 10 us for k = 0..99999.
  const Rate rate(100'000, 1s);
  std::int64_t tat = kT0;
  std::int64_t admitted = 0;
  std::int64_t off_grid = 0;     // admissions that are not on the 10 us grid
  std::int64_t wrong_retry = 0;  // denials whose retry_after does not point at the next grid
  for (std::int64_t t = kT0; t < kT0 + 1'000'000'000; t += 1'000) {
    const Decision d = Step(rate, tat, t);
    if (d.allowed()) {
      ++admitted;
      if ((t - kT0) % 10'000 != 0) ++off_grid;
    } else if (d.retry_after.count() != 10'000 - (t - kT0) % 10'000) {
      ++wrong_retry;
    }
  }
  EXPECT_EQ(off_grid, 0);
  EXPECT_EQ(wrong_retry, 0);
  EXPECT_EQ(admitted, 100'000);
}

TEST(GcraTest, HundredThousandPerSecondWithBurstOneAdmitsTwoAtOnce) {
  const Rate rate(100'000, 1s, 1);  // T = 10 us, tau = 20 us
  std::int64_t tat = kT0;
  EXPECT_EQ(Step(rate, tat, kT0).remaining, 1);
  EXPECT_EQ(Step(rate, tat, kT0).remaining, 0);
  const Decision d = Step(rate, tat, kT0);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 10us);
}

TEST(GcraTest, OnePerDaySecondRequestWaitsTheRestOfTheDay) {
  const Rate rate(1, 24h);
  std::int64_t tat = kT0;
  const Decision first = Step(rate, tat, kT0);
  EXPECT_EQ(first.outcome, Outcome::kAllowed);
  EXPECT_EQ(first.remaining, 0);
  EXPECT_EQ(first.reset_after, 24h);

  const Decision second = Step(rate, tat, kT0 + 5'000'000'000);
  EXPECT_EQ(second.outcome, Outcome::kDenied);
  EXPECT_EQ(second.retry_after, Nanos{86'400'000'000'000 - 5'000'000'000});
  EXPECT_EQ(second.limit, 1);

  // A nanosecond before the day is over: still 1 ns to wait; at the day mark: allowed.
  EXPECT_EQ(Step(rate, tat, kT0 + 86'400'000'000'000 - 1).retry_after, Nanos{1});
  EXPECT_TRUE(Step(rate, tat, kT0 + 86'400'000'000'000).allowed());
}

TEST(GcraTest, RoundedUpEmissionIntervalNeverAdmitsMoreThanTheRate) {
  // 3/1s: T = 333333334 ns. Over [kT0, kT0 + 1 s] a client hammering every millisecond gets
  // the burst (1) plus floor(1e9 / 333333334) = 2 more, i.e. 3 admissions at 0, T, 2T; the
  // fourth only at 3T = 1000000002, just after the one-second window.
  const Rate rate(3, 1s);
  // Every millisecond, plus the grid points of the true T and of a floored T (333333333) so
  // that the rounding direction is what decides.
  std::vector<std::int64_t> times;
  for (std::int64_t t = 0; t <= 1'000'000'000; t += 1'000'000) times.push_back(t);
  for (const std::int64_t t : std::initializer_list<std::int64_t>{
           333'333'333, 333'333'334, 666'666'666, 666'666'668, 999'999'999, 1'000'000'002})
    times.push_back(t);
  std::sort(times.begin(), times.end());
  std::int64_t tat = kT0;
  std::vector<std::int64_t> admitted_at;
  for (const std::int64_t t : times)
    if (Step(rate, tat, kT0 + t).allowed()) admitted_at.push_back(t);
  EXPECT_EQ(admitted_at, (std::vector<std::int64_t>{0, 333'333'334, 666'666'668, 1'000'000'002}));
}

// ---------------------------------------------------------------------------------------------
// Multi-rate policies

TEST(GcraMultiRateTest, AllowedReportsTheRateWithFewestRemaining) {
  // Rate 0: 10/1s burst 4 -> T = 100 ms, tau = 500 ms.
  // Rate 1: 20/1m burst 1 -> T = 3 s, tau = 6 s.
  const std::vector<Rate> rates{Rate(10, 1s, 4), Rate(20, 1min, 1)};
  std::vector<std::int64_t> tats{kT0, kT0};

  Decision d = Step(rates, tats, kT0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  // Rate 0: floor(400 / 100) = 4; rate 1: floor(3 / 3) = 1. The minimum comes from rate 1.
  EXPECT_EQ(d.remaining, 1);
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.limit, 20);
  EXPECT_EQ(d.reset_after, 3s);
  EXPECT_EQ(tats, (std::vector<std::int64_t>{kT0 + 100'000'000, kT0 + 3'000'000'000}));

  d = Step(rates, tats, kT0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 0);  // rate 0 has 3 left, rate 1 none
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.limit, 20);
  EXPECT_EQ(d.reset_after, 6s);
}

TEST(GcraMultiRateTest, AllowedReportsTheFirstListedRateWhenItHasFewestRemaining) {
  // Rate 0: 10/1s burst 0 -> T = tau = 100 ms. Rate 1: 20/1m burst 5 -> T = 3 s, tau = 18 s.
  const std::vector<Rate> rates{Rate(10, 1s), Rate(20, 1min, 5)};
  std::vector<std::int64_t> tats{kT0, kT0};
  const Decision d = Step(rates, tats, kT0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 0);  // rate 0: 0, rate 1: floor(15 / 3) = 5
  EXPECT_EQ(d.rate_index, 0);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.reset_after, 100ms);
}

TEST(GcraMultiRateTest, TieInRemainingIsReportedByTheRateThatTakesLongerToReset) {
  // DESIGN.md names "the rate with the fewest remaining" and defines reset_after as the time
  // until the key is back to full capacity; on a tie the rate that recovers last is the
  // truthful one to report (gcra.cc documents this tie-break).
  // Rate 0: 10/1s -> T = tau = 100 ms. Rate 1: 20/1m -> T = tau = 3 s. Both have 0 left.
  const std::vector<Rate> rates{Rate(10, 1s), Rate(20, 1min)};
  std::vector<std::int64_t> tats{kT0, kT0};
  const Decision d = Step(rates, tats, kT0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.limit, 20);
  EXPECT_EQ(d.reset_after, 3s);
}

TEST(GcraMultiRateTest, DenialByOneRateChangesNoRate) {
  // Same policy: the second request at the same instant is denied by rate 0 only.
  const std::vector<Rate> rates{Rate(10, 1s), Rate(20, 1min, 5)};
  std::vector<std::int64_t> tats{kT0, kT0};
  ASSERT_TRUE(Step(rates, tats, kT0).allowed());
  const std::vector<std::int64_t> before = tats;

  const Decision d = Step(rates, tats, kT0 + 40'000'000);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  // Rate 0: new_tat = 200 ms, 200 - 100 - 40 = 60 ms.
  EXPECT_EQ(d.retry_after, 60ms);
  EXPECT_EQ(d.rate_index, 0);
  EXPECT_EQ(d.limit, 10);
  EXPECT_EQ(d.reset_after, 60ms);  // rate 0's stored tat (100 ms) - now (40 ms)
  EXPECT_EQ(d.remaining, 0);
  // Rate 1 would have admitted, but all-or-nothing: its TAT is untouched too.
  EXPECT_EQ(tats, before);

  // After the retry time both rates move together.
  const Decision later = Step(rates, tats, kT0 + 100'000'000);
  EXPECT_EQ(later.outcome, Outcome::kAllowed);
  EXPECT_EQ(tats, (std::vector<std::int64_t>{kT0 + 200'000'000, kT0 + 6'000'000'000}));
  // Rate 1: 18 - (6 - 0.1) = 12.1 s left -> floor(12.1 / 3) = 4; rate 0 has 0.
  EXPECT_EQ(later.remaining, 0);
  EXPECT_EQ(later.rate_index, 0);
}

TEST(GcraMultiRateTest, SeveralDenialsReportTheLongestWait) {
  // Rate 0: 2/1s -> T = tau = 500 ms. Rate 1: 1/1s -> T = tau = 1 s.
  // Rate 2: 100/1s burst 1000 -> generous, never denies here.
  const std::vector<Rate> rates{Rate(2, 1s), Rate(1, 1s), Rate(100, 1s, 1000)};
  std::vector<std::int64_t> tats{kT0, kT0, kT0};
  ASSERT_TRUE(Step(rates, tats, kT0).allowed());
  const std::vector<std::int64_t> before = tats;

  // Rate 0 waits 500 ms, rate 1 waits 1 s: report rate 1.
  Decision d = Step(rates, tats, kT0);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.limit, 1);
  EXPECT_EQ(d.reset_after, 1s);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(tats, before);

  // At 600 ms rate 0 admits (its tat 500 ms has passed) but rate 1 still waits 400 ms.
  d = Step(rates, tats, kT0 + 600'000'000);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 400ms);
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.reset_after, 400ms);
  EXPECT_EQ(tats, before);

  // At 1 s everything admits.
  d = Step(rates, tats, kT0 + 1'000'000'000);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(tats, (std::vector<std::int64_t>{kT0 + 1'500'000'000, kT0 + 2'000'000'000,
                                             kT0 + 1'010'000'000}));
}

TEST(GcraMultiRateTest, LongestWaitWinsRegardlessOfOrder) {
  // The same limits as above listed the other way round: the deciding index follows the rate.
  const std::vector<Rate> rates{Rate(1, 1s), Rate(2, 1s)};
  std::vector<std::int64_t> tats{kT0, kT0};
  ASSERT_TRUE(Step(rates, tats, kT0).allowed());
  const Decision d = Step(rates, tats, kT0);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_EQ(d.rate_index, 0);
  EXPECT_EQ(d.limit, 1);
}

TEST(GcraMultiRateTest, DeniedRemainingIsMinimumOverRatesOfCurrentCapacity) {
  // Rate 0: 10/1s burst 9 -> T = 100 ms, tau = 1 s. Rate 1: 1/1s burst 2 -> T = 1 s, tau = 3 s.
  const std::vector<Rate> rates{Rate(10, 1s, 9), Rate(1, 1s, 2)};
  std::vector<std::int64_t> tats{kT0, kT0};
  ASSERT_TRUE(Step(rates, tats, kT0, 2).allowed());  // tats: +200 ms, +2 s
  // Cost 2 again: rate 0 fine (400 ms <= 1 s), rate 1 new_tat = 4 s, 4 - 3 = 1 s wait.
  const Decision d = Step(rates, tats, kT0, 2);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_EQ(d.rate_index, 1);
  // Rate 0: floor(800 / 100) = 8; rate 1: floor(1 / 1) = 1 -> 1 cost-1 request still passes.
  EXPECT_EQ(d.remaining, 1);
  EXPECT_EQ(d.reset_after, 2s);
  EXPECT_EQ(tats, (std::vector<std::int64_t>{kT0 + 200'000'000, kT0 + 2'000'000'000}));
}

TEST(GcraMultiRateTest, CostExceedingOneRatesCapacityExceedsThePolicy) {
  // Rate 0: 10/1s burst 9 -> tau = 1 s fits cost 4. Rate 1: 1/1s burst 2 -> 4 s > tau = 3 s.
  const std::vector<Rate> rates{Rate(10, 1s, 9), Rate(1, 1s, 2)};
  std::vector<std::int64_t> tats{kT0, kT0};
  const Decision d = Step(rates, tats, kT0, 4);
  EXPECT_EQ(d.outcome, Outcome::kExceedsCapacity);
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.limit, 1);
  EXPECT_EQ(d.remaining, 3);  // min(10, 3): nothing consumed
  EXPECT_EQ(d.reset_after, Nanos{0});
  EXPECT_EQ(tats, (std::vector<std::int64_t>{kT0, kT0}));
}

TEST(GcraMultiRateTest, ExceedingCapacityWinsOverAnotherRatesDenial) {
  // Rate 0 would merely deny (retry later), rate 1 can never admit cost 3: retrying is
  // pointless, so the policy must say "exceeds capacity", not "retry after".
  // Rate 0: 1/1s burst 4 -> T = 1 s, tau = 5 s. Rate 1: 100/1s burst 1 -> T = 10 ms, tau = 20 ms.
  const std::vector<Rate> rates{Rate(1, 1s, 4), Rate(100, 1s, 1)};
  std::vector<std::int64_t> tats{kT0 + 4'000'000'000, kT0};  // rate 0 nearly exhausted
  const Decision d = Step(rates, tats, kT0, 3);
  EXPECT_EQ(d.outcome, Outcome::kExceedsCapacity);
  EXPECT_EQ(d.retry_after, Nanos{0});
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.limit, 100);
  EXPECT_EQ(tats, (std::vector<std::int64_t>{kT0 + 4'000'000'000, kT0}));
}

TEST(GcraMultiRateTest, PeekWritesNoRate) {
  const std::vector<Rate> rates{Rate(10, 1s, 4), Rate(20, 1min, 1)};
  std::vector<std::int64_t> tats{kT0, kT0};
  ASSERT_TRUE(Step(rates, tats, kT0).allowed());
  const std::vector<std::int64_t> before = tats;
  const Decision d = Step(rates, tats, kT0, 0);
  EXPECT_EQ(d.outcome, Outcome::kAllowed);
  EXPECT_EQ(d.remaining, 1);  // rate 0: 4, rate 1: floor((6 - 3) / 3) = 1
  EXPECT_EQ(d.rate_index, 1);
  EXPECT_EQ(d.reset_after, 3s);
  EXPECT_EQ(tats, before);
}

TEST(GcraMultiRateTest, EightRatesAllMustPass) {
  // Rates i = 0..7: (i + 1) per second, burst 0. Only the slowest (1/s) binds after the first.
  std::vector<Rate> rates;
  for (std::int64_t i = 1; i <= 8; ++i) rates.emplace_back(i, 1s);
  std::vector<std::int64_t> tats(8, kT0);
  ASSERT_TRUE(Step(rates, tats, kT0).allowed());
  const std::vector<std::int64_t> before = tats;
  // At 500 ms: rate 1 (2/s, T = 500 ms) admits; rate 0 (1/s) waits 500 ms; 3/s (T = 333333334)
  // admits. Only rate 0 denies.
  const Decision d = Step(rates, tats, kT0 + 500'000'000);
  EXPECT_EQ(d.outcome, Outcome::kDenied);
  EXPECT_EQ(d.rate_index, 0);
  EXPECT_EQ(d.retry_after, 500ms);
  EXPECT_EQ(tats, before);
}

// ---------------------------------------------------------------------------------------------
// Expiry and outcome names

TEST(GcraExpiryTest, IsTheLatestTat) {
  const std::array<std::int64_t, 3> tats{kT0 + 5, kT0 + 9, kT0 + 1};
  EXPECT_EQ(gcra_expiry(tats), kT0 + 9);
  const std::array<std::int64_t, 1> one{kT0};
  EXPECT_EQ(gcra_expiry(one), kT0);
}

TEST(OutcomeTest, HasStableNames) {
  EXPECT_EQ(to_string(Outcome::kAllowed), "allowed");
  EXPECT_EQ(to_string(Outcome::kDenied), "denied");
  EXPECT_EQ(to_string(Outcome::kExceedsCapacity), "exceeds_capacity");
  EXPECT_EQ(to_string(Outcome::kUnavailable), "unavailable");
}

}  // namespace
}  // namespace pacer
