#include "pacer/http/response.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

namespace pacer::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string render(const Policy& policy, const Decision& d, const HeaderOptions& options) {
  HeaderList list;
  append_headers(policy, d, options, list);
  std::string out;
  for (const auto& [name, value] : list) out += std::string(name) + ": " + value + "\n";
  return out;
}

TEST(Response, AllowedAndDeniedHeaders) {
  const Policy api("api", {Rate(100, seconds(60), 10)});
  Decision allowed{.outcome = Outcome::kAllowed, .limit = 100, .remaining = 7};
  allowed.reset_after = milliseconds(2'500);
  EXPECT_EQ(render(api, allowed, {}),
            "RateLimit-Limit: 100\nRateLimit-Remaining: 7\nRateLimit-Reset: 3\n");
  Decision denied{.outcome = Outcome::kDenied, .limit = 100, .remaining = 0};
  denied.retry_after = milliseconds(1);
  denied.reset_after = seconds(66);
  EXPECT_EQ(render(api, denied, {}),
            "RateLimit-Limit: 100\nRateLimit-Remaining: 0\nRateLimit-Reset: 66\nRetry-After: 1\n");
  EXPECT_EQ(render(api, denied, {.ratelimit = false}), "Retry-After: 1\n");
}

TEST(Response, NumbersOfEveryLength) {
  const Policy big("big", {Rate(1, seconds(1))});
  for (std::int64_t n :
       {std::int64_t{0}, std::int64_t{9}, std::int64_t{999'999'999'999'999},
        std::int64_t{1'000'000'000'000'000}, std::numeric_limits<std::int64_t>::max(),
        std::int64_t{-1}, std::numeric_limits<std::int64_t>::min()}) {
    const Decision d{.outcome = Outcome::kAllowed, .limit = n, .remaining = n};
    HeaderList list;
    append_headers(big, d, {}, list);
    ASSERT_EQ(list.size(), 3U);
    EXPECT_EQ(list[0].second, std::to_string(n));
    EXPECT_EQ(list[1].second, std::to_string(n));
  }
  // Each side of every power of ten, positive and negative; the limit once as the rate's own
  // permits (rendered with the policy) and once as a number a store reported.
  for (std::int64_t p = 1;; p *= 10) {
    for (std::int64_t n : {p - 1, p, p + 1, -p, 1 - p}) {
      const std::int64_t permits = std::clamp<std::int64_t>(n, 1, 1'000'000'000);
      const Policy rate_n("n", {Rate(permits, seconds(1))});
      for (std::int64_t limit : {permits, n}) {
        const Decision d{.outcome = Outcome::kAllowed, .limit = limit, .remaining = n};
        HeaderList list;
        append_headers(rate_n, d, {}, list);
        ASSERT_EQ(list.size(), 3U);
        EXPECT_EQ(list[0].second, std::to_string(limit));
        EXPECT_EQ(list[1].second, std::to_string(n));
      }
    }
    if (p > std::numeric_limits<std::int64_t>::max() / 10) break;  // 10^18, the last power
  }
}

TEST(Response, PolicyHeadersNameEveryRate) {
  const Policy two("two", {Rate(10, seconds(1), 9), Rate(3, seconds(60), 2)});
  Decision d{.outcome = Outcome::kAllowed, .limit = 3, .remaining = 2};
  d.rate_index = 1;
  d.reset_after = seconds(20);
  EXPECT_EQ(render(two, d, {.ratelimit = false, .x_ratelimit_policy = true, .ietf_draft = true}),
            "X-RateLimit-Policy: Policy(two): 10/1s (burst=9), 3/1m (burst=2)\n"
            "RateLimit-Policy: \"two\";q=10;w=1, \"two.1\";q=3;w=60\n"
            "RateLimit: \"two.1\";r=2;t=20\n");
}

TEST(Response, Bodies) {
  Decision d{.outcome = Outcome::kDenied};
  d.retry_after = std::chrono::microseconds(1'500);
  EXPECT_EQ(too_many_requests_body(d, BodyStyle::kFlat),
            R"({"detail":"rate_limited","retry_after_ms":2})");
  EXPECT_EQ(too_many_requests_body(d, BodyStyle::kNested),
            R"({"detail":{"detail":"rate_limited","retry_after_ms":2}})");
  d.outcome = Outcome::kExceedsCapacity;
  EXPECT_EQ(too_many_requests_body(d, BodyStyle::kFlat),
            R"({"detail":"cost_exceeds_capacity","retry_after_ms":null})");
  EXPECT_EQ(unavailable_body(), R"({"detail":"Service temporarily unavailable"})");
  EXPECT_EQ(ceil_milliseconds(std::chrono::nanoseconds(0)), 0);
  EXPECT_EQ(ceil_seconds(std::chrono::nanoseconds(1)), 1);
}

}  // namespace
}  // namespace pacer::http
