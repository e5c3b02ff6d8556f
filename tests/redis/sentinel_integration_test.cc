// RedisStore on redis+sentinel:// against real processes: a master, a replica and three
// sentinels started by the test on free loopback ports (down-after-milliseconds 500), for
// discovery, SENTINEL FAILOVER and a master killed with SIGKILL under load, SENTINEL FAILOVER
// with a single sentinel (quorum 1), a dead sentinel in the list, and a wrong master name.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <thread>

#include "pacer/redis/redis_store.h"
#include "redis_server.h"

namespace pacer::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::RedisSentinelGroup;
using testing::RedisServer;
using Clock = std::chrono::steady_clock;

#define SKIP_WITHOUT_SENTINEL() \
  if (!RedisSentinelGroup::available()) GTEST_SKIP() << "redis-server (--sentinel) not installed"

CheckResult check(Store& store, const Policy& policy, std::string_view key) {
  std::promise<CheckResult> promise;
  store.check(policy, key, 1, [&](const CheckResult& r) {
    CheckResult copy = r;
    copy.key = {};
    promise.set_value(copy);
  });
  return promise.get_future().get();
}

double since(Clock::time_point start, Clock::time_point t) {
  return std::chrono::duration<double>(t - start).count();
}

// Keeps `in_flight` checks of one key running until stop(); counts outcomes like fail mode
// "closed" would (an error is a refused request) and records when errors happened.
class Load {
 public:
  Load(RedisStore& store, Policy policy, std::string key, int in_flight = 64)
      : store_(store), policy_(std::move(policy)), key_(std::move(key)), limit_(in_flight) {
    start_ = Clock::now();
    thread_ = std::thread([this] { run(); });
  }
  ~Load() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    thread_.join();
    end_ = Clock::now();
  }

  Clock::time_point start() const { return start_; }
  Clock::time_point end() const { return end_; }
  std::int64_t allowed() const { return allowed_; }
  std::int64_t denied() const { return denied_; }
  std::int64_t errors() const { return errors_; }
  // Seconds since start() of the first and last error, and of the first decision after it.
  double first_error() const { return first_error_ns_ / 1e9; }
  double last_error() const { return last_error_ns_ / 1e9; }
  double recovered() const { return recovered_ns_ / 1e9; }

 private:
  void run() {
    std::int64_t seen_errors = 0;
    while (!stopping_) {
      if (in_flight_.load() >= limit_) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      ++in_flight_;
      store_.check(policy_, key_, 1, [this](const CheckResult& r) { record(r); });
      // Like a client that backs off after a 503: no busy loop on fast failures.
      if (const std::int64_t e = errors_.load(); e != seen_errors) {
        seen_errors = e;
        std::this_thread::sleep_for(milliseconds(1));
      }
    }
    while (in_flight_.load() > 0) std::this_thread::sleep_for(milliseconds(1));
  }

  void record(const CheckResult& r) {
    const std::int64_t now = (Clock::now() - start_).count();
    if (r.error) {
      if (errors_++ == 0) first_error_ns_ = now;
      last_error_ns_ = now;
      recovered_ns_ = 0;
    } else {
      if (r.decision.allowed()) {
        ++allowed_;
      } else {
        ++denied_;
      }
      std::int64_t zero = 0;
      if (errors_ > 0) recovered_ns_.compare_exchange_strong(zero, now);
    }
    --in_flight_;
  }

  RedisStore& store_;
  const Policy policy_;
  const std::string key_;
  const int limit_;
  Clock::time_point start_, end_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<std::int64_t> allowed_{0}, denied_{0}, errors_{0};
  std::atomic<std::int64_t> first_error_ns_{0}, last_error_ns_{0}, recovered_ns_{0};
};

// No deny cache: every check is a round trip to the master, so errors count what Redis did.
RedisStoreOptions options_for(const std::string& url) {
  return RedisStoreOptions{
      .url = url, .command_timeout = milliseconds(200), .deny_cache_entries = 0};
}

