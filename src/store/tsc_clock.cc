#include "tsc_clock.h"

#include <algorithm>
#include <fstream>
#include <string>

namespace pacer::internal {
namespace {

// The fast path extrapolates at most this far from the last steady_clock reading.
constexpr std::int64_t kReanchorAfterNs = 1'000'000;
// A (tsc, steady_clock) pair wider than this was interrupted; it is not used as an anchor.
constexpr std::uint64_t kMaxPairTicks = 500;

#if defined(__x86_64__)
__extension__ using Wide = unsigned __int128;

// A steady_clock reading and the counter at (about) the same moment: the narrowest of three
// bracketed reads, its counter value taken as the middle of the bracket.
struct Pair {
  std::uint64_t tsc;
  std::int64_t ns;
  std::uint64_t width;
};

Pair read_pair() noexcept {
  Pair best{0, 0, UINT64_MAX};
  for (int i = 0; i < 3; ++i) {
    const std::uint64_t before = __rdtsc();
    const std::int64_t ns = steady_ns();
    const std::uint64_t after = __rdtsc();
    if (after - before < best.width) best = {before + (after - before) / 2, ns, after - before};
  }
  return best;
}
#endif

}  // namespace

std::unique_ptr<TscClock> TscClock::create() {
#if defined(__x86_64__)
  std::ifstream source("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string name;
  if (!(source >> name) || name != "tsc") return nullptr;
  std::unique_ptr<TscClock> clock(new TscClock);
  const Pair pair = read_pair();
  clock->anchor_tsc_.store(pair.tsc, std::memory_order_relaxed);
  clock->anchor_ns_.store(pair.ns, std::memory_order_relaxed);
  clock->anchor_precise_ = pair.width <= kMaxPairTicks;
  return clock;
#else
  return nullptr;
#endif
}

std::int64_t TscClock::reanchor() noexcept {
#if defined(__x86_64__)
  const std::int64_t now = steady_ns();
  std::uint32_t seq = seq_.load(std::memory_order_relaxed);
  // Measure the rate over at least one interval (the first millisecond after construction
  // reads steady_clock on every call). One thread moves the anchor; the others answer with
  // their own reading meanwhile.
  if ((seq & 1) != 0 || now - anchor_ns_.load(std::memory_order_relaxed) < kReanchorAfterNs ||
      !seq_.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire,
                                    std::memory_order_relaxed))
    return now;
  std::atomic_thread_fence(std::memory_order_release);
  const Pair pair = read_pair();
  const std::uint64_t old_tsc = anchor_tsc_.load(std::memory_order_relaxed);
  const std::int64_t old_ns = anchor_ns_.load(std::memory_order_relaxed);
  const bool precise = pair.width <= kMaxPairTicks;
  std::uint64_t mult = 0;
  std::uint64_t horizon = 0;
  // The rate is measured between two uninterrupted pairs only; a counter that went backwards
  // (a migrated VM?) or an interrupted pair means: read steady_clock for one more interval.
  if (precise && anchor_precise_ && pair.tsc > old_tsc && pair.ns > old_ns) {
    const auto ticks = static_cast<Wide>(pair.tsc - old_tsc);
    const auto ns = static_cast<Wide>(pair.ns - old_ns);
    mult = static_cast<std::uint64_t>((ns << kShift) / ticks);
    // Ticks in one interval, and never so many that delta * mult overflows 64 bits.
    if (mult != 0) {
      horizon = std::min<std::uint64_t>((std::uint64_t{kReanchorAfterNs} << kShift) / mult,
                                        UINT64_MAX / mult);
    }
  }
  anchor_precise_ = precise;
  mult_.store(mult, std::memory_order_relaxed);
  horizon_.store(horizon, std::memory_order_relaxed);
  anchor_tsc_.store(pair.tsc, std::memory_order_relaxed);
  anchor_ns_.store(pair.ns, std::memory_order_relaxed);
  seq_.store(seq + 2, std::memory_order_release);
  return now;
#else
  return steady_ns();
#endif
}

}  // namespace pacer::internal
