// libFuzzer target for the HTTP layer's handling of whole requests: identity selection (client IP
// behind trusted proxies, API keys, headers, user/org, compositions), exclusions, route
// matching, scopes, storage keys, headers and 429/503 bodies, on a fresh in-process store per
// input whose calls fail when the input says so (every fail mode).
// Each input is a few rate settings and then up to 8 requests, so limits are reached and
// denials (429 flat and nested, "cost exceeds capacity") are exercised, not only passes.
//
// Beyond "no crash, no exception, no UB" it checks what an adapter relies on:
//  - the verdict handler runs exactly once, before check() returns (MemoryStore is inline);
//  - status is 0, 401, 429 or 503, with a JSON body exactly when it is not 0;
//  - every header name and value is printable ASCII (no CR, LF or other control bytes), and
//    the numeric RateLimit fields are decimal numbers;
//  - storage keys are `<prefix>:{<policy>:<scope>:<identity>}` with exactly one '{' and one
//    '}' (the hash tag), no control bytes, and an identity within the docs/DESIGN.md §4 bound.
//
// Built by scripts/fuzz.sh from the sources of core, store, limiter and http.
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/http/http_limiter.h"
#include "pacer/http/identity.h"
#include "pacer/http/ip.h"
#include "pacer/http/request_view.h"
#include "pacer/limiter.h"
#include "pacer/memory_store.h"
#include "pacer/rate.h"

