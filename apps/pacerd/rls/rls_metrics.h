// What the Envoy rate limit service counts (docs/API.md, "Envoy rate limit service", Metrics):
// per configured limit, envoyproxy/ratelimit's counters (total_hits, over_limit, near_limit,
// within_limit, shadow_mode), and the duration of ShouldRateLimit calls. Kept by pacerd across
// reloads (by the limit's key), written as Prometheus text.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "pacer/metrics.h"
#include "pacer/prometheus.h"
#include "rls_decide.h"

namespace pacer::pacerd::rls {

class RlsMetrics {
 public:
  // `near_ratio`: a request counts as near the limit when, after it, at most (1 - ratio) of
  // the limit remains (0.8: the last 20%), as envoyproxy/ratelimit's NEAR_LIMIT_RATIO.
  explicit RlsMetrics(double near_ratio = 0.8) : near_ratio_(near_ratio) {}
  // A reload may change it (grpc.near_limit_ratio).
  void set_near_ratio(double ratio) noexcept { near_ratio_.store(ratio); }

  // Counts one answered call: every status with a configured limit, by `domain`.
  void count(std::string_view domain, const RlsRequest& request, const RlsAnswer& answer);
  // One ShouldRateLimit call, however it ended.
  void observe(std::chrono::nanoseconds duration) noexcept;

  void write(PrometheusText& out) const;

 private:
  struct Counters {
    std::atomic<std::uint64_t> total_hits{0}, over_limit{0}, near_limit{0}, within_limit{0},
        shadow_mode{0};
  };
  Counters& counters(const std::string& domain, const std::string& key);

  std::atomic<double> near_ratio_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Counters>> by_key_;
  std::array<std::atomic<std::uint64_t>, MetricsSnapshot::kBucketBounds.size() + 1> buckets_{};
  std::atomic<std::int64_t> sum_ns_{0};
};

}  // namespace pacer::pacerd::rls
