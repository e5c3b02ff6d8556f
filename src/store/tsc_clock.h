// steady_clock time read through the CPU's time-stamp counter, for the in-process store.
//
// `steady_clock::now()` costs about 17-22 ns here (a vDSO call, a sequence lock and a
// serialising `lfence; rdtsc`), which was 40% of an in-process decision. A bare `rdtsc` costs
// about 10 ns and overlaps with the key's hashing. This clock turns counter ticks into
// nanoseconds of steady_clock's timeline:
//
//   now = anchor_ns + (tsc - anchor_tsc) * ns_per_tick
//
// and pins the anchor to a real steady_clock reading again after every millisecond of
// extrapolation, measuring ns_per_tick over the last interval as it does so. Errors therefore
// never accumulate: the result stays within about 0.1 us of steady_clock (the width of one
// (tsc, steady_clock) reading pair plus a millisecond's extrapolation error), may step back by
// that much when the anchor moves, and follows steady_clock's own rate (NTP slewing) within
// a millisecond. GCRA tolerates such steps as it tolerates two threads whose clock reads land
// out of order: a TAT only moves forward, and an earlier `now` is an earlier arrival, which
// can only make a decision stricter by that amount, never more lenient.
//
// Used only where the kernel itself keeps time with the TSC (clocksource "tsc": an invariant
// counter that the kernel found synchronised across CPUs); elsewhere `create()` returns null
// and the store reads steady_clock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace pacer::internal {

inline std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class alignas(64) TscClock {
 public:
  // Null unless this is x86-64 and the kernel's clocksource is the TSC.
  static std::unique_ptr<TscClock> create();

  // Nanoseconds on steady_clock's timeline.
  std::int64_t now() noexcept {
#if defined(__x86_64__)
    const std::uint64_t tsc = __rdtsc();
    // Sequence lock: the anchor is rewritten about once a millisecond.
    const std::uint32_t seq = seq_.load(std::memory_order_acquire);
    const std::uint64_t anchor_tsc = anchor_tsc_.load(std::memory_order_relaxed);
    const std::int64_t anchor_ns = anchor_ns_.load(std::memory_order_relaxed);
    const std::uint64_t mult = mult_.load(std::memory_order_relaxed);
    const std::uint64_t horizon = horizon_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    // Unsigned: a counter read just before another thread moved the anchor is "far ahead".
    const std::uint64_t delta = tsc - anchor_tsc;
    if (delta < horizon && (seq & 1) == 0 && seq_.load(std::memory_order_relaxed) == seq)
      return anchor_ns + static_cast<std::int64_t>((delta * mult) >> kShift);
#endif
    return reanchor();
  }

 private:
  static constexpr int kShift = 32;

  TscClock() = default;
  // Reads steady_clock (the answer) and, when the anchor is old enough, moves it there. Out of
  // line, so that the fast path saves no registers for it.
  [[gnu::noinline, gnu::cold]] std::int64_t reanchor() noexcept;

  // One cache line (the class is aligned), written about once a millisecond, read by every
  // decision.
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::uint64_t> anchor_tsc_{0};
  std::atomic<std::int64_t> anchor_ns_{0};
  std::atomic<std::uint64_t> mult_{0};     // ns per tick << kShift; 0 until measured
  std::atomic<std::uint64_t> horizon_{0};  // ticks past the anchor the fast path may go
  bool anchor_precise_ = false;            // written and read only by the anchoring thread
};

}  // namespace pacer::internal
