// gcra_step against the shared table of cases (tests/support/gcra_cases.h), which the Redis
// script's test reads too.
#include "../support/gcra_cases.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "pacer/gcra.h"

namespace pacer {
namespace {

using testing::gcra_cases;
using testing::kGcraCaseNow;

TEST(GcraCases, TableIsNotEmpty) { EXPECT_GE(gcra_cases().size(), 20u); }

TEST(GcraCases, GcraStepGivesEveryExpectedDecisionAndState) {
  for (const auto& c : gcra_cases()) {
    SCOPED_TRACE(c.name);
    std::vector<Rate> rates;
    for (const auto& r : c.rates) rates.push_back(r.rate());
    // A missing key is the same as TATs at now.
    std::vector<std::int64_t> tats(rates.size(), kGcraCaseNow);
    if (c.tats) {
      ASSERT_EQ(c.tats->size(), rates.size());
      for (std::size_t i = 0; i < rates.size(); ++i) tats[i] = kGcraCaseNow + (*c.tats)[i];
    }

    const Decision d = gcra_step(rates, tats, kGcraCaseNow, c.cost);

    EXPECT_EQ(to_string(d.outcome), to_string(c.outcome));
    EXPECT_EQ(d.remaining, c.remaining);
    EXPECT_EQ(d.retry_after.count(), c.retry_after_ns);
    EXPECT_EQ(d.reset_after.count(), c.reset_after_ns);
    EXPECT_EQ(d.rate_index, c.rate_index);
    EXPECT_EQ(d.limit, c.rates.at(c.rate_index).permits);
    // The step writes exactly what the table says is stored afterwards.
    std::vector<std::int64_t> expected(rates.size(), kGcraCaseNow);
    if (c.tats_after) {
      ASSERT_EQ(c.tats_after->size(), rates.size());
      for (std::size_t i = 0; i < rates.size(); ++i)
        expected[i] = kGcraCaseNow + (*c.tats_after)[i];
    }
    EXPECT_EQ(tats, expected);
  }
}

}  // namespace
}  // namespace pacer
