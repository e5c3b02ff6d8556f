// pacer/error.h and the decision names, linked with pacer::core alone (this target links
// nothing else): a user of the GCRA step needs no limiter or store to name its errors.
#include "pacer/error.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "pacer/decision.h"

namespace pacer {
namespace {

TEST(ErrorTest, EveryCodeHasItsOwnMessageInThePacerCategory) {
  const Errc codes[] = {Errc::kStoreUnavailable, Errc::kTimeout,    Errc::kCircuitOpen,
                        Errc::kInvalidCost,      Errc::kInvalidKey, Errc::kProtocol,
                        Errc::kOverloaded,       Errc::kRateTooFine};
  std::set<std::string> messages;
  for (const Errc code : codes) {
    const std::error_code ec = make_error_code(code);
    EXPECT_STREQ(ec.category().name(), "pacer");
    EXPECT_TRUE(ec);
    EXPECT_TRUE(messages.insert(ec.message()).second) << ec.message();
  }
  EXPECT_EQ(std::error_code(Errc::kTimeout), make_error_code(Errc::kTimeout));
  EXPECT_EQ(std::error_code(999, pacer_category()).message(), "unknown pacer error 999");
}

TEST(ErrorTest, OutcomesHaveNames) {
  EXPECT_EQ(to_string(Outcome::kAllowed), "allowed");
  EXPECT_EQ(to_string(Outcome::kDenied), "denied");
}

}  // namespace
}  // namespace pacer
