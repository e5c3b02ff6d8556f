#include "deny_cache.h"

#include <gtest/gtest.h>

#include "circuit_breaker.h"

namespace pacer::redis::internal {
namespace {

constexpr std::int64_t kMs = 1'000'000;

Decision denied(std::int64_t retry_ms, std::int64_t reset_ms) {
  Decision d;
  d.outcome = Outcome::kDenied;
  d.limit = 10;
  d.rate_index = 1;
  d.retry_after = std::chrono::milliseconds(retry_ms);
  d.reset_after = std::chrono::milliseconds(reset_ms);
  return d;
}

TEST(DenyCache, DeniesTheSameCostUntilTheRetryTimeExactly) {
  DenyCache cache(1024);
  cache.remember("k", 1, 1'000 * kMs, denied(100, 700));
  auto hit = cache.lookup("k", 1, 1'040 * kMs);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->outcome, Outcome::kDenied);
  EXPECT_EQ(hit->retry_after, std::chrono::milliseconds(60));
  EXPECT_EQ(hit->reset_after, std::chrono::milliseconds(660));
  EXPECT_EQ(hit->limit, 10);
  EXPECT_EQ(hit->rate_index, 1);
  EXPECT_EQ(hit->remaining, 0);
  EXPECT_TRUE(cache.lookup("k", 1, 1'100 * kMs - 1));
  EXPECT_FALSE(cache.lookup("k", 1, 1'100 * kMs));  // the store decides again from here
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DenyCache, OtherCostsAndKeysGoToTheStore) {
  DenyCache cache(1024);
  cache.remember("k", 5, 0, denied(100, 100));
  EXPECT_FALSE(cache.lookup("k", 1, 10 * kMs));  // a smaller cost may pass sooner
  EXPECT_FALSE(cache.lookup("other", 5, 10 * kMs));
  EXPECT_TRUE(cache.lookup("k", 5, 10 * kMs));
}

TEST(DenyCache, IgnoresNonDenialsAndForgetsOnReset) {
  DenyCache cache(1024);
  Decision allowed;
  cache.remember("a", 1, 0, allowed);
  EXPECT_EQ(cache.size(), 0u);
  cache.remember("k", 1, 0, denied(100, 100));
  cache.forget("k");
  EXPECT_FALSE(cache.lookup("k", 1, 1));
}

TEST(DenyCache, StaysWithinItsBound) {
  DenyCache cache(64);
  for (int i = 0; i < 10'000; ++i)
    cache.remember("k" + std::to_string(i), 1, 0, denied(1000, 1000));
  EXPECT_LE(cache.size(), 64u);
  // Expired entries make room before live ones are dropped.
  cache.remember("late", 1, 2'000 * kMs, denied(1000, 1000));
  EXPECT_TRUE(cache.lookup("late", 1, 2'000 * kMs));
}

TEST(CircuitBreaker, OpensAfterThresholdThenProbesOnce) {
  CircuitBreaker breaker(3, std::chrono::milliseconds(200));
  EXPECT_TRUE(breaker.allow(0));
  breaker.record_failure(0);
  breaker.record_failure(0);
  EXPECT_FALSE(breaker.is_open());
  breaker.record_failure(10 * kMs);
  EXPECT_TRUE(breaker.is_open());
  EXPECT_FALSE(breaker.allow(100 * kMs));
  // After open_for, exactly one caller probes.
  EXPECT_TRUE(breaker.allow(210 * kMs));
  EXPECT_FALSE(breaker.allow(211 * kMs));
  breaker.record_failure(220 * kMs);  // the probe failed: open again
  EXPECT_FALSE(breaker.allow(300 * kMs));
  EXPECT_TRUE(breaker.allow(420 * kMs));
  breaker.record_success();
  EXPECT_FALSE(breaker.is_open());
  EXPECT_TRUE(breaker.allow(421 * kMs));
  EXPECT_TRUE(breaker.allow(421 * kMs));
}

TEST(CircuitBreaker, SuccessResetsTheFailureCount) {
  CircuitBreaker breaker(2, std::chrono::milliseconds(200));
  breaker.record_failure(0);
  breaker.record_success();
  breaker.record_failure(0);
  EXPECT_FALSE(breaker.is_open());
}

}  // namespace
}  // namespace pacer::redis::internal
