#include "demo_app.h"

#include <fmt/format.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <charconv>
#include <exception>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "json_depth.h"
#include "pacer/open_store.h"
#include "pacer/prometheus.h"
#include "pacer/text.h"

namespace pacer::demo {
namespace {

// Ordered: bodies keep FastAPI Pacer's key order, byte for byte.
using json = nlohmann::ordered_json;
namespace bhttp = boost::beast::http;

std::int64_t parse_int(const char* name, std::string_view text, std::int64_t min,
                       std::int64_t max) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
      value > max) {
    throw std::invalid_argument(std::string("invalid ") + name + " '" + printable(text) +
                                "': expected a whole number from " + std::to_string(min) + " to " +
                                std::to_string(max));
  }
  return value;
}

bool parse_bool(const char* name, std::string_view text) {
  if (text == "true" || text == "1" || text == "yes" || text == "True" || text == "TRUE")
    return true;
  if (text == "false" || text == "0" || text == "no" || text == "False" || text == "FALSE")
    return false;
  throw std::invalid_argument(std::string("invalid ") + name + " '" + printable(text) +
                              "': expected true or false");
}

[[noreturn]] void invalid(const std::string& name, std::string_view value,
                          const std::string& reason) {
  throw std::invalid_argument("invalid " + name + " '" + printable(value) + "': " + reason);
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    char32_t point = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
      point = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      point = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      point = c & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      point = (point << 6) | (next & 0x3f);
    }
    const char32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (point < smallest[length] || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff))
      return false;
    i += length;
  }
  return true;
}

// Settings end up in logs, keys and JSON bodies: valid UTF-8, no control characters (C0, DEL,
// C1 as U+0080..U+009F).
void check_text(const std::string& name, std::string_view value) {
  bool ok = valid_utf8(value);
  for (std::size_t i = 0; ok && i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    ok = c >= 0x20 && c != 0x7f &&
         !(c == 0xc2 && i + 1 < value.size() && static_cast<unsigned char>(value[i + 1]) < 0xa0);
  }
  if (!ok) invalid(name, value, "must be valid UTF-8 without control characters");
}

