#include "runtime.h"

#include <fmt/format.h>

#include "log.h"
#include "pacer/http/identity.h"
#include "pacer/http/ip.h"
#include "pacer/text.h"

namespace pacer::pacerd {

void PolicyStats::record(const Decision& d, bool shadow, Nanos latency, std::string_view policy,
                         std::string_view key) {
  metrics.record(d, shadow, latency);
  if (d.allowed() || !shadow) return;
  const std::int64_t now = Clock::now().time_since_epoch().count();
  std::int64_t next = next_shadow_log_ns.load(std::memory_order_relaxed);
  if (now >= next && next_shadow_log_ns.compare_exchange_strong(next, now + 1'000'000'000)) {
    log::info("shadow_deny", {{"policy", policy},
                              {"key", printable(key)},
                              {"outcome", to_string(d.outcome)},
                              {"retry_after_ms", http::ceil_milliseconds(d.retry_after)},
                              {"unlogged_since_last", shadow_unlogged.exchange(0)}});
  } else {
    shadow_unlogged.fetch_add(1, std::memory_order_relaxed);
  }
}

Service::RuntimePolicy compile_policy(const PolicyConfig& policy, const Config& config,
                                      std::shared_ptr<PolicyStats> stats) {
  PolicyConfig p = policy;
  p.shadow = p.shadow || config.shadow;  // server.shadow: nothing is enforced
  const http::ClientIpOptions ip{
      .trusted_proxies = http::TrustedProxies::parse(config.trusted_proxies),
      .ipv6_prefix = config.ipv6_prefix};
  http::LimitRule spec{
      .policy = p.policy,
      .identity = http::Identity::parse(p.identity, ip),
      .scope = http::Scope::kApp,
      .body = http::BodyStyle::kFlat,
      .cost = {},
      .missing_identity = p.missing_identity,
      .shadow = p.shadow,
      // Every /v1/auth decision is counted; a shadow denial is logged with its key.
      .on_decision = [stats, shadow = p.shadow, name = p.policy.name()](const http::RuleEvent& e) {
        stats->record(e.decision, shadow, e.latency, name, shadow ? e.key : std::string_view());
      }};
  http::Rule rule(std::move(spec), {.key_prefix = config.key_prefix, .headers = config.headers},
                  rates_digest(p.policy));
  return Service::RuntimePolicy{
      .config = std::move(p), .stats = std::move(stats), .rule = std::move(rule)};
}

beast::Response respond(bhttp::status status, unsigned version, std::string body,
                        std::string_view type) {
  beast::Response res{status, version};
  res.set(bhttp::field::content_type, boost::beast::string_view(type.data(), type.size()));
  res.body() = std::move(body);
  return res;
}

beast::Response error_response(bhttp::status status, unsigned version, std::string_view error,
                               std::string field, std::string message) {
  return respond(status, version,
                 error_body(error, ApiError{std::move(field), std::move(message)}));
}

void answer_internal_error(beast::Send& send, unsigned version, const char* what) noexcept {
  try {
    log::error("internal_error", {{"error", what}});
    if (send) {
      send(respond(bhttp::status::internal_server_error, version,
                   R"({"error":"internal_error","field":"","message":"see the server log"})"));
    }
  } catch (...) {
  }
}

}  // namespace pacer::pacerd
