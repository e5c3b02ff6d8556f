// Issue 6: one bad request, handler or shutdown must never hurt anyone else. Each test names the
// item it covers; against real redis-server processes. Also built under ASan and TSan by the
// test command (scripts/test.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <memory>
#include <thread>

#include "pacer/http/http_limiter.h"
#include "pacer/limiter.h"
#include "pacer/redis/client.h"
#include "pacer/redis/redis_store.h"
#include "redis_server.h"

namespace pacer::redis {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::RedisServer;

#define SKIP_WITHOUT_REDIS() \
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed"

// Runs an io_context on its own thread the way the Beast worker does: an exception that
// escapes a handler is logged and run() starts again (so a test sees the damage it leaves,
// not a terminated process).
class IoThread {
 public:
  IoThread()
      : guard_(asio::make_work_guard(io_)), thread_([this] {
          for (;;) {
            try {
              io_.run();
              return;
            } catch (const std::exception& e) {
              escaped_.fetch_add(1);
            }
          }
        }) {}
  ~IoThread() { stop(); }
  void stop() {
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  asio::io_context& io() { return io_; }
  int escaped() const { return escaped_.load(); }

 private:
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::atomic<int> escaped_{0};
  std::thread thread_;
};

bool wait_for(const std::function<bool()>& condition, milliseconds timeout = seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

const Policy kPolicy("safety", {Rate(1000, seconds(1), 100)});

// Item 1: a handler that threw used to leave the connection with `batching_` set: it never
// wrote again, and every later request timed out.
TEST(Safety, ClientSurvivesAThrowingHandler) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  IoThread io;
  Client client(io.io(), {.url = parse_redis_url(server.url()), .command_timeout = seconds(2)});
  ASSERT_TRUE(wait_for([&] { return client.connected(); }));
  std::promise<void> thrown;
  client.execute({"PING"}, "", [&](std::error_code, Reply&&) {
    thrown.set_value();
    throw std::runtime_error("a handler bug");
  });
  thrown.get_future().wait();
  for (int i = 0; i < 3; ++i) {
    std::promise<std::string> answer;
    client.execute({"ECHO", "still here"}, "", [&](std::error_code ec, Reply&& reply) {
      answer.set_value(ec ? ec.message() : reply.str);
    });
    auto future = answer.get_future();
    ASSERT_EQ(future.wait_for(seconds(2)), std::future_status::ready);
    EXPECT_EQ(future.get(), "still here");
  }
  EXPECT_EQ(client.handler_errors(), 1u);
  EXPECT_EQ(io.escaped(), 0);
  client.stop();
  wait_for([&] { return !client.connected(); });
  io.stop();
}

TEST(Safety, StoreSurvivesAThrowingHandler) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  RedisStore store({.url = server.url(), .command_timeout = seconds(2)});
  ASSERT_TRUE(store.wait_connected(seconds(10)));
  std::promise<void> thrown;
  store.check(kPolicy, "k", 1, [&](const CheckResult&) {
    thrown.set_value();
    throw std::runtime_error("a handler bug");
  });
  thrown.get_future().wait();
  Limiter limiter(store, {.fail_mode = FailMode::kClosed});
  for (int i = 0; i < 3; ++i) {
    const Decision d = limiter.check(kPolicy, "k");
    EXPECT_TRUE(d.allowed());
    EXPECT_FALSE(d.degraded);
  }
  EXPECT_TRUE(wait_for([&] { return store.stats().handler_errors == 1; }));
}

// Items 2 and 8: with Redis paused, checks are in flight when the HttpLimiter and the Limiter
// go, then the store: every verdict arrives exactly once (fail closed: 503), and nothing touches
// freed memory (ASan: heap-use-after-free in Metrics::count_error before the fix).
TEST(Safety, ShutdownWithRequestsPendingAnswersEachOnceAfterTheLimitersAreGone) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  auto store = std::make_unique<RedisStore>(
      RedisStoreOptions{.url = server.url(), .command_timeout = seconds(10)});
  ASSERT_TRUE(store->wait_connected(seconds(10)));
  std::atomic<int> verdicts{0}, unavailable{0};
  auto limiter = std::make_unique<Limiter>(*store, LimiterOptions{.fail_mode = FailMode::kClosed});
  auto http = std::make_unique<http::HttpLimiter>(*limiter);
  http->add_route("GET", "/", {.policy = kPolicy});
  server.pause(milliseconds(3000));
  std::this_thread::sleep_for(milliseconds(50));  // the pause is in effect
  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) {
    http::SimpleRequest request;
    request.path_ = "/";
    request.peer_ = "192.0.2." + std::to_string(i % 250);
    http->check(request, [&](http::Verdict&& v) {
      verdicts.fetch_add(1);
      if (v.status == 503) unavailable.fetch_add(1);
    });
  }
  http.reset();
  limiter.reset();
  EXPECT_EQ(verdicts.load(), 0);
  store.reset();  // shutdown: fails what is pending, on the io thread, before it returns
  EXPECT_EQ(verdicts.load(), kRequests);
  EXPECT_EQ(unavailable.load(), kRequests);
}

