// Hostile input on real sockets against pacer-demo on the in-process store: every request with
// random bytes is followed by a normal one that must be answered 200 or 429. The Redis variant
// is tests/redis/demo_hostile_test.cc; the driver is hostile_driver.h.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "demo_app.h"
#include "hostile_driver.h"

namespace pacer::demo {
namespace {

TEST(DemoHostile, RandomBytesNeverHurtTheNextRequestOnTheMemoryStore) {
  DemoApp app(DemoConfig{.fail_mode = FailMode::kClosed});
  beast::Server server(
      {.host = "127.0.0.1", .port = 0, .threads = 2},
      [&app](beast::Request&& req, const beast::ClientEndpoint& conn, beast::Send send) {
        app.handle(std::move(req), conn, std::move(send));
      });
  server.start();
  const std::uint32_t seed = testing::hostile::seed_from_environment();
  std::printf("hostile input: seed %u (replay with PACER_HOSTILE_SEED=%u)\n", seed, seed);
  const auto report = testing::hostile::run({.port = server.port(), .seed = seed});
  std::printf("hostile input: %s\n", report.summary().c_str());
  EXPECT_TRUE(report.failures.empty()) << "seed " << seed << ": " << report.summary();
  EXPECT_EQ(report.rounds, 10'000) << report.summary();
  server.stop();
  server.wait();
}

}  // namespace
}  // namespace pacer::demo
