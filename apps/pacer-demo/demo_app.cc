#include "demo_app.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <stdexcept>

#include "pacer/detail/text.h"

namespace pacer::demo {
namespace {

using nlohmann::json;
namespace bhttp = boost::beast::http;

std::int64_t parse_int(const char* name, std::string_view text, std::int64_t min,
                       std::int64_t max) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
      value > max)
    throw std::invalid_argument(std::string("invalid ") + name + " '" + detail::printable(text) +
                                "': expected a whole number from " + std::to_string(min) +
                                " to " + std::to_string(max));
  return value;
}

bool parse_bool(const char* name, std::string_view text) {
  if (text == "true" || text == "1" || text == "yes" || text == "True" || text == "TRUE")
    return true;
  if (text == "false" || text == "0" || text == "no" || text == "False" || text == "FALSE")
    return false;
  throw std::invalid_argument(std::string("invalid ") + name + " '" + detail::printable(text) +
                              "': expected true or false");
}

Rate make_rate(const char* what, const RateSettings& s) {
  try {
    return Rate(s.permits, parse_duration(s.period), s.burst);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(what) + ": " + e.what());
  }
}

beast::Response json_response(bhttp::status status, const json& body, unsigned version) {
  beast::Response res{status, version};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = body.dump();
  return res;
}

json rate_json(const RateSettings& s) {
  return {{"permits", s.permits}, {"period", s.period}, {"burst", s.burst}};
}

}  // namespace

DemoConfig config_from_env(const std::function<const char*(const char*)>& getenv) {
  DemoConfig c;
  auto get = [&](const char* name) -> std::optional<std::string_view> {
    const char* v = getenv(name);
    if (v == nullptr) return std::nullopt;
    return std::string_view(v);
  };
  constexpr std::int64_t kMaxPermits = 1'000'000'000'000;
  if (auto v = get("SERVICE_NAME")) c.service_name = *v;
  if (auto v = get("REDIS_URL")) c.redis_url = *v;
  if (auto v = get("RATE_PERMITS")) c.rate.permits = parse_int("RATE_PERMITS", *v, 1, kMaxPermits);
  if (auto v = get("RATE_PERIOD")) c.rate.period = *v;
  if (auto v = get("RATE_BURST")) c.rate.burst = parse_int("RATE_BURST", *v, 0, kMaxPermits);
  if (auto v = get("FAIL_MODE")) {
    try {
      c.fail_mode = parse_fail_mode(*v);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("FAIL_MODE: ") + e.what());
    }
  }
  if (auto v = get("USE_MIDDLEWARE")) c.use_middleware = parse_bool("USE_MIDDLEWARE", *v);
  if (auto v = get("MIDDLEWARE_PERMITS"))
    c.middleware.permits = parse_int("MIDDLEWARE_PERMITS", *v, 1, kMaxPermits);
  if (auto v = get("MIDDLEWARE_PERIOD")) c.middleware.period = *v;
  if (auto v = get("MIDDLEWARE_BURST"))
    c.middleware.burst = parse_int("MIDDLEWARE_BURST", *v, 0, kMaxPermits);
  if (auto v = get("HOST")) c.host = *v;
  if (auto v = get("PORT")) c.port = static_cast<std::uint16_t>(parse_int("PORT", *v, 0, 65535));
  if (auto v = get("TRUSTED_PROXIES")) c.trusted_proxies = *v;
  if (auto v = get("THREADS")) c.threads = static_cast<unsigned>(parse_int("THREADS", *v, 0, 256));
  if (auto v = get("REDIS_TIMEOUT_MS"))
    c.redis_timeout = std::chrono::milliseconds(parse_int("REDIS_TIMEOUT_MS", *v, 1, 60'000));
  return c;
}

void validate(const DemoConfig& config) {
  make_rate("RATE_*", config.rate);
  if (config.use_middleware) make_rate("MIDDLEWARE_*", config.middleware);
  http::TrustedProxies::parse(config.trusted_proxies);
  if (config.service_name.empty() || config.service_name != http::sanitize_identity(config.service_name) ||
      config.service_name.size() > 64)
    throw std::invalid_argument("invalid SERVICE_NAME '" + detail::printable(config.service_name) +
                                "': must be 1 to 64 printable characters without braces");
  if (!config.redis_url.empty()) {
    try {
      redis::parse_redis_url(config.redis_url);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("REDIS_URL: ") + e.what());
    }
  }
}

