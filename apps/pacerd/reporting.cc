// pacerd's reports: GET /metrics (Prometheus text) and GET /v1/config, GET /v1/policies
// (docs/API.md).
#include <fmt/format.h>

#include <array>
#include <ctime>
#include <nlohmann/json.hpp>

#include "pacer/redis/redis_store.h"
#include "runtime.h"

namespace pacer::pacerd {

using nlohmann::json;

namespace {

std::string iso_time(std::chrono::system_clock::time_point t) {
  if (t == std::chrono::system_clock::time_point{}) return "";
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text.data();
}

}  // namespace

json policy_json(const Service::RuntimePolicy& p) {
  json rates = json::array();
  for (const Rate& r : p.config.policy.rates()) {
    rates.push_back({{"limit", fmt::format("{}/{}", r.permits(), format_duration(r.period()))},
                     {"burst", r.burst()},
                     {"emission_interval_ns", r.emission_interval().count()}});
  }
  return {{"name", p.config.policy.name()},
          {"rates", rates},
          {"identity", p.config.identity},
          {"shadow", p.config.shadow},
          {"key_scope", rates_digest(p.config.policy)}};
}

beast::Response Service::metrics(const Runtime& runtime, unsigned version) const {
  std::string text;
  auto out = std::back_inserter(text);
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(out, "# HELP pacerd_{0} {2}\n# TYPE pacerd_{0} {1}\n", name, type, help);
  };
  family("decisions_total", "counter",
         "Decisions by policy and result (shadow_denied: denied by a shadow policy, answered "
         "allowed).");
  for (const auto& [name, p] : runtime.policies) {
    const PolicyStats& s = *p.stats;
    fmt::format_to(out, "pacerd_decisions_total{{policy=\"{}\",result=\"allowed\"}} {}\n", name,
                   s.allowed.load());
    fmt::format_to(out, "pacerd_decisions_total{{policy=\"{}\",result=\"denied\"}} {}\n", name,
                   s.denied.load());
    fmt::format_to(out, "pacerd_decisions_total{{policy=\"{}\",result=\"shadow_denied\"}} {}\n",
                   name, s.shadow_denied.load());
  }
  family("store_errors_total", "counter",
         "Decisions the store could not make (answered by the fail mode).");
  for (const auto& [name, p] : runtime.policies) {
    fmt::format_to(out, "pacerd_store_errors_total{{policy=\"{}\"}} {}\n", name,
                   p.stats->store_errors.load());
  }
  family("decision_duration_seconds", "histogram",
         "Time from asking the limiter to its answer, per policy.");
  for (const auto& [name, p] : runtime.policies) {
    std::uint64_t cumulative = 0;
    const auto& bounds = MetricsSnapshot::kBucketBounds;
    for (std::size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += p.stats->buckets[i].load();
      if (i < bounds.size()) {
        fmt::format_to(out,
                       "pacerd_decision_duration_seconds_bucket{{policy=\"{}\",le=\"{}\"}} {}\n",
                       name, static_cast<double>(bounds[i]) / 1e9, cumulative);
      } else {
        fmt::format_to(out,
                       "pacerd_decision_duration_seconds_bucket{{policy=\"{}\",le=\"+Inf\"}} {}\n",
                       name, cumulative);
      }
    }
    fmt::format_to(out, "pacerd_decision_duration_seconds_sum{{policy=\"{}\"}} {}\n", name,
                   static_cast<double>(p.stats->latency_sum_ns.load()) / 1e9);
    fmt::format_to(out, "pacerd_decision_duration_seconds_count{{policy=\"{}\"}} {}\n", name,
                   cumulative);
  }
  std::uint64_t ok = 0, failed = 0;
  bool last_ok = true;
  {
    std::lock_guard lock(mutex_);
    ok = reloads_ok_;
    failed = reloads_failed_;
    last_ok = last_reload_error_.empty();
  }
  family("config_version", "gauge", "Version of the configuration in force (1 at start).");
  fmt::format_to(out, "pacerd_config_version {}\n", runtime.version);
  family("config_reloads_total", "counter", "Reloads by result.");
  fmt::format_to(out, "pacerd_config_reloads_total{{result=\"ok\"}} {}\n", ok);
  fmt::format_to(out, "pacerd_config_reloads_total{{result=\"error\"}} {}\n", failed);
  family("config_last_reload_ok", "gauge", "0 when the last reload was refused.");
  fmt::format_to(out, "pacerd_config_last_reload_ok {}\n", last_ok ? 1 : 0);
  family("store_connected", "gauge", "Whether the store is reachable.");
  fmt::format_to(out, "pacerd_store_connected {}\n", store_->connected() ? 1 : 0);
  if (const auto* redis = dynamic_cast<const redis::RedisStore*>(store_.get())) {
    const redis::RedisStoreStats st = redis->stats();
    family("redis_round_trips_total", "counter", "Scripts and commands sent to Redis.");
    fmt::format_to(out, "pacerd_redis_round_trips_total {}\n", st.round_trips);
    family("redis_errors_total", "counter", "Failed Redis round trips.");
    fmt::format_to(out, "pacerd_redis_errors_total {}\n", st.errors);
    family("redis_fast_failures_total", "counter", "Checks refused while the circuit was open.");
    fmt::format_to(out, "pacerd_redis_fast_failures_total {}\n", st.fast_failures);
    family("redis_deny_cache_hits_total", "counter", "Denials answered without a round trip.");
    fmt::format_to(out, "pacerd_redis_deny_cache_hits_total {}\n", st.deny_cache_hits);
    family("redis_module_decisions_total", "counter",
           "Checks sent as PACER.GCRA (pacer-redis-module.so); the rest ran the Lua script.");
    fmt::format_to(out, "pacerd_redis_module_decisions_total {}\n", st.module_decisions);
    family("redis_module_fallbacks_total", "counter",
           "PACER.GCRA answered unknown command: decided by the Lua script instead.");
    fmt::format_to(out, "pacerd_redis_module_fallbacks_total {}\n", st.module_fallbacks);
    family("redis_module_in_use", "gauge", "1 while new checks go to PACER.GCRA.");
    fmt::format_to(out, "pacerd_redis_module_in_use {}\n", st.module_in_use ? 1 : 0);
  }
  family("http_requests_in_flight", "gauge",
         "Requests received and not yet answered, both listeners (this one included).");
  fmt::format_to(out, "pacerd_http_requests_in_flight {}\n",
                 requests_in_flight_->load(std::memory_order_relaxed));
  if (main_server_ != nullptr) {
    const beast::ServerStats st = main_server_->stats();
    family("http_connections_open", "gauge", "Connections open now on the main listener.");
    fmt::format_to(out, "pacerd_http_connections_open {}\n", st.open_connections);
    family("http_connections_shed_total", "counter", "Connections closed at the cap.");
    fmt::format_to(out, "pacerd_http_connections_shed_total {}\n", st.shed);
    family("http_connections_refused_total", "counter", "Connections refused at the cap.");
    fmt::format_to(out, "pacerd_http_connections_refused_total {}\n", st.refused);
  }
  return respond(bhttp::status::ok, version, std::move(text),
                 "text/plain; version=0.0.4; charset=utf-8");
}

