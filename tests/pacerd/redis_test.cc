// pacerd on real redis-server processes: two pacerds share exact limits, each fail mode answers
// while Redis is killed, and SIGTERM lets a request waiting on Redis finish.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "../redis/redis_server.h"
#include "pacerd_process.h"

namespace pacer::testing {
namespace {

using pacer::redis::testing::RedisServer;

std::string redis_config(const RedisServer& redis, const std::string& fail_mode,
                         const std::string& timeout = "200ms") {
  return pacerd_config(redis.url(), fail_mode, "timeout = \"" + timeout + "\"\n");
}

bool wait_connected(HttpClient& client, bool connected, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (get(client, "/v1/config").body["store"]["connected"] == connected) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

TEST(PacerdRedis, TwoProcessesOnOneRedisAdmitExactlyTheGcraCount) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  RedisServer redis;
  Pacerd a(redis_config(redis, "closed", "2s"));
  Pacerd b(redis_config(redis, "closed", "2s"));
  ASSERT_TRUE(a.start()) << a.log();
  ASSERT_TRUE(b.start()) << b.log();
  for (Pacerd* p : {&a, &b}) {
    HttpClient client(p->port());
    ASSERT_TRUE(wait_connected(client, true)) << p->log();
  }
  // 10/1m with burst 5: exactly 6 pass at once, whichever process is asked.
  std::atomic<int> allowed{0}, denied{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      HttpClient client((t % 2 == 0 ? a : b).port());
      for (int i = 0; i < 10; ++i) {
        const auto r = post(client, "/v1/check", R"({"policy":"api","key":"shared"})");
        if (r.status == 200 && r.body["allowed"] == true && r.body["degraded"] == false)
          ++allowed;
        else if (r.status == 200 && r.body["outcome"] == "denied")
          ++denied;
        else
          ++other;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed, 6);
  EXPECT_EQ(denied, 34);
  EXPECT_EQ(other, 0);
  // A batch through one process sees what the other one admitted.
  HttpClient client(b.port());
  const auto peek = post(client, "/v1/peek", R"({"policy":"api","key":"shared"})");
  EXPECT_EQ(peek.body["remaining"], 0);
  HttpClient first(a.port());
  EXPECT_EQ(post(first, "/v1/reset", R"({"policy":"api","key":"shared"})").status, 200);
  EXPECT_EQ(post(client, "/v1/peek", R"({"policy":"api","key":"shared"})").body["remaining"], 6);
  const std::string m = client.get("/metrics").body();
  EXPECT_GT(metric(m, "pacerd_redis_round_trips_total"), 0) << m;
}

TEST(PacerdRedis, ServesFromARedisCluster) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  pacer::redis::testing::RedisCluster cluster(3);
  Pacerd pacerd(pacerd_config(cluster.url(), "closed", "timeout = \"2s\"\n"));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  ASSERT_TRUE(wait_connected(client, true)) << pacerd.log();
  // Keys spread over the slots of all three nodes; each admits exactly burst + 1.
  json batch = json::array();
  for (int k = 0; k < 30; ++k)
    for (int i = 0; i < 7; ++i) batch.push_back({{"policy", "api"}, {"key", std::to_string(k)}});
  const auto r = post(client, "/v1/check", batch.dump());
  ASSERT_EQ(r.status, 200) << r.raw.body();
  int allowed = 0;
  for (const auto& item : r.body) {
    EXPECT_EQ(item["degraded"], false) << item;
    allowed += item["allowed"] == true ? 1 : 0;
  }
  EXPECT_EQ(allowed, 30 * 6);
}

class FailModes : public ::testing::TestWithParam<std::string> {};

TEST_P(FailModes, RedisKilledIsAnsweredByTheFailMode) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  const std::string mode = GetParam();
  RedisServer redis;
  Pacerd pacerd(redis_config(redis, mode));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  ASSERT_TRUE(wait_connected(client, true)) << pacerd.log();
  auto r = post(client, "/v1/check", R"({"policy":"api","key":"before"})");
  EXPECT_EQ(r.body["allowed"], true);
  EXPECT_EQ(r.body["degraded"], false);
  EXPECT_EQ(get(client, "/ready").status, 200);

  redis.kill();
  int allowed = 0;
  for (int i = 0; i < 8; ++i) {
    r = post(client, "/v1/check", R"({"policy":"api","key":"during"})");
    ASSERT_EQ(r.status, 200) << r.raw.body();
    EXPECT_EQ(r.body["degraded"], true) << r.raw.body();
    if (r.body["allowed"] == true) ++allowed;
    if (mode == "closed") {
      EXPECT_EQ(r.body["outcome"], "unavailable");
    }
  }
  const auto auth = client.get("/v1/auth/api", {{"X-API-Key", "k"}});
  if (mode == "open") {
    EXPECT_EQ(allowed, 8);
    EXPECT_EQ(auth.result_int(), 204);
  } else if (mode == "closed") {
    EXPECT_EQ(allowed, 0);
    EXPECT_EQ(auth.result_int(), 403);
    EXPECT_EQ(std::string(auth["X-Pacer-Outcome"]), "unavailable");
    EXPECT_EQ(std::string(auth["Retry-After"]), "5");
  } else {
    EXPECT_EQ(allowed, 6);  // the local store applies the same policy: burst 5 + 1
    EXPECT_EQ(auth.result_int(), 204);
  }
  ASSERT_TRUE(wait_connected(client, false)) << pacerd.log();
  EXPECT_EQ(get(client, "/ready").status, mode == "closed" ? 503 : 200);
  const std::string m = client.get("/metrics").body();
  EXPECT_GE(metric(m, "pacerd_store_errors_total{policy=\"api\"}"), 8) << m;
  EXPECT_EQ(metric(m, "pacerd_store_connected"), 0);

  // Redis comes back: decisions are Redis' again.
  redis.restart();
  ASSERT_TRUE(wait_connected(client, true)) << pacerd.log();
  bool fresh = false;
  for (int i = 0; i < 100 && !fresh; ++i) {
    r = post(client, "/v1/check", check_body("api", "after-" + std::to_string(i)));
    fresh = r.body["degraded"] == false;
    if (!fresh) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(fresh) << r.raw.body();
  EXPECT_EQ(get(client, "/ready").status, 200);
}

INSTANTIATE_TEST_SUITE_P(Pacerd, FailModes, ::testing::Values("open", "closed", "local"));

TEST(PacerdRedis, SigtermLetsARequestWaitingOnRedisFinish) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  RedisServer redis;
  Pacerd pacerd(redis_config(redis, "closed", "5s"));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  HttpClient client(pacerd.port());
  ASSERT_TRUE(wait_connected(client, true)) << pacerd.log();
  EXPECT_EQ(post(client, "/v1/check", R"({"policy":"api","key":"warm"})").body["allowed"], true);

  redis.pause(1500ms);
  std::atomic<int> status{0};
  std::atomic<bool> allowed{false};
  std::thread waiting([&] {
    const auto r = post(client, "/v1/check", R"({"policy":"api","key":"drain"})");
    allowed = r.body["allowed"] == true && r.body["degraded"] == false;
    status = r.status;
  });
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(pacerd.process().signal(SIGTERM));
  waiting.join();
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(allowed);  // answered by Redis after the pause, not by the fail mode
  ASSERT_TRUE(pacerd.process().exited(10s));
  EXPECT_EQ(pacerd.process().exit_code(), 0) << pacerd.log();
  // No new connections once draining.
  EXPECT_THROW(HttpClient late(pacerd.port()), std::exception);
}

}  // namespace
}  // namespace pacer::testing
