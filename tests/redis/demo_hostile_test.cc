// Hostile input on real sockets against pacer-demo on Redis with fail mode "closed" (issue 6):
// every request with random bytes is followed by a normal one that must be answered 200 or 429;
// a 503 would mean the worker's Redis connection stopped working. The driver is
// tests/demo/hostile_driver.h; the in-process variant is tests/demo/hostile_test.cc.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "../demo/hostile_driver.h"
#include "../demo/http_client.h"
#include "demo_app.h"
#include "redis_server.h"

namespace pacer::demo {
namespace {

using pacer::redis::testing::RedisServer;

TEST(DemoHostileOnRedis, RandomBytesNeverHurtTheNextRequestWithFailModeClosed) {
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
  app =
      std::make_unique<DemoApp>(DemoConfig{.service_name = "hostile-" + std::to_string(::getpid()),
                                           .redis_url = redis.url(),
                                           .redis_timeout = std::chrono::milliseconds(500),
                                           .fail_mode = FailMode::kClosed},
                                workers);
  server.start();
  {
    // Connected before the run: with fail mode "closed" nothing passes until then.
    testing::HttpClient c(server.port());
    bool connected = false;
    for (int i = 0; i < 500 && !connected; ++i) {
      connected = c.get("/health").result_int() == 200;
      if (!connected) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(connected);
  }

  const std::uint32_t seed = testing::hostile::seed_from_environment();
  std::printf("hostile input on Redis: seed %u (replay with PACER_HOSTILE_SEED=%u)\n", seed, seed);
  const auto report = testing::hostile::run({.port = server.port(), .seed = seed});
  std::printf("hostile input on Redis: %s\n", report.summary().c_str());
  EXPECT_TRUE(report.failures.empty()) << "seed " << seed << ": " << report.summary();
  EXPECT_EQ(report.rounds, 10'000) << report.summary();
  server.stop();
  server.wait();
  app.reset();
}

}  // namespace
}  // namespace pacer::demo
