// envoyproxy/ratelimit's YAML as pacerd reads it (apps/pacerd/rls/rls_config.h; docs/API.md,
// "Envoy rate limit service"): lookups most specific first, the fixed window as GCRA, and every
// malformed file refused naming file, line, column and what is accepted.
#include "rls/rls_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace pacer::pacerd::rls {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr const char* kEdge = R"(domain: edge
descriptors:
  - key: remote_address
    rate_limit:
      unit: minute
      requests_per_unit: 10
  - key: remote_address
    value: 10.0.0.1
    rate_limit:
      unit: second
      requests_per_unit: 50
      name: trusted
  - key: path
    value: /admin*
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: authenticated
    value: "false"
    descriptors:
      - key: client_id
        rate_limit: {unit: day, requests_per_unit: 1000}
        shadow_mode: true
  - key: healthcheck
    rate_limit: {unlimited: true}
  - key: blocked
    rate_limit: {unit: second, requests_per_unit: 0}
)";

RlsConfig edge() { return RlsConfig::load(std::vector<SourceFile>{{"edge.yaml", kEdge}}); }

const RlsLimit* find(const RlsConfig& config, std::vector<RlsConfig::Entry> entries,
                     std::string_view domain = "edge") {
  return config.find(domain, entries);
}

TEST(RlsConfig, TheMostSpecificDescriptorWins) {
  const auto config = edge();
  const RlsLimit* any = find(config, {{"remote_address", "10.9.9.9"}});
  ASSERT_NE(any, nullptr);
  EXPECT_EQ(any->full_key, "edge.remote_address");
  EXPECT_EQ(any->requests_per_unit, 10u);
  EXPECT_EQ(any->unit, Unit::kMinute);
  const RlsLimit* exact = find(config, {{"remote_address", "10.0.0.1"}});
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(exact->full_key, "edge.remote_address_10.0.0.1");
  EXPECT_EQ(exact->name, "trusted");
  EXPECT_EQ(exact->unit, Unit::kSecond);
}

TEST(RlsConfig, AValueEndingInAStarMatchesByPrefix) {
  const auto config = edge();
  const RlsLimit* admin = find(config, {{"path", "/admin/users"}});
  ASSERT_NE(admin, nullptr);
  EXPECT_EQ(admin->full_key, "edge.path_/admin*");
  EXPECT_EQ(find(config, {{"path", "/public"}}), nullptr);
}

TEST(RlsConfig, NestedDescriptorsMatchLevelByLevelAndOnlyAtTheRequestsDepth) {
  const auto config = edge();
  const RlsLimit* nested = find(config, {{"authenticated", "false"}, {"client_id", "foo"}});
  ASSERT_NE(nested, nullptr);
  EXPECT_TRUE(nested->shadow);
  EXPECT_EQ(nested->full_key, "edge.authenticated_false.client_id");
  // The first level alone has no limit; a deeper request than the configuration has none.
  EXPECT_EQ(find(config, {{"authenticated", "false"}}), nullptr);
  EXPECT_EQ(find(config, {{"remote_address", "1.2.3.4"}, {"path", "/"}}), nullptr);
  EXPECT_EQ(find(config, {{"authenticated", "true"}, {"client_id", "foo"}}), nullptr);
  EXPECT_EQ(find(config, {{"remote_address", "1.2.3.4"}}, "other-domain"), nullptr);
  EXPECT_EQ(find(config, {}), nullptr);
}

TEST(RlsConfig, UnlimitedAndZeroLimitsCarryNoRate) {
  const auto config = edge();
  const RlsLimit* health = find(config, {{"healthcheck", "x"}});
  ASSERT_NE(health, nullptr);
  EXPECT_TRUE(health->unlimited);
  EXPECT_FALSE(health->policy);
  const RlsLimit* blocked = find(config, {{"blocked", "x"}});
  ASSERT_NE(blocked, nullptr);
  EXPECT_EQ(blocked->requests_per_unit, 0u);
  EXPECT_FALSE(blocked->policy);  // 0 per unit: every request is over the limit
}

TEST(RlsConfig, AFixedWindowBecomesItsCountAtOnceThenASteadyRefill) {
  const Rate r = window_rate(10, Unit::kMinute);
  EXPECT_EQ(r.permits(), 10);
  EXPECT_EQ(r.burst(), 9);
  EXPECT_EQ(r.emission_interval(), 6s);
  EXPECT_EQ(unit_length(Unit::kMonth), 24h * 30);
  EXPECT_EQ(unit_length(Unit::kYear), 24h * 365);
  const auto config = edge();
  const RlsLimit* any = find(config, {{"remote_address", "10.9.9.9"}});
  ASSERT_TRUE(any->policy);
  EXPECT_EQ(any->policy->name(), "edge.remote_address");
  EXPECT_EQ(any->policy->rates()[0], r);
}

