// pacer/metrics.h — counters and a latency histogram that many threads update without
// sharing cache lines or locked instructions (one stripe per thread), read as a
// consistent-enough snapshot.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pacer {

struct MetricsSnapshot {
  // Upper bounds of the latency buckets, in nanoseconds; the last bucket is +Inf.
  static constexpr std::array<std::int64_t, 13> kBucketBounds{
      1'000,   2'000,   5'000,     10'000,    25'000,    50'000,    100'000,
      250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};

  static constexpr std::uint32_t kInlineTimingSample = 64;

  std::uint64_t allowed = 0;
  std::uint64_t denied = 0;       // denied, exceeds capacity and fail-closed included
  std::uint64_t errors = 0;       // store failures (each answered by the fail mode)
  std::uint64_t degraded = 0;     // decisions answered by the fail mode
  std::uint64_t hook_errors = 0;  // hooks (and async completion handlers) that threw
  // Check latency, of every decision of a store that answers later (Redis) and of one decision
  // in kInlineTimingSample per thread of a store that answers inline (the in-process store:
  // timing each would cost a third of the decision). latency_count counts the timed ones.
  std::array<std::uint64_t, kBucketBounds.size() + 1> latency_buckets{};  // not cumulative
  std::uint64_t latency_count = 0;
  std::int64_t latency_sum_ns = 0;

  // Prometheus text exposition (counters and a histogram), names prefixed by `prefix`.
  std::string prometheus(std::string_view prefix = "pacer") const;
};

class Metrics {
 public:
  // `latency`: how long the decision took, when it was timed.
  void count_decision(bool allowed, bool degraded,
                      std::optional<std::chrono::nanoseconds> latency) noexcept;
  void count_error() noexcept;
  void count_hook_error() noexcept;
  MetricsSnapshot snapshot() const;

 private:
  // A thread holds one of kOwnedStripes stripes on its own while it lives (process-wide, so
  // the same index in every Metrics) and adds to it without a locked instruction; a thread
  // that finds them all held shares the last stripe with atomic adds.
  static constexpr std::size_t kOwnedStripes = 31;
  static constexpr std::size_t kStripes = kOwnedStripes + 1;
  struct alignas(64) Stripe {
    std::atomic<std::uint64_t> allowed{0}, denied{0}, errors{0}, degraded{0}, hook_errors{0};
    std::atomic<std::int64_t> latency_sum_ns{0};
    std::array<std::atomic<std::uint64_t>, MetricsSnapshot::kBucketBounds.size() + 1> buckets{};
  };
  // The calling thread's stripe, and whether the thread holds it on its own.
  struct Writer {
    Stripe& stripe;
    bool owned;
    template <class T>
    void add(std::atomic<T>& counter, T n) const noexcept {
      if (owned) {
        counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
      } else {
        counter.fetch_add(n, std::memory_order_relaxed);
      }
    }
  };
  Writer writer() noexcept;

  std::array<Stripe, kStripes> stripes_{};
};

}  // namespace pacer
