// http::Rule and http::decide (docs/DESIGN.md §7): the one unit every front end decides by.
// Each behaviour runs on the in-process store (answered inline) and on a store that answers
// later (HeldStore), which take different paths through decide().
#include "pacer/http/rule.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "../support/held_store.h"

namespace pacer::http {
namespace {

using std::chrono::seconds;

SimpleRequest request(std::string peer = "192.0.2.10") {
  SimpleRequest r;
  r.path_ = "/things";
  r.route_ = "/things";
  r.peer_ = std::move(peer);
  return r;
}

std::string header(const Verdict& v, std::string_view name) {
  for (const auto& [n, value] : v.headers)
    if (n == name) return std::string(value);
  return "<absent>";
}

// Runs decide() on either kind of store and returns the verdict.
class Decide : public ::testing::TestWithParam<bool> {
 protected:
  bool held() const { return GetParam(); }
  Store& store() { return held() ? static_cast<Store&>(held_) : memory_; }

  Verdict run(std::vector<const Rule*> rules, const RequestView& r) {
    std::optional<Verdict> out;
    decide(limiter_, rules, r, std::make_shared<int>(0), [&](Verdict&& v) { out = std::move(v); });
    while (held() && !out && held_.answer_all() > 0) {
    }
    EXPECT_TRUE(out.has_value());
    return out ? std::move(*out) : Verdict{};
  }
  Decision peek(const Rule& rule, const RequestView& r) {
    std::string key;
    EXPECT_TRUE(rule.append_key(key, r));
    std::optional<Decision> out;
    limiter_.peek(rule.policy(), key, 0, [&](const Decision& d) { out = d; });
    while (held() && !out && held_.answer_all() > 0) {
    }
    return out.value_or(Decision{});
  }

