// What pacerd's request handlers share (docs/DESIGN.md §8): the configuration in force as an
// immutable Runtime, each policy compiled into an http::Rule, per-policy counters, and the
// small helpers every handler answers with.
#pragma once

#include <array>
#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "api.h"
#include "config.h"
#include "pacer/beast/server.h"
#include "pacer/http/rule.h"
#include "pacer/limiter.h"
#include "pacer/metrics.h"
#include "pacer/policy_metrics.h"
#include "service.h"

namespace pacer::pacerd {

namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

// Per-policy counters (the library's PolicyMetrics); kept by name across reloads.
struct PolicyStats {
  PolicyMetrics metrics;
  // Shadow denials are logged at most once a second per policy.
  std::atomic<std::int64_t> next_shadow_log_ns{0};
  std::atomic<std::uint64_t> shadow_unlogged{0};

  // Counts one decision; a shadow policy's would-be denial is logged with its key.
  void record(const Decision& d, bool shadow, Nanos latency, std::string_view policy,
              std::string_view key);
};

struct Service::RuntimePolicy {
  PolicyConfig config;  // shadow includes server.shadow
  std::shared_ptr<PolicyStats> stats;
  // Identity, keys `<prefix>:{<policy>:<rates digest>:<identity>}` (new rates, new keys),
  // headers, shadow and the missing-identity answer: what /v1/auth decides by, and what
  // /v1/check and /v1/peek key and answer with.
  http::Rule rule;
};

struct Service::Runtime {
  Config config;
  std::uint64_t version = 0;
  std::chrono::system_clock::time_point loaded_at;
  Limiter limiter;
  std::map<std::string, RuntimePolicy, std::less<>> policies;
  ApiLimits limits;
  // [grpc]: the descriptors of Envoy's rate limit service (rls/rls_config.h), if configured.
  std::shared_ptr<const rls::RlsConfig> rls;

  const RuntimePolicy* find(std::string_view name) const {
    const auto it = policies.find(name);
    return it == policies.end() ? nullptr : &it->second;
  }
};

// The policy compiled for `config` (its identity parsed with the server's trusted proxies),
// counting into `stats`.
Service::RuntimePolicy compile_policy(const PolicyConfig& policy, const Config& config,
                                      std::shared_ptr<PolicyStats> stats);

beast::Response respond(bhttp::status status, unsigned version, std::string body,
                        std::string_view type = "application/json");
beast::Response error_response(bhttp::status status, unsigned version, std::string_view error,
                               std::string field, std::string message);

// Answers 500 (and logs) for an exception out of what answers a request.
void answer_internal_error(beast::Send& send, unsigned version, const char* what) noexcept;

// Runs `function`; answers 500 when it throws (an exception must never escape a store's
// completion).
template <typename Function>
void guarded(beast::Send& send, unsigned version, Function&& function) noexcept {
  try {
    function();
  } catch (const std::exception& e) {
    answer_internal_error(send, version, e.what());
  } catch (...) {
    answer_internal_error(send, version, "not a std::exception");
  }
}

}  // namespace pacer::pacerd