DemoApp::DemoApp(DemoConfig config, std::vector<boost::asio::io_context*> io)
    : config_(std::move(config)) {
  validate(config_);
  if (config_.redis_url.empty()) {
    store_ = std::make_unique<MemoryStore>();
  } else {
    const redis::RedisStoreOptions options{.url = config_.redis_url,
                                           .command_timeout = config_.redis_timeout};
    if (io.empty()) {
      auto redis = std::make_unique<redis::RedisStore>(options);
      // Serve even if Redis is not there yet: the fail mode answers until it is.
      if (!redis->wait_connected(std::chrono::seconds(2)))
        spdlog::warn("pacer-demo: Redis {} not reachable yet ({}); fail mode '{}' answers",
                     redis::parse_redis_url(config_.redis_url).to_string(), redis->last_error(),
                     to_string(config_.fail_mode));
      store_ = std::move(redis);
    } else {
      store_ = std::make_unique<redis::RedisStore>(options, std::move(io));
    }
  }
  limiter_ = std::make_unique<Limiter>(*store_, LimiterOptions{.fail_mode = config_.fail_mode});
  http_ = std::make_unique<http::HttpLimiter>(
      *limiter_, http::HttpLimiterOptions{.key_prefix = config_.service_name});

  const http::ClientIpOptions ip{.trusted_proxies =
                                     http::TrustedProxies::parse(config_.trusted_proxies)};
  const auto by_ip = http::Identity::client_ip(ip);
  auto route = [&](const char* method, const char* path, Policy policy, http::Identity who) {
    if (!config_.redis_url.empty()) redis::RedisStore::validate(policy);
    http_->add_route(method, path,
                     {.policy = std::move(policy),
                      .identity = std::move(who),
                      .scope = http::Scope::kRoute,
                      .body = http::BodyStyle::kNested});
  };
  route("GET", "/limited", Policy("limited", {make_rate("RATE_*", config_.rate)}), by_ip);
  route("GET", "/custom", Policy("custom", {Rate(5, std::chrono::seconds(10), 2)}), by_ip);
  route("POST", "/post", Policy("post", {Rate(3, std::chrono::minutes(1), 0)}), by_ip);
  route("GET", "/api-key", Policy("api_key", {Rate(20, std::chrono::minutes(1), 5)}),
        http::Identity::first_of({http::Identity::api_key(), by_ip}));
  if (config_.use_middleware) {
    http_->set_middleware(
        {.rule = {.policy = Policy("global", {make_rate("MIDDLEWARE_*", config_.middleware)}),
                  .identity = by_ip,
                  .scope = http::Scope::kApp,
                  .body = http::BodyStyle::kFlat},
         .exclude_paths = {"/health", "/config", "/metrics", "/metrics/prometheus"}});
  }
}

DemoApp::~DemoApp() = default;

void DemoApp::handle(beast::Request&& request, const beast::Connection& connection,
                     beast::Send send) {
  // One allocation holds what the (possibly asynchronous) completion needs; the view refers to
  // the request inside it, so neither moves again.
  struct Exchange {
    Exchange(beast::Request&& r, const beast::Connection& c, beast::Send s)
        : request(std::move(r)), view(request, c), send(std::move(s)) {}
    beast::Request request;
    beast::BeastRequestView view;
    beast::Send send;
  };
  auto exchange = std::make_unique<Exchange>(std::move(request), connection, std::move(send));
  const http::RequestView& view = exchange->view;
  http_->check(view, [this, exchange = std::move(exchange)](http::Verdict&& v) {
    beast::Response res;
    if (v.status != 0) {
      res = beast::Response{static_cast<bhttp::status>(v.status), exchange->request.version()};
      res.set(bhttp::field::content_type, "application/json");
      res.body() = std::move(v.body);
    } else {
      res = route(exchange->request, exchange->view);
    }
    // RateLimit-* are not among Beast's known fields: say so and skip the name lookup.
    for (auto& [name, value] : v.headers)
      res.insert(bhttp::field::unknown, boost::beast::string_view(name.data(), name.size()),
                 value);
    exchange->send(std::move(res));
  });
}

