// pacer-bench — drives concurrent checks against a store for a bounded time and reports
// decisions/s and latency percentiles; on Redis also the Redis CPU per decision (`usec_per_call`
// of EVALSHA, or of PACER.GCRA with pacer-redis-module.so, in INFO commandstats, read with
// redis-cli before and after).
//
//   pacer-bench --store memory --threads 2 --keys 1000000 --seconds 5
//   pacer-bench --store redis --url redis://127.0.0.1:6379 --concurrency 256 --seconds 5
//   pacer-bench --store redis --concurrency 1 --seconds 5             # sequential latency
//   pacer-bench --store redis --redis-benchmark                       # + redis-benchmark ceiling
//   pacer-bench --store redis --rate 1000/1s --rate 20000/1m --rate 1000000/1h  # three rates
//   pacer-bench --store redis --keys 1 --rate 10/1s --burst 0 --print-admitted
//   pacer-bench --store redis --script module     # PACER.GCRA (the module must be loaded)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "command_line.h"
#include "guarded_main.h"
#include "pacer/limiter.h"
#include "pacer/open_store.h"
#include "pacer/redis/url.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Settings {
  std::string store = "memory";
  std::string url = "redis://127.0.0.1:6379";
  unsigned concurrency = 256;  // in-flight checks (redis) / threads (memory)
  double seconds = 5;
  std::uint64_t max_requests = 0;  // 0 = until time is up
  std::uint64_t keys = 1;
  std::vector<std::string> rates = {"1000000/1s"};  // one policy with all of them
  std::int64_t burst = 1'000'000;
  std::int64_t cost = 1;
  std::string key_prefix = "bench";
  bool print_admitted = false;
  bool redis_benchmark = false;
  unsigned io_threads = 1;
  bool deny_cache = true;
  double send_rate = 0;         // > 0: paced checks per second from one thread instead of chains
  std::string script = "auto";  // auto | lua | module (RedisStoreOptions::script)
};

// Latencies in microseconds, sampled into a fixed-size log-linear histogram.
class Histogram {
 public:
  void add(std::chrono::nanoseconds latency) {
    const auto us = static_cast<std::size_t>(latency.count() / 100);  // 0.1 us buckets
    ++buckets_[std::min(us, buckets_.size() - 1)];
    ++count_;
  }
  void merge(const Histogram& other) {
    for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
  }
  double percentile_us(double p) const {
    const auto target = static_cast<std::uint64_t>(p * static_cast<double>(count_));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen > target) return static_cast<double>(i) / 10.0;
    }
    return static_cast<double>(buckets_.size()) / 10.0;
  }

 private:
  std::array<std::uint64_t, 200'000> buckets_{};  // up to 20 ms
  std::uint64_t count_ = 0;
};

struct Totals {
  std::atomic<std::uint64_t> done{0}, allowed{0}, denied{0}, errors{0};
};

std::string key_for(const Settings& s, std::uint64_t i) {
  return fmt::format("{}:{{bench:load:k{}}}", s.key_prefix, i % s.keys);
}

std::string shell_quote(std::string_view text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command and returns its standard output.
std::string run_command(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
      out.append(buffer, n);
    pclose(pipe);
  }
  return out;
}

// "-h H -p P [-a password]" for redis-cli and redis-benchmark on the URL's first host.
std::string redis_tool_target(const pacer::redis::RedisUrl& url) {
  std::string target = fmt::format("-h {} -p {}", url.hosts[0].first, url.hosts[0].second);
  if (!url.username.empty()) target += " --user " + shell_quote(url.username);
  if (!url.password.empty()) target += " --no-auth-warning -a " + shell_quote(url.password);
  return target;
}

// Decisions (EVALSHA and PACER.GCRA calls) and the microseconds Redis spent in them (INFO
// commandstats), summed over the URL's hosts (a cluster's seeds: list every master to count them
// all). A run uses one of the two commands; the other adds nothing.
struct ScriptCpu {
  bool ok = false;
  double calls = 0;
  double usec = 0;
};