// Item 8: a caller blocked in a synchronous check wakes when the store shuts down.
TEST(Safety, BlockedCallerWakesOnShutdown) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  RedisStore store({.url = server.url(), .command_timeout = seconds(10)});
  ASSERT_TRUE(store.wait_connected(seconds(10)));
  Limiter limiter(store, {.fail_mode = FailMode::kClosed});
  server.pause(milliseconds(3000));
  std::this_thread::sleep_for(milliseconds(50));
  auto blocked = std::async(std::launch::async, [&] { return limiter.check(kPolicy, "k"); });
  ASSERT_EQ(blocked.wait_for(milliseconds(200)), std::future_status::timeout);
  store.shutdown();
  ASSERT_EQ(blocked.wait_for(seconds(2)), std::future_status::ready);
  const Decision d = blocked.get();
  EXPECT_EQ(d.outcome, Outcome::kUnavailable);
  EXPECT_TRUE(d.degraded);
  // After shutdown every call is answered at once.
  EXPECT_EQ(limiter.check(kPolicy, "k").outcome, Outcome::kUnavailable);
}

// Item 3: destroying a store on caller-owned io_contexts from another thread while they run used
// to stop the clients here, racing with their io threads (TSan: data race; sometimes a crash).
TEST(Safety, DestroyWhileCallerContextsRunAnswersEachOnce) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  IoThread a, b;
  auto store = std::make_unique<RedisStore>(
      RedisStoreOptions{.url = server.url(), .command_timeout = seconds(2)},
      std::vector<asio::io_context*>{&a.io(), &b.io()});
  ASSERT_TRUE(store->wait_connected(seconds(10)));
  std::atomic<int> answered{0};
  constexpr int kChecks = 2000;
  for (int i = 0; i < kChecks; ++i)
    store->check(kPolicy, "key:" + std::to_string(i % 50), 1,
                 [&](const CheckResult&) { answered.fetch_add(1); });
  store.reset();
  EXPECT_EQ(answered.load(), kChecks);
  EXPECT_EQ(a.escaped() + b.escaped(), 0);
}

// A store destroyed right after it was made, with calls handed over before its own thread has
// run a single task: the thread is known to run the context, so the stop goes through it.
TEST(Safety, DestroyRightAfterConstructionAnswersEachOnce) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> answered{0};
    {
      RedisStore store({.url = server.url(), .command_timeout = seconds(2)});
      for (int i = 0; i < 50; ++i)
        store.check(kPolicy, "k", 1, [&](const CheckResult&) { answered.fetch_add(1); });
    }
    EXPECT_EQ(answered.load(), 50) << "round " << round;
  }
}

// Items 6 and 8: calls from other threads wait for the io thread in a bounded queue (full:
// kOverloaded at once, it used to grow without bound); what is still queued when the store
// goes is answered, not destroyed uncalled with the io_context.
TEST(Safety, HandedOverCallsAreBoundedAndAnsweredOnce) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  asio::io_context io(1);  // not running: nothing leaves the queue
  auto store =
      std::make_unique<RedisStore>(RedisStoreOptions{.url = server.url(), .max_in_flight = 8},
                                   std::vector<asio::io_context*>{&io});
  std::atomic<int> overloaded{0}, unavailable{0}, other{0};
  constexpr int kChecks = 100;
  for (int i = 0; i < kChecks; ++i) {
    store->check(kPolicy, "k", 1, [&](const CheckResult& r) {
      if (r.error == Errc::kOverloaded)
        overloaded.fetch_add(1);
      else if (r.error == Errc::kStoreUnavailable)
        unavailable.fetch_add(1);
      else
        other.fetch_add(1);
    });
  }
  EXPECT_EQ(overloaded.load(), kChecks - 8);  // answered inside the call
  store.reset();
  EXPECT_EQ(unavailable.load(), 8);
  EXPECT_EQ(other.load(), 0);
}