TEST(RlsConfig, DescriptorPathsThatAreNoPolicyNameAreNamedByDigest) {
  const auto config = edge();
  const RlsLimit* admin = find(config, {{"path", "/admin/x"}});
  ASSERT_TRUE(admin->policy);
  EXPECT_THAT(admin->policy->name(), ::testing::StartsWith("rls-"));
  EXPECT_EQ(admin->policy->name().size(), 20u);
}

TEST(RlsConfig, UnitsAreReadInAnyCase) {
  EXPECT_EQ(parse_unit("SECOND"), Unit::kSecond);
  EXPECT_EQ(parse_unit("Day"), Unit::kDay);
  EXPECT_EQ(parse_unit("fortnight"), std::nullopt);
  EXPECT_EQ(parse_unit(""), std::nullopt);
}

std::string error_of(const std::string& text, const std::string& path = "bad.yaml") {
  try {
    RlsConfig::load(std::vector<SourceFile>{{path, text}});
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(RlsConfig, EveryMalformedFileIsRefusedNamingWhereAndWhatIsAccepted) {
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, "
                       "requests_per_unit: 1}\n"),
              HasSubstr("bad.yaml:4:24: `unit` 'fortnight' is not a unit: expected second, "
                        "minute, hour, day, month or year"));
  EXPECT_THAT(error_of("domain: d\ncolour: blue\n"),
              HasSubstr("bad.yaml:2:1: unknown key `colour` in the top level; expected one of: "
                        "domain, descriptors"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n  - key: k\n"),
              HasSubstr("bad.yaml:4:5: duplicate descriptor 'd.k'"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, "
                       "unit: second}\n"),
              HasSubstr("an `unlimited` limit takes no `unit`"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, "
                       "requests_per_unit: -1}\n"),
              HasSubstr("`requests_per_unit` must be a whole number from 0 to 4294967295, got "
                        "'-1'"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, "
                       "requests_per_unit: 5, name: a, replaces: [{name: a}]}\n"),
              HasSubstr("a limit cannot replace itself ('a')"));
  EXPECT_THAT(error_of("descriptors: []\n"), HasSubstr("`domain` is required"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - value: v\n"),
              HasSubstr("a descriptor needs a non-empty `key`"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n    unit: second\n"),
              HasSubstr("`unit` does not belong in a descriptor"));
  EXPECT_THAT(error_of("domain: d\ndescriptors:\n  - key: k\n    shadow_mode: maybe\n"),
              HasSubstr("`shadow_mode` must be true or false, got 'maybe'"));
  EXPECT_THAT(error_of("domain: [d\n"), HasSubstr("bad.yaml:"));
  EXPECT_THAT(error_of("- just\n- a list\n"), HasSubstr("expected a mapping"));
}

TEST(RlsConfig, EveryProblemOfAFileIsReportedNotOnlyTheFirst) {
  const std::string e = error_of(
      "domain: d\ncolour: blue\ndescriptors:\n  - key: k\n    rate_limit: {unit: x, "
      "requests_per_unit: 1}\n");
  EXPECT_THAT(e, HasSubstr("colour"));
  EXPECT_THAT(e, HasSubstr("'x' is not a unit"));
}

TEST(RlsConfig, TwoFilesForOneDomainAreRefusedNamingBoth) {
  try {
    RlsConfig::load(std::vector<SourceFile>{{"a.yaml", "domain: d\n"}, {"b.yaml", "domain: d\n"}});
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("b.yaml: domain 'd' is also configured in a.yaml"));
  }
}

TEST(RlsConfig, HostileFilesAreRefusedNotCrashedOn) {
  std::string deep = "domain: d\ndescriptors:\n";
  for (int i = 0; i < 3000; ++i) deep += std::string(static_cast<size_t>(i % 40), ' ') + "[";
  EXPECT_NE(error_of(deep), "no error");
  EXPECT_NE(error_of(std::string("domain: d\0\xff\xfe", 13)), "");
  EXPECT_NE(error_of("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second, "
                     "requests_per_unit: 99999999999999999999999}\n"),
            "no error");
  // A good file still loads after all of these.
  EXPECT_NO_THROW(edge());
}

}  // namespace
}  // namespace pacer::pacerd::rls

namespace pacer::pacerd::rls {
namespace {

TEST(RlsConfig, TheExampleDirectoryLoads) {
  const auto files = read_directory(PACER_SOURCE_DIR "/examples/envoy/ratelimit");
  ASSERT_EQ(files.size(), 1u);
  const auto config = RlsConfig::load(files);
  EXPECT_EQ(config.limits().size(), 4u);
  EXPECT_THROW(read_directory(PACER_SOURCE_DIR "/no/such/dir"), ConfigError);
}

}  // namespace
}  // namespace pacer::pacerd::rls