// Polls the sentinels until they name a master other than `old_port`; returns when.
Clock::time_point wait_new_master(RedisSentinelGroup& group, std::uint16_t old_port,
                                  seconds timeout = seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const std::uint16_t port = group.master_port();
    if (port != 0 && port != old_port) return Clock::now();
    if (Clock::now() > deadline) throw std::runtime_error("no failover within the timeout");
    std::this_thread::sleep_for(milliseconds(10));
  }
}

std::int64_t evalsha_calls(RedisServer& server) {
  const std::string stats = server.cli({"INFO", "commandstats"});
  const auto at = stats.find("cmdstat_evalsha:calls=");
  if (at == std::string::npos) return 0;
  return std::atoll(stats.c_str() + at + std::string_view("cmdstat_evalsha:calls=").size());
}

// The store decides on the current master: its EVALSHA count grows with our checks.
void expect_served_by(RedisStore& store, RedisServer& master) {
  const Policy roomy("roomy", {Rate(1000, seconds(1), 1000)});
  const std::int64_t before = evalsha_calls(master);
  for (int i = 0; i < 10; ++i) {
    const CheckResult r = check(store, roomy, "after-" + std::to_string(i));
    ASSERT_FALSE(r.error) << r.error.message() << " / " << store.last_error();
    EXPECT_TRUE(r.decision.allowed());
  }
  EXPECT_GE(evalsha_calls(master) - before, 10);
}

TEST(SentinelIntegrationTest, DiscoversTheMasterAndDecides) {
  SKIP_WITHOUT_SENTINEL();
  RedisSentinelGroup group;
  RedisStore store(options_for(group.url()));
  ASSERT_TRUE(store.wait_connected(seconds(10))) << store.last_error();
  const Policy policy("disc", {Rate(1, seconds(60), 2)});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(check(store, policy, "k").decision.allowed()) << i;
  const CheckResult denied = check(store, policy, "k");
  ASSERT_FALSE(denied.error);
  EXPECT_EQ(denied.decision.outcome, Outcome::kDenied);
  EXPECT_GT(denied.decision.retry_after, Nanos(0));
  expect_served_by(store, group.data(0));
  EXPECT_EQ(evalsha_calls(group.data(1)), 0) << "nothing goes to the replica";
}

// Sentinel failover under load: errors only in the switch window, then the new master decides;
// never more admitted than GCRA allows, plus what the old master may have admitted after the
// replica's promotion (asynchronous replication: those writes are lost with the old master's
// data).
TEST(SentinelIntegrationTest, FailoverUnderLoad) {
  SKIP_WITHOUT_SENTINEL();
  RedisSentinelGroup group;
  RedisStore store(options_for(group.url()));
  ASSERT_TRUE(store.wait_connected(seconds(10))) << store.last_error();
  const std::uint16_t old_port = group.master_port();
  constexpr std::int64_t kRate = 200;
  constexpr std::int64_t kBurst = 20;
  const Policy policy("fo", {Rate(kRate, seconds(1), kBurst)});

  Load load(store, policy, "hot");
  std::this_thread::sleep_for(milliseconds(1000));
  const auto failover_at = Clock::now();
  ASSERT_EQ(group.sentinel(0).cli({"SENTINEL", "FAILOVER", group.name()}), "OK");
  const auto announced_at = wait_new_master(group, old_port);
  std::this_thread::sleep_for(milliseconds(3000));
  load.stop();

  const double elapsed = since(load.start(), load.end());
  const double to_announce = since(failover_at, announced_at);
  std::printf(
      "[ sentinel ] FAILOVER: new master announced after %.3f s; %lld errors in %lld requests; "
      "error window %.3f s (%.3f..%.3f s after FAILOVER), recovered %.3f s after FAILOVER\n",
      to_announce, static_cast<long long>(load.errors()),
      static_cast<long long>(load.allowed() + load.denied() + load.errors()),
      load.errors() > 0 ? load.last_error() - load.first_error() : 0.0,
      load.errors() > 0 ? load.first_error() - since(load.start(), failover_at) : 0.0,
      load.errors() > 0 ? load.last_error() - since(load.start(), failover_at) : 0.0,
      load.errors() > 0 ? load.recovered() - since(load.start(), failover_at) : 0.0);
  if (load.errors() > 0) {
    // Errors only around the switch: none in the first second, none after the client had at
    // most one ask_interval (1 s) plus a connect to follow the announcement.
    EXPECT_GE(load.first_error(), since(load.start(), failover_at) - 0.05);
    EXPECT_LE(load.last_error(), since(load.start(), announced_at) + 1.5);
  }
  EXPECT_GT(load.allowed() + load.denied(), 1000);
  // GCRA admits burst + 1 at once, then kRate per second. During the failover both masters may
  // accept writes: from the replica's promotion (after FAILOVER) until our client leaves the
  // old master (at most ask_interval + a connect after the announcement). What the old master
  // admitted in that window was never replicated, so the new master may admit it again: at most
  // kRate per second of the window (the old master enforces GCRA itself).
  const double window = to_announce + 1.5;
  const auto bound = static_cast<std::int64_t>((kBurst + 1) + kRate * elapsed + kRate * window) + 2;
  std::printf(
      "[ sentinel ] admitted %lld in %.3f s: %+lld against burst + rate * time; bound %lld (of "
      "which %.0f for the window)\n",
      static_cast<long long>(load.allowed()), elapsed,
      static_cast<long long>(load.allowed() -
                             static_cast<std::int64_t>((kBurst + 1) + kRate * elapsed)),
      static_cast<long long>(bound), kRate * window);
  EXPECT_LE(load.allowed(), bound);
  EXPECT_GE(load.allowed(), static_cast<std::int64_t>(kRate * (elapsed - window) * 0.8));

  const std::uint16_t new_port = group.master_port();
  ASSERT_NE(new_port, old_port);
  expect_served_by(store, group.data_on(new_port));
}

