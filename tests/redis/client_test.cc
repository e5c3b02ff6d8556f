// The client against real redis-server processes: standalone, AUTH/ACL, SELECT, timeouts,
// crashes and restarts, TLS, and a 3-node cluster with a slot migration under traffic.
#include "pacer/redis/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <thread>

#include "cluster.h"  // hash_slot, to pick keys on a given node
#include "pacer/error.h"
#include "redis_server.h"

namespace pacer::redis {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::RedisCluster;
using testing::RedisServer;
using testing::ServerOptions;
using testing::TestCertificates;

struct Result {
  int calls = 0;
  std::error_code error;
  Reply reply;
  Clock::time_point at;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) GTEST_SKIP() << "redis-server / redis-cli not installed";
  }

  // Generous timeouts: the machine may be busy; tests of timeouts set their own.
  static ClientOptions options(const std::string& url) {
    ClientOptions options;
    options.url = parse_redis_url(url);
    options.command_timeout = 2s;
    return options;
  }

  // Runs io_ on this thread until `done()` holds or `timeout` passes.
  bool run_until(const std::function<bool()>& done, Clock::duration timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      io_.run_for(2ms);
      if (io_.stopped()) io_.restart();
    }
    return true;
  }
  void run_for(Clock::duration duration) {
    const auto until = Clock::now() + duration;
    run_until([&] { return Clock::now() >= until; }, duration + 1s);
  }

  // Starts a command; the result fills in when the handler runs.
  std::shared_ptr<Result> start(Client& client, std::vector<std::string> args,
                                std::string key = "") {
    auto result = std::make_shared<Result>();
    std::vector<std::string_view> views(args.begin(), args.end());
    client.execute(views, key, [result](std::error_code ec, Reply&& reply) {
      ++result->calls;
      result->error = ec;
      result->reply = std::move(reply);
      result->at = Clock::now();
    });
    return result;
  }

  Result call(Client& client, std::vector<std::string> args, std::string key = "") {
    auto result = start(client, std::move(args), std::move(key));
    EXPECT_TRUE(run_until([&] { return result->calls > 0; }, 10s)) << "no answer";
    return *result;
  }

  bool connect(Client& client, Clock::duration timeout = 5s) {
    const bool ok = run_until([&] { return client.connected(); }, timeout);
    EXPECT_TRUE(ok) << "not connected; last error: " << client.last_error();
    return ok;
  }

  asio::io_context io_{1};
};

TEST_F(ClientTest, RoundTrip) {
  RedisServer server;
  Client client(io_, options(server.url()));
  EXPECT_FALSE(client.connected());
  ASSERT_TRUE(connect(client));

  Result ping = call(client, {"PING"});
  EXPECT_FALSE(ping.error);
  EXPECT_EQ(ping.reply.type, Reply::Type::kStatus);
  EXPECT_EQ(ping.reply.str, "PONG");

  const std::string binary("a\0b\r\nc", 6);
  EXPECT_EQ(call(client, {"SET", "greeting", binary}, "greeting").reply.str, "OK");
  Result get = call(client, {"GET", "greeting"}, "greeting");
  EXPECT_EQ(get.reply.type, Reply::Type::kString);
  EXPECT_EQ(get.reply.str, binary);
  EXPECT_EQ(call(client, {"GET", "missing"}).reply.type, Reply::Type::kNil);
  EXPECT_EQ(call(client, {"RPUSH", "list", "x", "y"}).reply.integer, 2);
  Result range = call(client, {"LRANGE", "list", "0", "-1"});
  ASSERT_EQ(range.reply.elements.size(), 2u);
  EXPECT_EQ(range.reply.elements[1].str, "y");

  // A Redis error reply is a reply, not a failure.
  Result wrong = call(client, {"INCR", "greeting"});
  EXPECT_FALSE(wrong.error);
  EXPECT_TRUE(wrong.reply.is_error());
  EXPECT_TRUE(wrong.reply.is_error_prefix("ERR")) << wrong.reply.str;
  Result noscript = call(client, {"EVALSHA", std::string(40, 'a'), "0"});
  EXPECT_TRUE(noscript.reply.is_error_prefix("NOSCRIPT")) << noscript.reply.str;

  // execute_on_all: one reply from the one server.
  std::vector<Reply> all;
  bool done = false;
  client.execute_on_all({"PING"}, [&](std::error_code ec, std::vector<Reply>&& replies) {
    EXPECT_FALSE(ec);
    all = std::move(replies);
    done = true;
  });
  ASSERT_TRUE(run_until([&] { return done; }));
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].str, "PONG");
  EXPECT_EQ(client.last_error(), "");

  // A connect callback registered while connected hears of that connection once.
  int connects = 0;
  client.on_connect([&] { ++connects; });
  run_for(20ms);
  EXPECT_EQ(connects, 1);
}

