#include "pacer/memory_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace pacer {
namespace {

using std::chrono::seconds;

constexpr std::int64_t kSecond = 1'000'000'000;

// A clock the test moves by hand.
struct FakeClock {
  std::int64_t now = 1'000 * kSecond;
  std::function<std::int64_t()> fn() {
    return [this] { return now; };
  }
};

Policy one_per_second(std::int64_t burst = 0) { return Policy("p", {Rate(1, seconds(1), burst)}); }

TEST(MemoryStore, BurstThenDeniedThenRecoversWithTime) {
  FakeClock clock;
  MemoryStore store({.clock = clock.fn()});
  const Policy policy = one_per_second(2);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(store.check_now(policy, "k", 1).decision.allowed()) << i;
  const CheckResult denied = store.check_now(policy, "k", 1);
  EXPECT_FALSE(denied.error);
  EXPECT_EQ(denied.decision.outcome, Outcome::kDenied);
  EXPECT_EQ(denied.decision.retry_after, seconds(1));
  clock.now += kSecond;
  EXPECT_TRUE(store.check_now(policy, "k", 1).decision.allowed());
  EXPECT_FALSE(store.check_now(policy, "k", 1).decision.allowed());
}

TEST(MemoryStore, KeysAreIndependent) {
  FakeClock clock;
  MemoryStore store({.clock = clock.fn()});
  const Policy policy = one_per_second();
  EXPECT_TRUE(store.check_now(policy, "a", 1).decision.allowed());
  EXPECT_FALSE(store.check_now(policy, "a", 1).decision.allowed());
  EXPECT_TRUE(store.check_now(policy, "b", 1).decision.allowed());
}

TEST(MemoryStore, PeekWritesNothing) {
  FakeClock clock;
  MemoryStore store({.clock = clock.fn()});
  const Policy policy = one_per_second(4);
  EXPECT_EQ(store.check_now(policy, "k", 0).decision.remaining, 5);
  EXPECT_EQ(store.stats().keys, 0u);
  store.check_now(policy, "k", 2);
  EXPECT_EQ(store.check_now(policy, "k", 0).decision.remaining, 3);
  EXPECT_EQ(store.check_now(policy, "k", 0).decision.remaining, 3);
}

TEST(MemoryStore, ResetForgetsTheKey) {
  FakeClock clock;
  MemoryStore store({.clock = clock.fn()});
  const Policy policy = one_per_second();
  store.check_now(policy, "k", 1);
  EXPECT_FALSE(store.check_now(policy, "k", 1).decision.allowed());
  store.reset_now(policy, "k");
  EXPECT_TRUE(store.check_now(policy, "k", 1).decision.allowed());
  store.reset_now(policy, "never-seen");  // no-op
}

TEST(MemoryStore, NegativeCostIsAnError) {
  MemoryStore store;
  const CheckResult r = store.check_now(one_per_second(), "k", -1);
  EXPECT_EQ(r.error, make_error_code(Errc::kInvalidCost));
}

TEST(MemoryStore, PoliciesWithDifferentRateCountsDoNotCollide) {
  FakeClock clock;
  MemoryStore store({.clock = clock.fn()});
  const Policy one("one", {Rate(1, seconds(1))});
  const Policy two("two", {Rate(1, seconds(1)), Rate(10, seconds(60))});
  EXPECT_TRUE(store.check_now(one, "one:k", 1).decision.allowed());
  EXPECT_TRUE(store.check_now(two, "two:k", 1).decision.allowed());
  EXPECT_FALSE(store.check_now(one, "one:k", 1).decision.allowed());
  EXPECT_FALSE(store.check_now(two, "two:k", 1).decision.allowed());
}

// Item 4 of issue 6: the store used to key on the key alone, so two policies with the same
// number of rates shared one state for a key (one policy's traffic denied the other's).
TEST(MemoryStore, PoliciesHaveTheirOwnKeySpace) {
  MemoryStore store;
  const Policy login("login", {Rate(1, std::chrono::seconds(60))});
  const Policy search("search", {Rate(1, std::chrono::seconds(60))});
  EXPECT_TRUE(store.check_now(login, "user:1", 1).decision.allowed());
  EXPECT_FALSE(store.check_now(login, "user:1", 1).decision.allowed());
  EXPECT_TRUE(store.check_now(search, "user:1", 1).decision.allowed());
  store.reset_now(search, "user:1");
  EXPECT_FALSE(store.check_now(login, "user:1", 1).decision.allowed());  // untouched
  EXPECT_TRUE(store.check_now(search, "user:1", 1).decision.allowed());
  // The same name is the same policy (a reload that kept the name keeps the counts).
  const Policy login_again("login", {Rate(1, std::chrono::seconds(60))});
  EXPECT_FALSE(store.check_now(login_again, "user:1", 1).decision.allowed());
}

TEST(MemoryStore, ExpiredEntriesAreDroppedWhenTablesRebuild) {
  FakeClock clock;
  MemoryStore store({.max_keys = 1 << 20, .shards = 4, .clock = clock.fn()});
  const Policy policy = one_per_second();
  for (int i = 0; i < 10'000; ++i) store.check_now(policy, "k" + std::to_string(i), 1);
  EXPECT_EQ(store.stats().keys, 10'000u);
  clock.now += kSecond;  // every TAT is now <= now: no information left
  store.purge_expired();
  const MemoryStoreStats after = store.stats();
  EXPECT_EQ(after.keys, 0u);
  EXPECT_LT(after.capacity, 1'000u);
}

TEST(MemoryStore, ExpiredSlotsAreReusedWithoutGrowing) {
  FakeClock clock;
  MemoryStore store({.max_keys = 1 << 20, .shards = 1, .clock = clock.fn()});
  const Policy policy = one_per_second();
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 1'000; ++i)
      store.check_now(policy, std::to_string(round) + ":" + std::to_string(i), 1);
    clock.now += kSecond;
  }
  // 50k keys went through, but never more than 1k were live at once.
  EXPECT_LE(store.stats().capacity, 4'096u);
}

// A flood of distinct keys beyond max_keys keeps memory bounded, evicts the entries that
// carry the least information first, and keeps an abusive key's state.
TEST(MemoryStore, KeyFloodIsBoundedAndKeepsAbusiveKeys) {
  FakeClock clock;
  const std::size_t max_keys = 4'096;
  MemoryStore store({.max_keys = max_keys, .shards = 4, .clock = clock.fn()});
  const Policy policy("p", {Rate(1, seconds(60), 9)});  // 10 at once, then 1 per minute
  for (int i = 0; i < 10; ++i) store.check_now(policy, "abuser", 1);
  ASSERT_FALSE(store.check_now(policy, "abuser", 1).decision.allowed());

  for (int i = 0; i < 1'000'000; ++i) {
    store.check_now(policy, "ip:" + std::to_string(i), 1);
    if (i % 1000 == 0) clock.now += 1'000'000;  // 1 ms per thousand requests
  }
  const MemoryStoreStats stats = store.stats();
  EXPECT_LE(stats.keys, max_keys);
  EXPECT_GT(stats.evictions, 900'000u);
  EXPECT_LE(stats.bytes, 64u * max_keys + 64 * 1024);
  // The abuser's TAT is ten minutes ahead; every flood key is one minute ahead.
  EXPECT_FALSE(store.check_now(policy, "abuser", 1).decision.allowed());
}

// max_keys is exact (it used to be enforced per shard, so a flood of exactly max_keys keys
// evicted some of them early and admitted them again). Up to the bound every new key is
// stored; at the bound a new key takes the place of one entry, and the count stays put.
TEST(MemoryStore, FloodOfExactlyMaxKeysKeepsEveryKey) {
  FakeClock clock;
  const std::size_t max_keys = 100'000;
  MemoryStore store({.max_keys = max_keys, .clock = clock.fn()});
  const Policy policy("p", {Rate(1, std::chrono::hours(1))});
  for (std::size_t i = 0; i < max_keys; ++i)
    ASSERT_TRUE(store.check_now(policy, "ip:" + std::to_string(i), 1).decision.allowed()) << i;
  EXPECT_EQ(store.stats().keys, max_keys);
  EXPECT_EQ(store.stats().evictions, 0u);
  std::size_t admitted_again = 0;
  for (std::size_t i = 0; i < max_keys; ++i)
    admitted_again += store.check_now(policy, "ip:" + std::to_string(i), 1).decision.allowed();
  EXPECT_EQ(admitted_again, 0u);

  // One key more: admitted (it is new), and one entry makes room for it.
  EXPECT_TRUE(store.check_now(policy, "one-more", 1).decision.allowed());
  EXPECT_EQ(store.stats().keys, max_keys);
  EXPECT_EQ(store.stats().evictions, 1u);
  // Resets give slots back.
  store.reset_now(policy, "one-more");
  EXPECT_EQ(store.stats().keys, max_keys - 1);
}

// The same from two threads at once: the global count admits exactly max_keys entries.
TEST(MemoryStore, ConcurrentFloodOfExactlyMaxKeysKeepsEveryKey) {
  FakeClock clock;
  const std::size_t max_keys = 50'000;
  MemoryStore store({.max_keys = max_keys, .clock = clock.fn()});
  const Policy policy("p", {Rate(1, std::chrono::hours(1))});
  std::atomic<std::size_t> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = 0; i < max_keys / 2; ++i)
        if (store.check_now(policy, std::to_string(t) + ":" + std::to_string(i), 1)
                .decision.allowed())
          admitted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), max_keys);
  EXPECT_EQ(store.stats().keys, max_keys);
  EXPECT_EQ(store.stats().evictions, 0u);
  EXPECT_TRUE(store.check_now(policy, "one-more", 1).decision.allowed());
  EXPECT_EQ(store.stats().keys, max_keys);
}

TEST(MemoryStore, ConcurrentHammeringOfOneKeyAdmitsExactly) {
  FakeClock clock;  // frozen: only the burst may pass
  MemoryStore store({.clock = clock.fn()});
  const Policy policy("p", {Rate(1, seconds(3600), 999)});
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50'000; ++i)
        if (store.check_now(policy, "hot", 1).decision.allowed()) admitted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 1000);
}

TEST(MemoryStore, ConcurrentDistinctKeysEachAdmitExactly) {
  FakeClock clock;
  MemoryStore store({.max_keys = 1 << 20, .shards = 8, .clock = clock.fn()});
  const Policy policy("p", {Rate(1, seconds(3600), 4)});
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      // Every thread walks the same 2000 keys: each key admits exactly burst+1 = 5.
      for (int round = 0; round < 8; ++round)
        for (int k = 0; k < 2'000; ++k)
          if (store.check_now(policy, "k" + std::to_string(k), 1).decision.allowed())
            admitted.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 2'000 * 5);
}

TEST(MemoryStore, AsyncInterfaceCompletesInline) {
  MemoryStore store;
  bool called = false;
  store.check(one_per_second(), "k", 1, [&](const CheckResult& r) {
    called = true;
    EXPECT_TRUE(r.decision.allowed());
    EXPECT_EQ(r.key, "k");
  });
  EXPECT_TRUE(called);
}

}  // namespace
}  // namespace pacer