beast::Response DemoApp::route(const beast::Request& req, const http::RequestView& view) const {
  const unsigned version = req.version();
  const std::string_view path = view.path();
  const std::string_view method = view.method();
  const bool get = method == "GET";
  const bool connected = store_->connected();

  auto not_allowed = [&] {
    return json_response(bhttp::status::method_not_allowed, {{"detail", "Method Not Allowed"}},
                         version);
  };
  if (path == "/") {
    if (!get) return not_allowed();
    return json_response(bhttp::status::ok,
                         {{"message", "Hello from " + config_.service_name},
                          {"service", config_.service_name}},
                         version);
  }
  if (path == "/health") {
    if (!get) return not_allowed();
    return json_response(connected ? bhttp::status::ok : bhttp::status::service_unavailable,
                         {{"status", connected ? "healthy" : "unhealthy"},
                          {"service", config_.service_name},
                          {"redis", connected ? "connected" : "disconnected"}},
                         version);
  }
  if (path == "/config") {
    if (!get) return not_allowed();
    json rate = rate_json(config_.rate);
    rate["fail_mode"] = std::string(to_string(config_.fail_mode));
    json middleware = {{"enabled", config_.use_middleware}};
    for (const char* field : {"permits", "period", "burst"})
      middleware[field] = config_.use_middleware ? rate_json(config_.middleware)[field] : json();
    return json_response(
        bhttp::status::ok,
        {{"service", config_.service_name}, {"rate_config", rate}, {"middleware", middleware}},
        version);
  }
  if (path == "/metrics" || path == "/metrics/prometheus") {
    if (!get) return not_allowed();
    const MetricsSnapshot m = limiter_->metrics().snapshot();
    const auto accept = view.header("Accept");
    if (path == "/metrics/prometheus" ||
        (accept && accept->find("text/plain") != std::string_view::npos)) {
      beast::Response res{bhttp::status::ok, version};
      res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      std::string& text = res.body();
      text = m.prometheus("pacer");
      text += "# HELP pacer_store_connected Whether the store is reachable.\n"
              "# TYPE pacer_store_connected gauge\npacer_store_connected ";
      text += connected ? "1\n" : "0\n";
      if (const auto* redis = dynamic_cast<const redis::RedisStore*>(store_.get())) {
        const redis::RedisStoreStats st = redis->stats();
        auto counter = [&](std::string_view name, std::string_view help, std::uint64_t value) {
          fmt::format_to(std::back_inserter(text),
                         "# HELP pacer_redis_{0}_total {1}\n# TYPE pacer_redis_{0}_total "
                         "counter\npacer_redis_{0}_total {2}\n",
                         name, help, value);
        };
        counter("round_trips", "Scripts and commands sent to Redis.", st.round_trips);
        counter("deny_cache_hits", "Denials answered without a round trip.", st.deny_cache_hits);
        counter("script_reloads", "NOSCRIPT answered by EVAL.", st.script_reloads);
        counter("fast_failures", "Checks refused while the circuit was open.", st.fast_failures);
        counter("errors", "Failed round trips.", st.errors);
      }
      return res;
    }
    return json_response(bhttp::status::ok,
                         {{"limiter",
                           {{"requests_allowed", m.allowed},
                            {"requests_blocked", m.denied},
                            {"redis_errors", m.errors}}},
                          {"connected", connected},
                          {"service", config_.service_name}},
                         version);
  }
  if (path == "/limited") {
    if (!get) return not_allowed();
    return json_response(bhttp::status::ok,
                         {{"message", "This endpoint is rate limited"},
                          {"service", config_.service_name}},
                         version);
  }
  if (path == "/custom") {
    if (!get) return not_allowed();
    return json_response(bhttp::status::ok, {{"message", "Custom rate limit: 5 per 10s"}},
                         version);
  }
  if (path == "/api-key") {
    if (!get) return not_allowed();
    return json_response(bhttp::status::ok, {{"message", "Rate limited by API key"}}, version);
  }
  if (path == "/post") {
    if (method != "POST") return not_allowed();
    json body;
    try {
      body = json::parse(req.body());
    } catch (const json::parse_error& e) {
      return json_response(bhttp::status::unprocessable_entity,
                           {{"detail",
                             {{{"type", "json_invalid"},
                               {"loc", {"body"}},
                               {"msg", "JSON decode error"},
                               {"ctx", {{"error", e.what()}}}}}}},
                           version);
    }
    return json_response(bhttp::status::ok, {{"received", body}}, version);
  }
  return json_response(bhttp::status::not_found, {{"detail", "Not Found"}}, version);
}

}  // namespace pacer::demo
