#include "pacer/metrics.h"

#include <fmt/format.h>

namespace pacer {
namespace {

std::size_t this_thread_stripe() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
  return index;
}

}  // namespace

Metrics::Stripe& Metrics::stripe() noexcept { return stripes_[this_thread_stripe() % kStripes]; }

void Metrics::count_decision(bool allowed, bool degraded,
                             std::optional<std::chrono::nanoseconds> latency) noexcept {
  Stripe& s = stripe();
  (allowed ? s.allowed : s.denied).fetch_add(1, std::memory_order_relaxed);
  if (degraded) s.degraded.fetch_add(1, std::memory_order_relaxed);
  if (!latency) return;
  const std::int64_t ns = latency->count();
  std::size_t bucket = 0;
  while (bucket < MetricsSnapshot::kBucketBounds.size() &&
         ns > MetricsSnapshot::kBucketBounds[bucket])
    ++bucket;
  s.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  if (ns != 0) s.latency_sum_ns.fetch_add(ns, std::memory_order_relaxed);
}

void Metrics::count_error() noexcept { stripe().errors.fetch_add(1, std::memory_order_relaxed); }

void Metrics::count_hook_error() noexcept {
  stripe().hook_errors.fetch_add(1, std::memory_order_relaxed);
}

MetricsSnapshot Metrics::snapshot() const {
  MetricsSnapshot out;
  for (const Stripe& s : stripes_) {
    out.allowed += s.allowed.load(std::memory_order_relaxed);
    out.denied += s.denied.load(std::memory_order_relaxed);
    out.errors += s.errors.load(std::memory_order_relaxed);
    out.degraded += s.degraded.load(std::memory_order_relaxed);
    out.hook_errors += s.hook_errors.load(std::memory_order_relaxed);
    out.latency_sum_ns += s.latency_sum_ns.load(std::memory_order_relaxed);
    for (std::size_t b = 0; b < s.buckets.size(); ++b) {
      const std::uint64_t n = s.buckets[b].load(std::memory_order_relaxed);
      out.latency_buckets[b] += n;
      out.latency_count += n;
    }
  }
  return out;
}

std::string MetricsSnapshot::prometheus(std::string_view prefix) const {
  std::string out;
  auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
    fmt::format_to(std::back_inserter(out),
                   "# HELP {0}_{1} {2}\n# TYPE {0}_{1} counter\n{0}_{1} {3}\n", prefix, name, help,
                   value);
  };
  counter("requests_allowed_total", "Decisions that admitted the request.", allowed);
  counter("requests_denied_total", "Decisions that denied the request (429 or 503).", denied);
  counter("store_errors_total", "Store failures answered by the fail mode.", errors);
  counter("degraded_decisions_total", "Decisions made by the fail mode.", degraded);
  counter("hook_errors_total", "Hooks and asynchronous completion handlers that threw.",
          hook_errors);
  fmt::format_to(std::back_inserter(out),
                 "# HELP {0}_check_duration_seconds Time from check to decision (in-process "
                 "store: one decision in {1} per thread is timed).\n"
                 "# TYPE {0}_check_duration_seconds histogram\n",
                 prefix, kInlineTimingSample);
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < kBucketBounds.size(); ++b) {
    cumulative += latency_buckets[b];
    fmt::format_to(std::back_inserter(out), "{}_check_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                   prefix, static_cast<double>(kBucketBounds[b]) / 1e9, cumulative);
  }
  fmt::format_to(std::back_inserter(out),
                 "{0}_check_duration_seconds_bucket{{le=\"+Inf\"}} {1}\n"
                 "{0}_check_duration_seconds_sum {2}\n{0}_check_duration_seconds_count {1}\n",
                 prefix, latency_count, static_cast<double>(latency_sum_ns) / 1e9);
  return out;
}

}  // namespace pacer
