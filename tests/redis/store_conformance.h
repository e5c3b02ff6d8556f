// The conformance suite: the same scenarios on every store, instantiated by store_test.cc
// (memory, Redis, a cluster) and module_test.cc (Redis and a cluster with pacer-redis-module.so,
// decisions by PACER.GCRA); and the small blocking helpers both use.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/memory_store.h"
#include "pacer/redis/redis_store.h"
#include "redis_server.h"

namespace pacer::redis::conformance {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::RedisCluster;
using testing::RedisServer;

#define SKIP_WITHOUT_REDIS() \
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed"

inline std::string unique_key(std::string_view name) {
  static std::atomic<int> counter{0};
  return "t:{" + std::string(name) + ":" + std::to_string(::getpid()) + ":" +
         std::to_string(counter++) + "}";
}

// Waits for the answer of `start(handler)` (a check or a peek), without its key view.
template <class Start>
CheckResult answer_of(Start start) {
  std::promise<CheckResult> promise;
  start([&](const CheckResult& r) {
    CheckResult copy = r;
    copy.key = {};
    promise.set_value(copy);
  });
  return promise.get_future().get();
}

inline CheckResult check(Store& store, const Policy& policy, std::string_view key,
                         std::int64_t cost) {
  return answer_of([&](CheckHandler done) { store.check(policy, key, cost, std::move(done)); });
}

inline CheckResult peek(Store& store, const Policy& policy, std::string_view key,
                        std::int64_t cost) {
  return answer_of([&](CheckHandler done) { store.peek(policy, key, cost, std::move(done)); });
}

inline void reset(Store& store, const Policy& policy, std::string_view key) {
  std::promise<std::error_code> promise;
  store.reset(policy, key, [&](std::error_code ec) { promise.set_value(ec); });
  ASSERT_FALSE(promise.get_future().get());
}

// ---------------------------------------------------------------------------------------------
// Conformance: the same scenarios on the in-process store and on Redis. Rates are slow enough
// that the milliseconds a test takes cannot change an answer.

class Conformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = std::make_unique<MemoryStore>();
      return;
    }
    SKIP_WITHOUT_REDIS();
    // "module", "module-cluster": pacer-redis-module.so loaded and PACER.GCRA required
    // (tests/redis/module_test.cc defines where the module is).
    const bool module = GetParam().rfind("module", 0) == 0;
    std::vector<std::string> args;
    if (module) {
#ifdef PACER_REDIS_MODULE_PATH
      args = {"--loadmodule", PACER_REDIS_MODULE_PATH};
#else
      GTEST_SKIP() << "this test binary has no Redis module";
#endif
    }
    const RedisScript script = module ? RedisScript::kModule : RedisScript::kAuto;
    if (GetParam() == "redis" || GetParam() == "module") {
      server_ = std::make_unique<RedisServer>(args);
      store_ = std::make_unique<RedisStore>(RedisStoreOptions{
          .url = server_->url(), .command_timeout = seconds(2), .script = script});
    } else {
      cluster_ = std::make_unique<RedisCluster>(3, args);
      store_ = std::make_unique<RedisStore>(RedisStoreOptions{
          .url = cluster_->url(1), .command_timeout = seconds(2), .script = script});
    }
    ASSERT_TRUE(static_cast<RedisStore&>(*store_).wait_connected(seconds(10)));
  }
  Store& store() { return *store_; }
  // After the test: every check of a module store went to PACER.GCRA, and none fell back.
  void TearDown() override {
    if (GetParam().rfind("module", 0) != 0 || !store_) return;
    const RedisStoreStats stats = static_cast<RedisStore&>(*store_).stats();
    EXPECT_GT(stats.module_decisions, 0u);
    EXPECT_EQ(stats.module_fallbacks, 0u);
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<Store> store_;
};

TEST_P(Conformance, BurstThenDenyWithExactNumbers) {
  const Policy policy("p", {Rate(10, seconds(60), 5)});
  const std::string key = unique_key("burst");
  for (int i = 0; i < 6; ++i) {
    const CheckResult r = check(store(), policy, key, 1);
    ASSERT_FALSE(r.error) << r.error.message();
    EXPECT_TRUE(r.decision.allowed()) << i;
    EXPECT_EQ(r.decision.remaining, 5 - i);
    EXPECT_EQ(r.decision.limit, 10);
    EXPECT_NEAR(std::chrono::duration<double>(r.decision.reset_after).count(), 6.0 * (i + 1), 0.5);
  }
  const CheckResult denied = check(store(), policy, key, 1);
  EXPECT_EQ(denied.decision.outcome, Outcome::kDenied);
  EXPECT_EQ(denied.decision.remaining, 0);
  EXPECT_NEAR(std::chrono::duration<double>(denied.decision.retry_after).count(), 6.0, 0.5);
  EXPECT_LE(denied.decision.retry_after, seconds(6));
}

TEST_P(Conformance, CostPeekAndExceedsCapacity) {
  const Policy policy("p", {Rate(10, seconds(60), 5)});
  const std::string key = unique_key("cost");
  EXPECT_EQ(check(store(), policy, key, 3).decision.remaining, 3);
  EXPECT_EQ(check(store(), policy, key, 0).decision.remaining, 3);  // peek
  EXPECT_EQ(check(store(), policy, key, 0).decision.remaining, 3);
  EXPECT_EQ(check(store(), policy, key, 4).decision.outcome, Outcome::kDenied);
  const CheckResult huge = check(store(), policy, key, 7);
  EXPECT_EQ(huge.decision.outcome, Outcome::kExceedsCapacity);
  EXPECT_EQ(huge.decision.retry_after.count(), 0);
  EXPECT_EQ(check(store(), policy, key, 3).decision.remaining, 0);
}

