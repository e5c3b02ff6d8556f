// Issue 20, "Nothing bypasses a limit under pressure": each reproduction of the issue as a test,
// against the real binaries (pacer-demo, pacerd) and real servers (redis-server). Label
// `reliability`: ctest --preset dev -L reliability.
//
// - slow request bodies at 1,100 connections under `ulimit -n 1024`: health checks answered
// - a body deadline that cuts a trickle and not a fast upload; the per-client connection cap
// - 8 concurrent 1,000-item batches on Redis: no item and no bystander's check answered by the
//   fail mode; a batch of 10,000 items answered fully
// - a configuration rewritten in place in two writes: no request sees a missing policy
// - HTTP/1.1 without exactly one Host: 400; at SIGTERM, idle keep-alive connections get no bytes
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../demo/raw_client.h"
#include "../pacerd/nginx_process.h"
#include "../pacerd/pacerd_process.h"
#include "../redis/redis_server.h"

namespace pacer::testing {
namespace {

using pacer::redis::testing::RedisServer;

// The test itself holds more than 1,024 sockets.
void raise_own_descriptor_limit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

// A POST whose header is complete and whose body (100,000 bytes announced) trickles in.
RawClient slow_body(std::uint16_t port) {
  RawClient client(port, 2s);
  if (client.connected()) {
    client.send_all(
        "POST /v1/check HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n[");
  }
  return client;
}

struct HealthTally {
  int asked = 0;
  int answered_in_time = 0;  // 200 within 1 s
};

// `slow_count` slow-body connections to `attack_port`, kept open (reopened when the server closes
// one) while /health is asked `rounds` times on each of `health_ports`, each within 1 s.
std::vector<HealthTally> slow_bodies(std::uint16_t attack_port,
                                     const std::vector<std::uint16_t>& health_ports,
                                     int slow_count = 1100, int rounds = 39) {
  std::vector<RawClient> slow;
  slow.reserve(static_cast<std::size_t>(slow_count));
  for (int i = 0; i < slow_count; ++i) slow.push_back(slow_body(attack_port));
  std::vector<HealthTally> tally(health_ports.size());
  for (int round = 0; round < rounds; ++round) {
    for (auto& client : slow) {
      if (!client.connected() || ::send(client.fd(), "1", 1, MSG_NOSIGNAL | MSG_DONTWAIT) <= 0) {
        client = slow_body(attack_port);
      }
    }
    for (std::size_t i = 0; i < health_ports.size(); ++i) {
      ++tally[i].asked;
      const auto sent = std::chrono::steady_clock::now();
      RawClient health(health_ports[i], 1s);
      if (!health.connected()) continue;
      auto response = health.request("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
      if (response && response->status == 200 && std::chrono::steady_clock::now() - sent <= 1s)
        ++tally[i].answered_in_time;
    }
    std::this_thread::sleep_for(50ms);
  }
  return tally;
}

void expect_95_percent(const std::vector<HealthTally>& tally, const std::string& what) {
  for (std::size_t i = 0; i < tally.size(); ++i) {
    std::printf("%s, listener %zu: %d of %d health checks answered within 1 s\n", what.c_str(), i,
                tally[i].answered_in_time, tally[i].asked);
    EXPECT_GE(tally[i].answered_in_time * 100, tally[i].asked * 95) << what << " listener " << i;
  }
}

TEST(Reliability, SlowBodiesDoNotStopHealthChecksOnPacerDemo) {
  raise_own_descriptor_limit();
  DemoProcess demo({"--port", "0", "--threads", "2"}, {.shell_prefix = "ulimit -n 1024"});
  ASSERT_TRUE(demo.wait_listening(10s)) << demo.log();
  expect_95_percent(slow_bodies(demo.port(), {demo.port()}), "pacer-demo");
  EXPECT_EQ(demo.stop(), 0);
}

TEST(Reliability, SlowBodiesDoNotStopHealthChecksOnEitherPacerdListener) {
  raise_own_descriptor_limit();
  Pacerd pacerd(pacerd_config() + "\n[admin]\nlisten = \"127.0.0.1:0\"\n", {}, "ulimit -n 1024");
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  ASSERT_NE(pacerd.admin_port(), 0) << pacerd.log();
  expect_95_percent(slow_bodies(pacerd.port(), {pacerd.port(), pacerd.admin_port()}),
                    "pacerd, attack on the main listener");
  expect_95_percent(slow_bodies(pacerd.admin_port(), {pacerd.admin_port()}, 1100, 20),
                    "pacerd, attack on the admin listener");
}

// The body deadline: a trickle is cut with 408 after body_timeout; an upload that keeps up with
// min_body_rate is not, even past body_timeout; the per-client cap refuses the fifth connection.
TEST(Reliability, BodyDeadlineCutsATrickleNotAFastUploadAndThePerClientCapHolds) {
  Pacerd pacerd(
      "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 2\nbody_timeout = \"1s\"\n"
      "min_body_rate = 1000\nmax_connections_per_client = 4\n"
      "[[policy]]\nname = \"api\"\nrates = [{ limit = \"10/1h\" }]\n");
  ASSERT_TRUE(pacerd.start()) << pacerd.log();

  // A trickle: 10 bytes a second earns nothing; the connection is closed after about a second
  // (the stream's deadline closes the socket: no answer can be written then).
  {
    RawClient trickle(pacerd.port(), 5s);
    ASSERT_TRUE(
        trickle.send_all("POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{"));
    const auto start = std::chrono::steady_clock::now();
    bool closed = false;
    for (int i = 0; i < 40 && !closed; ++i) {
      closed = ::send(trickle.fd(), " ", 1, MSG_NOSIGNAL) <= 0;
      std::this_thread::sleep_for(100ms);
    }
    std::string received;
    EXPECT_TRUE(trickle.read_until_closed(&received));
    EXPECT_EQ(received, "");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GT(took, 900ms);
    EXPECT_LT(took, 3s);
  }
  // Steady at 2,000 bytes a second for 2.5 s (past body_timeout): each second sent earns more.
  {
    RawClient upload(pacerd.port(), 5s);
    const std::string item = R"({"policy":"api","key":"k","cost":0})";
    std::string body = "[" + item;
    while (body.size() < 5000 - item.size() - 2) body += "," + item;
    body += "]";
    body.resize(5000, ' ');  // whitespace after the JSON value is allowed
    ASSERT_TRUE(
        upload.send_all("POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n"));
    for (std::size_t sent = 0; sent < body.size(); sent += 200) {
      ASSERT_TRUE(upload.send_all(std::string_view(body).substr(sent, 200))) << sent;
      std::this_thread::sleep_for(100ms);
    }
    auto response = upload.read_response();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200) << response->body.substr(0, 200);
  }
  // Four connections from 127.0.0.1 are served; a fifth is closed at once; one of the four
  // closing makes room again.
  {
    std::vector<RawClient> four;
    for (int i = 0; i < 4; ++i) {
      four.emplace_back(pacerd.port());
      auto r = four.back().request("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
      ASSERT_TRUE(r) << i;
      EXPECT_EQ(r->status, 200);
    }
    RawClient fifth(pacerd.port(), 2s);
    EXPECT_FALSE(fifth.request("GET /health HTTP/1.1\r\nHost: t\r\n\r\n"));
    four.pop_back();
    bool served = false;
    for (int attempt = 0; attempt < 50 && !served; ++attempt) {
      RawClient again(pacerd.port(), 2s);
      auto r = again.request("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
      served = r && r->status == 200;
      if (!served) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(served);
  }
  EXPECT_NE(pacerd.log().find("max_connections_per_client"), std::string::npos);
}

// Items of a batch answered by the fail mode (`degraded`), in a JSON array or a single answer.
int degraded_items(const json& body) {
  if (body.is_object()) return body.value("degraded", false) ? 1 : 0;
  int count = 0;
  for (const auto& item : body) count += item.value("degraded", false) ? 1 : 0;
  return count;
}

std::string batch_body(const std::string& prefix, int items) {
  std::string body = "[";
  for (int i = 0; i < items; ++i) {
    if (i != 0) body += ',';
    body += check_body("api", prefix + std::to_string(i));
  }
  return body + "]";
}

// Eight clients sending batches of 1,000 keys at once, a ninth sending single checks: every
// item and every single check decided by Redis (none by the fail mode, none timed out).
TEST(Reliability, ConcurrentBatchesOnRedisAreAllDecidedByRedis) {
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
  RedisServer redis;
  Pacerd pacerd(
      pacerd_config(redis.url(), "open", "timeout = \"50ms\"\n[api]\nmax_batch = 10000\n"));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  {
    HttpClient client(pacerd.port());
    for (int i = 0; i < 200 && get(client, "/v1/config").body["store"]["connected"] != true; ++i)
      std::this_thread::sleep_for(20ms);
  }
  std::atomic<int> items{0}, degraded{0}, failed{0}, victim_checks{0}, victim_degraded{0};
  std::atomic<bool> done{false};
  std::thread victim([&] {
    HttpClient client(pacerd.port());
    for (int i = 0; !done.load(); ++i) {
      const auto r = post(client, "/v1/check", check_body("api", "victim" + std::to_string(i)));
      ++victim_checks;
      if (r.status != 200 || degraded_items(r.body) != 0) ++victim_degraded;
    }
  });
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client(pacerd.port());
      for (int round = 0; round < 3; ++round) {
        const auto r =
            post(client, "/v1/check",
                 batch_body("c" + std::to_string(c) + "r" + std::to_string(round) + "k", 1000));
        if (r.status != 200 || !r.body.is_array() || r.body.size() != 1000) {
          ++failed;
          continue;
        }
        items += 1000;
        degraded += degraded_items(r.body);
      }
    });
  }
  for (auto& t : clients) t.join();
  // One batch of 10,000 items, answered in full.
  HttpClient big(pacerd.port());
  const auto r = post(big, "/v1/check", batch_body("big", 10000));
  done = true;
  victim.join();
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(r.body.is_array());
  EXPECT_EQ(r.body.size(), 10000u);
  EXPECT_EQ(degraded_items(r.body), 0);
  std::printf(
      "batches: %d items, %d answered by the fail mode; victim: %d checks, %d not by Redis\n",
      items.load(), degraded.load(), victim_checks.load(), victim_degraded.load());
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(items, 24000);
  EXPECT_EQ(degraded, 0);
  EXPECT_GT(victim_checks, 0);
  EXPECT_EQ(victim_degraded, 0);
  EXPECT_EQ(pacerd.log().find("reconnecting"), std::string::npos) << pacerd.log().substr(0, 3000);
}

std::string three_policies(const std::string& limit) {
  std::string text = "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 2\n";
  for (const char* name : {"a", "b", "c"}) {
    text += std::string("\n[[policy]]\nname = \"") + name + "\"\nrates = [{ limit = \"" + limit +
            "\" }]\nidentity = \"client_ip\"\n";
  }
  return text;
}

// The file rewritten in place (not renamed) in two writes 1.6 s apart, the first half a valid
// file with policy "a" only: no request may see "b" or "c" missing; the whole new file is
// loaded once the writes end.
TEST(Reliability, AConfigWrittenInTwoPartsIsNeverLoadedHalfWay) {
  Pacerd pacerd(three_policies("1000/1s"));
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  std::atomic<bool> done{false};
  std::atomic<int> checks{0}, unknown{0};
  std::thread traffic([&] {
    HttpClient client(pacerd.port());
    for (int i = 0; !done.load(); ++i) {
      const auto r =
          post(client, "/v1/check", check_body(i % 2 == 0 ? "b" : "c", "k" + std::to_string(i), 0));
      ++checks;
      if (r.status != 200) ++unknown;
      std::this_thread::sleep_for(2ms);
    }
  });
  const std::string next = three_policies("2000/1s");
  const std::size_t half = next.find("[[policy]]\nname = \"b\"");
  {
    std::ofstream file(pacerd.config_path(), std::ios::binary | std::ios::trunc);
    file << next.substr(0, half) << std::flush;
    std::this_thread::sleep_for(1600ms);
    file << next.substr(half) << std::flush;
  }
  HttpClient client(pacerd.port());
  bool loaded = false;
  for (int i = 0; i < 100 && !loaded; ++i) {
    const auto policies = get(client, "/v1/policies").body;
    loaded = policies["policies"].size() == 3 &&
             policies["policies"][1]["rates"][0]["limit"] == "2000/1s";
    if (!loaded) std::this_thread::sleep_for(100ms);
  }
  done = true;
  traffic.join();
  std::printf("config written in two parts: %d checks, %d refused\n", checks.load(),
              unknown.load());
  EXPECT_TRUE(loaded) << get(client, "/v1/policies").raw.body() << pacerd.log();
  EXPECT_GT(checks, 100);
  EXPECT_EQ(unknown, 0) << pacerd.log();
}

// RFC 9112 §3.2 on both servers: HTTP/1.1 without exactly one Host is 400 and never reaches the
// handler; HTTP/1.0 without Host is fine.
TEST(Reliability, HostIsRequiredExactlyOnceInHttp11) {
  DemoProcess demo({"--port", "0", "--threads", "1"});
  ASSERT_TRUE(demo.wait_listening(10s)) << demo.log();
  Pacerd pacerd(pacerd_config());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  for (const std::uint16_t port : {demo.port(), pacerd.port()}) {
    for (const char* bad :
         {"GET /health HTTP/1.1\r\n\r\n", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
          "GET /health HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"}) {
      RawClient client(port);
      auto r = client.request(bad);
      ASSERT_TRUE(r) << bad;
      EXPECT_EQ(r->status, 400) << bad;
      EXPECT_NE(r->body.find("Host"), std::string::npos) << r->body;
      EXPECT_TRUE(r->says_close());
    }
    RawClient old(port);
    auto r = old.request("GET /health HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    // The next request on a fresh connection is served as ever.
    RawClient next(port);
    r = next.request("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

// At SIGTERM, keep-alive connections with no request in flight are closed without a byte;
// a request in flight is answered (Connection: close).
TEST(Reliability, SigtermWritesNothingToIdleKeepAliveConnections) {
  for (int run = 0; run < 3; ++run) {
    Pacerd pacerd(pacerd_config());
    ASSERT_TRUE(pacerd.start()) << pacerd.log();
    std::vector<RawClient> idle;
    for (int i = 0; i < 100; ++i) {
      idle.emplace_back(pacerd.port(), 3s);
      auto r = idle.back().request("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200);
    }
    RawClient busy(pacerd.port(), 3s);
    const std::string body = R"({"policy":"api","key":"k","cost":0})";
    ASSERT_TRUE(busy.send_all("POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n"));
    std::this_thread::sleep_for(50ms);
    pacerd.process().signal(SIGTERM);
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(busy.send_all(body));
    auto answer = busy.read_response();
    ASSERT_TRUE(answer) << "the request in flight is answered";
    EXPECT_EQ(answer->status, 200);
    EXPECT_TRUE(answer->says_close());
    int wrote = 0;
    for (auto& client : idle) {
      std::string received;
      client.read_until_closed(&received);
      if (!received.empty()) ++wrote;
    }
    EXPECT_EQ(wrote, 0) << "run " << run;
    EXPECT_EQ(pacerd.process().stop(), 0);
  }
}

// The nginx example in front of the API: a client sending a new made-up X-API-Key with every
// request used to reach the app every time (25 of 25). Now "web" (per client address) is asked
// first: at most its burst passes, whatever the keys.
TEST(Reliability, RotatingApiKeysBehindTheNginxExampleGetNoMoreThanThePerAddressLimit) {
  if (nginx_binary().empty()) GTEST_SKIP() << "nginx not installed";
  DemoProcess upstream({"--port", "0", "--threads", "1"});
  ASSERT_TRUE(upstream.wait_listening(10s)) << upstream.log();
  Pacerd pacerd(NginxWithExample::pacerd_toml());
  ASSERT_TRUE(pacerd.start()) << pacerd.log();
  auto front = NginxWithExample::start(pacerd.port(), upstream.port());
  ASSERT_TRUE(front.nginx) << front.failures;
  HttpClient client(front.port);
  int reached = 0, limited = 0, other = 0;
  for (int i = 0; i < 25; ++i) {
    const auto r = client.get("/api/x", {{"X-API-Key", "made-up-" + std::to_string(i)}});
    if (r.result_int() == 404) {
      ++reached;  // pacer-demo has no /api/x: the request got through
    } else if (r.result_int() == 429) {
      ++limited;
    } else {
      ++other;
    }
  }
  std::printf("rotating API keys: %d of 25 reached the app, %d limited\n", reached, limited);
  // "web": 60/1h with burst 9: ten at once.
  EXPECT_EQ(reached, 10);
  EXPECT_EQ(limited, 15);
  EXPECT_EQ(other, 0);
}

}  // namespace
}  // namespace pacer::testing
