// The HTTP layer's cost per request, without sockets: identity, key, decision, headers.
#include <benchmark/benchmark.h>

#include "pacer/http/http_limiter.h"

namespace {

using namespace pacer;

http::SimpleRequest wrk_request(bool trusted_peer) {
  http::SimpleRequest request;
  request.path_ = "/limited";
  request.peer_ = trusted_peer ? "127.0.0.1" : "203.0.113.9";  // a trusted proxy or not
  request.headers_ = {{"Host", "127.0.0.1:8000"}, {"User-Agent", "wrk"}, {"Accept", "*/*"}};
  return request;
}

void run_checks(benchmark::State& state, const http::RequestView& request) {
  MemoryStore store;
  Limiter limiter(store);
  http::HttpLimiter http(limiter, {.key_prefix = "default"});
  http.add_route(
      "GET", "/limited",
      {.policy = Policy("limited", {Rate(1'000'000'000, std::chrono::seconds(1), 1'000'000'000)})});
  for (auto _ : state) {
    http.check(request, [](http::Verdict&& v) { benchmark::DoNotOptimize(v); });
  }
  state.SetItemsProcessed(state.iterations());
}

// The peer address as text, parsed for every request (SimpleRequest, the Python package).
void BM_HttpLimiterCheck(benchmark::State& state) {
  run_checks(state, wrk_request(state.range(0) != 0));
}
BENCHMARK(BM_HttpLimiterCheck)->ArgName("trusted_peer")->Arg(0)->Arg(1);

// The peer address handed over parsed, as pacer::beast does (RequestView::peer_ip).
class ParsedPeerRequest final : public http::RequestView {
 public:
  explicit ParsedPeerRequest(http::SimpleRequest request)
      : request_(std::move(request)), peer_(*http::IpAddress::parse(request_.peer_)) {}
  std::string_view method() const override { return request_.method(); }
  std::string_view path() const override { return request_.path(); }
  std::string_view query() const override { return request_.query(); }
  std::string_view peer_address() const override { return request_.peer_address(); }
  const http::IpAddress* peer_ip() const override { return &peer_; }
  std::optional<std::string_view> header(std::string_view name) const override {
    return request_.header(name);
  }
  std::string header_list(std::string_view name) const override {
    return request_.header_list(name);
  }
  std::size_t header_count(std::string_view name) const override {
    return request_.header_count(name);
  }
  std::optional<std::string_view> attribute(std::string_view name) const override {
    return request_.attribute(name);
  }

 private:
  http::SimpleRequest request_;
  http::IpAddress peer_;
};

void BM_HttpLimiterCheckParsedPeer(benchmark::State& state) {
  run_checks(state, ParsedPeerRequest(wrk_request(state.range(0) != 0)));
}
BENCHMARK(BM_HttpLimiterCheckParsedPeer)->ArgName("trusted_peer")->Arg(0)->Arg(1);

// Behind a trusted proxy (loopback) that appends the client to X-Forwarded-For, as nginx's
// $proxy_add_x_forwarded_for does: arg 1 is a direct client (one hop), arg 2 a client that sent
// its own X-Forwarded-For, which the walk passes over to the address the proxy saw.
void BM_HttpLimiterCheckBehindProxy(benchmark::State& state) {
  http::SimpleRequest request = wrk_request(/*trusted_peer=*/true);
  request.headers_.emplace_back(
      "X-Forwarded-For", state.range(0) == 1 ? "198.51.100.23" : "203.0.113.9, 198.51.100.23");
  run_checks(state, request);
}
BENCHMARK(BM_HttpLimiterCheckBehindProxy)->ArgName("hops")->Arg(1)->Arg(2);

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