ScriptCpu read_script_cpu(const pacer::redis::RedisUrl& url) {
  ScriptCpu total;
  if (url.tls) return total;  // redis-cli would need the TLS files: not measured
  for (const auto& [host, port] : url.hosts) {
    pacer::redis::RedisUrl one = url;
    one.hosts = {{host, port}};
    const std::string stats =
        run_command("redis-cli " + redis_tool_target(one) + " INFO commandstats 2>/dev/null");
    if (stats.find("# Commandstats") == std::string::npos) return {};
    total.ok = true;
    // cmdstat_evalsha:calls=123,usec=456,usec_per_call=3.71,...
    for (const std::string_view name : {"cmdstat_evalsha:calls=", "cmdstat_pacer.gcra:calls="}) {
      const auto at = stats.find(name);
      if (at == std::string::npos) continue;  // not called on this node yet
      const char* p = stats.c_str() + at + name.size();
      char* end = nullptr;
      total.calls += std::strtod(p, &end);
      const auto usec = stats.find("usec=", static_cast<std::size_t>(end - stats.c_str()));
      if (usec == std::string::npos) return {};
      total.usec += std::strtod(stats.c_str() + usec + 5, nullptr);
    }
  }
  return total;
}

// usec_per_call of EVALSHA between two readings, or a negative number when unknown.
double usec_per_call(const ScriptCpu& before, const ScriptCpu& after) {
  if (!before.ok || !after.ok || after.calls <= before.calls) return -1;
  return (after.usec - before.usec) / (after.calls - before.calls);
}

std::string format_usec(double usec) {
  return usec < 0 ? std::string("unknown") : fmt::format("{:.2f}", usec);
}

void progress(const Settings& s, const Totals& totals, Clock::time_point start,
              std::atomic<bool>& stop) {
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const std::uint64_t done = totals.done.load();
    std::fprintf(stderr, "\r  %5.1f / %.0f s  %10llu checks  %10.0f/s   ", elapsed, s.seconds,
                 static_cast<unsigned long long>(done), static_cast<double>(done) / elapsed);
    if (elapsed >= s.seconds || (s.max_requests && done >= s.max_requests)) stop = true;
  }
  std::fprintf(stderr, "\n");
}

