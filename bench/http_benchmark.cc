// The HTTP layer's cost per request, without sockets: identity, key, decision, headers.
#include <benchmark/benchmark.h>

#include "pacer/http/http_limiter.h"

namespace {

using namespace pacer;

void BM_HttpLimiterCheck(benchmark::State& state) {
  MemoryStore store;
  Limiter limiter(store);
  http::HttpLimiter http(limiter, {.key_prefix = "default"});
  http.add_route(
      "GET", "/limited",
      {.policy = Policy("limited", {Rate(1'000'000'000, std::chrono::seconds(1), 1'000'000'000)})});
  http::SimpleRequest request;
  request.path_ = "/limited";
  request.peer_ = state.range(0) ? "127.0.0.1" : "203.0.113.9";  // trusted proxy or not
  request.headers_ = {{"Host", "127.0.0.1:8000"}, {"User-Agent", "wrk"}, {"Accept", "*/*"}};
  for (auto _ : state) {
    http.check(request, [](http::Verdict&& v) { benchmark::DoNotOptimize(v); });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HttpLimiterCheck)->ArgName("trusted_peer")->Arg(0)->Arg(1);

void BM_NoLimitsCheck(benchmark::State& state) {
  MemoryStore store;
  Limiter limiter(store);
  http::HttpLimiter http(limiter, {.key_prefix = "default"});
  http::SimpleRequest request;
  request.path_ = "/";
  for (auto _ : state) {
    http.check(request, [](http::Verdict&& v) { benchmark::DoNotOptimize(v); });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NoLimitsCheck);

}  // namespace

BENCHMARK_MAIN();
