// A circuit breaker for a remote store (docs/DESIGN.md §6): after `failure_threshold` consecutive
// failures it opens and callers fail fast; after `open_for` it lets exactly one request
// through as a probe; that request's success closes it, its failure opens it again.
// Thread-safe and lock-free; times are monotonic nanoseconds.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace pacer::redis::internal {

class CircuitBreaker {
 public:
  CircuitBreaker(int failure_threshold, std::chrono::nanoseconds open_for)
      : threshold_(failure_threshold), open_for_(open_for.count()) {}

  // Whether a request may go to the store now.
  bool allow(std::int64_t now) {
    const std::int64_t until = open_until_.load(std::memory_order_acquire);
    if (until == 0) return true;  // closed
    if (now < until) return false;
    // Half-open: one caller wins the probe; the rest keep failing fast until it reports.
    bool expected = false;
    return probing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
  }

  // Loads first: on the hot path (closed, no failures) this writes nothing shared.
  void record_success() {
    if (failures_.load(std::memory_order_relaxed) != 0)
      failures_.store(0, std::memory_order_relaxed);
    if (open_until_.load(std::memory_order_acquire) != 0) {
      open_until_.store(0, std::memory_order_release);
      probing_.store(false, std::memory_order_release);
    }
  }

  void record_failure(std::int64_t now) {
    const int failures = failures_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (failures >= threshold_ || open_until_.load(std::memory_order_acquire) != 0) {
      open_until_.store(now + open_for_, std::memory_order_release);
      probing_.store(false, std::memory_order_release);
    }
  }

  bool is_open() const { return open_until_.load(std::memory_order_acquire) != 0; }

 private:
  const int threshold_;
  const std::int64_t open_for_;
  std::atomic<int> failures_{0};
  std::atomic<std::int64_t> open_until_{0};  // 0 = closed
  std::atomic<bool> probing_{false};
};

}  // namespace pacer::redis::internal