TEST_F(ClientTest, PipelinesTenThousandConcurrentRequestsInFewWrites) {
  RedisServer server;
  Client client(io_, options(server.url()));
  ASSERT_TRUE(connect(client));
  constexpr int kRequests = 10000;
  const std::uint64_t writes_before = client.writes();
  int answered = 0;
  int out_of_order = 0;
  const auto started = Clock::now();
  asio::post(io_, [&] {
    for (int i = 0; i < kRequests; ++i) {
      client.execute({"INCR", "counter"}, "counter", [&, i](std::error_code ec, Reply&& reply) {
        if (ec || reply.integer != i + 1 || answered != i) ++out_of_order;
        ++answered;
      });
    }
  });
  ASSERT_TRUE(run_until([&] { return answered == kRequests; }, 20s));
  const auto elapsed = Clock::now() - started;
  const std::uint64_t writes = client.writes() - writes_before;
  EXPECT_EQ(out_of_order, 0);
  EXPECT_LE(writes, 20u) << "requests were not pipelined";
  std::printf("10000 INCR: %llu writes, %.1f ms\n", static_cast<unsigned long long>(writes),
              std::chrono::duration<double, std::milli>(elapsed).count());
}

TEST_F(ClientTest, ExecuteFromAnotherThreadRunsHandlersOnTheIoThread) {
  RedisServer server;
  Client client(io_, options(server.url()));
  auto guard = asio::make_work_guard(io_);
  std::thread io_thread([&] { io_.run(); });
  const auto deadline = Clock::now() + 5s;
  while (!client.connected() && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(client.connected());

  std::vector<std::future<std::pair<std::thread::id, std::int64_t>>> futures;
  for (int i = 0; i < 100; ++i) {
    auto promise = std::make_shared<std::promise<std::pair<std::thread::id, std::int64_t>>>();
    futures.push_back(promise->get_future());
    client.execute({"INCR", "n"}, "n", [promise](std::error_code ec, Reply&& reply) {
      promise->set_value({std::this_thread::get_id(), ec ? -1 : reply.integer});
    });
  }
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(futures[i].wait_for(5s), std::future_status::ready);
    const auto [thread, value] = futures[i].get();
    EXPECT_EQ(thread, io_thread.get_id());
    EXPECT_EQ(value, i + 1);
  }
  guard.reset();
  io_.stop();
  io_thread.join();
}

TEST_F(ClientTest, Password) {
  RedisServer server({"--requirepass", "s3cret"}, ServerOptions{.password = "s3cret"});
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  {
    Client client(io_, options("redis://:s3cret@" + address));
    ASSERT_TRUE(connect(client));
    EXPECT_EQ(call(client, {"PING"}).reply.str, "PONG");
  }
  {
    Client client(io_, options("redis://:wrong-pass@" + address));
    ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
    const std::string error = client.last_error();
    EXPECT_NE(error.find("AUTH failed: WRONGPASS"), std::string::npos) << error;
    EXPECT_EQ(error.find("wrong-pass"), std::string::npos) << "password in the message";
    EXPECT_FALSE(client.connected());
    Result result = call(client, {"PING"});
    EXPECT_EQ(result.error, Errc::kStoreUnavailable);
  }
  {
    Client client(io_, options("redis://" + address));
    ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
    EXPECT_NE(client.last_error().find("NOAUTH"), std::string::npos) << client.last_error();
    EXPECT_FALSE(client.connected());
  }
}

