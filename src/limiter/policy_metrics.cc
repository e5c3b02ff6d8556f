#include "pacer/policy_metrics.h"

namespace pacer {

void PolicyMetrics::record(const Decision& d, bool shadow,
                           std::chrono::nanoseconds latency) noexcept {
  if (d.degraded) store_errors_.fetch_add(1, std::memory_order_relaxed);
  if (d.allowed()) {
    allowed_.fetch_add(1, std::memory_order_relaxed);
  } else if (shadow) {
    shadow_denied_.fetch_add(1, std::memory_order_relaxed);
  } else {
    denied_.fetch_add(1, std::memory_order_relaxed);
  }
  const auto& bounds = MetricsSnapshot::kBucketBounds;
  std::size_t bucket = 0;
  while (bucket < bounds.size() && latency.count() > bounds[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  latency_sum_ns_.fetch_add(latency.count(), std::memory_order_relaxed);
}

PolicyMetrics::Snapshot PolicyMetrics::snapshot() const {
  Snapshot s;
  s.allowed = allowed_.load(std::memory_order_relaxed);
  s.denied = denied_.load(std::memory_order_relaxed);
  s.shadow_denied = shadow_denied_.load(std::memory_order_relaxed);
  s.store_errors = store_errors_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    s.latency_buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  s.latency_sum_ns = latency_sum_ns_.load(std::memory_order_relaxed);
  return s;
}

void PolicyMetrics::write(PrometheusText& out,
                          std::span<const std::pair<std::string_view, Snapshot>> policies) {
  auto n = [](std::uint64_t v) { return static_cast<double>(v); };
  constexpr std::string_view kDecisions =
      "Decisions by policy and result (shadow_denied: denied by a shadow policy, answered "
      "allowed).";
  for (const auto& [name, s] : policies) {
    out.counter("decisions_total", kDecisions, n(s.allowed),
                {{"policy", name}, {"result", "allowed"}});
    out.counter("decisions_total", kDecisions, n(s.denied),
                {{"policy", name}, {"result", "denied"}});
    out.counter("decisions_total", kDecisions, n(s.shadow_denied),
                {{"policy", name}, {"result", "shadow_denied"}});
  }
  for (const auto& [name, s] : policies) {
    out.counter("store_errors_total",
                "Decisions the store could not make (answered by the fail mode).",
                n(s.store_errors), {{"policy", name}});
  }
  for (const auto& [name, s] : policies) {
    out.histogram(
        "decision_duration_seconds", "Time from asking the limiter to its answer, per policy.",
        MetricsSnapshot::kBucketBounds, s.latency_buckets, s.latency_sum_ns, {{"policy", name}});
  }
}

}  // namespace pacer
