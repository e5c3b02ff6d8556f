// pacer/policy_metrics.h — decisions and their latency per policy, as front ends export them
// (pacerd's /metrics; an http::Rule's on_decision observer records into one).
//
//   pacer::PolicyMetrics api;
//   rule.on_decision = [&](const http::RuleEvent& e) { api.record(e.decision, shadow, e.latency);
//   }; pacer::PolicyMetrics::write(out, {{"api", api.snapshot()}});  // decisions_total{policy=...}
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "pacer/decision.h"
#include "pacer/metrics.h"
#include "pacer/prometheus.h"

namespace pacer {

class PolicyMetrics {
 public:
  struct Snapshot {
    std::uint64_t allowed = 0;
    std::uint64_t denied = 0;
    std::uint64_t shadow_denied = 0;  // a shadow policy's would-be denials (answered allowed)
    std::uint64_t store_errors = 0;   // decisions the fail mode made
    std::array<std::uint64_t, MetricsSnapshot::kBucketBounds.size() + 1> latency_buckets{};
    std::int64_t latency_sum_ns = 0;
  };

  // Thread-safe; relaxed atomics.
  void record(const Decision& decision, bool shadow, std::chrono::nanoseconds latency) noexcept;
  Snapshot snapshot() const;

  // decisions_total{policy,result=allowed|denied|shadow_denied}, store_errors_total{policy} and
  // decision_duration_seconds{policy}, each family once, in the order given.
  static void write(PrometheusText& out,
                    std::span<const std::pair<std::string_view, Snapshot>> policies);

 private:
  std::atomic<std::uint64_t> allowed_{0}, denied_{0}, shadow_denied_{0}, store_errors_{0};
  std::array<std::atomic<std::uint64_t>, MetricsSnapshot::kBucketBounds.size() + 1> buckets_{};
  std::atomic<std::int64_t> latency_sum_ns_{0};
};

}  // namespace pacer
