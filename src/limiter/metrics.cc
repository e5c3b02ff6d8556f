#include "pacer/metrics.h"

#include <fmt/format.h>

#include <bit>

#include "pacer/prometheus.h"

namespace pacer {
namespace {

// Which stripes threads hold, one bit each (process-wide: a thread's index is the same in every
// Metrics). A bit is taken with acquire and given back with release, so the next holder of a
// stripe sees every count the previous one wrote.
std::atomic<std::uint32_t> g_held_stripes{0};

// The calling thread's stripe index: held from its first decision until it exits, or
// kOwnedStripes (the shared stripe) when every owned one is held.
class StripeHold {
 public:
  explicit StripeHold(std::size_t owned) : index_(owned), shared_(owned) {
    std::uint32_t held = g_held_stripes.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint32_t free = ~held & ((std::uint32_t{1} << owned) - 1);
      if (free == 0) return;  // all held: share the last stripe
      const auto bit = static_cast<std::size_t>(std::countr_zero(free));
      if (g_held_stripes.compare_exchange_weak(held, held | (std::uint32_t{1} << bit),
                                               std::memory_order_acquire,
                                               std::memory_order_relaxed)) {
        index_ = bit;
        held_ = true;
        return;
      }
    }
  }
  // Gives the stripe back. A decision counted later on this thread (from another thread-local's
  // destructor) goes to the shared stripe, with atomic adds.
  ~StripeHold() {
    if (!held_) return;
    g_held_stripes.fetch_and(~(std::uint32_t{1} << index_), std::memory_order_release);
    held_ = false;
    index_ = shared_;
  }
  StripeHold(const StripeHold&) = delete;
  StripeHold& operator=(const StripeHold&) = delete;
  std::size_t index() const noexcept { return index_; }

 private:
  std::size_t index_;
  std::size_t shared_;
  bool held_ = false;
};

}  // namespace

Metrics::Writer Metrics::writer() noexcept {
  static_assert(kOwnedStripes < 32, "one bit of g_held_stripes per owned stripe");
  thread_local const StripeHold hold(kOwnedStripes);
  const std::size_t i = hold.index();
  return {stripes_[i], i < kOwnedStripes};
}

void Metrics::count_decision(bool allowed, bool degraded,
                             std::optional<std::chrono::nanoseconds> latency) noexcept {
  const Writer w = writer();
  w.add(allowed ? w.stripe.allowed : w.stripe.denied, std::uint64_t{1});
  if (degraded) w.add(w.stripe.degraded, std::uint64_t{1});
  if (!latency) return;
  const std::int64_t ns = latency->count();
  std::size_t bucket = 0;
  while (bucket < MetricsSnapshot::kBucketBounds.size() &&
         ns > MetricsSnapshot::kBucketBounds[bucket])
    ++bucket;
  w.add(w.stripe.buckets[bucket], std::uint64_t{1});
  if (ns != 0) w.add(w.stripe.latency_sum_ns, ns);
}

void Metrics::count_error() noexcept {
  const Writer w = writer();
  w.add(w.stripe.errors, std::uint64_t{1});
}

void Metrics::count_hook_error() noexcept {
  const Writer w = writer();
  w.add(w.stripe.hook_errors, std::uint64_t{1});
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
  PrometheusText out{std::string(prefix)};
  out.add(*this);
  return out.take();
}

}  // namespace pacer
