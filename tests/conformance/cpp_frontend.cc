// The C++ front end of the conformance suite (tests/conformance/test_conformance.py): the
// trace's policies behind pacer::beast::with_limits and an HttpLimiter, one route per policy
// ("/p/<name>"), on the in-process store or Redis. Explicit-key operations (check with a cost,
// peek, reset) go to the Limiter on "POST /_op" with the key the policy's rule gives the
// identity, as pacerd's /v1/check does.
//
//   conformance-cpp <trace.json> <memory | redis://...> <open | closed | local>
//
// Prints "port <n>" once listening on 127.0.0.1; stops on SIGTERM.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "pacer/beast/limit.h"
#include "pacer/beast/server.h"
#include "pacer/http/http_limiter.h"
#include "pacer/http/rule.h"
#include "pacer/limiter.h"
#include "pacer/memory_store.h"
#include "pacer/redis/redis_store.h"

namespace {

using nlohmann::json;
namespace http = pacer::http;
namespace beast = pacer::beast;
namespace bhttp = boost::beast::http;

http::LimitRule rule_of(const json& p, const http::ClientIpOptions& ip) {
  std::vector<pacer::Rate> rates;
  for (const json& r : p.at("rates"))
    rates.push_back(pacer::Rate::parse(r.at("limit").get<std::string>(), r.value("burst", 0)));
  std::vector<std::string> identity;
  if (p.at("identity").is_array()) {
    identity = p.at("identity").get<std::vector<std::string>>();
  } else {
    identity.push_back(p.at("identity").get<std::string>());
  }
  return {.policy = pacer::Policy(p.at("name").get<std::string>(), rates),
          .identity = http::Identity::parse(identity, ip),
          .scope = http::Scope::kApp,
          .missing_identity = http::parse_missing_identity(p.value("missing_identity", "refuse")),
          .shadow = p.value("shadow", false)};
}

json decision_json(const pacer::Decision& d) {
  return {{"allowed", d.allowed()},
          {"outcome", pacer::to_string(d.outcome)},
          {"limit", d.limit},
          {"remaining", d.remaining},
          {"retry_after_ms", http::ceil_milliseconds(d.retry_after)}};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: conformance-cpp <trace.json> <memory|redis://...> <open|closed|local>\n";
    return 2;
  }
  std::ifstream file(argv[1]);
  const json trace = json::parse(file);
  const std::string store_url = argv[2];
  std::unique_ptr<pacer::Store> store;
  if (store_url == "memory") {
    store = std::make_unique<pacer::MemoryStore>();
  } else {
    store = std::make_unique<pacer::redis::RedisStore>(pacer::redis::RedisStoreOptions{
        .url = store_url, .command_timeout = std::chrono::milliseconds(200)});
  }
  pacer::Limiter limiter(*store, {.fail_mode = pacer::parse_fail_mode(argv[3])});
  const http::ClientIpOptions ip{
      .trusted_proxies = http::TrustedProxies::parse(trace.value("trusted_proxies", "loopback"))};
  const http::RuleContext context{.key_prefix = "cpp"};
  http::HttpLimiter limits(limiter, {.key_prefix = context.key_prefix});
  std::map<std::string, http::Rule, std::less<>> rules;  // for the explicit-key operations
  for (const json& p : trace.at("policies")) {
    http::LimitRule spec = rule_of(p, ip);
    const std::string name = spec.policy.name();
    rules.emplace(name, http::Rule(spec, context));
    limits.add_route("", "/p/" + name, std::move(spec));
  }

  auto ops = [&](beast::Request&& request, const beast::ClientEndpoint&, beast::Send send) {
    const unsigned version = request.version();
    beast::Response res{bhttp::status::ok, version};
    res.set(bhttp::field::content_type, "application/json");
    if (request.target() != "/_op") {
      res.body() = R"({"ok":true})";
      return send(std::move(res));
    }
    const json op = json::parse(request.body());
    const http::Rule& rule = rules.at(op.at("policy").get<std::string>());
    const std::string key = rule.key(op.at("identity").get<std::string>());
    const std::string what = op.at("op");
    if (what == "reset") {
      res.body() = json{{"reset", !limiter.reset(rule.policy(), key)}}.dump();
      return send(std::move(res));
    }
    const std::int64_t cost = op.value("cost", 1);
    // Answered on this worker thread: the asynchronous forms, never a blocking wait on an I/O
    // thread (pacer/store.h rule 4).
    auto answer = [&rule, version, send = std::move(send)](const pacer::Decision& d) mutable {
      beast::Response out{bhttp::status::ok, version};
      out.set(bhttp::field::content_type, "application/json");
      const pacer::Decision told = rule.told(d);
      out.body() = decision_json(told).dump();
      if (d.outcome != pacer::Outcome::kUnavailable) {
        http::HeaderList headers;
        rule.headers(d, headers);
        beast::add_headers(headers, out);
      }
      send(std::move(out));
    };
    if (what == "peek") return limiter.peek(rule.policy(), key, cost, std::move(answer));
    limiter.check(rule.policy(), key, cost, std::move(answer));
  };

  beast::Server server({.port = 0, .threads = 2, .handle_signals = true},
                       beast::with_limits(limits, ops));
  std::printf("port %u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  server.start();
  server.wait();
  store->shutdown();
  return 0;
}
