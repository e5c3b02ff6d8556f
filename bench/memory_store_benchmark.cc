// In-process decisions: hot key, 1M random keys, thread scaling, bytes per live key, a flood
// of exactly max_keys keys.
//
//   cmake --preset release && cmake --build --preset release --target pacer_store_benchmark
//   build/release/bench/pacer_store_benchmark --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pacer/limiter.h"
#include "pacer/memory_store.h"

namespace {

using std::chrono::hours;

// Every decision in these runs is an admission, so they measure the full write path.
// Hot key: T = 1 ns, so the key never runs out however fast the loop goes.
const pacer::Policy kHotPolicy("bench", {pacer::Rate(1'000'000'000, std::chrono::seconds(1),
                                                     1'000'000'000)});
// Many keys: every admitted key stays live (TAT an hour or more ahead) for the whole run.
const pacer::Policy kPolicy("bench", {pacer::Rate(1, hours(1), 100'000)});

// Builds the storage key for client number `i` the way the HTTP layer does per request:
// on the stack, so the benchmark does not measure cache misses on a key array.
class KeyMaker {
 public:
  explicit KeyMaker(std::string_view tag) {
    prefix_len_ = static_cast<std::size_t>(std::snprintf(buffer_, sizeof buffer_,
                                                         "svc:{bench:/limited:ip:%.*s",
                                                         static_cast<int>(tag.size()), tag.data()));
  }
  std::string_view operator()(std::uint64_t i) {
    char* end = std::to_chars(buffer_ + prefix_len_, buffer_ + sizeof buffer_ - 1, i).ptr;
    *end++ = '}';
    return {buffer_, static_cast<std::size_t>(end - buffer_)};
  }

 private:
  char buffer_[96];
  std::size_t prefix_len_;
};

long rss_bytes() {
  std::ifstream status("/proc/self/statm");
  long pages = 0, resident = 0;
  status >> pages >> resident;
  return resident * 4096;
}

void BM_HotKey(benchmark::State& state) {
  pacer::MemoryStore store;
  const std::string key = "svc:{bench:/limited:ip:203.0.113.7}";
  for (auto _ : state) benchmark::DoNotOptimize(store.check_now(kHotPolicy, key, 1));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HotKey);

// One key decided by every thread (a global limit, or one client whose requests land on all of a
// server's threads): its state moves between the cores. items_per_second is the aggregate.
void BM_SharedHotKey(benchmark::State& state) {
  static pacer::MemoryStore* store = nullptr;
  if (state.thread_index() == 0) store = new pacer::MemoryStore;
  const std::string key = "svc:{bench:/limited:ip:203.0.113.7}";
  for (auto _ : state) benchmark::DoNotOptimize(store->check_now(kHotPolicy, key, 1));
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete store;
    store = nullptr;
  }
}
BENCHMARK(BM_SharedHotKey)->Threads(1)->Threads(2)->UseRealTime();

void BM_HotKeyThroughLimiter(benchmark::State& state) {
  pacer::MemoryStore store;
  pacer::Limiter limiter(store);
  const std::string key = "svc:{bench:/limited:ip:203.0.113.7}";
  for (auto _ : state) benchmark::DoNotOptimize(limiter.check(kHotPolicy, key, 1));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HotKeyThroughLimiter);

void BM_RandomKeys(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  KeyMaker key("");
  pacer::MemoryStore store({.max_keys = 2'000'000});
  for (std::size_t i = 0; i < n; ++i) store.check_now(kPolicy, key(i), 1);
  std::vector<std::uint32_t> order(1 << 22);
  std::mt19937 rng(42);
  for (auto& o : order) o = static_cast<std::uint32_t>(rng() % n);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(store.check_now(kPolicy, key(order[i]), 1));
    i = (i + 1) & (order.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RandomKeys)->Arg(1'000'000);

// Each thread works on its own keys (arg: keys per thread). items_per_second is the aggregate
// over all threads (Google Benchmark sums iterations and divides by wall time): compare
// threads:2 with threads:1 for the same number of keys.
void BM_DistinctKeysPerThread(benchmark::State& state) {
  static pacer::MemoryStore* store = nullptr;
  if (state.thread_index() == 0) store = new pacer::MemoryStore({.max_keys = 4'000'000});
  KeyMaker key("t" + std::to_string(state.thread_index()) + "-");
  const auto keys = static_cast<std::uint64_t>(state.range(0));
  // Google Benchmark starts the timed loop of all threads together, after this setup.
  std::uint64_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(store->check_now(kPolicy, key(i), 1));
    if (++i == keys) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete store;
    store = nullptr;
  }
}
BENCHMARK(BM_DistinctKeysPerThread)
    ->ArgName("keys_per_thread")
    ->Arg(1)
    ->Arg(1'000)
    ->Arg(1'000'000)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// Memory of 1M live one-rate keys: slot bytes from the store's own accounting and the
// process's resident set growth.
void BM_BytesPerLiveKey(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    KeyMaker key("m");
    const long rss_before = rss_bytes();
    // Room for every key, so the count measured is n live keys.
    auto store = std::make_unique<pacer::MemoryStore>(pacer::MemoryStoreOptions{.max_keys = 2 * n});
    for (std::size_t i = 0; i < n; ++i) store->check_now(kPolicy, key(i), 1);
    state.PauseTiming();
    const pacer::MemoryStoreStats stats = store->stats();
    state.counters["live_keys"] = static_cast<double>(stats.keys);
    state.counters["bytes_per_key"] =
        static_cast<double>(stats.bytes) / static_cast<double>(stats.keys);
    state.counters["rss_bytes_per_key"] =
        static_cast<double>(rss_bytes() - rss_before) / static_cast<double>(stats.keys);
    store.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_BytesPerLiveKey)->Arg(1'000'000)->Iterations(1)->Unit(benchmark::kMillisecond);

// A flood of exactly max_keys distinct keys of 1/hour, twice: the first pass must admit every
// key and the second none (max_keys is exact: nothing is evicted before the bound).
void BM_MaxKeysFlood(benchmark::State& state) {
  const auto max_keys = static_cast<std::size_t>(state.range(0));
  const pacer::Policy policy("flood", {pacer::Rate(1, hours(1))});
  for (auto _ : state) {
    KeyMaker key("f");
    pacer::MemoryStore store({.max_keys = max_keys});
    std::size_t admitted = 0;
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t i = 0; i < max_keys; ++i)
        admitted += store.check_now(policy, key(i), 1).decision.allowed() ? 1 : 0;
    const pacer::MemoryStoreStats stats = store.stats();
    state.counters["admitted"] = static_cast<double>(admitted);
    state.counters["keys"] = static_cast<double>(stats.keys);
    state.counters["evictions"] = static_cast<double>(stats.evictions);
  }
}
BENCHMARK(BM_MaxKeysFlood)->Arg(1'000'000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