int run(const Settings& s) {
  std::vector<pacer::Rate> rates;
  for (const std::string& rate : s.rates) rates.push_back(pacer::Rate::parse(rate, s.burst));
  const pacer::Policy policy("bench", std::move(rates));
  std::string rate_list;
  for (const std::string& rate : s.rates) rate_list += (rate_list.empty() ? "" : ",") + rate;
  if (s.store != "memory" && s.store != "redis") {
    std::fprintf(stderr, "pacer-bench: invalid --store '%s': expected memory or redis\n",
                 s.store.c_str());
    return 2;
  }
  const bool redis = s.store == "redis";
  std::unique_ptr<pacer::Store> store =
      pacer::open_store(redis ? s.url : std::string(pacer::kMemoryStoreUrl),
                        {.redis = {.command_timeout = std::chrono::milliseconds(1000),
                                   .io_threads = s.io_threads,
                                   .deny_cache_entries = s.deny_cache ? 65536u : 0u,
                                   .script = pacer::redis::parse_redis_script(s.script)}});
  // The store's own numbers (Store::counters), by name.
  auto stat = [&store](std::string_view name) -> unsigned long long {
    for (const pacer::StoreStat& st : store->counters())
      if (st.name == name) return static_cast<unsigned long long>(st.value);
    return 0;
  };
  pacer::redis::RedisUrl url;
  ScriptCpu cpu_before;
  if (redis) {
    if (!store->wait_connected(std::chrono::seconds(3))) {
      std::fprintf(stderr, "pacer-bench: cannot connect to %s: %s\n",
                   pacer::redis::parse_redis_url(s.url).to_string().c_str(),
                   store->last_error().c_str());
      return 2;
    }
    url = pacer::redis::parse_redis_url(s.url);
    cpu_before = read_script_cpu(url);
  }

  Totals totals;
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  std::vector<Histogram> histograms;
  std::thread reporter([&] { progress(s, totals, start, stop); });

  auto count = [&](const pacer::CheckResult& r) {
    if (r.error) {
      totals.errors.fetch_add(1, std::memory_order_relaxed);
    } else if (r.decision.allowed()) {
      totals.allowed.fetch_add(1, std::memory_order_relaxed);
    } else {
      totals.denied.fetch_add(1, std::memory_order_relaxed);
    }
    totals.done.fetch_add(1, std::memory_order_relaxed);
  };

  if (s.store == "memory") {
    // Blocking checks on `concurrency` threads.
    histograms.resize(s.concurrency);
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < s.concurrency; ++t) {
      workers.emplace_back([&, t] {
        auto& memory = static_cast<pacer::MemoryStore&>(*store);
        for (std::uint64_t i = t; !stop.load(std::memory_order_relaxed); i += s.concurrency) {
          const std::string key = key_for(s, i);
          const auto begin = Clock::now();
          count(memory.check_now(policy, key, s.cost));
          histograms[t].add(Clock::now() - begin);
        }
      });
    }
    for (auto& w : workers) w.join();
  } else if (s.send_rate > 0) {
    // Paced: one check every 1/send_rate seconds, whatever the answers (an abusive client).
    histograms.resize(1);
    std::mutex histogram_mutex;
    std::atomic<std::uint64_t> outstanding{0};
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / s.send_rate));
    auto slot = Clock::now();
    for (std::uint64_t i = 0; !stop.load() && (!s.max_requests || i < s.max_requests); ++i) {
      std::this_thread::sleep_until(slot);
      slot += interval;
      const std::string key = key_for(s, i);
      const auto begin = Clock::now();
      outstanding.fetch_add(1);
      store->check(policy, key, s.cost, [&, begin](const pacer::CheckResult& r) {
        count(r);
        std::lock_guard lock(histogram_mutex);
        histograms[0].add(Clock::now() - begin);
        outstanding.fetch_sub(1);
      });
    }
    while (outstanding.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  } else {
    // `concurrency` chains of asynchronous checks: each completion starts the next one.
    histograms.resize(1);
    std::mutex histogram_mutex;
    std::atomic<unsigned> chains{s.concurrency};
    std::atomic<std::uint64_t> issued{0};
    // Answers can come inline (deny cache, open circuit): past a small depth a chain is handed
    // back to the main thread instead of recursing.
    thread_local int depth = 0;
    std::atomic<unsigned> parked{0};
    std::function<void()> next = [&] {
      const std::uint64_t i = issued.fetch_add(1);
      if (stop.load(std::memory_order_relaxed) || (s.max_requests && i >= s.max_requests)) {
        chains.fetch_sub(1);
        return;
      }
      const std::string key = key_for(s, i);
      const auto begin = Clock::now();
      ++depth;
      store->check(policy, key, s.cost, [&, begin](const pacer::CheckResult& r) {
        count(r);
        {
          std::lock_guard lock(histogram_mutex);
          histograms[0].add(Clock::now() - begin);
        }
        if (depth > 16) {
          parked.fetch_add(1);
        } else {
          next();
        }
      });
      --depth;
    };
    for (unsigned c = 0; c < s.concurrency; ++c) next();
    while (chains.load() > 0) {
      for (unsigned n = parked.exchange(0); n > 0; --n) next();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  stop = true;
  reporter.join();

  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  Histogram all;
  for (const auto& h : histograms) all.merge(h);
  const std::uint64_t done = totals.done.load();
  const ScriptCpu cpu_after = redis ? read_script_cpu(url) : ScriptCpu{};
  std::printf("store=%s concurrency=%u keys=%llu rates=%s burst=%lld\n", s.store.c_str(),
              s.concurrency, static_cast<unsigned long long>(s.keys), rate_list.c_str(),
              static_cast<long long>(s.burst));
  std::printf("checks=%llu allowed=%llu denied=%llu errors=%llu seconds=%.2f\n",
              static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(totals.allowed.load()),
              static_cast<unsigned long long>(totals.denied.load()),
              static_cast<unsigned long long>(totals.errors.load()), elapsed);
  std::printf("decisions_per_s=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f\n",
              static_cast<double>(done) / elapsed, all.percentile_us(0.50), all.percentile_us(0.90),
              all.percentile_us(0.99), all.percentile_us(0.999));
  if (redis) {
    const unsigned long long round_trips = stat("redis_round_trips_total");
    const unsigned long long module_decisions = stat("redis_module_decisions_total");
    std::printf(
        "redis_round_trips=%llu deny_cache_hits=%llu script_reloads=%llu "
        "round_trip_share=%.4f\n",
        round_trips, stat("redis_deny_cache_hits_total"), stat("redis_script_reloads_total"),
        done ? static_cast<double>(round_trips) / static_cast<double>(done) : 0.0);
    // Redis CPU per decision: the ceiling of a Redis deployment is 1e6 / this per core.
    std::printf("redis_usec_per_call=%s rates=%zu command=%s module_decisions=%llu\n",
                format_usec(usec_per_call(cpu_before, cpu_after)).c_str(), policy.rates().size(),
                module_decisions > 0 ? "PACER.GCRA" : "EVALSHA", module_decisions);
  }
  if (s.print_admitted) {
    // What GCRA allows over the run on one key (first rate): burst + 1 at once, then one per T.
    const pacer::Rate& rate = policy.rates()[0];
    const double expected =
        std::floor(elapsed / (static_cast<double>(rate.emission_interval().count()) / 1e9)) +
        static_cast<double>(rate.burst() + 1);
    std::printf("admitted=%llu expected_one_key<=%.0f\n",
                static_cast<unsigned long long>(totals.allowed.load()), expected);
  }

  if (s.redis_benchmark && redis) {
    // The same script and arguments from redis-benchmark, 32 connections with 16 pipelined
    // each over the same keys: a shape that keeps Redis saturated, so its requests/s is the
    // ceiling of this script on this machine (measured right after the run above).
    std::string arguments;
    for (const std::string& a : pacer::redis::RedisStore::script_arguments(policy, s.cost))
      arguments += " " + a;
    const std::string key =
        s.keys > 1 ? fmt::format("{}:{{bench:load:k__rand_int__}}", s.key_prefix) : key_for(s, 0);
    const std::string random = s.keys > 1 ? fmt::format(" -r {}", s.keys) : "";
    const std::string decide =
        stat("redis_module_in_use") != 0
            ? fmt::format("PACER.GCRA {}", shell_quote(key))
            : fmt::format("EVALSHA {} 1 {}", pacer::redis::RedisStore::script_sha(),
                          shell_quote(key));
    const std::string command =
        fmt::format("redis-benchmark {} -c 32 -P 16{} -n {} -q {}{} 2>&1", redis_tool_target(url),
                    random, std::max<std::uint64_t>(done, 200'000), decide, arguments);
    const ScriptCpu before = read_script_cpu(url);
    double ceiling = 0;
    const std::string output = run_command(command);
    // "EVALSHA ...: 123456.78 requests per second" (after \r progress lines; PACER.GCRA alike)
    const auto per_second = output.rfind(" requests per second");
    const auto colon = output.rfind(": ", per_second);
    if (per_second != std::string::npos && colon != std::string::npos)
      ceiling = std::strtod(output.c_str() + colon + 2, nullptr);
    const ScriptCpu after = read_script_cpu(url);
    if (ceiling > 0) {
      std::printf(
          "redis_benchmark_c32_P16_per_s=%.0f ratio=%.3f redis_benchmark_usec_per_call=%s\n",
          ceiling, static_cast<double>(done) / elapsed / ceiling,
          format_usec(usec_per_call(before, after)).c_str());
    } else {
      std::printf("redis_benchmark: no result from: %s\n", command.c_str());
    }
  }
  return 0;
}

int run(int argc, char** argv) {
  Settings s;
  CLI::App cli{"pacer-bench: decisions/s and latency of a Pacer store"};
  cli.add_option("--store", s.store, "memory or redis");
  cli.add_option("--url", s.url, "Redis URL (redis://, rediss://, redis+cluster://)");
  cli.add_option("--concurrency", s.concurrency,
                 "in-flight checks (redis) or threads (memory); 1 = sequential")
      ->check(CLI::Range(1u, 65536u));
  cli.add_option("--seconds", s.seconds, "how long to run")->check(CLI::Range(0.1, 3600.0));
  cli.add_option("--requests", s.max_requests, "stop after this many checks (0 = no limit)");
  cli.add_option("--keys", s.keys, "distinct keys (1 = one hot key)")->check(CLI::PositiveNumber);
  cli.add_option("--rate", s.rates, "permits/period, e.g. 100/1s; repeat for a policy of several");
  cli.add_option("--burst", s.burst, "burst (of every rate)")->check(CLI::NonNegativeNumber);
  cli.add_option("--cost", s.cost, "cost of each check")->check(CLI::NonNegativeNumber);
  cli.add_option("--key-prefix", s.key_prefix, "prefix of the keys");
  cli.add_option("--io-threads", s.io_threads, "Redis I/O threads")->check(CLI::Range(1u, 64u));
  cli.add_flag("--print-admitted", s.print_admitted, "print admitted=N (for tests)");
  cli.add_flag("!--no-deny-cache", s.deny_cache, "turn the deny cache off");
  cli.add_flag("--redis-benchmark", s.redis_benchmark, "also print redis-benchmark's ceiling");
  cli.add_option("--script", s.script,
                 "auto (PACER.GCRA where pacer-redis-module.so is loaded), lua or module")
      ->check(CLI::IsMember({"auto", "lua", "module"}));
  cli.add_option("--send-rate", s.send_rate, "paced checks per second from one thread (redis)")
      ->check(CLI::Range(0.0, 1e6));
  if (auto status = pacer::apps::parse_command_line(cli, "pacer-bench", argc, argv)) return *status;
  try {
    return run(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pacer-bench: %s\n", e.what());
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  return pacer::apps::guarded_main("pacer-bench", run, argc, argv);
}