TEST(Safety, CallsQueuedForAStoppedContextAreAnsweredAtShutdown) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  auto io = std::make_unique<IoThread>();
  auto store = std::make_unique<RedisStore>(
      RedisStoreOptions{.url = server.url(), .command_timeout = seconds(2)},
      std::vector<asio::io_context*>{&io->io()});
  ASSERT_TRUE(store->wait_connected(seconds(10)));
  io->stop();  // the context stops with the store still on it
  std::atomic<int> answered{0};
  for (int i = 0; i < 10; ++i)
    store->check(kPolicy, "k", 1, [&](const CheckResult& r) {
      EXPECT_EQ(r.error, Errc::kStoreUnavailable);
      answered.fetch_add(1);
    });
  EXPECT_EQ(answered.load(), 0);
  store.reset();
  EXPECT_EQ(answered.load(), 10);
}

// Item 7: a blocking call on the store's io thread used to wait for itself forever.
TEST(Safety, BlockingCallOnTheIoThreadFailsLoudly) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  IoThread io;
  RedisStore store({.url = server.url(), .command_timeout = seconds(2)},
                   std::vector<asio::io_context*>{&io.io()});
  ASSERT_TRUE(store.wait_connected(seconds(10)));
  Limiter limiter(store);
  std::promise<std::string> outcome;
  asio::post(io.io(), [&] {
    try {
      limiter.check(kPolicy, "k");
      outcome.set_value("returned");
    } catch (const std::logic_error& e) {
      outcome.set_value(e.what());
    }
  });
  auto future = outcome.get_future();
  ASSERT_EQ(future.wait_for(seconds(5)), std::future_status::ready) << "deadlocked";
  EXPECT_NE(future.get().find("I/O"), std::string::npos);
  EXPECT_FALSE(store.on_io_thread());
  EXPECT_TRUE(limiter.check(kPolicy, "k").allowed());  // fine from any other thread
}

// Item 5: a rate finer than Redis' microsecond clock used to fail every check at run time
// (fail open then admitted everything); it is refused when first used, naming it.
TEST(Safety, RateFinerThanAMicrosecondIsRefusedWhenFirstUsed) {
  RedisStore store({.url = "redis://127.0.0.1:1"});  // never reached
  Limiter limiter(store, {.fail_mode = FailMode::kOpen});
  const Policy fast("fast", {Rate(2'000'000, seconds(1))});
  try {
    limiter.check(fast, "k", 1, [](const Decision&) { ADD_FAILURE() << "admitted"; });
    ADD_FAILURE() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("2000000/1s"), std::string::npos) << e.what();
  }
  EXPECT_EQ(limiter.metrics().snapshot().allowed, 0u);
}

// Item 11: a connect callback registered while a connection is up is posted; it used to run
// even after the client was gone (the store's callback captured a raw Client*).
TEST(Safety, ConnectCallbacksNeverRunAfterStop) {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  asio::io_context io(1);
  auto client = std::make_unique<Client>(io, ClientOptions{.url = parse_redis_url(server.url())});
  for (int i = 0; i < 1000 && !client->connected(); ++i) io.run_for(milliseconds(10));
  ASSERT_TRUE(client->connected());
  std::atomic<int> calls{0};
  Client* raw = client.get();
  asio::post(io, [&] {
    // On the io thread: registered at once, and its first call posted (a connection is up).
    raw->on_connect([&calls, raw] {
      calls.fetch_add(1);
      (void)raw->connected();  // what the store's callback does: touches the client
    });
    client.reset();  // on the io thread: stops, fails, forgets
  });
  io.restart();
  io.poll();
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
}  // namespace pacer::redis
