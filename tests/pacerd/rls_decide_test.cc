// ShouldRateLimit's rules without gRPC (apps/pacerd/rls/rls_decide.h; docs/API.md, "Envoy rate
// limit service"), on the in-process store: fixed windows as GCRA, overrides, shadow mode,
// unlimited and blocked limits, replaces, hits_addend, and requests refused before anything is
// spent.
#include "rls/rls_decide.h"

#include <gtest/gtest.h>

#include <vector>

#include "pacer/memory_store.h"

namespace pacer::pacerd::rls {
namespace {

constexpr const char* kConfig = R"(domain: edge
descriptors:
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3}
  - key: tenant
    rate_limit: {unit: hour, requests_per_unit: 2}
    shadow_mode: true
  - key: health
    rate_limit: {unlimited: true}
  - key: blocked
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 100, name: per_user}
  - key: route
    descriptors:
      - key: caller
        rate_limit: {unit: minute, requests_per_unit: 1}
  - key: vip
    rate_limit: {unit: minute, requests_per_unit: 1000, name: vip, replaces: [{name: per_user}]}
)";

class RlsDecide : public ::testing::Test {
 protected:
  RlsConfig config = RlsConfig::load(std::vector<SourceFile>{{"edge.yaml", kConfig}});
  MemoryStore store;
  Limiter limiter{store};

  RlsAnswer ask(RlsRequest request) {
    EXPECT_EQ(validate(request), "");
    std::optional<RlsAnswer> got;
    decide(limiter, config, "pacerd", request, nullptr, [&](RlsAnswer a) { got = std::move(a); });
    EXPECT_TRUE(got) << "the in-process store answers inline";
    return got.value_or(RlsAnswer{});
  }
  static RlsRequest one(std::string key, std::string value, std::uint32_t hits = 0) {
    return RlsRequest{"edge", {RlsDescriptor{{{std::move(key), std::move(value)}}, {}}}, hits};
  }
};

TEST_F(RlsDecide, AFixedWindowAdmitsItsCountAtOnceThenSaysOverLimit) {
  for (int i = 0; i < 3; ++i) {
    const auto a = ask(one("remote_address", "10.0.0.1"));
    EXPECT_EQ(a.overall, Code::kOk);
    ASSERT_EQ(a.statuses.size(), 1u);
    ASSERT_TRUE(a.statuses[0].current_limit);
    EXPECT_EQ(a.statuses[0].current_limit->requests_per_unit, 3u);
    EXPECT_EQ(a.statuses[0].current_limit->unit, Unit::kMinute);
    EXPECT_EQ(a.statuses[0].limit_remaining, static_cast<std::uint32_t>(2 - i));
  }
  const auto over = ask(one("remote_address", "10.0.0.1"));
  EXPECT_EQ(over.overall, Code::kOverLimit);
  EXPECT_EQ(over.statuses[0].code, Code::kOverLimit);
  EXPECT_GT(over.statuses[0].retry_after.count(), 0);
  EXPECT_GT(over.statuses[0].duration_until_reset.count(), 0);
  // Another address has its own bucket.
  EXPECT_EQ(ask(one("remote_address", "10.0.0.2")).overall, Code::kOk);
}

TEST_F(RlsDecide, HitsAddendSpendsThatMany) {
  EXPECT_EQ(ask(one("remote_address", "a", 3)).overall, Code::kOk);
  EXPECT_EQ(ask(one("remote_address", "a", 1)).overall, Code::kOverLimit);
  // More than a whole window can never pass.
  EXPECT_EQ(ask(one("remote_address", "b", 4)).overall, Code::kOverLimit);
}

TEST_F(RlsDecide, ShadowModeCountsButAnswersOk) {
  for (int i = 0; i < 4; ++i) {
    const auto a = ask(one("tenant", "acme"));
    EXPECT_EQ(a.overall, Code::kOk);
    EXPECT_EQ(a.statuses[0].shadowed, i >= 2);
  }
}

TEST_F(RlsDecide, UnknownUnlimitedAndBlockedDescriptors) {
  const auto unknown = ask(one("nothing", "x"));
  EXPECT_EQ(unknown.overall, Code::kOk);
  EXPECT_FALSE(unknown.statuses[0].current_limit);
  const auto health = ask(one("health", "x"));
  EXPECT_EQ(health.overall, Code::kOk);
  EXPECT_TRUE(health.statuses[0].unlimited);
  EXPECT_FALSE(health.statuses[0].current_limit);
  const auto blocked = ask(one("blocked", "x"));
  EXPECT_EQ(blocked.overall, Code::kOverLimit);
  ASSERT_TRUE(blocked.statuses[0].current_limit);
  EXPECT_EQ(blocked.statuses[0].current_limit->requests_per_unit, 0u);
  auto other = one("remote_address", "x");
  other.domain = "another";
  EXPECT_EQ(ask(other).overall, Code::kOk);
}

