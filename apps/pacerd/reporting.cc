// pacerd's reports: GET /metrics (Prometheus text) and GET /v1/config, GET /v1/policies
// (docs/API.md).
#include <fmt/format.h>

#include <array>
#include <ctime>
#include <nlohmann/json.hpp>

#include "pacer/prometheus.h"
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
  PrometheusText out("pacerd");
  auto n = [](std::uint64_t v) { return static_cast<double>(v); };
  std::vector<std::pair<std::string_view, PolicyMetrics::Snapshot>> policies;
  for (const auto& [name, p] : runtime.policies)
    policies.emplace_back(name, p.stats->metrics.snapshot());
  PolicyMetrics::write(out, policies);
  std::uint64_t ok = 0, failed = 0;
  bool last_ok = true;
  {
    std::lock_guard lock(mutex_);
    ok = reloads_ok_;
    failed = reloads_failed_;
    last_ok = last_reload_error_.empty();
  }
  out.gauge("config_version", "Version of the configuration in force (1 at start).",
            n(runtime.version));
  out.counter("config_reloads_total", "Reloads by result.", n(ok), {{"result", "ok"}});
  out.counter("config_reloads_total", "Reloads by result.", n(failed), {{"result", "error"}});
  out.gauge("config_last_reload_ok", "0 when the last reload was refused.", last_ok ? 1 : 0);
  out.add(*store_);  // store_connected and the store's own numbers (redis_round_trips_total, ...)
  out.gauge("http_requests_in_flight",
            "Requests received and not yet answered, both listeners (this one included).",
            static_cast<double>(requests_in_flight_->load(std::memory_order_relaxed)));
  if (main_server_ != nullptr) {
    const beast::ServerStats st = main_server_->stats();
    out.gauge("http_connections_open", "Connections open now on the main listener.",
              n(st.open_connections));
    out.counter("http_connections_shed_total", "Connections closed at the cap.", n(st.shed));
    out.counter("http_connections_refused_total", "Connections refused at the cap.", n(st.refused));
  }
  return respond(bhttp::status::ok, version, out.take(), PrometheusText::kContentType);
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
  json body = {
      {"version", runtime.version},
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
        {"connected", store_->connected()},
        {"tls",
         {{"ca_file", c.tls.ca_file.empty() ? json() : json(c.tls.ca_file)},
          {"cert_file", c.tls.cert_file.empty() ? json() : json(c.tls.cert_file)},
          {"key_file", c.tls.key_file.empty() ? json() : json(c.tls.key_file)},
          {"server_name", c.tls.server_name.empty() ? json() : json(c.tls.server_name)}}}}},
      {"auth",
       {{"deny_status", c.auth.deny_status},
        {"unavailable_status", c.auth.unavailable_status},
        {"deny_body", c.auth.deny_body ? json(*c.auth.deny_body) : json()},
        {"deny_content_type", c.auth.deny_content_type}}},
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