namespace {

using namespace std::chrono_literals;
using pacer::Limiter;
using pacer::MemoryStore;
using pacer::Policy;
using pacer::Rate;
using pacer::http::BodyStyle;
using pacer::http::ClientIpOptions;
using pacer::http::HttpLimiter;
using pacer::http::Identity;
using pacer::http::LimitRule;
using pacer::http::MissingIdentity;
using pacer::http::Scope;
using pacer::http::SimpleRequest;
using pacer::http::TrustedProxies;
using pacer::http::Verdict;

constexpr std::string_view kPrefix = "fz";
// docs/DESIGN.md §4: a value is kept only up to 128 bytes; the longest tag any selector here adds
// is "user:" (5 bytes). Hashes ("h:" + 32 hex digits) and addresses are shorter.
constexpr std::size_t kMaxIdentityBytes = 128 + 5;

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "http_fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

bool printable_ascii(std::string_view text) {
  for (unsigned char c : text)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

bool decimal(std::string_view text, bool allow_minus) {
  if (allow_minus && !text.empty() && text.front() == '-') text.remove_prefix(1);
  if (text.empty()) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

ClientIpOptions proxied_ip_options() {
  ClientIpOptions o;
  o.trusted_proxies = TrustedProxies::parse("loopback, 10.0.0.0/8, 2001:db8::/32");
  o.ipv6_prefix = 64;
  return o;
}

struct RouteSpec {
  const char* method;
  const char* route;
};

// Paths the fuzzer picks most of the time, so routes and exclusions match; the rest are random.
constexpr std::string_view kPaths[] = {"/items/{id}", "/login",        "/orders", "/me",
                                       "/org",        "/x{y}:z",       "/health", "/static/a.css",
                                       "/",           "/api/v1/search"};
constexpr std::string_view kMethods[] = {"GET", "POST", "PUT", "OPTIONS", "HEAD", "get", "DELETE"};
constexpr std::string_view kPeers[] = {"127.0.0.1",   "10.1.2.3",        "203.0.113.7",  "::1",
                                       "2001:db8::5", "::ffff:10.0.0.1", "fe80::1%eth0", ""};
constexpr std::string_view kHeaderNames[] = {
    "X-Forwarded-For", "Forwarded",     "X-Real-IP", "CF-Connecting-IP", "X-API-Key",
    "Authorization",   "authorization", "X-Tenant",  "x-forwarded-for",  "X-Cost"};

Rate fuzzed_rate(FuzzedDataProvider& in) {
  static constexpr std::string_view kPeriods[] = {"1ns", "1us", "500ms", "1s",
                                                  "1m",  "1h",  "1d",    "36500d"};
  const auto permits = in.ConsumeIntegralInRange<std::int64_t>(1, std::int64_t{1} << 40);
  const auto burst = in.ConsumeBool() ? in.ConsumeIntegralInRange<std::int64_t>(0, 3)
                                      : in.ConsumeIntegral<std::int64_t>();
  return Rate(permits, pacer::parse_duration(in.PickValueInArray(kPeriods)), burst);
}

std::string fuzzed_text(FuzzedDataProvider& in, std::size_t max) {
  return in.ConsumeRandomLengthString(max);
}

SimpleRequest fuzzed_request(FuzzedDataProvider& in) {
  SimpleRequest request;
  request.method_ =
      in.ConsumeBool() ? std::string(in.PickValueInArray(kMethods)) : fuzzed_text(in, 16);
  request.path_ = in.ConsumeIntegralInRange(0, 3) != 0 ? std::string(in.PickValueInArray(kPaths))
                                                       : fuzzed_text(in, 300);
  if (in.ConsumeBool()) request.route_ = std::string(in.PickValueInArray(kPaths));
  request.query_ = fuzzed_text(in, 64);
  request.peer_ = in.ConsumeBool() ? std::string(in.PickValueInArray(kPeers)) : fuzzed_text(in, 48);
  const int headers = in.ConsumeIntegralInRange(0, 8);
  for (int i = 0; i < headers; ++i) {
    std::string name = in.ConsumeIntegralInRange(0, 7) != 0
                           ? std::string(in.PickValueInArray(kHeaderNames))
                           : fuzzed_text(in, 24);
    request.headers_.emplace_back(std::move(name), fuzzed_text(in, 300));
  }
  if (in.ConsumeBool()) request.attributes_["user"] = fuzzed_text(in, 200);
  if (in.ConsumeBool()) request.attributes_["org"] = fuzzed_text(in, 200);
  return request;
}

void check_key(const HttpLimiter& http, const LimitRule& rule, const SimpleRequest& request) {
  const std::string key = http.storage_key(rule, request);
  if (key.empty()) {
    // Only a request without the identity, under a rule that refuses such requests (401).
    check(!rule.identity(request) && rule.missing_identity == MissingIdentity::kRefuse,
          "no storage key only for a missing identity the rule refuses");
    return;
  }
  check(key.starts_with(std::string(kPrefix) + ":{" + rule.policy.name() + ":"),
        "storage key starts with <prefix>:{<policy>:");
  check(key.back() == '}', "storage key ends with the hash tag's '}'");
  check(key.find('{') == key.rfind('{') && key.find('}') == key.rfind('}'),
        "storage key has exactly one '{' and one '}'");
  for (unsigned char c : key) check(c >= 0x20 && c != 0x7f, "no control bytes in a storage key");
  // The identity is the last field; the scope before it may itself contain ':' (a route).
  const std::string identity = rule.identity(request).value_or("anonymous");
  check(key.ends_with(":" + identity + "}"), "storage key ends with :<identity>}");
  check(identity.size() <= kMaxIdentityBytes, "identity within the docs/DESIGN.md §4 bound");
  const std::size_t scope_begin = kPrefix.size() + 2 + rule.policy.name().size() + 1;
  const std::size_t scope_size = key.size() - 1 - identity.size() - 1 - scope_begin;
  check(scope_size <= 128, "scope within the docs/DESIGN.md §4 bound");
}

void check_verdict(const Verdict& verdict) {
  check(verdict.status == 0 || verdict.status == 401 || verdict.status == 429 ||
            verdict.status == 503,
        "status is 0, 401, 429 or 503");
  check(verdict.refused() == (verdict.status != 0), "a refusal, and only a refusal, has a status");
  for (const auto& [name, value] : verdict.headers) {
    check(!name.empty() && printable_ascii(name), "header name is printable ASCII");
    check(printable_ascii(value), "header value is printable ASCII");
    if (name == "RateLimit-Limit" || name == "RateLimit-Reset" || name == "Retry-After" ||
        name == "X-RateLimit-Reset")
      check(decimal(value, false), "numeric header is a non-negative decimal");
    if (name == "RateLimit-Remaining") check(decimal(value, true), "remaining is a decimal");
  }
  if (verdict.status == 0) {
    check(verdict.body.empty(), "no body when the request passes");
    return;
  }
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(verdict.body);
  } catch (const nlohmann::json::exception&) {
    check(false, "429/503 body is valid JSON");
  }
  check(body.is_object() && body.contains("detail"), "body is an object with \"detail\"");
  if (verdict.status == 401)
    check(body["detail"] == "identity_missing", "401 says the identity is missing");
  if (verdict.status == 429) {
    const nlohmann::json& inner = body["detail"].is_object() ? body["detail"] : body;
    check(inner["detail"].is_string(), "429 detail is a string");
    const nlohmann::json& retry = inner["retry_after_ms"];
    check(retry.is_null() || (retry.is_number_integer() && retry.get<std::int64_t>() >= 0),
          "retry_after_ms is null or a non-negative integer");
  }
}

// An inline store that fails the calls whose bit is set in `failures` (call i: bit i % 64).
class FlakyStore final : public pacer::Store {
 public:
  FlakyStore(MemoryStore& backing, std::uint64_t failures)
      : backing_(backing), failures_(failures) {}
  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             pacer::CheckHandler done) override {
    if ((failures_ >> (calls_++ % 64)) & 1) {
      done({make_error_code(pacer::Errc::kTimeout), {}, key});
      return;
    }
    backing_.check(policy, key, cost, std::move(done));
  }
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            pacer::CheckHandler done) override {
    if ((failures_ >> (calls_++ % 64)) & 1) {
      done({make_error_code(pacer::Errc::kTimeout), {}, key});
      return;
    }
    backing_.peek(policy, key, cost, std::move(done));
  }
  void reset(const Policy& policy, std::string_view key, pacer::ResetHandler done) override {
    backing_.reset(policy, key, std::move(done));
  }
  bool completes_inline() const override { return true; }

