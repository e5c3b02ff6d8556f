// The Envoy rate limit service's counters (rls_metrics.h).
#include "rls_metrics.h"

#include <algorithm>
#include <vector>

namespace pacer::pacerd::rls {

RlsMetrics::Counters& RlsMetrics::counters(const std::string& domain, const std::string& key) {
  std::lock_guard lock(mutex_);
  auto& slot = by_key_[{domain, key}];
  if (!slot) slot = std::make_unique<Counters>();
  return *slot;
}

void RlsMetrics::count(std::string_view domain, const RlsRequest& request,
                       const RlsAnswer& answer) {
  const std::uint64_t hits = request.hits_addend == 0 ? 1 : request.hits_addend;
  const double near_ratio = near_ratio_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < answer.statuses.size() && i < request.descriptors.size(); ++i) {
    const RlsStatus& s = answer.statuses[i];
    if (s.limit == nullptr || s.unlimited) continue;
    // detailed_metric: a value-less key is counted per value it was called with, as
    // envoyproxy/ratelimit does; otherwise per configured limit (bounded cardinality).
    std::string key = s.limit->full_key;
    if (s.limit->detailed_metric) {
      key = std::string(domain) + "." + descriptor_identity(request.descriptors[i]);
    }
    Counters& c = counters(std::string(domain), key);
    c.total_hits.fetch_add(hits, std::memory_order_relaxed);
    if (s.shadowed) {
      c.shadow_mode.fetch_add(hits, std::memory_order_relaxed);
      c.over_limit.fetch_add(hits, std::memory_order_relaxed);
    } else if (s.code == Code::kOverLimit) {
      c.over_limit.fetch_add(hits, std::memory_order_relaxed);
    } else {
      c.within_limit.fetch_add(hits, std::memory_order_relaxed);
      const double limit = s.current_limit ? s.current_limit->requests_per_unit : 0;
      if (limit > 0 && static_cast<double>(s.limit_remaining) <= limit * (1.0 - near_ratio)) {
        c.near_limit.fetch_add(hits, std::memory_order_relaxed);
      }
    }
  }
}

void RlsMetrics::observe(std::chrono::nanoseconds duration) noexcept {
  const auto& bounds = MetricsSnapshot::kBucketBounds;
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), duration.count());
  buckets_[static_cast<std::size_t>(it - bounds.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(duration.count(), std::memory_order_relaxed);
}

void RlsMetrics::write(PrometheusText& out) const {
  std::vector<std::pair<std::pair<std::string, std::string>, const Counters*>> rows;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [k, c] : by_key_) rows.emplace_back(k, c.get());
  }
  auto n = [](const std::atomic<std::uint64_t>& v) {
    return static_cast<double>(v.load(std::memory_order_relaxed));
  };
  for (const auto& [k, c] : rows) {
    const auto& [domain, key] = k;
    out.counter("rls_total_hits_total", "Hits on a configured limit (hits_addend each).",
                n(c->total_hits), {{"domain", domain}, {"descriptor", key}});
    out.counter("rls_over_limit_total", "Hits over the limit (shadow mode included).",
                n(c->over_limit), {{"domain", domain}, {"descriptor", key}});
    out.counter("rls_near_limit_total", "Hits within the limit but near it.", n(c->near_limit),
                {{"domain", domain}, {"descriptor", key}});
    out.counter("rls_within_limit_total", "Hits within the limit.", n(c->within_limit),
                {{"domain", domain}, {"descriptor", key}});
    out.counter("rls_shadow_mode_total", "Hits over a shadow-mode limit (answered OK).",
                n(c->shadow_mode), {{"domain", domain}, {"descriptor", key}});
  }
  std::array<std::uint64_t, MetricsSnapshot::kBucketBounds.size() + 1> counts{};
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = buckets_[i].load();
  out.histogram("rls_request_duration_seconds", "ShouldRateLimit calls, received to answered.",
                MetricsSnapshot::kBucketBounds, counts, sum_ns_.load());
}

}  // namespace pacer::pacerd::rls
