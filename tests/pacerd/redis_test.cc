// pacerd on real redis-server processes: two pacerds share exact limits, each fail mode answers
// while Redis is killed, and SIGTERM lets a request waiting on Redis finish.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../redis/redis_server.h"
#include "pacerd_process.h"

namespace pacer::testing {
namespace {

using pacer::redis::testing::RedisServer;
using pacer::redis::testing::TestCertificates;

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
  const auto peek = post(client, "/v1/peek", R"({"policy":"api","key":"shared","cost":0})");
  EXPECT_EQ(peek.body["remaining"], 0);
  HttpClient first(a.port());
  EXPECT_EQ(post(first, "/v1/reset", R"({"policy":"api","key":"shared"})").status, 200);
  EXPECT_EQ(
      post(client, "/v1/peek", R"({"policy":"api","key":"shared","cost":0})").body["remaining"], 6);
  expect_peek_is_the_next_check(client, "peek-contract");
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

// A request on its own connection, in a thread; failures are recorded, never thrown.
class RequestInThread {
 public:
  RequestInThread(std::uint16_t port, std::string target, std::string body)
      : thread_([this, port, target = std::move(target), body = std::move(body)] {
          try {
            HttpClient client(port);
            const auto r = post(client, target, body);
            body_ = r.body;
            status_ = r.status;
          } catch (const std::exception& e) {
            error_ = e.what();
            status_ = -1;
          }
        }) {}
  ~RequestInThread() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // 0 while unanswered; -1 when it failed (see error()).
  int status() const { return status_; }
  // After join().
  const json& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  std::atomic<int> status_{0};
  json body_;
  std::string error_;
  std::thread thread_;
};

bool refuses_connections(std::uint16_t port) {
  try {
    HttpClient probe(port);
    return false;
  } catch (const std::exception&) {
    return true;
  }
}

// SIGTERM while requests on both listeners wait on Redis: neither listener takes a new
// connection, and both requests are answered by Redis once it resumes.
TEST(PacerdRedis, SigtermDrainsBothListenersWhileRequestsWaitOnRedis) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  RedisServer redis;
  Pacerd pacerd(pacerd_config(redis.url(), "closed",
                              "timeout = \"5s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  ASSERT_NE(pacerd.admin_port(), 0) << pacerd.log();
  HttpClient admin(pacerd.admin_port());
  ASSERT_TRUE(wait_connected(admin, true)) << pacerd.log();
  HttpClient main(pacerd.port());
  EXPECT_EQ(post(main, "/v1/check", R"({"policy":"api","key":"warm"})").body["allowed"], true);

  redis.pause(3000ms);
  RequestInThread check(pacerd.port(), "/v1/check", R"({"policy":"api","key":"drain"})");
  RequestInThread reset(pacerd.admin_port(), "/v1/reset", R"({"policy":"api","key":"warm"})");
  // Both are in flight when the server counts them (and the /metrics request asking).
  double in_flight = 0;
  for (int i = 0; i < 200 && in_flight < 3; ++i) {
    in_flight = metric(admin.get("/metrics").body(), "pacerd_http_requests_in_flight");
    if (in_flight < 3) std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(in_flight, 3) << pacerd.log();
  ASSERT_EQ(check.status(), 0);
  ASSERT_EQ(reset.status(), 0);

  ASSERT_TRUE(pacerd.process().signal(SIGTERM));
  bool main_closed = false, admin_closed = false;
  for (int i = 0; i < 100 && !(main_closed && admin_closed); ++i) {
    main_closed = main_closed || refuses_connections(pacerd.port());
    admin_closed = admin_closed || refuses_connections(pacerd.admin_port());
    if (!(main_closed && admin_closed)) std::this_thread::sleep_for(10ms);
  }
  // Both listeners closed while the requests still waited on Redis.
  const bool still_waiting = check.status() == 0 && reset.status() == 0;
  EXPECT_TRUE(main_closed) << pacerd.log();
  EXPECT_TRUE(admin_closed) << pacerd.log();
  EXPECT_TRUE(still_waiting);

  check.join();
  reset.join();
  EXPECT_EQ(check.status(), 200) << check.error();
  // Answered by Redis after the pause, not by the fail mode.
  EXPECT_EQ(check.body()["allowed"], true) << check.body();
  EXPECT_EQ(check.body()["degraded"], false) << check.body();
  EXPECT_EQ(reset.status(), 200) << reset.error();
  EXPECT_EQ(reset.body()["reset"], true) << reset.body();
  ASSERT_TRUE(pacerd.process().exited(10s));
  EXPECT_EQ(pacerd.process().exit_code(), 0) << pacerd.log();
}

// [store.tls] against a real TLS redis-server, with the certificates the library's own TLS tests
// make (tests/redis/redis_server.h): the CA verifies the server, server_name is the name checked,
// and a server that verifies clients admits pacerd with its certificate and key.
TEST(PacerdRedis, StoreTlsSettingsReachATlsRedis) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  TestCertificates certs;
  // A client certificate from the same CA.
  const std::filesystem::path dir = std::filesystem::path(certs.ca_file).parent_path();
  const std::string client_cert = (dir / "client.crt").string();
  const std::string client_key = (dir / "client.key").string();
  std::ofstream(dir / "client.ext") << "extendedKeyUsage=clientAuth\n";
  int status = 0;
  const std::string output = run(
      "cd " + shell_quote(dir.string()) +
          " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
          "client.key -out client.csr -subj /CN=pacerd 2>&1 && openssl x509 -req -in client.csr "
          "-CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile client.ext "
          "2>&1",
      &status);
  ASSERT_EQ(status, 0) << output;
  RedisServer redis({}, {.tls = &certs});
  ASSERT_EQ(redis.url().rfind("rediss://", 0), 0u);

  auto config = [&](const std::string& tls) {
    return pacerd_config(redis.url(), "open", "timeout = \"500ms\"\n[store.tls]\n" + tls);
  };
  int admitted = 0;
  auto connects = [&](const std::string& tls, bool expected) {
    Pacerd pacerd(config(tls));
    EXPECT_TRUE(pacerd.start()) << pacerd.log();
    HttpClient client(pacerd.port());
    if (expected) {
      EXPECT_TRUE(wait_connected(client, true)) << tls << pacerd.log();
      // Counted in Redis: each pacerd sees what the ones before it spent.
      const auto r = post(client, "/v1/check", check_body("api", "tls"));
      EXPECT_EQ(r.body["degraded"], false) << r.raw;
      EXPECT_EQ(r.body["remaining"], 5 - admitted++) << r.raw;
      EXPECT_EQ(get(client, "/v1/config").body["store"]["tls"]["ca_file"], certs.ca_file);
    } else {
      // Not within a second (a handshake takes milliseconds); still up, answered by the fail
      // mode (open), never by a server that could not be verified.
      EXPECT_FALSE(wait_connected(client, true, 1s)) << tls << pacerd.log();
      EXPECT_EQ(post(client, "/v1/check", check_body("api", "tls")).body["degraded"], true);
    }
  };
  const std::string ca = "ca_file = \"" + certs.ca_file + "\"\n";
  connects(ca, true);
  connects(ca + "server_name = \"localhost\"\n", true);            // the certificate names it
  connects(ca + "server_name = \"redis.example\"\n", false);       // it does not
  connects("ca_file = \"" + certs.other_ca_file + "\"\n", false);  // a CA that signed nothing

  // --check-config shows the settings; a key that is not the certificate's is refused.
  ScratchDir scratch;
  const auto file = (scratch.path() / "tls.toml").string();
  const std::string client =
      "cert_file = \"" + client_cert + "\"\nkey_file = \"" + client_key + "\"\n";
  std::ofstream(file) << config(ca + client);
  auto [rc, out] = run_command(std::string(PACERD_PATH) + " --check-config " + shell_quote(file));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("store tls       CA " + certs.ca_file + "; client certificate " + client_cert +
                     " (key " + client_key + ")"),
            std::string::npos)
      << out;
  std::ofstream(file) << config(ca + "cert_file = \"" + client_cert + "\"\nkey_file = \"" +
                                certs.key_file + "\"\n");
  std::tie(rc, out) =
      run_command(std::string(PACERD_PATH) + " --check-config " + shell_quote(file) + " 2>&1");
  EXPECT_EQ(rc, 2) << out;
  EXPECT_NE(out.find("store.tls.key_file = \"" + certs.key_file +
                     "\": not the PEM private key of cert_file"),
            std::string::npos)
      << out;

  // The server now verifies clients: only with the client certificate does pacerd get in.
  ASSERT_EQ(redis.cli({"CONFIG", "SET", "tls-auth-clients", "yes"}), "OK");
  connects(ca, false);
  connects(ca + client, true);
}

}  // namespace
}  // namespace pacer::testing