  testing::HeldStore held_;
  MemoryStore memory_;
  Limiter limiter_{store()};
  RuleContext context_{.key_prefix = "svc"};
};

INSTANTIATE_TEST_SUITE_P(Stores, Decide, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "held" : "memory"; });

TEST_P(Decide, PassesWithHeadersThenRefusesWith429AndAnExplicitAction) {
  const Rule rule({.policy = Policy("p", {Rate(1, seconds(60), 1)})}, context_);
  const Verdict first = run({&rule}, request());
  EXPECT_EQ(first.action, Action::kPass);
  EXPECT_FALSE(first.refused());
  EXPECT_EQ(header(first, "RateLimit-Remaining"), "1");
  ASSERT_TRUE(first.decision.has_value());
  EXPECT_TRUE(first.decision->allowed());
  run({&rule}, request());
  const Verdict third = run({&rule}, request());
  EXPECT_EQ(third.action, Action::kRefuse);
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(header(third, "Retry-After"), "60");
  EXPECT_NE(third.body.find("rate_limited"), std::string::npos);
}

// A missing identity is refused with 401 by default, before any rule spends anything; "shared"
// counts such requests in one anonymous bucket.
TEST_P(Decide, MissingIdentityIsRefusedBeforeAnythingIsSpentOrShared) {
  const Rule per_ip({.policy = Policy("ip", {Rate(5, seconds(60), 4)})}, context_);
  const Rule per_key(
      {.policy = Policy("key", {Rate(5, seconds(60), 4)}), .identity = Identity::api_key()},
      context_);
  const Verdict refused = run({&per_ip, &per_key}, request());
  EXPECT_EQ(refused.action, Action::kRefuse);
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(refused.body, R"({"detail":"identity_missing"})");
  EXPECT_FALSE(refused.decision.has_value());
  EXPECT_EQ(peek(per_ip, request()).remaining, 5);  // nothing spent

  const Rule shared({.policy = Policy("key", {Rate(5, seconds(60), 4)}),
                     .identity = Identity::api_key(),
                     .missing_identity = MissingIdentity::kShared},
                    context_);
  EXPECT_FALSE(run({&shared}, request("198.51.100.1")).refused());
  EXPECT_EQ(run({&shared}, request("198.51.100.2")).decision->remaining, 3);  // one bucket
  std::string key;
  ASSERT_TRUE(shared.append_key(key, request()));
  EXPECT_EQ(key, "svc:{key:/things:anonymous}");
}

// A shadow rule decides and counts but never refuses and never shows a would-be denial.
TEST_P(Decide, ShadowRulesNeverRefuseAndShowNothing) {
  std::vector<Outcome> seen;
  const Rule shadow(
      {.policy = Policy("s", {Rate(1, seconds(60))}),
       .shadow = true,
       .on_decision = [&](const RuleEvent& e) { seen.push_back(e.decision.outcome); }},
      context_);
  const Rule enforced({.policy = Policy("e", {Rate(10, seconds(60), 9)})}, context_);
  for (int i = 0; i < 3; ++i) {
    const Verdict alone = run({&shadow}, request());
    EXPECT_FALSE(alone.refused()) << i;
    EXPECT_EQ(alone.headers.size(), 0u) << i;
    ASSERT_TRUE(alone.decision.has_value());
    EXPECT_EQ(alone.decision->outcome, Outcome::kAllowed) << i;
    const Verdict both = run({&shadow, &enforced}, request());
    EXPECT_FALSE(both.refused());
    // The enforced rule reports, whatever the shadow one would say.
    EXPECT_EQ(header(both, "RateLimit-Limit"), "10");
  }
  EXPECT_EQ(seen, (std::vector<Outcome>{Outcome::kAllowed, Outcome::kDenied, Outcome::kDenied,
                                        Outcome::kDenied, Outcome::kDenied, Outcome::kDenied}));
  // A shadow rule without the identity skips the request instead of refusing it.
  const Rule keyed_shadow({.policy = Policy("ks", {Rate(1, seconds(60))}),
                           .identity = Identity::api_key(),
                           .shadow = true},
                          context_);
  const Verdict skipped = run({&keyed_shadow}, request());
  EXPECT_FALSE(skipped.refused());
  EXPECT_FALSE(skipped.decision.has_value());
}

// The first rule that does not allow answers; later rules are not charged.
TEST_P(Decide, TheFirstDenialAnswersAndLaterRulesAreNotCharged) {
  const Rule first({.policy = Policy("first", {Rate(1, seconds(60))})}, context_);
  const Rule second({.policy = Policy("second", {Rate(5, seconds(60), 4)})}, context_);
  EXPECT_FALSE(run({&first, &second}, request()).refused());
  const Verdict refused = run({&first, &second}, request());
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(header(refused, "RateLimit-Limit"), "1");
  EXPECT_EQ(peek(second, request()).remaining, 4);
}

TEST_P(Decide, ObserversSeeEveryDecisionWithItsKey) {
  std::vector<std::string> keys;
  const Rule rule({.policy = Policy("o", {Rate(1, seconds(60))}),
                   .on_decision =
                       [&](const RuleEvent& e) {
                         keys.emplace_back(e.key);
                         EXPECT_GE(e.latency.count(), 0);
                       }},
                  context_);
  run({&rule}, request());
  run({&rule}, request());
  EXPECT_EQ(keys, (std::vector<std::string>(2, "svc:{o:/things:ip:192.0.2.10}")));
}

// The Python package's keys: FastAPI Pacer's scope text and untagged identities, through the same
// rule (docs/DESIGN.md §7).
TEST(Rule, FastApiPacerDialectWritesThePythonPackagesKeys) {
  const RuleContext seed{.key_prefix = "app", .dialect = Dialect::kFastApiPacer};
  const Policy policy("p", {Rate(1, seconds(1))});
  SimpleRequest r = request("203.0.113.7");
  r.method_ = "POST";
  r.route_ = "/items/{id}";
  auto key_of = [&](const Rule& rule) {
    std::string key;
    EXPECT_TRUE(rule.append_key(key, r));
    return key;
  };
  const Identity ip = Identity::client_ip({}, Dialect::kFastApiPacer);
  EXPECT_EQ(key_of(Rule({.policy = policy, .identity = ip, .scope = Scope::kMethodRoute}, seed)),
            storage_key("app", "p", "POST:/items/{id}", "203.0.113.7"));
  EXPECT_EQ(key_of(Rule({.policy = policy, .identity = ip, .scope = Scope::kApp}, seed)),
            storage_key("app", "p", "global", "203.0.113.7"));
  // The C++ layer's own text is unchanged.
  EXPECT_EQ(key_of(Rule({.policy = policy, .scope = Scope::kMethodRoute}, {.key_prefix = "app"})),
            storage_key("app", "p", "POST /items/{id}", "ip:203.0.113.7"));
  // A request without the identity, shared: the selector's own bucket.
  const Rule api({.policy = policy,
                  .identity = Identity::api_key(Dialect::kFastApiPacer),
                  .missing_identity = MissingIdentity::kShared},
                 seed);
  EXPECT_EQ(key_of(api), storage_key("app", "p", "/items/{id}", "no_api_key"));
  const Rule org({.policy = policy,
                  .identity = Identity::org(Dialect::kFastApiPacer),
                  .missing_identity = MissingIdentity::kShared},
                 seed);
  EXPECT_EQ(key_of(org), storage_key("app", "p", "/items/{id}", "no_org"));
  // Scope and identity given as text: storage_key's, whatever the rule's own scope.
  const Rule app({.policy = policy, .identity = ip, .scope = Scope::kApp}, seed);
  EXPECT_EQ(app.key("GET:/x{y}", "a|b"), storage_key("app", "p", "GET:/x{y}", "a|b"));
  EXPECT_EQ(api.key("global", "u1"), storage_key("app", "p", "global", "u1"));
}

TEST(Rule, BadInputNamesTheValue) {
  EXPECT_THROW(Rule({.policy = Policy("p", {Rate(1, seconds(1))})}, {.key_prefix = "a{b"}),
               std::invalid_argument);
  try {
    parse_missing_identity("deny");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "invalid missing identity answer 'deny': expected refuse or shared");
  }
  EXPECT_EQ(parse_missing_identity("shared"), MissingIdentity::kShared);
  MemoryStore store;
  Limiter limiter(store);
  const Rule rule({.policy = Policy("p", {Rate(1, seconds(1))})}, {});
  std::vector<const Rule*> nine(9, &rule);
  EXPECT_THROW(decide(limiter, nine, request(), nullptr, [](Verdict&&) {}), std::invalid_argument);
}

}  // namespace
}  // namespace pacer::http
