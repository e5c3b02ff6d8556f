// Redis Cluster operations under load (issue 9): what an operator does to a cluster must be
// invisible to the decisions, or bounded where Redis itself cannot answer.
//
// - Resharding every slot of one master to another while 256 checks are in flight: no errors,
//   and every key admits exactly its capacity (a command run twice, or lost, would show).
// - CLUSTER FAILOVER on a replica under load: no errors, exact counts.
// - A master killed (SIGKILL) with a replica and a short cluster-node-timeout: errors only for
//   the keys of that master and only until the replica is promoted; nothing admitted beyond the
//   GCRA bound when errors are answered "closed".
// - A "server" that accepts connections and closes them at once: bounded reconnects, no busy
//   loop.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "pacer/redis/redis_store.h"
#include "redis_server.h"

namespace pacer::redis {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::RedisCluster;
using testing::RedisServer;

#define SKIP_WITHOUT_REDIS() \
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed"

// 100 permits at once, then one every 6 minutes: no key regains a permit during a test.
constexpr std::int64_t kCapacity = 100;
Policy capacity_policy() { return Policy("failover", {Rate(kCapacity, 10h, kCapacity - 1)}); }

// Keeps `concurrency` checks in flight over `keys` until stopped; every answer is counted.
// Checks are issued again from their completions (on the store's I/O thread).
class Load {
 public:
  Load(RedisStore& store, std::size_t keys, std::size_t concurrency)
      : store_(store), policy_(capacity_policy()), allowed_(keys), concurrency_(concurrency) {
    const auto run =
        std::to_string(::getpid()) + ":" + std::to_string(Clock::now().time_since_epoch().count());
    for (std::size_t i = 0; i < keys; ++i) keys_.push_back("k" + std::to_string(i) + ":" + run);
  }
  ~Load() { stop(); }

  void start() {
    started_ = Clock::now();
    for (std::size_t i = 0; i < concurrency_; ++i) {
      in_flight_.fetch_add(1);
      issue(i);
    }
  }

  void stop() {
    stopping_.store(true);
    const auto deadline = Clock::now() + 10s;
    while (in_flight_.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }

  std::uint64_t answers() const { return answers_.load(); }
  std::uint64_t errors() const { return errors_.load(); }
  // The longest any check waited for its answer.
  std::chrono::milliseconds slowest() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration(slowest_.load()));
  }
  // Errors since `since`, and the time from `since` to the last one.
  std::chrono::milliseconds error_window(Clock::time_point since) const {
    const auto last = last_error_.load();
    if (last == 0) return 0ms;
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        Clock::time_point(Clock::duration(last)) - since);
  }
  std::string first_error() const {
    std::lock_guard lock(mutex_);
    return first_error_;
  }
  std::size_t keys() const { return keys_.size(); }
  std::int64_t allowed(std::size_t key) const { return allowed_[key].load(); }
  std::int64_t max_allowed() const {
    std::int64_t most = 0;
    for (const auto& a : allowed_) most = std::max<std::int64_t>(most, a.load());
    return most;
  }

 private:
  void issue(std::size_t worker) {
    const std::size_t key = next_key_.fetch_add(1, std::memory_order_relaxed) % keys_.size();
    const auto asked = Clock::now();
    store_.check(policy_, keys_[key], 1, [this, worker, key, asked](const CheckResult& result) {
      answers_.fetch_add(1, std::memory_order_relaxed);
      const auto waited = (Clock::now() - asked).count();
      auto slowest = slowest_.load(std::memory_order_relaxed);
      while (waited > slowest && !slowest_.compare_exchange_weak(slowest, waited)) {
      }
      if (result.error) {
        errors_.fetch_add(1, std::memory_order_relaxed);
        last_error_.store(Clock::now().time_since_epoch().count());
        std::lock_guard lock(mutex_);
        if (first_error_.empty()) first_error_ = result.error.message();
      } else if (result.decision.allowed()) {
        allowed_[key].fetch_add(1, std::memory_order_relaxed);
      }
      if (stopping_.load(std::memory_order_relaxed)) {
        in_flight_.fetch_sub(1);
        return;
      }
      issue(worker);
    });
  }

  RedisStore& store_;
  Policy policy_;
  std::vector<std::string> keys_;
  std::vector<std::atomic<std::int64_t>> allowed_;
  std::size_t concurrency_;
  std::atomic<std::size_t> next_key_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<std::uint64_t> answers_{0}, errors_{0};
  std::atomic<Clock::rep> last_error_{0};
  std::atomic<Clock::rep> slowest_{0};
  mutable std::mutex mutex_;
  std::string first_error_;
  Clock::time_point started_;
};

