// The in-process store's clock: steady_clock's time read through the TSC. Whatever the
// counter does, every reading must lie between two steady_clock readings around it, give or
// take the clock's documented error (about 0.1 us; 2 us allowed here for a busy VM).
#include "tsc_clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace pacer::internal {
namespace {

constexpr std::int64_t kTolerance = 2'000;  // ns

void expect_tracks_steady_clock(TscClock& clock, std::int64_t run_ns) {
  const std::int64_t end = steady_ns() + run_ns;
  std::int64_t worst = 0;
  for (std::int64_t before = steady_ns(); before < end; before = steady_ns()) {
    const std::int64_t now = clock.now();
    const std::int64_t after = steady_ns();
    worst = std::max({worst, before - now, now - after});
    ASSERT_GE(now, before - kTolerance);
    ASSERT_LE(now, after + kTolerance);
  }
  ::testing::Test::RecordProperty("worst_error_ns", std::to_string(worst));
}

TEST(TscClock, StaysWithSteadyClockAcrossReanchoring) {
  auto clock = TscClock::create();
  if (!clock) GTEST_SKIP() << "the kernel's clocksource is not the TSC";
  // 20 ms: the first millisecond reads steady_clock, then the anchor moves every millisecond.
  expect_tracks_steady_clock(*clock, 20'000'000);
}

TEST(TscClock, StaysWithSteadyClockFromTwoThreads) {
  auto clock = TscClock::create();
  if (!clock) GTEST_SKIP() << "the kernel's clocksource is not the TSC";
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] { expect_tracks_steady_clock(*clock, 20'000'000); });
  for (auto& t : threads) t.join();
}

TEST(TscClock, ExtrapolatesAfterAnIdleSpell) {
  auto clock = TscClock::create();
  if (!clock) GTEST_SKIP() << "the kernel's clocksource is not the TSC";
  expect_tracks_steady_clock(*clock, 3'000'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  expect_tracks_steady_clock(*clock, 3'000'000);
}

}  // namespace
}  // namespace pacer::internal