beast::Response Service::policies_json(const Runtime& runtime, unsigned version) const {
  json list = json::array();
  for (const auto& p : runtime.config.policies)
    list.push_back(policy_json(*runtime.find(p.policy.name())));
  return respond(bhttp::status::ok, version,
                 json{{"version", runtime.version}, {"policies", list}}.dump());
}

beast::Response Service::config_json(const Runtime& runtime, unsigned version) const {
  const Config& c = runtime.config;
  json policies = json::array();
  for (const auto& p : c.policies) policies.push_back(policy_json(*runtime.find(p.policy.name())));
  json body = {{"version", runtime.version},
               {"file", c.file},
               {"loaded_at", iso_time(runtime.loaded_at)},
               {"server",
                {{"listen", c.listen.to_string()},
                 {"admin_listen", c.admin_listen ? json(c.admin_listen->to_string()) : json()},
                 {"threads", c.threads},
                 {"trusted_proxies", http::TrustedProxies::parse(c.trusted_proxies).to_string()},
                 {"ipv6_prefix", c.ipv6_prefix}}},
               {"store",
                {{"url", display_store_url(c.store_url)},
                 {"fail_mode", to_string(c.fail_mode)},
                 {"timeout_ms", c.timeout.count()},
                 {"key_prefix", c.key_prefix},
                 {"connected", store_->connected()}}},
               {"api",
                {{"max_batch", c.max_batch},
                 {"max_key_bytes", c.max_key_bytes},
                 {"batch_in_flight", c.batch_in_flight},
                 {"batch_in_flight_per_request", c.batch_in_flight_per_request}}},
               {"policies", policies}};
  {
    std::lock_guard lock(mutex_);
    body["last_reload_error"] = last_reload_error_.empty() ? json() : json(last_reload_error_);
    body["last_reload_attempt"] = last_reload_attempt_ == std::chrono::system_clock::time_point{}
                                      ? json()
                                      : json(iso_time(last_reload_attempt_));
    body["reloads"] = {{"ok", reloads_ok_}, {"error", reloads_failed_}};
  }
  return respond(bhttp::status::ok, version,
                 body.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace pacer::pacerd