TEST_F(RlsDecide, OneDescriptorOverTheLimitMakesTheRequestOverAndTheOthersStillCount) {
  RlsRequest both{
      "edge",
      {RlsDescriptor{{{"remote_address", "r1"}}, {}}, RlsDescriptor{{{"user", "u1"}}, {}}},
      0};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ask(both).overall, Code::kOk);
  const auto a = ask(both);
  EXPECT_EQ(a.overall, Code::kOverLimit);
  EXPECT_EQ(a.statuses[0].code, Code::kOverLimit);
  EXPECT_EQ(a.statuses[1].code, Code::kOk);
  EXPECT_EQ(a.statuses[1].limit_remaining, 96u);  // four counted on the user
}

TEST_F(RlsDecide, ALimitThatReplacesAnotherDropsItForThatRequest) {
  RlsRequest both{
      "edge", {RlsDescriptor{{{"user", "u2"}}, {}}, RlsDescriptor{{{"vip", "v"}}, {}}}, 0};
  const auto a = ask(both);
  EXPECT_EQ(a.overall, Code::kOk);
  EXPECT_FALSE(a.statuses[0].current_limit);  // per_user replaced by vip
  ASSERT_TRUE(a.statuses[1].current_limit);
  EXPECT_EQ(a.statuses[1].current_limit->name, "vip");
  // Alone, per_user applies.
  EXPECT_TRUE(ask(one("user", "u2")).statuses[0].current_limit);
}

TEST_F(RlsDecide, ADescriptorsOwnLimitOverridesTheConfiguredOne) {
  RlsRequest r{"edge",
               {RlsDescriptor{{{"remote_address", "o1"}}, RlsDescriptor::Override{1, Unit::kHour}}},
               0};
  EXPECT_EQ(ask(r).overall, Code::kOk);
  const auto over = ask(r);
  EXPECT_EQ(over.overall, Code::kOverLimit);
  EXPECT_EQ(over.statuses[0].current_limit->unit, Unit::kHour);
  // The configured limit's bucket was not spent by the override.
  EXPECT_EQ(ask(one("remote_address", "o1")).statuses[0].limit_remaining, 2u);
  r.descriptors[0].limit->requests_per_unit = 0;
  EXPECT_EQ(ask(r).overall, Code::kOverLimit);
}

TEST_F(RlsDecide, BadRequestsAreRefusedNamingTheField) {
  EXPECT_EQ(validate(RlsRequest{"", {RlsDescriptor{{{"k", "v"}}, {}}}, 0}),
            "domain: must not be empty");
  EXPECT_EQ(validate(RlsRequest{"edge", {}, 0}), "descriptors: at least one is required");
  EXPECT_EQ(validate(RlsRequest{"edge", {RlsDescriptor{}}, 0}),
            "descriptors[0].entries: 1 to 16 entries, got 0");
  EXPECT_EQ(validate(RlsRequest{"edge", {RlsDescriptor{{{"", "v"}}, {}}}, 0}),
            "descriptors[0].entries[0]: key of 1 to 1024 bytes and value of at most 1024 bytes, "
            "got 0 and 1");
  EXPECT_EQ(
      validate(RlsRequest{
          "edge", {RlsDescriptor{{{"k", "v"}}, RlsDescriptor::Override{5, Unit::kUnknown}}}, 0}),
      "descriptors[0].limit.unit: expected SECOND, MINUTE, HOUR, DAY, MONTH or YEAR, got UNKNOWN");
  RlsRequest many{"edge", std::vector<RlsDescriptor>(65, RlsDescriptor{{{"k", "v"}}, {}}), 0};
  EXPECT_EQ(validate(many), "descriptors: at most 64, got 65");
}

TEST_F(RlsDecide, HostileIdentitiesGetTheirOwnSafeKeys) {
  // Braces, bars and control bytes cannot forge another key: they are hashed into the key.
  EXPECT_EQ(ask(one("remote_address", "x}|{edge.remote_address_y\n")).overall, Code::kOk);
  EXPECT_EQ(ask(one("remote_address", std::string(1024, '\xff'))).overall, Code::kOk);
  EXPECT_EQ(ask(one("remote_address", "y")).statuses[0].limit_remaining, 2u);
}

