// Limiter::peek is what the next check answers, and spends nothing (docs/DESIGN.md §2): checked
// on random policies and request sequences with a manual clock, so every answer is exact.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <vector>

#include "pacer/limiter.h"

namespace pacer {
namespace {

void expect_same(const Decision& a, const Decision& b) {
  RC_ASSERT(a.outcome == b.outcome);
  RC_ASSERT(a.remaining == b.remaining);
  RC_ASSERT(a.limit == b.limit);
  RC_ASSERT(a.retry_after == b.retry_after);
  RC_ASSERT(a.reset_after == b.reset_after);
  RC_ASSERT(a.rate_index == b.rate_index);
}

RC_GTEST_PROP(Peek, IsTheNextCheckAndSpendsNothing, ()) {
  const int n = *rc::gen::inRange(1, 4);
  std::vector<Rate> rates;
  for (int i = 0; i < n; ++i) {
    const auto permits = *rc::gen::inRange<std::int64_t>(1, 100);
    const auto period_ms = *rc::gen::inRange<std::int64_t>(1, 60'000);
    const auto burst = *rc::gen::inRange<std::int64_t>(0, 10);
    rates.emplace_back(permits, std::chrono::milliseconds(period_ms), burst);
  }
  const Policy policy("p", rates);
  std::int64_t now = 1'000'000'000;
  MemoryStoreOptions options{.clock = [&now] { return now; }};
  MemoryStore peeked_store(options);
  MemoryStore plain_store(options);
  Limiter peeked(peeked_store);
  Limiter plain(plain_store);

  const int steps = *rc::gen::inRange(1, 60);
  for (int i = 0; i < steps; ++i) {
    now += *rc::gen::inRange<std::int64_t>(0, 2'000'000'000);
    const auto cost = *rc::gen::inRange<std::int64_t>(0, 15);
    const Decision before = peeked.peek(policy, "k", cost);
    const Decision again = peeked.peek(policy, "k", cost);
    const Decision checked = peeked.check(policy, "k", cost);
    // The same sequence without peeks: peeking changed nothing.
    const Decision unpeeked = plain.check(policy, "k", cost);
    expect_same(before, checked);
    expect_same(again, checked);
    expect_same(unpeeked, checked);
  }
  // Peeks are no decisions: only the checks are counted.
  RC_ASSERT(peeked.metrics().snapshot().allowed + peeked.metrics().snapshot().denied ==
            static_cast<std::uint64_t>(steps));
}

}  // namespace
}  // namespace pacer
