#include "pacer/http/response.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <limits>
#include <ranges>
#include <string>
#include <utility>
#include <vector>

#include "pacer/http/request_view.h"

namespace pacer::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string render(const Policy& policy, const Decision& d, const HeaderOptions& options) {
  HeaderList list;
  append_headers(policy, d, options, list);
  std::string out;
  for (const auto& [name, value] : list) out.append(name).append(": ").append(value).append("\n");
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

// A reference for HeaderList: the same headers as owned strings.
using Owned = std::vector<std::pair<std::string, std::string>>;

Owned owned(const HeaderList& list) {
  Owned out;
  for (const auto& [name, value] : list) out.emplace_back(name, value);
  return out;
}

// Header names must outlive a list: these do.
constexpr std::array<std::string_view, 4> kNames = {"A", "Bb", "Ccc", "RateLimit-Remaining"};

static_assert(std::random_access_iterator<HeaderList::const_iterator>);
static_assert(std::ranges::random_access_range<const HeaderList>);

TEST(HeaderList, KeepsOrderAndValuesInlineAndBeyond) {
  // Past the inline entries (8) and the inline text (160 bytes), in every mix: long values
  // first, short ones after, and many short ones.
  for (const std::size_t value_size : {std::size_t{0}, std::size_t{1}, std::size_t{15},
                                       std::size_t{40}, std::size_t{159}, std::size_t{1000}}) {
    HeaderList list;
    Owned expected;
    for (std::size_t i = 0; i < 20; ++i) {
      const std::string value(i % 3 == 0 ? value_size : i, static_cast<char>('a' + i));
      list.add(kNames[i % kNames.size()], value);
      expected.emplace_back(kNames[i % kNames.size()], value);
      ASSERT_EQ(owned(list), expected) << "value size " << value_size << ", header " << i;
    }
    EXPECT_EQ(list.size(), 20U);
    EXPECT_EQ(std::string(list[19].second), expected[19].second);
    list.clear();
    EXPECT_TRUE(list.empty());
    EXPECT_EQ(list.begin(), list.end());
    list.add("A", "again");
    EXPECT_EQ(owned(list), (Owned{{"A", "again"}}));
  }
}

TEST(HeaderList, NumbersBeyondTheInlineText) {
  HeaderList list;
  list.add("Long", std::string(150, 'x'));  // leaves 10 bytes inline: too few for 20 digits
  list.add_number("N", std::numeric_limits<std::int64_t>::min());
  list.add_number("M", 7);
  for (int i = 0; i < 10; ++i) list.add_number("K", -i);
  ASSERT_EQ(list.size(), 13U);
  EXPECT_EQ(list[1].second, "-9223372036854775808");
  EXPECT_EQ(list[2].second, "7");
  EXPECT_EQ(list[12].second, "-9");
}

TEST(HeaderList, CopiesAndMovesAreIndependent) {
  HeaderList a;
  for (int i = 0; i < 12; ++i) a.add(kNames[i % kNames.size()], std::string(30, 'a' + i));
  const Owned before = owned(a);
  HeaderList b = a;
  EXPECT_EQ(a, b);
  b.add("X", "more");
  EXPECT_EQ(owned(a), before);  // the copy's storage is its own
  EXPECT_NE(a, b);
  HeaderList c = std::move(b);
  EXPECT_EQ(c.size(), 13U);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): a moved-from list is empty
  c = a;
  EXPECT_EQ(owned(c), before);
  HeaderList small{{"A", "1"}, {"Bb", "2"}};
  c = std::move(small);
  EXPECT_EQ(owned(c), (Owned{{"A", "1"}, {"Bb", "2"}}));
  const HeaderList& same = c;
  c = same;  // self-assignment keeps the list
  EXPECT_EQ(owned(c), (Owned{{"A", "1"}, {"Bb", "2"}}));
}

TEST(HeaderList, AddsItsOwnValues) {
  // A value taken from the list itself stays valid while the list grows under it.
  HeaderList list;
  list.add("A", std::string(200, 'z'));  // on the heap
  for (int i = 0; i < 30; ++i) list.add("A", list[static_cast<std::size_t>(i)].second);
  for (const auto& [name, value] : list) EXPECT_EQ(value, std::string(200, 'z'));
}

TEST(HeaderList, FindsByNameIgnoringCase) {
  const HeaderList list{{"RateLimit-Limit", "10"}, {"Retry-After", "3"}, {"retry-after", "4"}};
  EXPECT_EQ(list.find("ratelimit-limit"), "10");
  EXPECT_EQ(list.find("RETRY-AFTER"), "3");  // the first one
  EXPECT_EQ(list.find("RateLimit-Reset"), std::nullopt);
  EXPECT_EQ(std::count_if(list.begin(), list.end(),
                          [](const auto& header) { return iequals(header.first, "retry-after"); }),
            2);
}

}  // namespace
}  // namespace pacer::http
