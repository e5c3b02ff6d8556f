// pacer-redis-module.so (issue 24): PACER.GCRA answers what the Lua script answers and stores
// what it stores. Label `redis-module`: ctest --preset dev -L redis-module.
//
// - the module's step (src/redis/script_step.h) beside the Lua script at the same instant on
//   the same stored value: the shared table of GCRA cases and random values, arguments and
//   times (RapidCheck); every reply, stored value and PX compared
// - the conformance suite on Redis and on a 3-master cluster with the module loaded
// - Lua and module decisions interleaved on one key; a replica's value equals the master's
// - hostile arguments: each an error, Redis stays up
// - the store finds the module (script = auto), and falls back to Lua when a node loses it
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../support/gcra_cases.h"
#include "pacer/limiter.h"
#include "redis_server.h"
#include "script_harness.h"
#include "script_step.h"
#include "store_conformance.h"

namespace pacer::redis {
namespace {

using namespace std::chrono_literals;
using conformance::check;
using conformance::unique_key;
using internal::script_step;
using internal::ScriptCall;
using internal::ScriptStepResult;
using internal::script_harness::Format;
using internal::script_harness::ScriptHarness;
using internal::script_harness::StepResult;
using testing::RedisCluster;
using testing::RedisServer;

#define SKIP_WITHOUT_REDIS() \
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed"

std::vector<std::string> with_module() { return {"--loadmodule", PACER_REDIS_MODULE_PATH}; }

// After a server restart: until a check is answered again (the first ones may meet the closed
// connection), at most 10 s.
void wait_deciding(RedisStore& store) {
  const Policy probe("probe", {Rate(1000, 1s, 999)});
  for (int i = 0; i < 200; ++i) {
    if (!check(store, probe, "probe", 0).error) return;
    std::this_thread::sleep_for(50ms);
  }
  FAIL() << "the store does not answer: " << store.last_error();
}

// The Lua script at `now_us` on `stored` (nullopt: no key) and the module's step on the same:
// the same reply, the same value afterwards, the same PX.
void expect_same_step(ScriptHarness& redis, const std::string& key,
                      const std::optional<std::string>& stored,
                      const std::vector<std::int64_t>& args, std::int64_t now_us) {
  redis.call({"DEL", key}, key);
  if (stored) redis.call({"SET", key, *stored}, key);
  std::vector<std::string> eval = {"EVAL", internal::script_harness::script_at_fixed_time(), "1",
                                   key};
  for (const std::int64_t a : args) eval.push_back(std::to_string(a));
  eval.push_back(std::to_string(now_us / 1'000'000));
  eval.push_back(std::to_string(now_us % 1'000'000));
  const Reply lua = redis.call(eval, key);
  ASSERT_EQ(lua.type, Reply::Type::kArray) << lua.str;
  ASSERT_EQ(lua.elements.size(), 4u);

  const std::vector<long long> module_args(args.begin(), args.end());
  const ScriptStepResult step =
      script_step(stored.value_or(""), stored.has_value(), now_us, module_args);
  const Reply& reply = lua.elements[0];
  if (step.integer_reply) {
    ASSERT_EQ(reply.type, Reply::Type::kInteger) << reply.str;
    EXPECT_EQ(reply.integer, step.integer);
  } else {
    ASSERT_EQ(reply.type, Reply::Type::kString);
    EXPECT_EQ(reply.str, step.bytes());
  }
  const Reply& value = lua.elements[1];
  const Reply& px = lua.elements[2];
  if (step.write) {
    ASSERT_EQ(value.type, Reply::Type::kString);
    EXPECT_EQ(value.str, step.value());
    ASSERT_EQ(px.type, Reply::Type::kString);
    EXPECT_EQ(px.str, std::to_string(step.px_ms));
  } else {
    EXPECT_NE(px.type, Reply::Type::kString) << "the script wrote, the module would not";
    if (stored) {
      EXPECT_EQ(value.str, *stored);
    }
  }
}

TEST(ModuleStep, AgreesWithTheScriptOnTheTableOfCases) {
  SKIP_WITHOUT_REDIS();
  ScriptHarness redis;
  const std::int64_t now_us = pacer::testing::kGcraCaseNow / 1'000;
  int index = 0;
  for (const auto& c : pacer::testing::gcra_cases()) {
    for (const Format format : {Format::kBinary, Format::kDecimal}) {
      SCOPED_TRACE(c.name);
      std::vector<Rate> rates;
      for (const auto& r : c.rates) rates.push_back(r.rate());
      std::optional<std::string> stored;
      if (c.tats) {
        std::vector<std::int64_t> before;
        for (const std::int64_t off : *c.tats) before.push_back(now_us + off / 1'000);
        stored = internal::script_harness::encode_tats(before, format);
      }
      const ScriptCall call(rates, c.cost);
      const auto args = call.arguments();
      expect_same_step(redis, "case:{" + std::to_string(index++) + "}", stored,
                       {args.begin(), args.end()}, now_us);
    }
  }
}

// Stored values of every kind the script meets: its own, the older decimal form, one for
// another number of rates, numbers that are no time, bytes that are no number.
rc::Gen<std::optional<std::string>> stored_values(std::size_t rates, std::int64_t now_us) {
  using Value = std::optional<std::string>;
  const auto tat = rc::gen::oneOf(
      rc::gen::map(rc::gen::inRange<std::int64_t>(-10'000'000, 100'000'000),
                   [now_us](std::int64_t off) { return static_cast<double>(now_us + off); }),
      // Whole milliseconds: where PX's rounding is decided.
      rc::gen::map(rc::gen::inRange<std::int64_t>(-10'000, 100'000),
                   [now_us](std::int64_t ms) { return static_cast<double>(now_us + ms * 1000); }),
      rc::gen::element(0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity(),
                       static_cast<double>(now_us) + 4503599627370496.0, 1e300));
  const auto binary = [tat](std::size_t n) {
    return rc::gen::map(rc::gen::container<std::vector<double>>(n, tat),
                        [](const std::vector<double>& tats) {
                          std::string out;
                          for (const double t : tats) {
                            char bytes[8];
                            std::memcpy(bytes, &t, 8);
                            out.append(bytes, 8);
                          }
                          return Value(out);
                        });
  };
  const auto decimal = rc::gen::map(
      rc::gen::container<std::vector<std::int64_t>>(
          rates, rc::gen::inRange<std::int64_t>(now_us - 5'000'000, now_us + 50'000'000)),
      [](const std::vector<std::int64_t>& tats) {
        std::string out;
        for (const std::int64_t t : tats) out += (out.empty() ? "" : " ") + std::to_string(t);
        return Value(out);
      });
  return rc::gen::oneOf(
      rc::gen::just(Value()), binary(rates), binary(rates), decimal,
      binary(rates == 1 ? 2 : rates - 1),
      rc::gen::map(rc::gen::element<std::string>("", "x", " 17 ", "0x10", "1e15", "nan", "-5",
                                                 "12345678", "1 2 3", std::string("9\0x", 3)),
                   [](const std::string& s) { return Value(s); }));
}

TEST(ModuleStep, AgreesWithTheScriptOnRandomValuesArgumentsAndTimes) {
  SKIP_WITHOUT_REDIS();
  ScriptHarness redis;
  int run = 0;
  const auto result = rc::check([&] {
    const std::int64_t now_us = *rc::gen::oneOf(
        rc::gen::inRange<std::int64_t>(1'000'000'000'000'000, 2'000'000'000'000'000),
        rc::gen::map(rc::gen::inRange<std::int64_t>(1'000'000'000'000, 2'000'000'000'000),
                     [](std::int64_t ms) { return ms * 1000; }));
    const auto rates = *rc::gen::inRange<std::size_t>(1, 9);
    const auto stored = *stored_values(rates, now_us);
    std::vector<std::int64_t> args;
    const bool peek = *rc::gen::arbitrary<bool>();
    for (std::size_t i = 0; i < rates; ++i) {
      const auto inc = *rc::gen::oneOf(rc::gen::inRange<std::int64_t>(peek ? 0 : 1, 30'000'000),
                                       rc::gen::map(rc::gen::inRange<std::int64_t>(1, 30'000),
                                                    [](std::int64_t ms) { return ms * 1000; }));
      args.push_back(peek ? 0 : inc);
      args.push_back(*rc::gen::inRange<std::int64_t>(0, 60'000'000));
    }
    expect_same_step(redis, "rc:{" + std::to_string(run++) + "}", stored, args, now_us);
    RC_ASSERT(!::testing::Test::HasFailure());
  });
  EXPECT_TRUE(result);
}

// ---------------------------------------------------------------------------------------------
// The real module in redis-server.

TEST(Module, LuaAndModuleDecisionsMixOnOneKey) {
  SKIP_WITHOUT_REDIS();
  RedisServer server(with_module());
  RedisStore lua({.url = server.url(), .command_timeout = 2s, .script = RedisScript::kLua});
  RedisStore module({.url = server.url(), .command_timeout = 2s, .script = RedisScript::kModule});
  ASSERT_TRUE(lua.wait_connected(10s));
  ASSERT_TRUE(module.wait_connected(10s));
  for (const auto& policy :
       {Policy("one", {Rate(10, 60s, 9)}),
        Policy("three", {Rate(10, 60s, 9), Rate(100, 1h, 99), Rate(1000, 24h, 999)})}) {
    const std::string key = unique_key("mixed");
    // Ten at once whoever decides, then nothing: one bucket.
    for (int i = 0; i < 10; ++i) {
      RedisStore& store = i % 2 == 0 ? lua : module;
      const CheckResult r = check(store, policy, key, 1);
      ASSERT_FALSE(r.error) << r.error.message();
      EXPECT_TRUE(r.decision.allowed()) << policy.name() << " " << i;
      EXPECT_EQ(r.decision.remaining, 9 - i) << policy.name() << " " << i;
    }
    for (RedisStore* store : {&lua, &module}) {
      const CheckResult r = check(*store, policy, key, 1);
      EXPECT_EQ(r.decision.outcome, Outcome::kDenied);
      EXPECT_NEAR(std::chrono::duration<double>(r.decision.retry_after).count(), 6.0, 0.5);
      EXPECT_EQ(check(*store, policy, key, 0).decision.remaining, 0);  // a peek, either way
    }
  }
  EXPECT_GT(module.stats().module_decisions, 0u);
  EXPECT_EQ(module.stats().module_fallbacks, 0u);
  EXPECT_EQ(lua.stats().module_decisions, 0u);
}

TEST(Module, AReplicaHoldsTheMastersValueWithoutTheModule) {
  SKIP_WITHOUT_REDIS();
  RedisServer master(with_module());
  // The replica has no module: it receives SET ... PX, never PACER.GCRA.
  RedisServer replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  RedisStore store({.url = master.url(), .command_timeout = 2s, .script = RedisScript::kModule});
  ASSERT_TRUE(store.wait_connected(10s));
  const Policy policy("p", {Rate(10, 60s, 4), Rate(100, 1h, 9)});
  std::vector<std::string> keys;
  for (int k = 0; k < 5; ++k) {
    keys.push_back(unique_key("replicated"));
    for (int i = 0; i < 3 + k; ++i) ASSERT_FALSE(check(store, policy, keys.back(), 1).error);
  }
  // Redis keys of the store: the policy's hash tag around the caller's key (RedisKey).
  const std::string scan = master.cli({"--scan", "--pattern", "*replicated*"});
  ASSERT_FALSE(scan.empty());
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (replica.cli({"DBSIZE"}) == master.cli({"DBSIZE"})) break;
    std::this_thread::sleep_for(50ms);
  }
  std::size_t compared = 0;
  for (std::size_t at = 0; at < scan.size();) {
    const auto end = scan.find('\n', at);
    const std::string key = scan.substr(at, end - at);
    at = end == std::string::npos ? scan.size() : end + 1;
    if (key.empty()) continue;
    EXPECT_EQ(replica.cli({"--no-raw", "GET", key}), master.cli({"--no-raw", "GET", key})) << key;
    const long master_ttl = std::stol(master.cli({"PTTL", key}));
    const long replica_ttl = std::stol(replica.cli({"PTTL", key}));
    EXPECT_GT(replica_ttl, 0) << key;
    EXPECT_NEAR(replica_ttl, master_ttl, 2000) << key;
    ++compared;
  }
  EXPECT_EQ(compared, keys.size());
  EXPECT_EQ(replica.cli({"MODULE", "LIST"}), "");
}

TEST(Module, HostileArgumentsAreErrorsAndRedisStaysUp) {
  SKIP_WITHOUT_REDIS();
  RedisServer server(with_module());
  const std::vector<std::vector<std::string>> bad{
      {"PACER.GCRA"},
      {"PACER.GCRA", "k"},
      {"PACER.GCRA", "k", "1"},
      {"PACER.GCRA", "k", "1", "2", "3"},
      {"PACER.GCRA", "k", "x", "1"},
      {"PACER.GCRA", "k", "1", "1.5"},
      {"PACER.GCRA", "k", "-1", "5"},
      {"PACER.GCRA", "k", "1", "-5"},
      {"PACER.GCRA", "k", "4503599627370497", "1"},
      {"PACER.GCRA", "k", "99999999999999999999999", "1"},
      {"PACER.GCRA", "k", "", "1"},
      {"PACER.GCRA", "k", "1 ", "1"},
      {"PACER.GCRA", "k", "1e3", "1"},
      {"PACER.GCRA", "k", "1", "1", "1", "1", "1", "1", "1", "1",
       "1",          "1", "1", "1", "1", "1", "1", "1", "1", "1"},  // 9 rates
      {"PACER.GCRA", "list", "1", "1"},
  };
  server.cli({"RPUSH", "list", "x"});
  for (const auto& args : bad) {
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    const std::string reply = server.cli(args);
    EXPECT_TRUE(reply.find("ERR") != std::string::npos ||
                reply.find("WRONGTYPE") != std::string::npos)
        << shown << "-> " << reply;
    EXPECT_EQ(server.cli({"PING"}), "PONG") << shown;
  }
  // The error names the argument and what is accepted.
  EXPECT_NE(server.cli({"PACER.GCRA", "k", "abc", "1"}).find("argument 2 ('abc')"),
            std::string::npos);
  EXPECT_EQ(server.cli({"EXISTS", "k"}), "0");  // nothing written by a refused call
  EXPECT_EQ(server.cli({"PACER.GCRA", "k", "1000", "5000"}), "0");
}

TEST(Module, TheStoreFindsTheModuleAndFallsBackWhenANodeLosesIt) {
  SKIP_WITHOUT_REDIS();
  RedisServer plain;
  RedisServer loaded(with_module());
  const Policy policy("p", {Rate(10, 60s, 9)});
  RedisStore without({.url = plain.url(), .command_timeout = 2s});
  RedisStore with({.url = loaded.url(), .command_timeout = 2s});
  ASSERT_TRUE(without.wait_connected(10s));
  ASSERT_TRUE(with.wait_connected(10s));
  // The probe on connect answers asynchronously.
  for (int i = 0; i < 200 && !with.stats().module_in_use; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(with.stats().module_in_use);
  EXPECT_FALSE(without.stats().module_in_use);
  const std::string key = unique_key("found");
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(check(with, policy, key, 1).decision.allowed());
    EXPECT_TRUE(check(without, policy, key, 1).decision.allowed());
  }
  EXPECT_EQ(with.stats().module_decisions, 5u);
  EXPECT_EQ(without.stats().module_decisions, 0u);
  EXPECT_NE(loaded.cli({"INFO", "commandstats"}).find("cmdstat_pacer.gcra:calls=5"),
            std::string::npos);

  // Restarted without the module: the next decisions are made by the script, none fails, and
  // the count goes on (the value is the script's format).
  loaded.restart({});
  wait_deciding(with);
  const std::string other = unique_key("after");
  int allowed = 0;
  for (int i = 0; i < 12; ++i) {
    const CheckResult r = check(with, policy, other, 1);
    ASSERT_FALSE(r.error) << i << ": " << r.error.message();
    allowed += r.decision.allowed() ? 1 : 0;
  }
  EXPECT_EQ(allowed, 10);
  EXPECT_FALSE(with.stats().module_in_use) << "found missing when it reconnected";

  // The same with `script = module` (required): every decision still answered, each counted
  // as a fallback.
  RedisStore required({.url = loaded.url(), .command_timeout = 2s, .script = RedisScript::kModule});
  ASSERT_TRUE(required.wait_connected(10s));
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(check(required, policy, unique_key("req"), 1).error);
  EXPECT_EQ(required.stats().module_fallbacks, 3u);
}

TEST(Module, AClusterWithTheModuleOnOneNodeMissingStillDecides) {
  SKIP_WITHOUT_REDIS();
  RedisCluster cluster(3, with_module());
  RedisStore store({.url = cluster.url(1), .command_timeout = 2s});
  ASSERT_TRUE(store.wait_connected(10s));
  for (int i = 0; i < 200 && !store.stats().module_in_use; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(store.stats().module_in_use) << "every master has the module";
  const Policy policy("p", {Rate(5, 60s, 4)});
  std::vector<std::string> keys;
  for (int k = 0; k < 30; ++k) keys.push_back("k" + std::to_string(k));
  for (const auto& key : keys)
    for (int i = 0; i < 6; ++i)
      EXPECT_EQ(check(store, policy, key, 1).decision.allowed(), i < 5) << key << " " << i;
  EXPECT_EQ(store.stats().module_decisions, 30u * 6);

  // One master restarted without the module: its keys are decided by the script, with no
  // failed decision. `script = module` still asks PACER.GCRA first (a fallback per decision
  // on that node); `auto` stops asking once its reconnect found the module missing.
  cluster.node(0).restart({});
  cluster.wait_ok();
  RedisStore required(
      {.url = cluster.url(1), .command_timeout = 2s, .script = RedisScript::kModule});
  ASSERT_TRUE(required.wait_connected(10s));
  wait_deciding(store);
  int failed = 0;
  for (int k = 0; k < 30; ++k) {
    failed += check(store, policy, "after" + std::to_string(k), 1).error ? 1 : 0;
    failed += check(required, policy, "req" + std::to_string(k), 1).error ? 1 : 0;
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(required.stats().module_fallbacks, 0u);
  EXPECT_LT(required.stats().module_fallbacks, 30u) << "only the keys of the node without it";
  EXPECT_FALSE(store.stats().module_in_use);
}

}  // namespace
}  // namespace pacer::redis

namespace pacer::redis::conformance {
INSTANTIATE_TEST_SUITE_P(ModuleStores, Conformance, ::testing::Values("module", "module-cluster"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });
}  // namespace pacer::redis::conformance
