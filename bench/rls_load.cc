// pacer-rls-load: an async grpc++ load client for Envoy's rate limit service
// (docs/API.md, "Envoy rate limit service (gRPC)"), used by bench/rls_bench.sh beside wrk on
// pacerd's /v1/check. It keeps --concurrency ShouldRateLimit calls in flight over --channels
// TCP connections, each completion starting the next call, for --seconds or --requests at most,
// and prints one line:
//   calls=N ok=N over_limit=N errors=N seconds=S calls_per_s=X p50_ms=X p99_ms=X
//
//   pacer-rls-load --target 127.0.0.1:8081 --domain bench --key k --values 1000000
//
// Each call asks one descriptor {key: value}, the value drawn at random from --values (a
// million by default, like bench/pacerd_check.lua's keys), with hits_addend 1. Calls that end
// in a gRPC error are counted as errors and do not stop the run.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "envoy/service/ratelimit/v3/rls.grpc.pb.h"

namespace {

namespace pb = envoy::service::ratelimit::v3;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string target = "127.0.0.1:8081";
  std::string domain = "bench";
  std::string key = "k";
  std::uint64_t values = 1'000'000;
  int channels = 4;
  int concurrency = 64;
  int threads = 1;
  double seconds = 5;
  std::uint64_t requests = 0;  // 0: no limit but the time
};

// One call in flight: its context, request and reply live until its completion is taken.
struct Call {
  grpc::ClientContext context;
  pb::RateLimitRequest request;
  pb::RateLimitResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::RateLimitResponse>> reader;
  Clock::time_point started;
};

struct Totals {
  std::uint64_t ok = 0;
  std::uint64_t over_limit = 0;
  std::uint64_t errors = 0;
  std::vector<double> latencies_ms;
};

// One thread: its own completion queue, its share of the channels and of the calls in flight.
class Worker {
 public:
  Worker(const Options& options, std::vector<std::unique_ptr<pb::RateLimitService::Stub>> stubs,
         int in_flight, std::uint64_t budget, Clock::time_point deadline, unsigned seed)
      : options_(options),
        stubs_(std::move(stubs)),
        in_flight_(in_flight),
        budget_(budget),
        deadline_(deadline),
        random_(seed),
        pick_(0, options.values - 1) {}

  Totals run() {
    for (int i = 0; i < in_flight_; ++i) start();
    void* tag = nullptr;
    bool ok = false;
    while (outstanding_ > 0 && queue_.Next(&tag, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      --outstanding_;
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - call->started).count();
      if (!ok || !call->status.ok()) {
        ++totals_.errors;
      } else {
        totals_.latencies_ms.push_back(ms);
        if (call->response.overall_code() == pb::RateLimitResponse::OVER_LIMIT) {
          ++totals_.over_limit;
        } else {
          ++totals_.ok;
        }
      }
      if (Clock::now() < deadline_) start();
    }
    queue_.Shutdown();
    while (queue_.Next(&tag, &ok)) {
    }
    return std::move(totals_);
  }

 private:
  void start() {
    if (budget_ == 0) return;
    --budget_;
    auto call = std::make_unique<Call>();
    call->request.set_domain(options_.domain);
    call->request.set_hits_addend(1);
    auto* entry = call->request.add_descriptors()->add_entries();
    entry->set_key(options_.key);
    entry->set_value("v" + std::to_string(pick_(random_)));
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    call->started = Clock::now();
    auto& stub = *stubs_[next_stub_++ % stubs_.size()];
    call->reader = stub.PrepareAsyncShouldRateLimit(&call->context, call->request, &queue_);
    call->reader->StartCall();
    Call* raw = call.release();
    raw->reader->Finish(&raw->response, &raw->status, raw);
    ++outstanding_;
  }