// An IP literal, or a host name that is well formed (RFC 1123) and resolves.
void check_host(const std::string& host) {
  const std::string name = "HOST";
  check_text(name, host);
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (!ec) return;
  const std::string expected = "expected an IP address or a host name that resolves";
  if (host.empty() || host.size() > 253 || host.find(':') != std::string::npos)
    invalid(name, host, expected);
  std::string_view rest = host;
  if (rest.back() == '.') rest.remove_suffix(1);  // a fully qualified name
  for (;;) {
    const auto dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    const bool shape_ok =
        !label.empty() && label.size() <= 63 && label.front() != '-' && label.back() != '-';
    bool chars_ok = true;
    for (char c : label)
      chars_ok = chars_ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-');
    if (!shape_ok || !chars_ok) invalid(name, host, expected + " (not a valid host name)");
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  // A name of digits and dots would be a mistyped IPv4 address (no top-level domain is numeric).
  if (host.find_first_not_of("0123456789.") == std::string::npos)
    invalid(name, host, "not a valid IPv4 address");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (result != nullptr) ::freeaddrinfo(result);
  if (rc != 0) invalid(name, host, expected + " (" + ::gai_strerror(rc) + ")");
}

// `prefix` is RATE or MIDDLEWARE: each error names the one variable that is wrong.
Rate make_rate(const std::string& prefix, const RateSettings& s) {
  if (s.permits < 1) invalid(prefix + "_PERMITS", std::to_string(s.permits), "must be at least 1");
  if (s.burst < 0) invalid(prefix + "_BURST", std::to_string(s.burst), "must be 0 or more");
  check_text(prefix + "_PERIOD", s.period);
  Nanos period{};
  try {
    period = parse_duration(s.period);
  } catch (const std::invalid_argument& e) {
    invalid(prefix + "_PERIOD", s.period, e.what());
  }
  if (period <= Nanos::zero()) invalid(prefix + "_PERIOD", s.period, "must be greater than zero");
  try {
    return Rate(s.permits, period, s.burst);
  } catch (const std::invalid_argument& e) {
    // Only the combination is wrong (an emission interval below 1 ns, an overflow).
    throw std::invalid_argument("invalid " + prefix + "_PERMITS / " + prefix + "_PERIOD / " +
                                prefix + "_BURST " + std::to_string(s.permits) + " / '" +
                                printable(s.period) + "' / " + std::to_string(s.burst) + ": " +
                                e.what());
  }
}

// Strings in a body may come from the request (a parse error quotes the bytes it read): replace
// invalid UTF-8 rather than throw while answering.
std::string to_text(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A body already serialised.
beast::Response json_text_response(bhttp::status status, std::string body, unsigned version) {
  beast::Response res{status, version};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = std::move(body);
  return res;
}

beast::Response json_response(bhttp::status status, const json& body, unsigned version) {
  return json_text_response(status, to_text(body), version);
}

// Deeper bodies are refused before parsing: serialising a value is recursive, and echoing a
// 1 MB body of "[[[..." crashed the process (stack overflow in dump()).
constexpr int kMaxJsonDepth = 128;

beast::Response json_invalid(const std::string& error, unsigned version) {
  // FastAPI's shape for a body that is not JSON.
  return json_response(bhttp::status::unprocessable_entity,
                       {{"detail",
                         {{{"type", "json_invalid"},
                           {"loc", {"body"}},
                           {"msg", "JSON decode error"},
                           {"ctx", {{"error", error}}}}}}},
                       version);
}

// "10 per 1m, burst=5", as the original demo describes its limit.
std::string rate_text(const RateSettings& s) {
  return fmt::format("{} per {}, burst={}", s.permits, s.period, s.burst);
}

json rate_json(const RateSettings& s) {
  return {{"permits", s.permits}, {"period", s.period}, {"burst", s.burst}};
}

// The original demo's per-route bodies: service, endpoint, message, rate_limit.
std::string endpoint_body(const DemoConfig& config, std::string_view name, std::string rate) {
  return to_text({{"service", config.service_name},
                  {"endpoint", name},
                  {"message", "Request successful"},
                  {"rate_limit", std::move(rate)}});
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
  if (auto v = get("MAX_CONNECTIONS"))
    c.max_connections = static_cast<std::size_t>(parse_int("MAX_CONNECTIONS", *v, 0, 10'000'000));
  if (auto v = get("MAX_CONNECTIONS_PER_CLIENT")) {
    c.max_connections_per_client =
        static_cast<std::size_t>(parse_int("MAX_CONNECTIONS_PER_CLIENT", *v, 0, 10'000'000));
  }
  if (auto v = get("REDIS_TIMEOUT_MS"))
    c.redis_timeout = std::chrono::milliseconds(parse_int("REDIS_TIMEOUT_MS", *v, 1, 60'000));
  return c;
}

void validate(const DemoConfig& config) {
  // The service name is the key prefix and appears in every body: short, printable, no braces
  // (they would change the Redis Cluster hash tag).
  const std::string& service = config.service_name;
  if (service.empty() || service.size() > 64 || service.find_first_of("{}") != std::string::npos)
    invalid("SERVICE_NAME", service, "must be 1 to 64 printable characters without braces");
  check_text("SERVICE_NAME", service);
  make_rate("RATE", config.rate);
  if (config.use_middleware) make_rate("MIDDLEWARE", config.middleware);
  check_text("TRUSTED_PROXIES", config.trusted_proxies);
  try {
    http::TrustedProxies::parse(config.trusted_proxies);
  } catch (const std::invalid_argument& e) {
    invalid("TRUSTED_PROXIES", config.trusted_proxies, e.what());
  }
  if (!config.redis_url.empty() && !is_memory_url(config.redis_url)) {
    check_text("REDIS_URL", config.redis_url);
    try {
      redis::parse_redis_url(config.redis_url);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("REDIS_URL: ") + e.what());
    }
  }
  if (config.threads > 256) {
    invalid("THREADS (--threads)", std::to_string(config.threads),
            "expected a whole number from 0 (one per core) to 256");
  }
  check_host(config.host);
}

DemoApp::Bodies::Bodies(const DemoConfig& config)
    : root(to_text({{"service", config.service_name},
                    {"message", "Request successful"},
                    {"rate_limit", rate_text(config.rate)}})),
      limited(endpoint_body(config, "limited", rate_text(config.rate))),
      custom(endpoint_body(config, "custom", "5 per 10s, burst=2")),
      api_key(endpoint_body(config, "api-key", "20 per 1m with API key, burst=5")) {}

DemoApp::DemoApp(DemoConfig config, const std::vector<boost::asio::io_context*>& io)
    : config_(std::move(config)), bodies_(config_) {
  validate(config_);
  // An empty REDIS_URL is the in-process store (as is memory://).
  const std::string url =
      config_.redis_url.empty() ? std::string(kMemoryStoreUrl) : config_.redis_url;
  store_ = open_store(url, {.redis = {.command_timeout = config_.redis_timeout}, .io = io});
  // Serve even if Redis is not there yet: the fail mode answers until it is.
  if (io.empty() && !store_->wait_connected(std::chrono::seconds(2))) {
    spdlog::warn("pacer-demo: Redis {} not reachable yet ({}); fail mode '{}' answers",
                 redis::parse_redis_url(config_.redis_url).to_string(), store_->last_error(),
                 to_string(config_.fail_mode));
  }
  limiter_ = std::make_unique<Limiter>(*store_, LimiterOptions{.fail_mode = config_.fail_mode});
  http_ = std::make_unique<http::HttpLimiter>(
      *limiter_, http::HttpLimiterOptions{.key_prefix = config_.service_name});

  const http::ClientIpOptions ip{.trusted_proxies =
                                     http::TrustedProxies::parse(config_.trusted_proxies)};
  const auto by_ip = http::Identity::client_ip(ip);
  auto route = [&](const char* method, const char* path, Policy policy, http::Identity who) {
    http_->add_route(method, path,
                     {.policy = std::move(policy),
                      .identity = std::move(who),
                      .scope = http::Scope::kRoute,
                      .body = http::BodyStyle::kNested});
  };
  route("GET", "/limited", Policy("limited", {make_rate("RATE", config_.rate)}), by_ip);
  route("GET", "/custom", Policy("custom", {Rate(5, std::chrono::seconds(10), 2)}), by_ip);
  route("POST", "/post", Policy("post", {Rate(3, std::chrono::minutes(1), 0)}), by_ip);
  route("GET", "/api-key", Policy("api_key", {Rate(20, std::chrono::minutes(1), 5)}),
        http::Identity::first_of({http::Identity::api_key(), by_ip}));
  // The limits wrap the routes: 429 (or 503) before a route runs, RateLimit-* on its answer.
  handler_ = beast::with_limits(
      *http_,
      [this](beast::Request&& request, const beast::ClientEndpoint& client, beast::Send send) {
        send(this->route(request, beast::BeastRequestView(request, client)));
      });
  if (config_.use_middleware) {
    http_->set_middleware(
        {.rule = {.policy = Policy("global", {make_rate("MIDDLEWARE", config_.middleware)}),
                  .identity = by_ip,
                  .scope = http::Scope::kApp,
                  .body = http::BodyStyle::kFlat},
         .exclude_paths = {"/health", "/config", "/metrics", "/metrics/prometheus"}});
  }
}

DemoApp::~DemoApp() {
  // Pending checks are answered now, while the routes, limiter and sends they use still exist
  // (pacer/store.h: shut the store down before what its handlers refer to).
  store_->shutdown();
}

void DemoApp::handle(beast::Request&& request, const beast::ClientEndpoint& client,
                     beast::Send send) {
  handler_(std::move(request), client, std::move(send));
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
    return json_text_response(bhttp::status::ok, bodies_.root, version);
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
      res.set(bhttp::field::content_type, PrometheusText::kContentType);
      PrometheusText out("pacer");
      out.add(m);
      out.add(*store_);  // store_connected and the store's own numbers
      if (server_ != nullptr) {
        const beast::ServerStats st = server_->stats();
        auto n = [](std::uint64_t v) { return static_cast<double>(v); };
        out.gauge("http_connections_open", "Connections open now.", n(st.open_connections));
        out.counter("http_connections_shed_total",
                    "Connections closed at the cap to make room for a new one.", n(st.shed));
        out.counter("http_connections_refused_total", "New connections refused at the cap.",
                    n(st.refused));
        out.counter("http_accept_failures_total", "accept() errors, such as out of descriptors.",
                    n(st.accept_failures));
        out.counter("http_escaped_exceptions_total",
                    "Exceptions that escaped a completion handler.", n(st.escaped_exceptions));
      }
      res.body() = out.take();
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
    return json_text_response(bhttp::status::ok, bodies_.limited, version);
  }
  if (path == "/custom") {
    if (!get) return not_allowed();
    return json_text_response(bhttp::status::ok, bodies_.custom, version);
  }
  if (path == "/api-key") {
    if (!get) return not_allowed();
    return json_text_response(bhttp::status::ok, bodies_.api_key, version);
  }
  if (path == "/post") {
    if (method != "POST") return not_allowed();
    if (apps::json_nested_deeper_than(req.body(), kMaxJsonDepth)) {
      return json_invalid("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels",
                          version);
    }
    json body = json::object();  // no body: {}
    if (!req.body().empty()) {
      try {
        body = json::parse(req.body());
      } catch (const json::exception& e) {
        // parse_error, and out_of_range for numbers beyond a double ("1e99999").
        return json_invalid(e.what(), version);
      }
    }
    if (!body.is_object()) {  // FastAPI's answer when a dict body gets something else
      return json_response(bhttp::status::unprocessable_entity,
                           {{"detail",
                             {{{"loc", {"body"}},
                               {"msg", "value is not a valid dict"},
                               {"type", "type_error.dict"}}}}},
                           version);
    }
    return json_response(bhttp::status::ok,
                         {{"service", config_.service_name},
                          {"endpoint", "post"},
                          {"message", "Data received"},
                          {"data", std::move(body)},
                          {"rate_limit", "3 per 1m, no burst"}},
                         version);
  }
  return json_response(bhttp::status::not_found, {{"detail", "Not Found"}}, version);
}

}  // namespace pacer::demo