// The master dies (SIGKILL): errors until the sentinels promote the replica, then recovery.
// Nothing beyond the GCRA bound: only the replication lag at the kill can be lost.
TEST(SentinelIntegrationTest, MasterKilledUnderLoad) {
  SKIP_WITHOUT_SENTINEL();
  RedisSentinelGroup group;
  RedisStore store(options_for(group.url()));
  ASSERT_TRUE(store.wait_connected(seconds(10))) << store.last_error();
  const std::uint16_t old_port = group.master_port();
  constexpr std::int64_t kRate = 200;
  constexpr std::int64_t kBurst = 20;
  const Policy policy("kill", {Rate(kRate, seconds(1), kBurst)});

  Load load(store, policy, "hot");
  std::this_thread::sleep_for(milliseconds(1000));
  const auto killed_at = Clock::now();
  group.data_on(old_port).kill();
  const auto announced_at = wait_new_master(group, old_port);
  std::this_thread::sleep_for(milliseconds(3000));
  load.stop();

  const double elapsed = since(load.start(), load.end());
  const double kill_offset = since(load.start(), killed_at);
  std::printf(
      "[ sentinel ] kill -9: new master announced after %.3f s; %lld errors in %lld requests; "
      "errors from %.3f to %.3f s after the kill, recovered %.3f s after the kill\n",
      since(killed_at, announced_at), static_cast<long long>(load.errors()),
      static_cast<long long>(load.allowed() + load.denied() + load.errors()),
      load.first_error() - kill_offset, load.last_error() - kill_offset,
      load.recovered() - kill_offset);
  ASSERT_GT(load.errors(), 0) << "the master was dead for a while";
  EXPECT_GE(load.first_error(), kill_offset - 0.05);
  EXPECT_LE(load.last_error(), since(load.start(), announced_at) + 1.5);
  EXPECT_GT(load.recovered(), 0.0);
  const auto bound = static_cast<std::int64_t>((kBurst + 1) + kRate * elapsed) + 3;
  std::printf("[ sentinel ] admitted %lld in %.3f s; bound %lld\n",
              static_cast<long long>(load.allowed()), elapsed, static_cast<long long>(bound));
  EXPECT_LE(load.allowed(), bound);

  const std::uint16_t new_port = group.master_port();
  ASSERT_NE(new_port, old_port);
  expect_served_by(store, group.data_on(new_port));
}

