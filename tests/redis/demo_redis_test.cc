// pacer-demo on Redis over real sockets: the same answers as on the in-process store, and
// /health and /metrics report the connection and the errors when Redis goes away.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../demo/http_client.h"
#include "demo_app.h"
#include "redis_server.h"

namespace pacer::demo {
namespace {

using nlohmann::json;
using pacer::redis::testing::RedisServer;

TEST(DemoOnRedis, LimitsHealthAndMetricsFollowRedis) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  RedisServer redis;
  std::unique_ptr<DemoApp> app;
  beast::Server server(
      {.host = "127.0.0.1", .port = 0, .threads = 2},
      [&app](beast::Request&& req, const beast::ClientEndpoint& conn, beast::Send send) {
        app->handle(std::move(req), conn, std::move(send));
      });
  std::vector<boost::asio::io_context*> workers;
  for (unsigned i = 0; i < server.threads(); ++i) workers.push_back(&server.io_context(i));
  app = std::make_unique<DemoApp>(
      DemoConfig{.service_name = "redis-demo-" + std::to_string(::getpid()),
                 .redis_url = redis.url(),
                 .redis_timeout = std::chrono::milliseconds(200)},
      workers);
  server.start();

  testing::HttpClient c(server.port());
  bool connected = false;
  for (int i = 0; i < 200 && !connected; ++i) {
    connected = c.get("/health").result_int() == 200;
    if (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(connected);
  for (int i = 0; i < 6; ++i) {
    const auto r = c.get("/limited");
    ASSERT_EQ(r.result_int(), 200) << i;
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), std::to_string(5 - i));
  }
  EXPECT_EQ(c.get("/limited").result_int(), 429);
  EXPECT_EQ(json::parse(c.get("/health").body())["redis"], "connected");
  const std::string prometheus = c.get("/metrics/prometheus").body();
  // 6 admitted + 1 denied; one more if a script reload raced the first check.
  const std::string sample = "\npacer_redis_round_trips_total ";
  const auto at = prometheus.find(sample);
  ASSERT_NE(at, std::string::npos) << prometheus;
  const int round_trips = std::stoi(prometheus.substr(at + sample.size()));
  EXPECT_GE(round_trips, 7);
  EXPECT_LE(round_trips, 8);
  EXPECT_NE(prometheus.find("pacer_store_connected 1\n"), std::string::npos);

  redis.kill();
  // A route Redis has not denied: the store fails, fail mode "open" lets it through.
  EXPECT_EQ(c.get("/custom").result_int(), 200);
  const auto health = c.get("/health");
  EXPECT_EQ(health.result_int(), 503);
  EXPECT_EQ(json::parse(health.body()),
            json::parse(R"({"status":"unhealthy","service":")" + app->config().service_name +
                        R"(","redis":"disconnected"})"));
  const json metrics = json::parse(c.get("/metrics").body());
  EXPECT_EQ(metrics["connected"], false);
  EXPECT_GE(metrics["limiter"]["redis_errors"].get<int>(), 1);

  server.stop();
  server.wait();
  app.reset();
}

}  // namespace
}  // namespace pacer::demo