 private:
  MemoryStore& backing_;
  std::uint64_t failures_;
  unsigned calls_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  std::int64_t now = 1'000'000'000'000 + in.ConsumeIntegralInRange<std::int64_t>(0, 1'000'000'000);
  pacer::MemoryStoreOptions store_options;
  store_options.max_keys = 1024;
  store_options.shards = 1;
  store_options.clock = [&now] { return now; };
  MemoryStore memory(store_options);
  // Some calls fail as a remote store's would, so 503s (closed) and the other fail modes are
  // reached too.
  FlakyStore store(memory, in.ConsumeIntegral<std::uint64_t>());
  pacer::LimiterOptions limiter_options;
  limiter_options.fail_mode = in.PickValueInArray(
      {pacer::FailMode::kClosed, pacer::FailMode::kOpen, pacer::FailMode::kLocal});
  Limiter limiter(store, limiter_options);

  pacer::http::HttpLimiterOptions http_options;
  http_options.key_prefix = std::string(kPrefix);
  http_options.headers.x_ratelimit_reset = in.ConsumeBool();
  http_options.headers.x_ratelimit_policy = in.ConsumeBool();
  http_options.headers.ietf_draft = in.ConsumeBool();
  HttpLimiter http(limiter, http_options);

  // Rates from the input: invalid ones are configuration errors, not findings.
  std::vector<Rate> global_rates;
  try {
    const int count = in.ConsumeIntegralInRange(1, 3);
    for (int i = 0; i < count; ++i) global_rates.push_back(fuzzed_rate(in));
  } catch (const std::invalid_argument&) {
    return 0;
  }

  std::vector<LimitRule> rules;  // every rule, for storage key checks
  pacer::http::MiddlewareOptions middleware{
      .rule = {.policy = Policy("global", global_rates),
               .identity = Identity::client_ip(proxied_ip_options()),
               .scope = Scope::kApp},
      .exclude_paths = {"/health", "/static/*"}};
  rules.push_back(middleware.rule);
  http.set_middleware(middleware);

  auto route = [&](const char* method, const char* path, LimitRule rule) {
    rules.push_back(rule);
    http.add_route(method, path, std::move(rule));
  };
  const auto small = [](const char* name, const char* rate, std::int64_t burst) {
    return Policy(name, {Rate::parse(rate, burst)});
  };
  route("GET", "/items/{id}",
        {.policy = small("items", "2/1m", 1),
         .identity = Identity::first_of({Identity::api_key(), Identity::client_ip()}),
         .scope = Scope::kMethodRoute,
         .body = BodyStyle::kNested});
  route("", "/login",
        {.policy = small("login", "3/1s", 2),
         .identity = Identity::header("X-Tenant"),
         .scope = Scope::kRoute,
         .cost = [](const pacer::http::RequestView& r) -> std::int64_t {
           // Weighted: 0 (a peek) to 9, where 4 and more exceed the capacity of 3.
           const auto cost = r.header("X-Cost");
           return cost && !cost->empty() ? static_cast<unsigned char>(cost->front()) % 10 : 1;
         }});
  route("POST", "/orders",
        {.policy = Policy("orders", {Rate::parse("3/1s", 1), Rate::parse("10/1m")}),
         .identity = Identity::all_of({Identity::org(), Identity::user()}),
         .scope = Scope::kMethodRoute});
  route("", "/me",
        {.policy = small("me", "1/1h", 0),
         .identity = Identity::first_of({Identity::user(), Identity::header("X-API-Key", true)}),
         .body = BodyStyle::kNested});
  route("", "/org",
        {.policy = small("org", "5/1m", 0),
         .identity = Identity::org(),
         .missing_identity = MissingIdentity::kShared});
  route("PUT", "/x{y}:z",
        {.policy = small("odd.route-1", "1/1s", 0),
         .identity =
             Identity::custom("q",
                              [](const pacer::http::RequestView& r) -> std::optional<std::string> {
                                return std::string(r.query());
                              }),
         .scope = Scope::kMethodRoute});
  route("", "/api/v1/search",
        {.policy = small("search", "1/1d", 1),
         .identity = Identity::all_of(
             {Identity::client_ip(proxied_ip_options()),
              Identity::first_of({Identity::api_key(), Identity::header("Authorization", true)})}),
         .scope = Scope::kApp});

  const int requests = in.ConsumeIntegralInRange(1, 8);
  for (int i = 0; i < requests && in.remaining_bytes() > 0; ++i) {
    const SimpleRequest request = fuzzed_request(in);
    now += in.ConsumeIntegralInRange<std::int64_t>(0, 2'000'000'000);
    int calls = 0;
    Verdict verdict;
    http.check(request, [&](Verdict&& v) {
      ++calls;
      verdict = std::move(v);
    });
    check(calls == 1, "the verdict handler runs exactly once, inline");
    check_verdict(verdict);
    for (const LimitRule& rule : rules) check_key(http, rule, request);
  }
  return 0;
}