TEST_F(RlsDecide, ValuesThatReadAlikeWhenJoinedNeverShareABucket) {
  // Joined as text, both read "route_x.caller_y.caller_z": a caller choosing its values must
  // not land in another caller's bucket (docs/DESIGN.md §4).
  auto nested = [](std::string route, std::string caller) {
    return RlsRequest{
        "edge",
        {RlsDescriptor{{{"route", std::move(route)}, {"caller", std::move(caller)}}, {}}},
        0};
  };
  EXPECT_EQ(ask(nested("x.caller_y", "z")).overall, Code::kOk);
  EXPECT_EQ(ask(nested("x", "y.caller_z")).overall, Code::kOk);
  EXPECT_EQ(ask(nested("x", "y.caller_z")).overall, Code::kOverLimit);  // its own bucket is full
}

}  // namespace
}  // namespace pacer::pacerd::rls

namespace pacer::pacerd::rls {
namespace {

// The structure of envoyproxy/ratelimit's example configuration (its
// examples/ratelimit/config/example.yaml: nested values, a value-less key with children, a
// blocked value, unlimited and shadow-mode limits), loaded unchanged and decided as its
// documentation says.
constexpr const char* kUpstreamExample = R"(---
domain: rl
descriptors:
  - key: source_cluster
    value: proxy
    descriptors:
      - key: destination_cluster
        value: mock
        rate_limit:
          unit: minute
          requests_per_unit: 1
  - key: foo
    rate_limit:
      unit: minute
      requests_per_unit: 2
    descriptors:
      - key: bar
        rate_limit:
          unit: minute
          requests_per_unit: 3
      - key: bar
        value: banned
        rate_limit:
          unit: minute
          requests_per_unit: 0
      - key: baz
        rate_limit:
          unit: second
          requests_per_unit: 1
      - key: bay
        rate_limit:
          unlimited: true
      - key: baz
        value: shady
        rate_limit:
          unit: minute
          requests_per_unit: 1
        shadow_mode: true
  - key: qux
    rate_limit:
      unlimited: true
)";

TEST(RlsUpstreamExample, LoadsAndDecidesAsDocumented) {
  const auto config = RlsConfig::load(std::vector<SourceFile>{{"example.yaml", kUpstreamExample}});
  MemoryStore store;
  Limiter limiter(store);
  auto ask = [&](std::vector<std::pair<std::string, std::string>> entries) {
    std::optional<RlsAnswer> got;
    decide(limiter, config, "pacerd", RlsRequest{"rl", {RlsDescriptor{std::move(entries), {}}}, 0},
           nullptr, [&](RlsAnswer a) { got = std::move(a); });
    return got.value().statuses.at(0);
  };
  // source_cluster=proxy, destination_cluster=mock: 1 per minute.
  EXPECT_EQ(ask({{"source_cluster", "proxy"}, {"destination_cluster", "mock"}}).code, Code::kOk);
  EXPECT_EQ(ask({{"source_cluster", "proxy"}, {"destination_cluster", "mock"}}).code,
            Code::kOverLimit);
  // foo (any value): 2 per minute; foo + bar (any value): 3 per minute.
  EXPECT_EQ(ask({{"foo", "f1"}}).current_limit->requests_per_unit, 2u);
  EXPECT_EQ(ask({{"foo", "f1"}, {"bar", "b"}}).current_limit->requests_per_unit, 3u);
  // bar=banned: 0 per minute, always over.
  EXPECT_EQ(ask({{"foo", "f1"}, {"bar", "banned"}}).code, Code::kOverLimit);
  // baz: 1 per second; baz=shady: shadow mode, never over.
  EXPECT_EQ(ask({{"foo", "f2"}, {"baz", "x"}}).current_limit->unit, Unit::kSecond);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ask({{"foo", "f2"}, {"baz", "shady"}}).code, Code::kOk);
  EXPECT_TRUE(ask({{"foo", "f2"}, {"baz", "shady"}}).shadowed);
  // bay and qux: unlimited.
  EXPECT_TRUE(ask({{"foo", "f3"}, {"bay", "x"}}).unlimited);
  EXPECT_TRUE(ask({{"qux", "anything"}}).unlimited);
  // source_cluster=proxy alone has no limit of its own.
  EXPECT_FALSE(ask({{"source_cluster", "proxy"}}).current_limit);
}

}  // namespace
}  // namespace pacer::pacerd::rls