// Every key saw more checks than its capacity: each must have admitted exactly kCapacity.
void expect_exact_counts(const Load& load) {
  std::size_t wrong = 0;
  for (std::size_t k = 0; k < load.keys(); ++k) {
    if (load.allowed(k) != kCapacity) {
      if (++wrong <= 5) ADD_FAILURE() << "key " << k << " admitted " << load.allowed(k);
    }
  }
  EXPECT_EQ(wrong, 0u);
}

void wait_for_answers(const Load& load, std::uint64_t answers, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (load.answers() < answers && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
}

// The tests that expect no errors give each command 5 s: what they check is that no redirect
// loses or repeats a decision, not how fast a 2-core machine running other tests answers (CI
// saw a check wait over 500 ms there; alone it is about 12 ms). A lost or stuck command still
// fails them, 5 s later, and they print the slowest answer.
RedisStoreOptions cluster_options(const RedisCluster& cluster) {
  return {.url = cluster.url(), .command_timeout = 5s, .deny_cache_entries = 0};
}

TEST(ClusterOperations, ReshardingEverySlotOfAMasterUnderLoadLosesNothing) {
  SKIP_WITHOUT_REDIS();
  RedisCluster cluster(3);
  RedisStore store(cluster_options(cluster));
  ASSERT_TRUE(store.wait_connected(10s));
  Load load(store, 300, 256);
  load.start();
  wait_for_answers(load, 20'000, 20s);

  // redis-cli moves the slots one by one (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE),
  // as an operator would.
  const std::string from = cluster.node_id(0);
  const std::string to = cluster.node_id(1);
  const auto began = Clock::now();
  int status = 0;
  const std::string output = testing::detail::run(
      "redis-cli --cluster reshard 127.0.0.1:" + std::to_string(cluster.node(0).port()) +
          " --cluster-from " + from + " --cluster-to " + to +
          " --cluster-slots 5461 --cluster-yes --cluster-pipeline 100 >/dev/null 2>&1",
      &status);
  const auto took = Clock::now() - began;
  ASSERT_EQ(status, 0) << output;
  EXPECT_TRUE(cluster.node(0).cli({"CLUSTER", "COUNTKEYSINSLOT", "0"}) == "0");
  const auto before = load.answers();
  wait_for_answers(load, before + 20'000, 20s);
  load.stop();

  std::printf(
      "resharding 5461 slots took %lld ms; %llu decisions, slowest %lld ms, %llu errors (%s)\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
      static_cast<unsigned long long>(load.answers()),
      static_cast<long long>(load.slowest().count()),
      static_cast<unsigned long long>(load.errors()), load.first_error().c_str());
  EXPECT_EQ(load.errors(), 0u) << load.first_error();
  expect_exact_counts(load);
  EXPECT_EQ(cluster.owner_of(0), 1u);
}

TEST(ClusterOperations, ManualFailoverUnderLoadLosesNothing) {
  SKIP_WITHOUT_REDIS();
  RedisCluster cluster(3, {}, 1);
  cluster.wait_replicas_synced();
  RedisStore store(cluster_options(cluster));
  ASSERT_TRUE(store.wait_connected(10s));
  Load load(store, 300, 256);
  load.start();
  wait_for_answers(load, 20'000, 20s);

  const std::size_t replica = cluster.replica_of(0);
  ASSERT_EQ(cluster.node(replica).cli({"CLUSTER", "FAILOVER"}), "OK");
  ASSERT_TRUE(cluster.wait_master(replica, 20s));
  const auto before = load.answers();
  wait_for_answers(load, before + 20'000, 20s);
  load.stop();

  std::printf("manual failover: %llu decisions, slowest %lld ms, %llu errors (%s)\n",
              static_cast<unsigned long long>(load.answers()),
              static_cast<long long>(load.slowest().count()),
              static_cast<unsigned long long>(load.errors()), load.first_error().c_str());
  EXPECT_EQ(load.errors(), 0u) << load.first_error();
  expect_exact_counts(load);
}

TEST(ClusterOperations, AKilledMasterCostsErrorsOnlyUntilItsReplicaIsPromoted) {
  SKIP_WITHOUT_REDIS();
  // A short node timeout so the test is quick; "full coverage no" keeps the other masters
  // serving while one is down (docs/OPERATIONS.md says why an operator wants it too).
  RedisCluster cluster(
      3, {"--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no"}, 1);
  cluster.wait_replicas_synced();
  RedisStoreOptions options = cluster_options(cluster);
  options.command_timeout = 50ms;
  RedisStore store(options);
  ASSERT_TRUE(store.wait_connected(10s));
  Load load(store, 300, 64);
  load.start();
  wait_for_answers(load, 20'000, 20s);
  ASSERT_EQ(load.errors(), 0u) << load.first_error();

  const std::size_t replica = cluster.replica_of(0);
  const auto killed = Clock::now();
  cluster.node(0).kill();
  ASSERT_TRUE(cluster.wait_master(replica, 20s));
  const auto promoted = Clock::now();
  const auto errors_at_promotion = load.errors();
  // After the promotion the client finds the new master within a slot map refresh or two.
  std::this_thread::sleep_for(1500ms);
  const auto errors_after = load.errors();
  const auto before = load.answers();
  wait_for_answers(load, before + 20'000, 20s);
  load.stop();

  const auto ms = [](auto d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  std::printf(
      "master killed: replica promoted after %lld ms; errors for %lld ms after the kill "
      "(%llu errors of %llu decisions; %llu after the promotion); most admitted for one key %lld "
      "(capacity %lld)\n",
      ms(promoted - killed), static_cast<long long>(load.error_window(killed).count()),
      static_cast<unsigned long long>(load.errors()),
      static_cast<unsigned long long>(load.answers()),
      static_cast<unsigned long long>(load.errors() - errors_at_promotion),
      static_cast<long long>(load.max_allowed()), static_cast<long long>(kCapacity));
  EXPECT_GT(load.errors(), 0u);  // the master's keys could not be answered for a while
  // Errors end within a moment of the promotion, and none come later.
  EXPECT_LT(load.error_window(killed),
            std::chrono::duration_cast<std::chrono::milliseconds>(promoted - killed) + 1000ms);
  EXPECT_EQ(load.errors(), errors_after);
  // Errors answered "closed" admit nothing. Replication is asynchronous: writes the replica had
  // not received when the master died are lost, so a key may admit again what those writes
  // had consumed. On loopback with a synced replica that is at most a few permits.
  EXPECT_LE(load.max_allowed(), kCapacity + 3);
}

// Accepts TCP connections and closes them at once, counting them.
class SlamDoor {
 public:
  SlamDoor() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(fd_, 64) != 0)
      throw std::runtime_error("SlamDoor: cannot listen");
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int client = ::accept(fd_, nullptr, nullptr);
        if (client < 0) return;  // shut down
        accepted_.fetch_add(1);
        ::close(client);
      }
    });
  }
  ~SlamDoor() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

TEST(ClusterOperations, ANodeThatClosesEveryConnectionCostsBoundedRetriesAndNoBusyLoop) {
  for (const bool cluster : {false, true}) {
    SCOPED_TRACE(cluster ? "cluster" : "standalone");
    SlamDoor door;
    const std::string url = std::string(cluster ? "redis+cluster" : "redis") +
                            "://127.0.0.1:" + std::to_string(door.port());
    RedisStore store({.url = url, .command_timeout = 50ms, .reconnect_max = 500ms});
    const Policy policy = capacity_policy();
    const double cpu_before = cpu_seconds();
    const auto began = Clock::now();
    int failed = 0, checks = 0;
    while (Clock::now() - began < 2s) {
      ++checks;
      std::promise<CheckResult> answer;
      store.check(policy, "k", 1, [&](const CheckResult& r) { answer.set_value(r); });
      const auto asked = Clock::now();
      if (answer.get_future().get().error) ++failed;
      // Never slower than the command timeout, whatever the node does.
      EXPECT_LT(Clock::now() - asked, 200ms);
      std::this_thread::sleep_for(20ms);
    }
    const double cpu = cpu_seconds() - cpu_before;
    std::printf("%s: %d connections in 2 s, %d of %d checks failed, %.3f s CPU\n",
                cluster ? "cluster" : "standalone", door.accepted(), failed, checks, cpu);
    EXPECT_EQ(failed, checks);
    // Backoff from 20 ms doubling to 500 ms: about ten attempts in 2 s, not thousands.
    EXPECT_LE(door.accepted(), 25);
    EXPECT_LT(cpu, 0.2);  // 10% of one core, with the 20 ms polling loop above included
  }
}

}  // namespace
}  // namespace pacer::redis