// A peek of cost n answers what a check of cost n answers next, and spends nothing: on a fresh
// key, a busy one, an exhausted one (denied, with the check's retry-after within 1 ms), for a
// cost that exceeds capacity, and over several rates.
TEST_P(Conformance, PeekAnswersWhatTheNextCheckAnswers) {
  const Policy policy("p", {Rate(10, seconds(60), 3), Rate(1000, seconds(1), 999)});
  const std::string key = unique_key("peek");
  auto same = [&](std::int64_t cost, const char* when) {
    const auto started = std::chrono::steady_clock::now();
    const CheckResult p = peek(store(), policy, key, cost);
    const CheckResult again = peek(store(), policy, key, cost);
    const CheckResult c = check(store(), policy, key, cost);
    ASSERT_FALSE(p.error || c.error) << when;
    EXPECT_EQ(p.decision.outcome, c.decision.outcome) << when;
    EXPECT_EQ(again.decision.outcome, c.decision.outcome) << when;
    EXPECT_EQ(p.decision.remaining, c.decision.remaining) << when;
    EXPECT_EQ(p.decision.limit, c.decision.limit) << when;
    EXPECT_EQ(p.decision.rate_index, c.decision.rate_index) << when;
    // Within 1 ms, plus the time between the peek and the check (a loaded machine).
    const auto slack = milliseconds(1) + (std::chrono::steady_clock::now() - started);
    EXPECT_LE(std::chrono::abs(p.decision.retry_after - c.decision.retry_after), slack) << when;
    EXPECT_LE(std::chrono::abs(p.decision.reset_after - c.decision.reset_after), slack) << when;
  };
  same(1, "fresh");
  same(2, "busy");
  same(5, "exceeds capacity");
  EXPECT_EQ(peek(store(), policy, key, 1).decision.remaining, 0);
  same(1, "last permit");
  const CheckResult exhausted = peek(store(), policy, key, 1);
  EXPECT_EQ(exhausted.decision.outcome, Outcome::kDenied);
  EXPECT_NEAR(std::chrono::duration<double>(exhausted.decision.retry_after).count(), 6.0, 0.5);
  same(1, "exhausted");
  // Cost 0 reports the state as it is and never denies.
  const CheckResult state = peek(store(), policy, key, 0);
  EXPECT_EQ(state.decision.outcome, Outcome::kAllowed);
  EXPECT_EQ(state.decision.remaining, 0);
}

TEST_P(Conformance, MultiRateDenialChangesNoRate) {
  const Policy policy("multi", {Rate(100, seconds(1), 99), Rate(3, seconds(60), 0)});
  const std::string key = unique_key("multi");
  const CheckResult first = check(store(), policy, key, 1);
  EXPECT_EQ(first.decision.remaining, 0);  // the per-minute rate: 1 of 1 used
  EXPECT_EQ(first.decision.rate_index, 1);
  EXPECT_EQ(first.decision.limit, 3);
  const CheckResult denied = check(store(), policy, key, 1);
  EXPECT_EQ(denied.decision.outcome, Outcome::kDenied);
  EXPECT_EQ(denied.decision.rate_index, 1);
  // The per-second rate was not charged for the denied request: a peek shows it untouched.
  const Policy per_second("multi", {Rate(100, seconds(1), 99), Rate(3, seconds(60), 0)});
  EXPECT_EQ(check(store(), per_second, key, 0).decision.remaining, 0);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(check(store(), policy, key, 1).decision.allowed());
}

TEST_P(Conformance, ResetForgetsAndKeysAreIndependent) {
  const Policy policy("p", {Rate(1, seconds(60))});
  const std::string a = unique_key("a"), b = unique_key("b");
  EXPECT_TRUE(check(store(), policy, a, 1).decision.allowed());
  EXPECT_FALSE(check(store(), policy, a, 1).decision.allowed());
  EXPECT_TRUE(check(store(), policy, b, 1).decision.allowed());
  reset(store(), policy, a);
  EXPECT_TRUE(check(store(), policy, a, 1).decision.allowed());
}

// Issue 6, item 4: a store used to keep one state per key, whatever the policy: two policies
// with the same key shared (memory) or clobbered (Redis: a rate count that differs reset the
// value) each other's state.
TEST_P(Conformance, PoliciesHaveTheirOwnKeySpace) {
  const Policy login("login", {Rate(1, seconds(60))});
  const Policy search("search", {Rate(1, seconds(60))});
  const Policy multi("multi", {Rate(1, seconds(60)), Rate(10, seconds(3600))});
  const std::string key = unique_key("shared");
  EXPECT_TRUE(check(store(), login, key, 1).decision.allowed());
  EXPECT_FALSE(check(store(), login, key, 1).decision.allowed());
  EXPECT_TRUE(check(store(), search, key, 1).decision.allowed());
  EXPECT_TRUE(check(store(), multi, key, 1).decision.allowed());
  EXPECT_FALSE(check(store(), login, key, 1).decision.allowed());  // neither reset it
  EXPECT_FALSE(check(store(), multi, key, 1).decision.allowed());
  reset(store(), search, key);
  EXPECT_FALSE(check(store(), login, key, 1).decision.allowed());
  EXPECT_TRUE(check(store(), search, key, 1).decision.allowed());
  // A plain key and the HTTP layer's layout (hash tag starting with the policy) both work.
  const std::string http_key = "svc:{login:/:ip:192.0.2." + std::to_string(::getpid() % 200) + "}";
  reset(store(), login, http_key);
  EXPECT_TRUE(check(store(), login, http_key, 1).decision.allowed());
  EXPECT_FALSE(check(store(), login, http_key, 1).decision.allowed());
  EXPECT_TRUE(check(store(), search, http_key, 1).decision.allowed());
}

}  // namespace pacer::redis::conformance