TEST_F(ClientTest, AclUser) {
  RedisServer server;
  ASSERT_EQ(server.cli({"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "&*", "+@all"}), "OK");
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  {
    Client client(io_, options("redis://alice:alice-pw@" + address));
    ASSERT_TRUE(connect(client));
    EXPECT_EQ(call(client, {"ACL", "WHOAMI"}).reply.str, "alice");
  }
  {
    Client client(io_, options("redis://alice:nope@" + address));
    ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
    EXPECT_NE(client.last_error().find("WRONGPASS"), std::string::npos) << client.last_error();
  }
}

TEST_F(ClientTest, SelectDatabase) {
  RedisServer server;
  Client db0(io_, options(server.url()));
  Client db5(io_, options(server.url() + "/5"));
  ASSERT_TRUE(connect(db0));
  ASSERT_TRUE(connect(db5));
  EXPECT_EQ(call(db5, {"SET", "where", "five"}).reply.str, "OK");
  EXPECT_EQ(call(db0, {"GET", "where"}).reply.type, Reply::Type::kNil);
  EXPECT_EQ(call(db5, {"GET", "where"}).reply.str, "five");
  EXPECT_EQ(server.cli({"SELECT", "5"}), "OK");

  Client bad(io_, options(server.url() + "/99"));
  ASSERT_TRUE(run_until([&] { return !bad.last_error().empty(); }));
  EXPECT_NE(bad.last_error().find("SELECT failed"), std::string::npos) << bad.last_error();
}

TEST_F(ClientTest, PausedServerTimesRequestsOutAndRecovers) {
  RedisServer server;
  ClientOptions opts = options(server.url());
  opts.command_timeout = 100ms;
  Client client(io_, opts);
  ASSERT_TRUE(connect(client));

  const auto paused_at = Clock::now();
  server.pause(400ms);
  std::vector<std::shared_ptr<Result>> results;
  const auto sent_at = Clock::now();
  for (int i = 0; i < 20; ++i) results.push_back(start(client, {"INCR", "n"}));
  ASSERT_TRUE(run_until(
      [&] { return std::all_of(results.begin(), results.end(), [](auto& r) { return r->calls; }); },
      2s));
  for (const auto& result : results) {
    EXPECT_EQ(result->calls, 1);
    EXPECT_EQ(result->error, Errc::kTimeout);
    const auto waited = result->at - sent_at;
    EXPECT_GE(waited, 95ms);
    EXPECT_LE(waited, 250ms);
  }
  // After the pause the client is usable again (it reconnected when the server stalled).
  run_until([&] { return Clock::now() >= paused_at + 450ms; });
  ASSERT_TRUE(connect(client, 3s));
  Result after = call(client, {"INCR", "n"});
  EXPECT_FALSE(after.error) << after.error.message();
  EXPECT_EQ(after.reply.type, Reply::Type::kInteger);
  EXPECT_NE(client.last_error().find("no reply"), std::string::npos) << client.last_error();
}

TEST_F(ClientTest, LateRepliesAreDroppedAndLaterRequestsGetTheirOwn) {
  RedisServer server({"--enable-debug-command", "yes"});
  ClientOptions opts = options(server.url());
  opts.command_timeout = 100ms;
  Client client(io_, opts);
  ASSERT_TRUE(connect(client));

  auto sleep = start(client, {"DEBUG", "SLEEP", "0.15"});
  std::vector<std::shared_ptr<Result>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(start(client, {"INCR", "n"}));
  ASSERT_TRUE(run_until([&] { return queued.back()->calls > 0; }, 2s));
  EXPECT_EQ(sleep->error, Errc::kTimeout);
  for (const auto& result : queued) EXPECT_EQ(result->error, Errc::kTimeout);
  // The late replies (+OK, 1..5) arrive and are dropped; the next request gets 6, not 1.
  run_for(100ms);
  Result next = call(client, {"INCR", "n"});
  EXPECT_FALSE(next.error) << next.error.message();
  EXPECT_EQ(next.reply.integer, 6);
  EXPECT_EQ(sleep->calls, 1);
}

TEST_F(ClientTest, KilledServerFailsFastAndTheClientReconnectsAfterARestart) {
  RedisServer server;
  ClientOptions opts = options(server.url());
  opts.command_timeout = 100ms;
  Client client(io_, opts);
  int connects = 0;
  client.on_connect([&] { ++connects; });
  ASSERT_TRUE(connect(client));
  EXPECT_EQ(connects, 1);

  server.kill();
  std::vector<std::shared_ptr<Result>> results;
  const auto sent_at = Clock::now();
  for (int i = 0; i < 50; ++i) results.push_back(start(client, {"PING"}));
  ASSERT_TRUE(run_until(
      [&] { return std::all_of(results.begin(), results.end(), [](auto& r) { return r->calls; }); },
      2s));
  for (const auto& result : results) {
    EXPECT_EQ(result->error, Errc::kStoreUnavailable);
    EXPECT_LT(result->at - sent_at, 50ms);
  }
  EXPECT_FALSE(client.connected());
  // While it is down, requests fail at once.
  const auto before = Clock::now();
  Result down = call(client, {"PING"});
  EXPECT_EQ(down.error, Errc::kStoreUnavailable);
  EXPECT_LT(down.at - before, 20ms);

  run_for(300ms);
  server.restart();
  const auto restarted_at = Clock::now();
  ASSERT_TRUE(connect(client, 3s));
  const auto reconnect = Clock::now() - restarted_at;
  EXPECT_LT(reconnect, 1200ms);
  std::printf("reconnected %.0f ms after the restart\n",
              std::chrono::duration<double, std::milli>(reconnect).count());
  EXPECT_EQ(connects, 2);
  EXPECT_EQ(call(client, {"PING"}).reply.str, "PONG");
  EXPECT_FALSE(client.last_error().empty());
}

TEST_F(ClientTest, UnreachableServer) {
  const std::uint16_t port = testing::free_port();
  ClientOptions opts = options("redis://127.0.0.1:" + std::to_string(port));
  Client client(io_, opts);
  ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
  EXPECT_NE(client.last_error().find("connect failed"), std::string::npos) << client.last_error();
  EXPECT_EQ(call(client, {"PING"}).error, Errc::kStoreUnavailable);

  Client unknown(io_, options("redis://no-such-host.invalid"));
  ASSERT_TRUE(run_until([&] { return !unknown.last_error().empty(); }, 3s));
  EXPECT_NE(unknown.last_error().find("no-such-host.invalid"), std::string::npos)
      << unknown.last_error();
}

TEST_F(ClientTest, MaxInFlightFailsFast) {
  RedisServer server;
  ClientOptions opts = options(server.url());
  opts.max_in_flight = 10;
  Client client(io_, opts);
  ASSERT_TRUE(connect(client));
  std::vector<std::shared_ptr<Result>> results;
  asio::post(io_, [&] {
    for (int i = 0; i < 100; ++i) results.push_back(start(client, {"PING"}));
  });
  ASSERT_TRUE(run_until([&] {
    return results.size() == 100 &&
           std::all_of(results.begin(), results.end(), [](auto& r) { return r->calls; });
  }));
  int ok = 0, overloaded = 0;
  for (const auto& result : results) {
    if (!result->error) ++ok;
    if (result->error == Errc::kOverloaded) ++overloaded;
  }
  EXPECT_EQ(ok, 10);
  EXPECT_EQ(overloaded, 90);
}

TEST_F(ClientTest, StopAndDestructionFailPendingRequests) {
  RedisServer server;
  auto client = std::make_unique<Client>(io_, options(server.url()));
  ASSERT_TRUE(connect(*client));
  std::vector<std::shared_ptr<Result>> results;
  asio::post(io_, [&] {
    for (int i = 0; i < 5; ++i) results.push_back(start(*client, {"PING"}));
    client->stop();
    client->stop();
    results.push_back(start(*client, {"PING"}));
  });
  ASSERT_TRUE(run_until([&] {
    return results.size() == 6 &&
           std::all_of(results.begin(), results.end(), [](auto& r) { return r->calls; });
  }));
  for (const auto& result : results) {
    EXPECT_EQ(result->calls, 1);
    EXPECT_EQ(result->error, Errc::kStoreUnavailable);
  }
  EXPECT_FALSE(client->connected());

  // Destroying the client on the io thread answers what is pending, inside the destructor.
  client = std::make_unique<Client>(io_, options(server.url()));
  ASSERT_TRUE(connect(*client));
  results.clear();
  asio::post(io_, [&] {
    for (int i = 0; i < 5; ++i) results.push_back(start(*client, {"PING"}));
    client.reset();
    for (const auto& result : results) {
      EXPECT_EQ(result->calls, 1);
      EXPECT_EQ(result->error, Errc::kStoreUnavailable);
    }
  });
  run_for(50ms);
  EXPECT_EQ(results.size(), 5u);
}

// ---- TLS ----------------------------------------------------------------------------------

TEST_F(ClientTest, Tls) {
  TestCertificates certs;
  RedisServer server({}, ServerOptions{.tls = &certs});
  const std::string url = "rediss://127.0.0.1:" + std::to_string(server.port());
  {
    ClientOptions opts = options(url);
    opts.tls.ca_file = certs.ca_file;
    Client client(io_, opts);
    ASSERT_TRUE(connect(client));
    EXPECT_EQ(call(client, {"PING"}).reply.str, "PONG");
    EXPECT_EQ(call(client, {"SET", "k", std::string(100000, 'x')}).reply.str, "OK");
    EXPECT_EQ(call(client, {"STRLEN", "k"}).reply.integer, 100000);
  }
  {  // The certificate's DNS name, with SNI.
    ClientOptions opts = options(url);
    opts.tls.ca_file = certs.ca_file;
    opts.tls.server_name = "localhost";
    Client client(io_, opts);
    ASSERT_TRUE(connect(client));
  }
  {  // Verification on, CA not trusted (system store; then a wrong CA).
    for (const std::string& ca : {std::string(), certs.other_ca_file}) {
      ClientOptions opts = options(url);
      opts.tls.ca_file = ca;
      Client client(io_, opts);
      ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
      const std::string error = client.last_error();
      EXPECT_NE(error.find("certificate verify failed"), std::string::npos) << error;
      EXPECT_NE(error.find("certificate verification: "), std::string::npos) << error;
      EXPECT_FALSE(client.connected());
      EXPECT_EQ(call(client, {"PING"}).error, Errc::kStoreUnavailable);
    }
  }
  {  // Trusted CA, wrong name.
    ClientOptions opts = options(url);
    opts.tls.ca_file = certs.ca_file;
    opts.tls.server_name = "redis.example.com";
    Client client(io_, opts);
    ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
    EXPECT_NE(client.last_error().find("hostname mismatch"), std::string::npos)
        << client.last_error();
  }
  {  // Verification off.
    ClientOptions opts = options(url);
    opts.tls.verify_peer = false;
    Client client(io_, opts);
    ASSERT_TRUE(connect(client));
  }
  {  // A CA file that does not exist is a configuration error.
    ClientOptions opts = options(url);
    opts.tls.ca_file = "/nonexistent/ca.pem";
    EXPECT_THROW(Client(io_, opts), std::invalid_argument);
  }
}

// ---- Cluster ------------------------------------------------------------------------------

TEST_F(ClientTest, ClusterRoutesKeysToTheirNodes) {
  RedisCluster cluster(3);
  Client client(io_, options(cluster.url(1)));  // one seed is enough
  ASSERT_TRUE(connect(client));

  constexpr int kKeys = 1000;
  std::vector<std::shared_ptr<Result>> sets;
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "key:" + std::to_string(i);
    sets.push_back(start(client, {"SET", key, "value:" + std::to_string(i)}, key));
  }
  ASSERT_TRUE(run_until(
      [&] { return std::all_of(sets.begin(), sets.end(), [](auto& r) { return r->calls; }); }));
  for (const auto& result : sets) {
    ASSERT_FALSE(result->error) << result->error.message();
    ASSERT_EQ(result->reply.str, "OK") << result->reply.str;
  }
  for (int i = 0; i < kKeys; i += 37) {
    const std::string key = "key:" + std::to_string(i);
    EXPECT_EQ(call(client, {"GET", key}, key).reply.str, "value:" + std::to_string(i));
  }
  // Hash tags keep related keys together (a multi-key command would fail with CROSSSLOT).
  EXPECT_EQ(call(client, {"MSET", "{user1}.a", "1", "{user1}.b", "2"}, "{user1}.a").reply.str,
            "OK");

  std::vector<Reply> sizes;
  bool done = false;
  client.execute_on_all({"DBSIZE"}, [&](std::error_code ec, std::vector<Reply>&& replies) {
    EXPECT_FALSE(ec);
    sizes = std::move(replies);
    done = true;
  });
  ASSERT_TRUE(run_until([&] { return done; }));
  ASSERT_EQ(sizes.size(), 3u);
  std::int64_t total = 0;
  for (const Reply& size : sizes) {
    EXPECT_GT(size.integer, 200) << "keys spread over every master";
    total += size.integer;
  }
  EXPECT_EQ(total, kKeys + 2);
}

// A server that takes traffic the moment it starts (pacer-demo under wrk) sends commands before
// the first connection is up: they wait for it, within their deadline, instead of failing.
TEST_F(ClientTest, CommandsSentBeforeTheFirstConnectionWaitForIt) {
  RedisServer server;
  RedisCluster cluster(3);
  for (const std::string& url : {server.url(), cluster.url(1)}) {
    SCOPED_TRACE(url);
    ClientOptions opts = options(url);
    opts.command_timeout = 500ms;
    Client client(io_, opts);
    auto early = start(client, {"SET", "early", "1"}, "early");
    ASSERT_TRUE(run_until([&] { return early->calls > 0; }));
    EXPECT_FALSE(early->error) << early->error.message();
    EXPECT_EQ(early->reply.str, "OK");
  }
  // Nothing to wait for: a server that is not there fails at once, as before.
  ClientOptions opts = options("redis://127.0.0.1:" + std::to_string(testing::free_port()));
  Client nobody(io_, opts);
  run_for(100ms);  // the first attempt is refused
  const auto asked = Clock::now();
  const Result result = call(nobody, {"PING"});
  EXPECT_EQ(result.error, Errc::kStoreUnavailable);
  EXPECT_LT(Clock::now() - asked, 50ms);
}

// The deadline is the caller's, however many hops: a MOVED after 60 ms on a busy node, then a
// paused target, still fail at command_timeout (100 ms), not 100 ms after the redirect.
TEST_F(ClientTest, ClusterRedirectsShareOneDeadline) {
  RedisCluster cluster(3, {"--enable-debug-command", "yes"});
  ClientOptions opts = options(cluster.url());
  opts.command_timeout = 100ms;
  Client client(io_, opts);
  ASSERT_TRUE(connect(client));
  const std::string key = "deadline-key";
  const int slot = internal::hash_slot(key);
  const std::size_t from = cluster.owner_of(slot);
  const std::size_t to = (from + 1) % cluster.size();
  ASSERT_EQ(call(client, {"SET", key, "1"}, key).reply.str, "OK");
  ASSERT_EQ(call(client, {"DEL", key}, key).reply.integer, 1);
  // The (empty) slot now belongs to `to`; the client still routes it to `from`.
  const std::string to_id = cluster.node_id(to);
  for (std::size_t n = 0; n < cluster.size(); ++n)
    ASSERT_EQ(cluster.node(n).cli({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", to_id}),
              "OK");
  cluster.node(to).pause(1000ms);
  std::thread busy([&] { cluster.node(from).cli({"DEBUG", "SLEEP", "0.06"}); });
  std::this_thread::sleep_for(10ms);
  const auto asked = Clock::now();
  const Result result = call(client, {"GET", key}, key);
  const auto took = Clock::now() - asked;
  busy.join();
  EXPECT_EQ(result.error, Errc::kTimeout);
  EXPECT_GE(took, 95ms);
  EXPECT_LT(took, 140ms) << "the redirect got a fresh timeout";
}

TEST_F(ClientTest, ClusterSlotMigrationUnderTraffic) {
  RedisCluster cluster(3);
  Client client(io_, options(cluster.url()));
  ASSERT_TRUE(connect(client));

  const int slot = std::stoi(cluster.node(0).cli({"CLUSTER", "KEYSLOT", "{mig}"}));
  const std::size_t from = cluster.owner_of(slot);
  const std::size_t to = (from + 1) % cluster.size();
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back("{mig}:" + std::to_string(i));
  for (int i = 0; i < 20; ++i) keys.push_back("other:" + std::to_string(i));
  for (int i = 0; i < 20; ++i)  // the migrating keys exist before the migration starts
    ASSERT_EQ(call(client, {"SET", keys[i], "0"}, keys[i]).reply.str, "OK");

  // Traffic on the io thread: 32 loops of INCR over the keys, counting what succeeded.
  std::map<std::string, std::int64_t> counts;
  std::vector<std::string> errors;
  std::atomic<bool> stopping{false};
  std::atomic<int> active{0};
  std::function<void(int, int)> loop = [&](int worker, int n) {
    if (stopping) {
      --active;
      return;
    }
    const std::string& key = keys[(worker * 7 + n) % keys.size()];
    client.execute({"INCR", key}, key, [&, worker, n, key](std::error_code ec, Reply&& reply) {
      if (ec) {
        errors.push_back(key + ": " + ec.message());
      } else if (reply.type != Reply::Type::kInteger) {
        errors.push_back(key + ": " + reply.str);
      } else {
        ++counts[key];
      }
      loop(worker, n + 1);
    });
  };
  auto guard = asio::make_work_guard(io_);
  std::thread io_thread([&] { io_.run(); });
  for (int worker = 0; worker < 32; ++worker) {
    ++active;
    asio::post(io_, [&, worker] { loop(worker, 0); });
  }
  std::this_thread::sleep_for(100ms);
  cluster.migrate_slot(slot, to, [] { std::this_thread::sleep_for(20ms); });
  std::this_thread::sleep_for(200ms);
  stopping = true;
  const auto deadline = Clock::now() + 10s;
  while (active > 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  guard.reset();
  io_.stop();
  io_thread.join();
  io_.restart();
  ASSERT_EQ(active, 0);

  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  // Every INCR the client reported happened exactly once, wherever the key was at the time.
  for (const std::string& key : keys) {
    Result value = call(client, {"GET", key}, key);
    ASSERT_EQ(value.reply.type, Reply::Type::kString) << key << ": " << value.reply.str;
    EXPECT_EQ(std::stoll(value.reply.str), counts[key]) << key;
    EXPECT_GT(counts[key], 0) << key;
  }
  EXPECT_EQ(cluster.owner_of(slot), to);
  // The redirects did happen: the target served ASKING, the source answered ASK and MOVED.
  const std::string target_stats = cluster.node(to).cli({"INFO", "commandstats"});
  EXPECT_NE(target_stats.find("cmdstat_asking:calls="), std::string::npos) << target_stats;
  const std::string source_errors = cluster.node(from).cli({"INFO", "errorstats"});
  EXPECT_NE(source_errors.find("errorstat_ASK:"), std::string::npos) << source_errors;
  EXPECT_NE(source_errors.find("errorstat_MOVED:"), std::string::npos) << source_errors;
  EXPECT_TRUE(client.connected());
}

TEST_F(ClientTest, ClusterNodeDownAndBack) {
  RedisCluster cluster(3);
  ClientOptions opts = options(cluster.url(1));
  opts.command_timeout = 200ms;
  Client client(io_, opts);
  ASSERT_TRUE(connect(client));
  // A key served by node 2 and one served by node 0.
  auto key_on = [&](std::size_t node) {
    for (int i = 0;; ++i) {
      std::string key = "key:" + std::to_string(i);
      if (cluster.owner_of(internal::hash_slot(key)) == node) return key;
    }
  };
  const std::string down_key = key_on(2);
  const std::string up_key = key_on(0);

  cluster.node(2).kill();
  ASSERT_TRUE(run_until([&] { return !client.connected(); }));
  const auto before = Clock::now();
  Result down = call(client, {"SET", down_key, "x"}, down_key);
  EXPECT_EQ(down.error, Errc::kStoreUnavailable);
  EXPECT_LT(down.at - before, 50ms) << "fails fast, no timeout";
  EXPECT_EQ(call(client, {"SET", up_key, "x"}, up_key).reply.str, "OK");

  cluster.node(2).restart();  // same nodes.conf: same id and slots
  cluster.wait_ok();
  ASSERT_TRUE(connect(client, 5s));
  Result back = call(client, {"SET", down_key, "y"}, down_key);
  EXPECT_FALSE(back.error) << back.error.message();
  EXPECT_EQ(back.reply.str, "OK");
}

TEST_F(ClientTest, ClusterModeAgainstAStandaloneServerSaysSo) {
  RedisServer server;
  Client client(io_, options("redis+cluster://127.0.0.1:" + std::to_string(server.port())));
  ASSERT_TRUE(run_until([&] { return !client.last_error().empty(); }));
  EXPECT_NE(client.last_error().find("cluster support disabled"), std::string::npos)
      << client.last_error();
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(call(client, {"GET", "k"}, "k").error, Errc::kStoreUnavailable);
}

}  // namespace
}  // namespace pacer::redis
