// The demo service over real sockets: every route, header and body.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/text.h"
#include "demo_app.h"
#include "http_client.h"

namespace pacer::demo {
namespace {

using nlohmann::json;
using testing::HttpClient;
using testing::Reply;
namespace bhttp = boost::beast::http;

class Demo {
 public:
  explicit Demo(DemoConfig config) : app_(std::move(config)) {
    server_ = std::make_unique<beast::Server>(
        beast::ServerOptions{.host = "127.0.0.1", .port = 0, .threads = 2},
        [this](beast::Request&& req, const beast::ClientEndpoint& conn, beast::Send send) {
          app_.handle(std::move(req), conn, std::move(send));
        });
    app_.set_server(server_.get());
    server_->start();
  }
  ~Demo() { server_->stop(); }
  std::uint16_t port() const { return server_->port(); }
  HttpClient client() const { return HttpClient(port()); }

 private:
  DemoApp app_;
  std::unique_ptr<beast::Server> server_;
};

std::string header(const Reply& r, std::string_view name) {
  auto it = r.find(boost::beast::string_view(name.data(), name.size()));
  return it == r.end() ? "<absent>" : std::string(it->value());
}

json body(const Reply& r) { return json::parse(r.body()); }

// The real clock runs between requests: retry_after_ms may be a little under the full wait.
void expect_retry_after_ms(const json& detail, int full_ms) {
  ASSERT_TRUE(detail.contains("retry_after_ms")) << detail;
  const int ms = detail["retry_after_ms"].get<int>();
  EXPECT_LE(ms, full_ms);
  EXPECT_GT(ms, full_ms - 1000);
  EXPECT_EQ(detail["detail"], "rate_limited");
  EXPECT_EQ(detail.size(), 2u) << detail;
}

TEST(Demo, LimitedGivesSixThenNestedTooManyRequests) {
  Demo demo({});
  HttpClient c = demo.client();
  for (int i = 0; i < 6; ++i) {
    const Reply r = c.get("/limited");
    ASSERT_EQ(r.result_int(), 200) << i;
    EXPECT_EQ(header(r, "RateLimit-Limit"), "10");
    EXPECT_EQ(header(r, "RateLimit-Remaining"), std::to_string(5 - i));
    // Each admitted request pushes the reset 6 s (the emission interval) further out.
    EXPECT_EQ(header(r, "RateLimit-Reset"), std::to_string(6 * (i + 1)));
    EXPECT_EQ(header(r, "Retry-After"), "<absent>");
  }
  for (int i = 0; i < 2; ++i) {
    const Reply r = c.get("/limited");
    ASSERT_EQ(r.result_int(), 429);
    EXPECT_EQ(header(r, "Retry-After"), "6");
    EXPECT_EQ(header(r, "RateLimit-Limit"), "10");
    EXPECT_EQ(header(r, "RateLimit-Remaining"), "0");
    EXPECT_EQ(header(r, "Content-Type"), "application/json");
    ASSERT_EQ(body(r).size(), 1u);
    expect_retry_after_ms(body(r)["detail"], 6000);
  }
}

TEST(Demo, RootHealthAndConfig) {
  Demo demo({.service_name = "svc-a"});
  HttpClient c = demo.client();
  Reply r = c.get("/");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(body(r)["service"], "svc-a");
  EXPECT_EQ(header(r, "RateLimit-Limit"), "<absent>");  // no middleware

  r = c.get("/health");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(body(r), json::parse(R"({"status":"healthy","service":"svc-a","redis":"connected"})"));

  r = c.get("/config");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(body(r), json::parse(R"({"service":"svc-a",
      "rate_config":{"permits":10,"period":"1m","burst":5,"fail_mode":"open"},
      "middleware":{"enabled":false,"permits":null,"period":null,"burst":null}})"));
}

TEST(Demo, ConfigShowsMiddlewareWhenEnabled) {
  Demo demo({.rate = {7, "10s", 1}, .fail_mode = FailMode::kClosed, .use_middleware = true});
  const json config = body(demo.client().get("/config"));
  EXPECT_EQ(config["rate_config"],
            json::parse(R"({"permits":7,"period":"10s","burst":1,"fail_mode":"closed"})"));
  EXPECT_EQ(config["middleware"],
            json::parse(R"({"enabled":true,"permits":100,"period":"1m","burst":20})"));
}

TEST(Demo, MetricsCountDecisionsInJsonAndPrometheus) {
  Demo demo({});
  HttpClient c = demo.client();
  for (int i = 0; i < 8; ++i) c.get("/limited");
  Reply r = c.get("/metrics");
  EXPECT_EQ(body(r), json::parse(R"({"limiter":{"requests_allowed":6,"requests_blocked":2,
      "redis_errors":0},"connected":true,"service":"default"})"));
  r = c.get("/metrics", {{"Accept", "text/plain"}});
  EXPECT_NE(r.body().find("pacer_requests_allowed_total 6\n"), std::string::npos) << r.body();
  EXPECT_NE(r.body().find("pacer_requests_denied_total 2\n"), std::string::npos);
  EXPECT_NE(r.body().find("pacer_store_connected 1\n"), std::string::npos);
  EXPECT_EQ(header(r, "Content-Type").rfind("text/plain", 0), 0u);
  r = c.get("/metrics/prometheus");
  // Sampled on the in-process store (one decision in 64 per thread): present, not 8.
  EXPECT_NE(r.body().find("pacer_check_duration_seconds_count "), std::string::npos);
  // The server's connection counters (this client's keep-alive connection is open).
  EXPECT_NE(r.body().find("pacer_http_connections_open 1\n"), std::string::npos) << r.body();
  EXPECT_NE(r.body().find("pacer_http_connections_shed_total 0\n"), std::string::npos);
  EXPECT_NE(r.body().find("pacer_http_escaped_exceptions_total 0\n"), std::string::npos);
}

TEST(Demo, CustomRouteIsFivePerTenSecondsBurstTwo) {
  Demo demo({});
  HttpClient c = demo.client();
  for (int i = 0; i < 3; ++i) {
    const Reply r = c.get("/custom");
    ASSERT_EQ(r.result_int(), 200) << i;
    EXPECT_EQ(header(r, "RateLimit-Limit"), "5");
    EXPECT_EQ(header(r, "RateLimit-Remaining"), std::to_string(2 - i));
  }
  const Reply r = c.get("/custom");
  EXPECT_EQ(r.result_int(), 429);
  EXPECT_EQ(header(r, "Retry-After"), "2");
  expect_retry_after_ms(body(r)["detail"], 2000);
}

TEST(Demo, PostEchoesJsonAndIsThreePerMinuteWithoutBurst) {
  Demo demo({});
  HttpClient c = demo.client();
  Reply r = c.send(bhttp::verb::post, "/post", {}, R"({"order":[1,2,3],"note":"hi"})");
  EXPECT_EQ(r.result_int(), 200);
  // FastAPI Pacer's demo body, byte for byte (key order included).
  EXPECT_EQ(r.body(), R"({"service":"default","endpoint":"post","message":"Data received",)"
                      R"("data":{"order":[1,2,3],"note":"hi"},"rate_limit":"3 per 1m, no burst"})");
  EXPECT_EQ(header(r, "RateLimit-Limit"), "3");
  EXPECT_EQ(header(r, "RateLimit-Remaining"), "0");
  r = c.send(bhttp::verb::post, "/post", {}, R"({"again":true})");
  EXPECT_EQ(r.result_int(), 429);
  EXPECT_EQ(header(r, "Retry-After"), "20");
  ASSERT_EQ(body(r).size(), 1u);
  expect_retry_after_ms(body(r)["detail"], 20000);
}

TEST(Demo, InvalidJsonToPostIsAClear422) {
  Demo demo({});
  HttpClient c = demo.client();
  const Reply r = c.send(bhttp::verb::post, "/post", {}, R"({"unterminated": )");
  EXPECT_EQ(r.result_int(), 422);
  const json detail = body(r)["detail"][0];
  EXPECT_EQ(detail["type"], "json_invalid");
  EXPECT_NE(detail["ctx"]["error"].get<std::string>().find("parse error"), std::string::npos);
  EXPECT_EQ(c.get("/health").result_int(), 200);  // the connection and server carry on
}

// The JSON library's parse error quotes the offending bytes; dumping them used to throw (500).
TEST(Demo, InvalidUtf8BodyToPostIsA422) {
  Demo demo({});
  HttpClient c = demo.client();
  const Reply r = c.send(bhttp::verb::post, "/post", {}, "\xff");
  EXPECT_EQ(r.result_int(), 422);
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  const json detail = body(r)["detail"];  // valid JSON (and UTF-8) although the input was not
  ASSERT_EQ(detail.size(), 1u);
  EXPECT_EQ(detail[0]["type"], "json_invalid");
  EXPECT_EQ(detail[0]["loc"], json::parse(R"(["body"])"));
  EXPECT_EQ(detail[0]["msg"], "JSON decode error");
  EXPECT_TRUE(detail[0]["ctx"]["error"].is_string());
  EXPECT_EQ(c.get("/health").result_int(), 200);  // the same connection carries on
}

// Every kind of broken body is the client's fault: a 4xx (never 500, never a crash), and the
// server keeps serving. Each request has its own client address, so /post's limit of 3 a minute
// does not answer 429 before the body is looked at.
TEST(Demo, MalformedBodiesAreAll422AndTheServerCarriesOn) {
  Demo demo({});
  const std::string deep_array = std::string(200'000, '[') + std::string(200'000, ']');
  const std::string deep_object = [] {
    std::string text;
    for (int i = 0; i < 50'000; ++i) text += R"({"a":)";
    text += "1";
    text += std::string(50'000, '}');
    return text;
  }();
  const std::vector<std::string> bodies{
      std::string("\xff"),
      std::string("\xfe\xff"),
      std::string(R"({"a":")") + "\xff" + R"("})",
      std::string(R"({"a":")") + "\xc0\xaf" + R"("})",          // overlong '/'
      std::string(R"({"a":")") + "\xed\xa0\x80" + R"("})",      // UTF-8 encoded surrogate
      std::string(R"({"a":")") + "\xf4\x90\x80\x80" + R"("})",  // above U+10FFFF
      std::string(R"(["\ud800"])"),                             // lone surrogate escape
      std::string(R"({"a": 1)"),
      std::string("{\"a\": \"\x01\"}"),  // control character in a string
      std::string("\0{}", 3),
      std::string("1e99999"),
      std::string("NaN"),
      std::string("[1,]"),
      std::string("{\"\xff\xfe\": 1}"),
      std::string(16 * 1024, '\x80'),
      deep_array,
      deep_object,
      std::string(100'000, '[') + "\xff",
  };
  int n = 0;
  for (const auto& text : bodies) {
    SCOPED_TRACE("body #" + std::to_string(n) + ": " + pacer::internal::printable(text));
    HttpClient c = demo.client();
    const Reply r = c.send(bhttp::verb::post, "/post",
                           {{"X-Forwarded-For", "198.51.100." + std::to_string(++n)}}, text);
    EXPECT_EQ(r.result_int(), 422);
    ASSERT_NO_THROW(body(r));
    EXPECT_EQ(body(r)["detail"][0]["type"], "json_invalid");
  }
  EXPECT_EQ(demo.client().get("/health").result_int(), 200);
}

TEST(Demo, ValidBodiesWithAnyUnicodeAreEchoed) {
  Demo demo({});
  HttpClient c = demo.client();
  const std::string text = R"({"s":"caf\u00e9 \ud83d\ude00 )" + std::string("\xe2\x82\xac") +
                           R"(","n":[[[[[[[[[[1]]]]]]]]]]})";
  const Reply r = c.send(bhttp::verb::post, "/post", {}, text);
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(body(r)["data"], json::parse(text));
}

// Every GET route's body as FastAPI Pacer's configurable demo app writes it (§12 of the seed
// notes): same keys, same order, same values.
TEST(Demo, BodiesMatchTheOriginalDemoByteForByte) {
  Demo demo({});
  HttpClient c = demo.client();
  EXPECT_EQ(
      c.get("/").body(),
      R"({"service":"default","message":"Request successful","rate_limit":"10 per 1m, burst=5"})");
  EXPECT_EQ(c.get("/limited").body(),
            R"({"service":"default","endpoint":"limited","message":"Request successful",)"
            R"("rate_limit":"10 per 1m, burst=5"})");
  EXPECT_EQ(c.get("/custom").body(),
            R"({"service":"default","endpoint":"custom","message":"Request successful",)"
            R"("rate_limit":"5 per 10s, burst=2"})");
  EXPECT_EQ(c.get("/api-key").body(),
            R"({"service":"default","endpoint":"api-key","message":"Request successful",)"
            R"("rate_limit":"20 per 1m with API key, burst=5"})");
  EXPECT_EQ(c.get("/health").body(),
            R"({"status":"healthy","service":"default","redis":"connected"})");
  EXPECT_EQ(c.get("/config").body(),
            R"({"service":"default","rate_config":{"permits":10,"period":"1m","burst":5,)"
            R"("fail_mode":"open"},"middleware":{"enabled":false,"permits":null,"period":null,)"
            R"("burst":null}})");
  EXPECT_EQ(c.get("/metrics").body(),
            R"({"limiter":{"requests_allowed":3,"requests_blocked":0,"redis_errors":0},)"
            R"("connected":true,"service":"default"})");
  Reply empty = c.send(bhttp::verb::post, "/post", {}, "");
  EXPECT_EQ(body(empty)["data"], json::object());
  Demo fresh({});  // POST /post admits one request at once
  HttpClient f = fresh.client();
  Reply list = f.send(bhttp::verb::post, "/post", {}, "[1,2]");
  EXPECT_EQ(list.result_int(), 422);
}

TEST(Demo, ApiKeyRouteHasItsOwnKeySpaceAndFallsBackToIp) {
  Demo demo({});
  HttpClient c = demo.client();
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(c.get("/api-key", {{"X-API-Key", "alpha"}}).result_int(), 200) << i;
  EXPECT_EQ(c.get("/api-key", {{"X-API-Key", "alpha"}}).result_int(), 429);
  // Another key, a bearer token, and no key at all (the client IP) each have their own bucket.
  EXPECT_EQ(c.get("/api-key", {{"X-API-Key", "beta"}}).result_int(), 200);
  EXPECT_EQ(c.get("/api-key", {{"Authorization", "Bearer alpha-token"}}).result_int(), 200);
  const Reply r = c.get("/api-key");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(header(r, "RateLimit-Limit"), "20");
  EXPECT_EQ(header(r, "RateLimit-Remaining"), "5");
  // The IP bucket of /limited is separate from /api-key's.
  EXPECT_EQ(header(c.get("/limited"), "RateLimit-Remaining"), "5");
}

TEST(Demo, MiddlewareLimitsEverythingButExclusionsWithFlatBody) {
  Demo demo({.use_middleware = true, .middleware = {2, "1m", 1}});
  HttpClient c = demo.client();
  EXPECT_EQ(c.get("/").result_int(), 200);
  Reply r = c.get("/");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(header(r, "RateLimit-Limit"), "2");
  EXPECT_EQ(header(r, "RateLimit-Remaining"), "0");
  r = c.get("/limited");  // the middleware runs first, for every route
  EXPECT_EQ(r.result_int(), 429);
  expect_retry_after_ms(body(r), 30000);  // flat, not nested
  EXPECT_EQ(header(r, "Retry-After"), "30");
  for (const char* path : {"/health", "/config", "/metrics", "/metrics/prometheus"}) {
    r = c.get(path);
    EXPECT_EQ(r.result_int(), 200) << path;
    EXPECT_EQ(header(r, "RateLimit-Limit"), "<absent>") << path;
  }
  r = c.send(bhttp::verb::options, "/");
  EXPECT_NE(r.result_int(), 429);  // OPTIONS and HEAD are excluded by default
}

TEST(Demo, RouteAndMiddlewareHeadersReportTheTighterLimit) {
  Demo demo({.use_middleware = true});
  const Reply r = demo.client().get("/custom");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(header(r, "RateLimit-Limit"), "5");  // route: 2 left, middleware: 20 left
  EXPECT_EQ(header(r, "RateLimit-Remaining"), "2");
}

TEST(Demo, TrustedLoopbackProxyForwardsClientAddresses) {
  Demo demo({});
  HttpClient c = demo.client();
  for (int i = 0; i < 6; ++i) c.get("/limited", {{"X-Forwarded-For", "203.0.113.5"}});
  EXPECT_EQ(c.get("/limited", {{"X-Forwarded-For", "203.0.113.5"}}).result_int(), 429);
  EXPECT_EQ(c.get("/limited", {{"X-Forwarded-For", "203.0.113.6"}}).result_int(), 200);
  EXPECT_EQ(c.get("/limited", {{"Forwarded", "for=\"[2001:db8::7]:4711\""}}).result_int(), 200);
}

TEST(Demo, GarbageInForwardingHeadersCountsAgainstThePeer) {
  Demo demo({});
  HttpClient c = demo.client();
  // Each falls back to the peer address, 127.0.0.1: six pass, the rest are limited.
  int passed = 0, limited = 0;
  for (const char* junk : {"not-an-ip", ",,,", "\"[::1", "999.999.999.999, ::zz", "for=unknown",
                           "for=_hidden, for=\"[::1", "for=\"1.2.3.4", "1.2.3.4.5"}) {
    for (const char* name : {"X-Forwarded-For", "Forwarded"}) {
      const int status = c.get("/limited", {{name, junk}}).result_int();
      passed += status == 200;
      limited += status == 429;
    }
  }
  EXPECT_EQ(passed, 6);
  EXPECT_EQ(limited, 10);
}

TEST(Demo, UntrustedPeersCannotSpoofForwardingHeaders) {
  Demo demo({.trusted_proxies = ""});
  HttpClient c = demo.client();
  for (int i = 0; i < 6; ++i)
    c.get("/limited", {{"X-Forwarded-For", "198.51.100." + std::to_string(i)}});
  // Every request counted against the real peer, 127.0.0.1.
  EXPECT_EQ(c.get("/limited", {{"X-Forwarded-For", "198.51.100.99"}}).result_int(), 429);
}

TEST(Demo, OversizedHeadersAreRejectedAndTheServerCarriesOn) {
  Demo demo({});
  {
    HttpClient c = demo.client();
    const Reply r = c.get("/limited", {{"X-Forwarded-For", std::string(16 * 1024, '1')}});
    EXPECT_EQ(r.result_int(), 431);
  }
  EXPECT_EQ(demo.client().get("/health").result_int(), 200);
}

TEST(Demo, UnknownPathsAndMethods) {
  Demo demo({});
  HttpClient c = demo.client();
  EXPECT_EQ(c.get("/nope").result_int(), 404);
  EXPECT_EQ(body(c.get("/nope")), json::parse(R"({"detail":"Not Found"})"));
  EXPECT_EQ(c.send(bhttp::verb::delete_, "/limited").result_int(), 405);
  EXPECT_EQ(c.get("/post").result_int(), 405);
}

TEST(DemoConfig, ReadsTheEnvironment) {
  const std::map<std::string, std::string> env{{"SERVICE_NAME", "orders"},
                                               {"RATE_PERMITS", "50"},
                                               {"RATE_PERIOD", "1.5s"},
                                               {"RATE_BURST", "0"},
                                               {"FAIL_MODE", "local"},
                                               {"USE_MIDDLEWARE", "true"},
                                               {"MIDDLEWARE_PERMITS", "9"},
                                               {"MIDDLEWARE_PERIOD", "1h"},
                                               {"MIDDLEWARE_BURST", "3"},
                                               {"HOST", "::1"},
                                               {"PORT", "9001"}};
  const DemoConfig c = config_from_env([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  EXPECT_EQ(c.service_name, "orders");
  EXPECT_EQ(c.rate.permits, 50);
  EXPECT_EQ(c.rate.period, "1.5s");
  EXPECT_EQ(c.fail_mode, FailMode::kLocal);
  EXPECT_TRUE(c.use_middleware);
  EXPECT_EQ(c.middleware.permits, 9);
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 9001);
  EXPECT_NO_THROW(validate(c));
}

// Each bad setting is refused before serving, with the variable and value in the message.
TEST(DemoConfig, BadSettingsNameTheVariableAndTheValue) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"RATE_PERMITS", "0"},
      {"RATE_PERMITS", "ten"},
      {"RATE_BURST", "-1"},
      {"RATE_PERIOD", "1 minute"},
      {"RATE_PERIOD", "0s"},
      {"RATE_PERIOD", "-5s"},
      {"RATE_PERIOD", "\xff"},
      {"RATE_PERIOD", "1\xe2\x80\x8bm"},
      {"FAIL_MODE", "maybe"},
      {"USE_MIDDLEWARE", "perhaps"},
      {"PORT", "70000"},
      {"MIDDLEWARE_PERIOD", "1y"},
      {"MIDDLEWARE_PERIOD", "0s"},
      {"MIDDLEWARE_PERMITS", "0"},
      {"MIDDLEWARE_BURST", "-2"},
      {"TRUSTED_PROXIES", "10.0.0.0/33"},
      {"TRUSTED_PROXIES", "loopback,\xff"},
      {"SERVICE_NAME", "a{b}"},
      {"SERVICE_NAME", "\xff"},
      {"SERVICE_NAME", "caf\xc3"},
      {"SERVICE_NAME", "tab\there"},
      {"SERVICE_NAME", std::string(65, 'x')},
      {"SERVICE_NAME", "line\nbreak"},
      {"SERVICE_NAME", "\xed\xa0\x80"},
      {"REDIS_URL", "http://127.0.0.1:6379"},
      {"REDIS_URL", "redis://127.0.0.1:notaport"},
      {"REDIS_URL", "redis://127.0.0.1:6379/0\xff"},
      {"REDIS_TIMEOUT_MS", "0"},
      {"THREADS", "257"},
      {"THREADS", "-1"},
      {"HOST", "not a host"},
      {"HOST", "300.1.2.3"},
      {"HOST", "::zz"},
      {"HOST", "\xff"},
      {"HOST", ""},
      {"HOST", "-leading.example"}};
  for (const auto& [name, value] : cases) {
    SCOPED_TRACE(name + "=" + pacer::internal::printable(value));
    try {
      DemoConfig c = config_from_env([&](const char* n) -> const char* {
        if (name == n) return value.c_str();
        if (std::string_view(n) == "USE_MIDDLEWARE" && name != n) return "true";
        return nullptr;
      });
      validate(c);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(name), std::string::npos) << message;
      EXPECT_NE(message.find(pacer::internal::printable(value)), std::string::npos) << message;
      // Other variables of the same family are not blamed.
      for (const char* other : {"RATE_PERMITS", "RATE_PERIOD", "RATE_BURST"}) {
        if (name.rfind("RATE_", 0) == 0 && name != other) {
          EXPECT_EQ(message.find(other), std::string::npos) << message;
        }
      }
      EXPECT_EQ(message.find("RATE_*"), std::string::npos) << message;
    }
  }
}

// validate() alone (flags fill DemoConfig directly, without the environment).
TEST(DemoConfig, ValidateNamesTheSettingOfADirectConfig) {
  auto message = [](const DemoConfig& c) -> std::string {
    try {
      validate(c);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "<accepted>";
  };
  EXPECT_NE(message({.rate = {0, "1m", 5}}).find("RATE_PERMITS"), std::string::npos);
  EXPECT_NE(message({.rate = {10, "1m", -1}}).find("RATE_BURST"), std::string::npos);
  EXPECT_NE(message({.rate = {10, "soon", 1}}).find("RATE_PERIOD"), std::string::npos);
  EXPECT_NE(message({.use_middleware = true, .middleware = {5, "0s", 1}}).find("MIDDLEWARE_PERIOD"),
            std::string::npos);
  EXPECT_NE(message({.threads = 1000}).find("--threads"), std::string::npos);
  EXPECT_NE(message({.threads = 1000}).find("1000"), std::string::npos);
  EXPECT_NE(message({.host = "bad host"}).find("HOST 'bad host'"), std::string::npos);
  // Good values still pass, including UTF-8 service names and host names.
  EXPECT_EQ(message({.service_name = "caf\xc3\xa9-orders"}), "<accepted>");
  EXPECT_EQ(message({.host = "localhost"}), "<accepted>");
  EXPECT_EQ(message({.host = "::1"}), "<accepted>");
  EXPECT_EQ(message({.host = "0.0.0.0"}), "<accepted>");
  EXPECT_EQ(message({.threads = 256}), "<accepted>");
}

}  // namespace
}  // namespace pacer::demo
