// pacer/metrics.h: striped counters and the latency histogram, and their Prometheus text.
#include "pacer/metrics.h"

#include <gtest/gtest.h>

#include <latch>
#include <thread>
#include <vector>

namespace pacer {
namespace {

using namespace std::chrono_literals;

TEST(MetricsTest, CountsEveryKindOfDecision) {
  Metrics metrics;
  metrics.count_decision(true, false, std::nullopt);
  metrics.count_decision(true, true, std::nullopt);
  metrics.count_decision(false, false, std::nullopt);
  metrics.count_error();
  metrics.count_hook_error();
  metrics.count_hook_error();
  const MetricsSnapshot s = metrics.snapshot();
  EXPECT_EQ(s.allowed, 2u);
  EXPECT_EQ(s.denied, 1u);
  EXPECT_EQ(s.degraded, 1u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.hook_errors, 2u);
  EXPECT_EQ(s.latency_count, 0u);  // none was timed
}

TEST(MetricsTest, LatenciesLandInTheirBucketsAndTheSum) {
  Metrics metrics;
  metrics.count_decision(true, false, 500ns);  // <= 1 us
  metrics.count_decision(true, false, 1us);    // <= 1 us (bounds are inclusive)
  metrics.count_decision(true, false, 30us);   // <= 50 us
  metrics.count_decision(false, false, 20ms);  // +Inf
  const MetricsSnapshot s = metrics.snapshot();
  EXPECT_EQ(s.latency_count, 4u);
  EXPECT_EQ(s.latency_sum_ns, 500 + 1'000 + 30'000 + 20'000'000);
  EXPECT_EQ(s.latency_buckets[0], 2u);
  EXPECT_EQ(s.latency_buckets[5], 1u);  // 50 us
  EXPECT_EQ(s.latency_buckets.back(), 1u);
  std::uint64_t total = 0;
  for (const auto n : s.latency_buckets) total += n;
  EXPECT_EQ(total, 4u);
}

TEST(MetricsTest, ManyThreadsLoseNothing) {
  Metrics metrics;
  constexpr int kThreads = 8;
  constexpr int kEach = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < kEach; ++i) metrics.count_decision(t % 2 == 0, false, 2us);
    });
  }
  for (auto& thread : threads) thread.join();
  const MetricsSnapshot s = metrics.snapshot();
  EXPECT_EQ(s.allowed + s.denied, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(s.allowed, static_cast<std::uint64_t>(kThreads / 2 * kEach));
  EXPECT_EQ(s.latency_count, static_cast<std::uint64_t>(kThreads * kEach));
}

// More threads alive at once than there are stripes of their own: the rest share one with
// atomic adds, and a snapshot taken meanwhile only ever sees counts grow.
TEST(MetricsTest, MoreThreadsThanStripesLoseNothing) {
  Metrics metrics;
  constexpr int kThreads = 48;
  constexpr int kEach = 5'000;
  std::latch all_alive(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, &all_alive] {
      all_alive.arrive_and_wait();  // every thread holds (or shares) a stripe at once
      for (int i = 0; i < kEach; ++i) metrics.count_decision(true, i % 2 == 0, std::nullopt);
      metrics.count_error();
    });
  }
  all_alive.arrive_and_wait();
  std::uint64_t seen = 0;
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t now = metrics.snapshot().allowed;
    EXPECT_GE(now, seen);
    seen = now;
  }
  for (auto& thread : threads) thread.join();
  const MetricsSnapshot s = metrics.snapshot();
  EXPECT_EQ(s.allowed, static_cast<std::uint64_t>(kThreads * kEach));
  EXPECT_EQ(s.degraded, static_cast<std::uint64_t>(kThreads * kEach / 2));
  EXPECT_EQ(s.errors, static_cast<std::uint64_t>(kThreads));
}

// A stripe passes to the next thread when its holder exits: the counts it wrote stay, and the
// next holder adds to them.
TEST(MetricsTest, StripesHandedOverByExitingThreadsKeepTheirCounts) {
  Metrics metrics;
  constexpr int kWaves = 50;
  constexpr int kPerWave = 4;
  for (int wave = 0; wave < kWaves; ++wave) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kPerWave; ++t)
      threads.emplace_back([&metrics] {
        for (int i = 0; i < 100; ++i) metrics.count_decision(false, false, 3us);
        metrics.count_hook_error();
      });
    for (auto& thread : threads) thread.join();
  }
  const MetricsSnapshot s = metrics.snapshot();
  EXPECT_EQ(s.denied, static_cast<std::uint64_t>(kWaves * kPerWave * 100));
  EXPECT_EQ(s.latency_count, s.denied);
  EXPECT_EQ(s.latency_sum_ns, static_cast<std::int64_t>(s.denied) * 3'000);
  EXPECT_EQ(s.hook_errors, static_cast<std::uint64_t>(kWaves * kPerWave));
}

TEST(MetricsTest, PrometheusTextIsCumulativeAndNamed) {
  Metrics metrics;
  metrics.count_decision(true, false, 500ns);
  metrics.count_decision(false, false, 3us);
  metrics.count_error();
  const std::string text = metrics.snapshot().prometheus("app");
  EXPECT_NE(text.find("# TYPE app_requests_allowed_total counter\napp_requests_allowed_total 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("app_requests_denied_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("app_store_errors_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE app_check_duration_seconds histogram\n"), std::string::npos);
  // Buckets are cumulative and end with +Inf = count.
  EXPECT_NE(text.find("app_check_duration_seconds_bucket{le=\"1e-06\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("app_check_duration_seconds_bucket{le=\"5e-06\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("app_check_duration_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("app_check_duration_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(text.find("app_check_duration_seconds_sum 3.5e-06\n"), std::string::npos) << text;
  // The HELP text says in-process decisions are sampled.
  EXPECT_NE(text.find("one decision in 64 per thread"), std::string::npos);
  // Default prefix.
  EXPECT_NE(metrics.snapshot().prometheus().find("pacer_requests_allowed_total"),
            std::string::npos);
}

}  // namespace
}  // namespace pacer