  const Options& options_;
  std::vector<std::unique_ptr<pb::RateLimitService::Stub>> stubs_;
  grpc::CompletionQueue queue_;
  int in_flight_;
  std::uint64_t budget_;
  Clock::time_point deadline_;
  std::mt19937_64 random_;
  std::uniform_int_distribution<std::uint64_t> pick_;
  std::size_t next_stub_ = 0;
  int outstanding_ = 0;
  Totals totals_;
};

// A channel of its own per connection: without a local subchannel pool, channels with equal
// arguments share one TCP connection.
std::shared_ptr<grpc::Channel> connect(const std::string& target) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments);
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"Async gRPC load on Envoy's rate limit service (ShouldRateLimit)"};
  app.add_option("--target", o.target, "host:port of the gRPC listener");
  app.add_option("--domain", o.domain, "the request's domain");
  app.add_option("--key", o.key, "the descriptor's key");
  app.add_option("--values", o.values, "distinct descriptor values, drawn at random")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  app.add_option("--channels", o.channels, "TCP connections")->check(CLI::Range(1, 1024));
  app.add_option("--concurrency", o.concurrency, "calls in flight")->check(CLI::Range(1, 65536));
  app.add_option("--threads", o.threads, "client threads")->check(CLI::Range(1, 64));
  app.add_option("--seconds", o.seconds, "how long to run")->check(CLI::Range(0.1, 3600.0));
  app.add_option("--requests", o.requests, "stop after this many calls (0: no limit)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.threads > o.channels || o.threads > o.concurrency) {
    std::fprintf(stderr,
                 "pacer-rls-load: --threads %d needs at least as many --channels (%d) "
                 "and --concurrency (%d)\n",
                 o.threads, o.channels, o.concurrency);
    return 2;
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < o.channels; ++i) {
    channels.push_back(connect(o.target));
    if (!channels.back()->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(5))) {
      std::fprintf(stderr, "pacer-rls-load: cannot connect to %s\n", o.target.c_str());
      return 1;
    }
  }

  const auto started = Clock::now();
  const auto deadline = started + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.seconds));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < o.threads; ++t) {
    std::vector<std::unique_ptr<pb::RateLimitService::Stub>> stubs;
    for (int c = t; c < o.channels; c += o.threads) {
      stubs.push_back(pb::RateLimitService::NewStub(channels[static_cast<std::size_t>(c)]));
    }
    const int in_flight = o.concurrency / o.threads + (t < o.concurrency % o.threads ? 1 : 0);
    const std::uint64_t budget =
        o.requests == 0 ? UINT64_MAX
                        : o.requests / static_cast<std::uint64_t>(o.threads) +
                              (static_cast<std::uint64_t>(t) <
                                       o.requests % static_cast<std::uint64_t>(o.threads)
                                   ? 1
                                   : 0);
    workers.push_back(std::make_unique<Worker>(o, std::move(stubs), in_flight, budget, deadline,
                                               static_cast<unsigned>(t + 1)));
  }
  std::vector<Totals> results(workers.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < workers.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = workers[t]->run(); });
  }
  for (auto& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();

  Totals all;
  for (auto& r : results) {
    all.ok += r.ok;
    all.over_limit += r.over_limit;
    all.errors += r.errors;
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  std::sort(all.latencies_ms.begin(), all.latencies_ms.end());
  const auto calls = all.ok + all.over_limit + all.errors;
  std::printf(
      "calls=%llu ok=%llu over_limit=%llu errors=%llu seconds=%.3f calls_per_s=%.0f "
      "p50_ms=%.3f p99_ms=%.3f\n",
      static_cast<unsigned long long>(calls), static_cast<unsigned long long>(all.ok),
      static_cast<unsigned long long>(all.over_limit), static_cast<unsigned long long>(all.errors),
      elapsed, static_cast<double>(calls) / elapsed, percentile(all.latencies_ms, 0.50),
      percentile(all.latencies_ms, 0.99));
  return all.errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pacer-rls-load: %s\n", e.what());
    return 1;
  }
}