// One sentinel: after SENTINEL FAILOVER the client follows the new master within about a second
// of its announcement (the +switch-master message, or at worst the next periodic question),
// while the old master still says it is one (Sentinel reconfigures it ~10 s later).
TEST(SentinelIntegrationTest, OneSentinelFailoverMovesTheClient) {
  SKIP_WITHOUT_SENTINEL();
  RedisSentinelGroup group(1, "mymaster", 1);
  RedisStore store(options_for(group.url()));
  ASSERT_TRUE(store.wait_connected(seconds(10))) << store.last_error();
  const std::uint16_t old_port = group.master_port();
  expect_served_by(store, group.data_on(old_port));
  // A sentinel that has just seen the replica may still find it unfit to promote (NOGOODSLAVE)
  // until its next INFO from it.
  const auto give_up = Clock::now() + seconds(15);
  std::string answer;
  while ((answer = group.sentinel(0).cli({"SENTINEL", "FAILOVER", group.name()})) != "OK" &&
         Clock::now() < give_up)
    std::this_thread::sleep_for(milliseconds(100));
  ASSERT_EQ(answer, "OK");
  const auto announced_at = wait_new_master(group, old_port);
  const std::uint16_t new_port = group.master_port();
  RedisServer& old_master = group.data_on(old_port);
  RedisServer& new_master = group.data_on(new_port);
  const Policy roomy("one", {Rate(1000, seconds(1), 1000)});
  Clock::time_point moved{};
  for (int i = 0; Clock::now() < announced_at + seconds(5); ++i) {
    const std::int64_t before = evalsha_calls(new_master);
    (void)check(store, roomy, "k" + std::to_string(i));
    if (evalsha_calls(new_master) > before) {
      moved = Clock::now();
      break;
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::printf(
      "[ sentinel ] one sentinel: old master says %s; client moved %.3f s after the "
      "announcement\n",
      old_master.cli({"ROLE"}).substr(0, 6).c_str(),
      moved == Clock::time_point{} ? -1.0 : since(announced_at, moved));
  ASSERT_NE(moved, Clock::time_point{}) << "still on the old master 5 s after the announcement";
  EXPECT_LE(since(announced_at, moved), 1.5);
  const std::int64_t old_calls = evalsha_calls(old_master);
  expect_served_by(store, new_master);
  EXPECT_EQ(evalsha_calls(old_master), old_calls) << "nothing goes to the old master any more";
}

TEST(SentinelIntegrationTest, SkipsSentinelsThatAreDown) {
  SKIP_WITHOUT_SENTINEL();
  RedisSentinelGroup group;
  group.sentinel(0).stop();
  // First in the list: a port nobody listens on, then the stopped sentinel.
  std::string url = "redis+sentinel://127.0.0.1:" + std::to_string(testing::free_port());
  url += ",127.0.0.1:" + std::to_string(group.sentinel(0).port());
  for (std::size_t i = 1; i < group.sentinels(); ++i)
    url += ",127.0.0.1:" + std::to_string(group.sentinel(i).port());
  url += "/" + group.name();
  const auto start = Clock::now();
  RedisStore store(options_for(url));
  ASSERT_TRUE(store.wait_connected(seconds(10))) << store.last_error();
  std::printf("[ sentinel ] connected past 2 dead sentinels in %.3f s\n",
              since(start, Clock::now()));
  EXPECT_TRUE(check(store, Policy("skip", {Rate(5, seconds(1))}), "k").decision.allowed());
}

TEST(SentinelIntegrationTest, WrongMasterNameIsAClearError) {
  SKIP_WITHOUT_SENTINEL();
  RedisSentinelGroup group(1);
  RedisStore store(options_for(group.url("nosuchmaster")));
  EXPECT_FALSE(store.wait_connected(milliseconds(1500)));
  const std::string error = store.last_error();
  EXPECT_NE(error.find("knows no master named 'nosuchmaster'"), std::string::npos) << error;
  const CheckResult r = check(store, Policy("p", {Rate(5, seconds(1))}), "k");
  EXPECT_TRUE(r.error);
}

}  // namespace
}  // namespace pacer::redis
