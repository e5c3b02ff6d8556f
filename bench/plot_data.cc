// pacer-plot-data — real runs turned into the tables scripts/plot.sh draws (docs/img/).
//
//   pacer-plot-data gcra --url redis://127.0.0.1:6379 --rate 10/1s --burst 9 --seconds 6
//       A bursty client on one key: a burst every `--every` seconds. Prints one line per
//       request: seconds since start, admitted so far by the store, admitted so far by an exact
//       in-process GCRA step fed the same arrival times, and the bound burst + 1 + rate * t.
//   pacer-plot-data latency --url redis://127.0.0.1:6379 --concurrency 32 --seconds 3
//       Keeps N checks in flight over 10,000 keys; prints the latency CDF: microseconds and the
//       fraction of decisions at most that slow (200 points).
//   --url memory uses the in-process store (gcra only).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "pacer/gcra.h"
#include "pacer/memory_store.h"
#include "pacer/redis/redis_store.h"

namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<pacer::Store> open_store(const std::string& url) {
  if (url == "memory") return std::make_unique<pacer::MemoryStore>();
  auto store = std::make_unique<pacer::redis::RedisStore>(pacer::redis::RedisStoreOptions{
      .url = url, .command_timeout = std::chrono::seconds(1), .deny_cache_entries = 0});
  if (!store->wait_connected(std::chrono::seconds(3)))
    throw std::runtime_error("cannot connect to " + url + ": " + store->last_error());
  return store;
}

pacer::CheckResult check(pacer::Store& store, const pacer::Policy& policy, const std::string& key) {
  std::promise<pacer::CheckResult> answer;
  store.check(policy, key, 1, [&](const pacer::CheckResult& r) {
    pacer::CheckResult copy = r;
    copy.key = {};
    answer.set_value(copy);
  });
  return answer.get_future().get();
}

int gcra(const std::string& url, const std::string& rate_text, std::int64_t burst, double seconds,
         double every, int burst_size) {
  const pacer::Policy policy("plot", {pacer::Rate::parse(rate_text, burst)});
  const pacer::Rate& rate = policy.rates().front();
  auto store = open_store(url);
  const std::string key = fmt::format("plot:{}", Clock::now().time_since_epoch().count());
  std::int64_t tat = 0;  // the exact step's state, fed the same arrival times
  std::int64_t admitted = 0, exact = 0;
  const auto start = Clock::now();
  const double per_second = 1e9 / static_cast<double>(rate.emission_interval().count());
  std::printf("# seconds admitted exact_gcra bound\n");
  for (int round = 0; Clock::now() - start < std::chrono::duration<double>(seconds); ++round) {
    for (int i = 0; i < burst_size; ++i) {
      const auto sent = Clock::now();
      const pacer::CheckResult result = check(*store, policy, key);
      if (result.error) throw std::runtime_error("check failed: " + result.error.message());
      admitted += result.decision.allowed() ? 1 : 0;
      const std::int64_t now =
          std::chrono::duration_cast<std::chrono::nanoseconds>(sent - start).count() + 1;
      if (tat == 0) tat = now;
      exact += pacer::gcra_step(policy.rates(), std::span<std::int64_t>(&tat, 1), now, 1).allowed()
                   ? 1
                   : 0;
      const double t = std::chrono::duration<double>(sent - start).count();
      std::printf("%.4f %lld %lld %.2f\n", t, static_cast<long long>(admitted),
                  static_cast<long long>(exact), static_cast<double>(burst + 1) + per_second * t);
    }
    std::this_thread::sleep_until(start + std::chrono::duration<double>(every * (round + 1)));
  }
  return 0;
}

int latency(const std::string& url, unsigned concurrency, double seconds) {
  // In-process checks complete inline: a chain would recurse instead of waiting.
  if (url == "memory") throw std::invalid_argument("latency needs a Redis --url, not memory");
  const pacer::Policy policy("plot", {pacer::Rate::parse("1000000/1s", 1'000'000)});
  auto store = open_store(url);
  std::vector<std::string> keys;
  for (int i = 0; i < 10'000; ++i) keys.push_back(fmt::format("plot:{{lat:{}}}", i));
  // Completions run on the store's one I/O thread: each chain appends to its own vector.
  std::vector<std::vector<float>> samples(concurrency);
  std::atomic<bool> stop{false};
  std::atomic<unsigned> running{concurrency};
  std::function<void(unsigned, std::size_t)> issue = [&](unsigned chain, std::size_t n) {
    const auto sent = Clock::now();
    store->check(policy, keys[(chain * 7919 + n) % keys.size()], 1,
                 [&, chain, n, sent](const pacer::CheckResult&) {
                   samples[chain].push_back(
                       std::chrono::duration<float, std::micro>(Clock::now() - sent).count());
                   if (stop.load(std::memory_order_relaxed)) {
                     running.fetch_sub(1);
                     return;
                   }
                   issue(chain, n + 1);
                 });
  };
  for (unsigned c = 0; c < concurrency; ++c) issue(c, 0);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  while (running.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<float> all;
  for (const auto& chain : samples) all.insert(all.end(), chain.begin(), chain.end());
  std::sort(all.begin(), all.end());
  std::printf("# latency_us fraction (%zu decisions, %u in flight)\n", all.size(), concurrency);
  constexpr int kPoints = 200;
  for (int i = 0; i <= kPoints; ++i) {
    const double fraction = static_cast<double>(i) / kPoints;
    const auto index = std::min(
        all.size() - 1, static_cast<std::size_t>(fraction * static_cast<double>(all.size())));
    std::printf("%.2f %.4f\n", static_cast<double>(all[index]), fraction);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("pacer-plot-data: data for scripts/plot.sh");
  app.require_subcommand(1);
  std::string url = "memory";
  std::string rate = "10/1s";
  std::int64_t burst = 9;
  double seconds = 6, every = 1;
  int burst_size = 25;
  unsigned concurrency = 32;
  auto* g = app.add_subcommand("gcra", "a bursty client against the GCRA bound");
  g->add_option("--url", url, "Redis URL, or memory");
  g->add_option("--rate", rate, "permits/period");
  g->add_option("--burst", burst, "burst")->check(CLI::NonNegativeNumber);
  g->add_option("--seconds", seconds)->check(CLI::Range(0.5, 600.0));
  g->add_option("--every", every, "seconds between bursts")->check(CLI::Range(0.01, 60.0));
  g->add_option("--burst-size", burst_size, "requests per burst")->check(CLI::Range(1, 100000));
  auto* l = app.add_subcommand("latency", "the latency CDF of N checks in flight");
  l->add_option("--url", url, "Redis URL, or memory");
  l->add_option("--concurrency", concurrency)->check(CLI::Range(1u, 65536u));
  l->add_option("--seconds", seconds)->check(CLI::Range(0.5, 600.0));
  CLI11_PARSE(app, argc, argv);
  try {
    if (g->parsed()) return gcra(url, rate, burst, seconds, every, burst_size);
    return latency(url, concurrency, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pacer-plot-data: %s\n", e.what());
    return 2;
  }
}
