// Debian's real nginx with examples/nginx/ (templated with the test's ports) in front of
// pacer-demo's unlimited routes, asking pacerd through auth_request: 200s, then 429 with
// RateLimit-* and Retry-After at the client, whatever X-Forwarded-For the client sends.
#include <gtest/gtest.h>

#include "nginx_process.h"

namespace pacer::testing {
namespace {

TEST(PacerdNginx, AuthRequestTurnsDenialsInto429WithHeadersAndIgnoresSpoofedAddresses) {
  if (nginx_binary().empty()) GTEST_SKIP() << "nginx not installed";
  DemoProcess upstream({"--port", "0", "--threads", "1"});
  ASSERT_TRUE(upstream.wait_listening(10s)) << upstream.log();
  const std::string pacerd_toml = NginxWithExample::pacerd_toml();
  ASSERT_NE(pacerd_toml.find("\"60/1h\""), std::string::npos);
  ASSERT_NE(pacerd_toml.find("\"10/1h\""), std::string::npos);
  Pacerd pacerd(pacerd_toml);
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  auto front = NginxWithExample::start(pacerd.port(), upstream.port());
  ASSERT_TRUE(front.nginx) << front.failures;
  Nginx* nginx = front.nginx.get();
  const std::uint16_t port = front.port;

  // "web": 60/1h with burst 9, per client address: ten pass at once. Every request claims
  // another address; nginx replaces the claim with the real one, so all share one bucket.
  const std::vector<std::pair<std::string, std::string>> spoofs{{"X-Forwarded-For", "203.0.113."},
                                                                {"Forwarded", "for=198.51.100."},
                                                                {"X-Real-IP", "192.0.2."}};
  HttpClient client(port);
  for (int i = 0; i < 10; ++i) {
    const auto& [name, prefix] = spoofs[i % spoofs.size()];
    const auto r = client.get("/", {{name, prefix + std::to_string(i + 1)}});
    ASSERT_EQ(r.result_int(), 200) << i << "\n" << r << nginx->log() << pacerd.log();
    EXPECT_NE(r.body().find("\"Request successful\""), std::string::npos) << r.body();
    EXPECT_EQ(std::string(r["RateLimit-Limit"]), "60");
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), std::to_string(9 - i)) << i;
  }
  for (const auto& [name, prefix] : spoofs) {
    const auto r = client.get("/", {{name, prefix + "99"}});
    ASSERT_EQ(r.result_int(), 429) << r << nginx->log();
    // One token a minute: the next in a minute less the time the test took so far.
    const int retry_after = std::stoi(std::string(r["Retry-After"]));
    EXPECT_GT(retry_after, 30);
    EXPECT_LE(retry_after, 60);
    EXPECT_EQ(std::string(r["RateLimit-Limit"]), "60");
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), "0");
    EXPECT_FALSE(std::string(r["RateLimit-Reset"]).empty());
    // pacerd's 429 body (docs/DESIGN.md §7), retry_after_ms included.
    const json body = json::parse(r.body(), nullptr, /*allow_exceptions=*/false);
    EXPECT_EQ(body["detail"], "rate_limited") << r.body();
    ASSERT_TRUE(body["retry_after_ms"].is_number_integer()) << r.body();
    const auto retry_ms = body["retry_after_ms"].get<std::int64_t>();
    EXPECT_GT(retry_ms, 30'000) << r.body();
    EXPECT_LE(retry_ms, 60'000) << r.body();
    EXPECT_EQ((retry_ms + 999) / 1000, retry_after) << r.body();
  }
  // pacerd saw the real address only.
  HttpClient direct(pacerd.port());
  EXPECT_EQ(post(direct, "/v1/peek", R"({"policy":"web","key":"ip:127.0.0.1","cost":0})")
                .body["remaining"],
            0);
  EXPECT_EQ(post(direct, "/v1/peek", R"({"policy":"web","key":"ip:203.0.113.1","cost":0})")
                .body["remaining"],
            10);  // untouched

  // "/api/" is "web" per client address, then "api" per API key: "web" is spent by now, so it
  // is reset for the rest of the test.
  EXPECT_EQ(post(direct, "/v1/reset", R"({"policy":"web","key":"ip:127.0.0.1"})").status, 200);
  // "api" per API key: a missing key is 401 (passed on by auth_request); keys are separate.
  HttpClient api(port);
  EXPECT_EQ(api.get("/api/x").result_int(), 401);
  for (int i = 0; i < 6; ++i) {
    const auto r = api.get("/api/x", {{"X-API-Key", "key-a"}});
    EXPECT_EQ(r.result_int(), 404) << r;  // pacer-demo has no /api/x: the request got through
  }
  const auto limited = api.get("/api/x", {{"X-API-Key", "key-a"}});
  EXPECT_EQ(limited.result_int(), 429);
  // 10/1h: one token every 6 minutes.
  EXPECT_GT(std::stoi(std::string(limited["Retry-After"])), 300);
  EXPECT_LE(std::stoi(std::string(limited["Retry-After"])), 360);
  EXPECT_EQ(json::parse(limited.body(), nullptr, false)["detail"], "rate_limited")
      << limited.body();
  EXPECT_EQ(api.get("/api/x", {{"X-API-Key", "key-b"}}).result_int(), 404);
  const std::string m = direct.get("/metrics").body();
  EXPECT_EQ(metric(m, "pacerd_decisions_total{policy=\"web\",result=\"denied\"}"), 3) << m;
  EXPECT_EQ(metric(m, "pacerd_decisions_total{policy=\"api\",result=\"denied\"}"), 1) << m;
}

}  // namespace
}  // namespace pacer::testing
