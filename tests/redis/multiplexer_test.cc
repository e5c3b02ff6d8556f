// The sans-I/O pipeline: bytes out for commands, replies in for bytes, with no sockets.
#include "multiplexer.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "pacer/error.h"

namespace pacer::redis::internal {
namespace {

using namespace std::chrono_literals;
using Clock = Multiplexer::Clock;

// What a handler saw.
struct Outcome {
  std::error_code error;
  Reply reply;
};

class MultiplexerTest : public ::testing::Test {
 protected:
  // Adds `args` with a handler recording into outcomes_[index]; returns the index.
  std::size_t add(Multiplexer& mux, std::vector<std::string_view> args,
                  Clock::time_point deadline) {
    const std::size_t index = calls_.size();
    calls_.push_back(0);
    outcomes_.emplace_back();
    const auto ec = mux.add(
        args,
        [this, index](std::error_code error, Reply&& reply) {
          ++calls_[index];
          outcomes_[index] = {error, std::move(reply)};
        },
        deadline);
    EXPECT_FALSE(ec) << ec.message();
    return index;
  }
  std::size_t add(Multiplexer& mux, std::vector<std::string_view> args) {
    return add(mux, std::move(args), now_ + 100ms);
  }

  std::string write_all(Multiplexer& mux) {
    if (!mux.wants_write()) return {};
    std::string bytes(mux.begin_write());
    mux.end_write();
    return bytes;
  }

  Clock::time_point now_ = Clock::now();
  std::vector<int> calls_;
  std::vector<Outcome> outcomes_;
};

TEST_F(MultiplexerTest, EncodesCommandsAsArraysOfBulkStrings) {
  Multiplexer mux({});
  add(mux, {"SET", "key", "v\r\nx"});
  add(mux, {"GET", ""});
  EXPECT_EQ(write_all(mux),
            "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\nv\r\nx\r\n"
            "*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
  std::string big(100000, 'x');
  add(mux, {"SET", "k", big});
  EXPECT_EQ(write_all(mux), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + big + "\r\n");
}

TEST_F(MultiplexerTest, CommandsQueuedDuringAWriteGoOutTogetherInTheNext) {
  Multiplexer mux({});
  EXPECT_FALSE(mux.wants_write());
  add(mux, {"PING"});
  ASSERT_TRUE(mux.wants_write());
  const std::string first(mux.begin_write());
  EXPECT_EQ(first, "*1\r\n$4\r\nPING\r\n");
  for (int i = 0; i < 100; ++i) add(mux, {"INCR", "n"});
  EXPECT_FALSE(mux.wants_write()) << "one write at a time";
  mux.end_write();
  ASSERT_TRUE(mux.wants_write());
  const std::string second(mux.begin_write());
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n";
  EXPECT_EQ(second, expected);
  mux.end_write();
  EXPECT_FALSE(mux.wants_write());
  EXPECT_EQ(mux.in_flight(), 101u);
}

TEST_F(MultiplexerTest, MatchesRepliesInOrderAndCallsEachHandlerOnce) {
  Multiplexer mux({});
  add(mux, {"SET", "a", "1"});
  add(mux, {"INCR", "n"});
  add(mux, {"GET", "a"});
  add(mux, {"GET", "missing"});
  add(mux, {"LRANGE", "l", "0", "-1"});
  write_all(mux);
  ASSERT_FALSE(mux.feed("+OK\r\n:42\r\n$1\r\n1\r\n$-1\r\n*2\r\n$1\r\nx\r\n:7\r\n"));
  EXPECT_EQ(calls_, (std::vector<int>{1, 1, 1, 1, 1}));
  EXPECT_EQ(outcomes_[0].reply.type, Reply::Type::kStatus);
  EXPECT_EQ(outcomes_[0].reply.str, "OK");
  EXPECT_EQ(outcomes_[1].reply.type, Reply::Type::kInteger);
  EXPECT_EQ(outcomes_[1].reply.integer, 42);
  EXPECT_EQ(outcomes_[2].reply.type, Reply::Type::kString);
  EXPECT_EQ(outcomes_[2].reply.str, "1");
  EXPECT_EQ(outcomes_[3].reply.type, Reply::Type::kNil);
  ASSERT_EQ(outcomes_[4].reply.type, Reply::Type::kArray);
  ASSERT_EQ(outcomes_[4].reply.elements.size(), 2u);
  EXPECT_EQ(outcomes_[4].reply.elements[0].str, "x");
  EXPECT_EQ(outcomes_[4].reply.elements[1].integer, 7);
  for (const auto& outcome : outcomes_) EXPECT_FALSE(outcome.error);
  EXPECT_EQ(mux.in_flight(), 0u);
}

// Every kind of reply, nested arrays included, split at every possible byte boundary.
TEST_F(MultiplexerTest, RepliesSplitAtEveryByteBoundary) {
  const std::string stream =
      "+OK\r\n-ERR wrong\r\n:-12\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n"
      "*3\r\n:1\r\n*2\r\n$2\r\nab\r\n*1\r\n:9\r\n$-1\r\n$4\r\na\r\nb\r\n";
  constexpr int kReplies = 10;
  auto check = [&](const std::vector<Outcome>& o) {
    EXPECT_EQ(o[0].reply.str, "OK");
    EXPECT_TRUE(o[1].reply.is_error());
    EXPECT_EQ(o[1].reply.str, "ERR wrong");
    EXPECT_EQ(o[2].reply.integer, -12);
    EXPECT_EQ(o[3].reply.str, "hello");
    EXPECT_EQ(o[4].reply.type, Reply::Type::kString);
    EXPECT_EQ(o[4].reply.str, "");
    EXPECT_EQ(o[5].reply.type, Reply::Type::kNil);
    EXPECT_EQ(o[6].reply.type, Reply::Type::kNil);
    EXPECT_EQ(o[7].reply.type, Reply::Type::kArray);
    EXPECT_TRUE(o[7].reply.elements.empty());
    const Reply& nested = o[8].reply;
    ASSERT_EQ(nested.elements.size(), 3u);
    EXPECT_EQ(nested.elements[0].integer, 1);
    ASSERT_EQ(nested.elements[1].elements.size(), 2u);
    EXPECT_EQ(nested.elements[1].elements[0].str, "ab");
    EXPECT_EQ(nested.elements[1].elements[1].elements[0].integer, 9);
    EXPECT_EQ(nested.elements[2].type, Reply::Type::kNil);
    EXPECT_EQ(o[9].reply.str, "a\r\nb");
  };
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    calls_.clear();
    outcomes_.clear();
    Multiplexer mux({});
    for (int i = 0; i < kReplies; ++i) add(mux, {"X"});
    write_all(mux);
    ASSERT_FALSE(mux.feed(std::string_view(stream).substr(0, split)));
    ASSERT_FALSE(mux.feed(std::string_view(stream).substr(split)));
    ASSERT_EQ(calls_, std::vector<int>(kReplies, 1));
    check(outcomes_);
  }
  // And one byte at a time.
  calls_.clear();
  outcomes_.clear();
  Multiplexer mux({});
  for (int i = 0; i < kReplies; ++i) add(mux, {"X"});
  for (const char c : stream) ASSERT_FALSE(mux.feed(std::string_view(&c, 1)));
  ASSERT_EQ(calls_, std::vector<int>(kReplies, 1));
  check(outcomes_);
}

TEST_F(MultiplexerTest, ManyPipelinedRepliesInOneFeed) {
  Multiplexer mux({});
  constexpr int kCount = 10000;
  std::string replies;
  for (int i = 0; i < kCount; ++i) {
    add(mux, {"INCR", "n"});
    replies += ":" + std::to_string(i) + "\r\n";
  }
  write_all(mux);
  ASSERT_FALSE(mux.feed(replies));
  ASSERT_EQ(calls_, std::vector<int>(kCount, 1));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(outcomes_[i].reply.integer, i);
}

TEST_F(MultiplexerTest, ErrorRepliesAreRepliesNotFailures) {
  Multiplexer mux({});
  add(mux, {"EVALSHA", "abc", "0"});
  add(mux, {"PING"});
  ASSERT_FALSE(mux.feed("-NOSCRIPT No matching script. Please use EVAL.\r\n+PONG\r\n"));
  EXPECT_FALSE(outcomes_[0].error);
  EXPECT_TRUE(outcomes_[0].reply.is_error());
  EXPECT_TRUE(outcomes_[0].reply.is_error_prefix("NOSCRIPT"));
  EXPECT_FALSE(outcomes_[0].reply.is_error_prefix("NOSCRIPTX"));
  EXPECT_FALSE(outcomes_[0].reply.is_error_prefix("NOSCR"));
  EXPECT_EQ(outcomes_[1].reply.str, "PONG");
  EXPECT_FALSE(outcomes_[1].reply.is_error_prefix("PONG")) << "status, not error";
}

TEST_F(MultiplexerTest, TimeoutInTheMiddleOfAPipelineKeepsMatchingInOrder) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 1s});
  const auto a = add(mux, {"A"}, now_ + 10ms);
  const auto b = add(mux, {"B"}, now_ + 20ms);
  const auto c = add(mux, {"C"}, now_ + 30ms);
  write_all(mux);
  ASSERT_EQ(mux.next_timer(), now_ + 10ms);
  // A's reply arrives in time; B's is late.
  ASSERT_FALSE(mux.feed(":1\r\n"));
  EXPECT_EQ(calls_[a], 1);
  EXPECT_FALSE(mux.expire(now_ + 25ms));
  EXPECT_EQ(calls_[b], 1);
  EXPECT_EQ(outcomes_[b].error, Errc::kTimeout);
  EXPECT_EQ(calls_[c], 0);
  EXPECT_EQ(mux.next_timer(), now_ + 30ms);
  // B's late reply is consumed and dropped; C gets its own reply.
  ASSERT_FALSE(mux.feed(":2\r\n"));
  EXPECT_EQ(calls_[b], 1);
  EXPECT_EQ(calls_[c], 0);
  ASSERT_FALSE(mux.feed(":3\r\n"));
  EXPECT_EQ(calls_[c], 1);
  EXPECT_FALSE(outcomes_[c].error);
  EXPECT_EQ(outcomes_[c].reply.integer, 3);
  EXPECT_EQ(mux.in_flight(), 0u);
  EXPECT_FALSE(mux.next_timer());
}

TEST_F(MultiplexerTest, SeveralTimeoutsThenLateRepliesThenFreshRequests) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 1s});
  for (int i = 0; i < 5; ++i) add(mux, {"X"}, now_ + 10ms);
  EXPECT_FALSE(mux.expire(now_ + 10ms));
  EXPECT_EQ(calls_, std::vector<int>(5, 1));
  const auto fresh = add(mux, {"Y"}, now_ + 50ms);
  ASSERT_FALSE(mux.feed(":0\r\n:1\r\n:2\r\n:3\r\n"));
  EXPECT_EQ(calls_[fresh], 0);
  ASSERT_FALSE(mux.feed(":4\r\n:5\r\n"));
  EXPECT_EQ(calls_[fresh], 1);
  EXPECT_EQ(outcomes_[fresh].reply.integer, 5);
  EXPECT_EQ(calls_, std::vector<int>(6, 1));
}

// A redirected command keeps its caller's deadline, which may be earlier than the deadlines of
// requests queued before it: it still fails at its own deadline, not when they do.
TEST_F(MultiplexerTest, ARequestWithAnEarlierDeadlineThanThoseBeforeItExpiresOnTime) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 1s});
  const auto a = add(mux, {"A"}, now_ + 50ms);
  const auto b = add(mux, {"B"}, now_ + 50ms);
  const auto resent = add(mux, {"R"}, now_ + 10ms);
  const auto c = add(mux, {"C"}, now_ + 60ms);
  write_all(mux);
  EXPECT_EQ(mux.next_timer(), now_ + 10ms);
  EXPECT_FALSE(mux.expire(now_ + 9ms));
  EXPECT_EQ(calls_[resent], 0);
  EXPECT_FALSE(mux.expire(now_ + 10ms));
  EXPECT_EQ(calls_[resent], 1);
  EXPECT_EQ(outcomes_[resent].error, Errc::kTimeout);
  EXPECT_EQ(calls_[a] + calls_[b] + calls_[c], 0);
  EXPECT_EQ(mux.next_timer(), now_ + 50ms);
  // Replies still meet their own requests; the expired one's is dropped.
  ASSERT_FALSE(mux.feed(":1\r\n:2\r\n:3\r\n:4\r\n"));
  EXPECT_EQ(outcomes_[a].reply.integer, 1);
  EXPECT_EQ(outcomes_[b].reply.integer, 2);
  EXPECT_EQ(calls_[resent], 1);
  EXPECT_EQ(outcomes_[c].reply.integer, 4);
  EXPECT_EQ(calls_, std::vector<int>(4, 1));
  EXPECT_FALSE(mux.next_timer());
}

TEST_F(MultiplexerTest, EarlyDeadlinesMixedWithTimeoutsAndReplies) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 1s});
  const auto a = add(mux, {"A"}, now_ + 30ms);
  const auto early1 = add(mux, {"E1"}, now_ + 20ms);
  const auto early2 = add(mux, {"E2"}, now_ + 25ms);
  const auto d = add(mux, {"D"}, now_ + 40ms);
  // A and E1 are answered in time; E2 times out on its own deadline, D on its own; their late
  // replies are dropped.
  ASSERT_FALSE(mux.feed(":1\r\n:2\r\n"));
  EXPECT_EQ(outcomes_[a].reply.integer, 1);
  EXPECT_EQ(outcomes_[early1].reply.integer, 2);
  EXPECT_FALSE(mux.expire(now_ + 26ms));
  EXPECT_EQ(outcomes_[early2].error, Errc::kTimeout);
  EXPECT_EQ(calls_[d], 0);
  EXPECT_FALSE(mux.expire(now_ + 40ms));
  EXPECT_EQ(outcomes_[d].error, Errc::kTimeout);
  ASSERT_FALSE(mux.feed(":3\r\n:4\r\n"));
  EXPECT_EQ(calls_, std::vector<int>(4, 1));
  EXPECT_EQ(mux.in_flight(), 0u);
  // After a failure nothing early is left behind.
  const auto late = add(mux, {"L"}, now_ + 90ms);
  const auto earlier = add(mux, {"M"}, now_ + 80ms);
  mux.fail_all(Errc::kStoreUnavailable);
  EXPECT_EQ(outcomes_[late].error, Errc::kStoreUnavailable);
  EXPECT_EQ(outcomes_[earlier].error, Errc::kStoreUnavailable);
  EXPECT_FALSE(mux.next_timer());
}

TEST_F(MultiplexerTest, ReportsAStallWhenTheOldestRequestWaitedTwiceTheTimeout) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 100ms});
  add(mux, {"A"}, now_ + 100ms);
  add(mux, {"B"}, now_ + 150ms);
  EXPECT_FALSE(mux.expire(now_ + 120ms));
  // The oldest is a tombstone now; the next event is B's deadline.
  EXPECT_EQ(mux.next_timer(), now_ + 150ms);
  EXPECT_FALSE(mux.expire(now_ + 150ms));
  EXPECT_EQ(mux.next_timer(), now_ + 200ms);
  EXPECT_FALSE(mux.expire(now_ + 199ms));
  EXPECT_TRUE(mux.expire(now_ + 200ms));
  // An answer to the oldest clears the stall.
  ASSERT_FALSE(mux.feed(":1\r\n"));
  EXPECT_FALSE(mux.expire(now_ + 200ms));
  EXPECT_TRUE(mux.expire(now_ + 250ms));
}

// Issue 20 item 2: a connection receiving a long pipeline of replies is busy, not stalled. The
// oldest request timed out long ago, but bytes keep coming: the stall timer counts from the
// last byte, and only silence for `stall_after` ends the connection.
TEST_F(MultiplexerTest, RepliesStillArrivingAreNotAStall) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 100ms});
  for (int i = 0; i < 10; ++i) add(mux, {"A"}, now_ + 100ms);
  EXPECT_FALSE(mux.expire(now_ + 150ms));  // all ten timed out; none answered yet
  // A reply every 50 ms, the last at 500 ms: never 100 ms without a byte.
  for (int i = 1; i <= 9; ++i) {
    ASSERT_FALSE(mux.feed(":1\r\n", now_ + 50ms * i + 50ms));
    EXPECT_FALSE(mux.expire(now_ + 50ms * i + 99ms)) << i;
    EXPECT_EQ(mux.next_timer(), now_ + 50ms * i + 150ms) << i;
  }
  // A partial reply is a byte too.
  ASSERT_FALSE(mux.feed(":", now_ + 600ms));
  EXPECT_FALSE(mux.expire(now_ + 650ms));
  // Then silence with one request left: stalled 100 ms after the last byte.
  EXPECT_FALSE(mux.expire(now_ + 699ms));
  EXPECT_TRUE(mux.expire(now_ + 700ms));
}

TEST_F(MultiplexerTest, BoundedInFlightFailsFastAndLeavesTheHandlerToTheCaller) {
  Multiplexer mux({.max_in_flight = 2});
  add(mux, {"A"});
  add(mux, {"B"});
  EXPECT_EQ(mux.room(), 0u);
  bool called = false;
  ReplyHandler handler = [&called](std::error_code, Reply&&) { called = true; };
  const std::string_view args[] = {"C"};
  EXPECT_EQ(mux.add(args, std::move(handler), now_ + 1s), Errc::kOverloaded);
  ASSERT_TRUE(handler) << "not consumed on failure";
  EXPECT_EQ(write_all(mux), "*1\r\n$1\r\nA\r\n*1\r\n$1\r\nB\r\n") << "nothing encoded for C";
  // Timed-out requests still count until their late replies arrive.
  mux.expire(now_ + 1s);
  EXPECT_EQ(mux.room(), 0u);
  ASSERT_FALSE(mux.feed(":1\r\n"));
  EXPECT_EQ(mux.room(), 1u);
  EXPECT_FALSE(called);
}

TEST_F(MultiplexerTest, FailAllFailsEachRequestOnceAndResets) {
  Multiplexer mux({.max_in_flight = 100, .stall_after = 1s});
  add(mux, {"A"}, now_ + 10ms);
  add(mux, {"B"}, now_ + 50ms);
  add(mux, {"C"}, now_ + 50ms);
  mux.begin_write();                            // a write in flight when the connection dies
  mux.expire(now_ + 20ms);                      // A timed out
  ASSERT_FALSE(mux.feed(":1\r\n$10\r\npart"));  // A's late reply, then half of B's
  mux.fail_all(Errc::kStoreUnavailable);
  EXPECT_EQ(calls_, (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(outcomes_[0].error, Errc::kTimeout);
  EXPECT_EQ(outcomes_[1].error, Errc::kStoreUnavailable);
  EXPECT_EQ(outcomes_[2].error, Errc::kStoreUnavailable);
  EXPECT_EQ(mux.in_flight(), 0u);
  EXPECT_FALSE(mux.wants_write());
  EXPECT_FALSE(mux.next_timer());
  // A new connection: the half reply is forgotten, nothing old is re-sent.
  const auto d = add(mux, {"D"});
  EXPECT_EQ(write_all(mux), "*1\r\n$1\r\nD\r\n");
  ASSERT_FALSE(mux.feed("+OK\r\n"));
  EXPECT_EQ(calls_[d], 1);
  EXPECT_EQ(outcomes_[d].reply.str, "OK");
}

TEST_F(MultiplexerTest, ProtocolErrorsAreReported) {
  {
    Multiplexer mux({});
    add(mux, {"A"});
    EXPECT_EQ(mux.feed("?what\r\n"), Errc::kProtocol);
    EXPECT_FALSE(mux.error_text().empty());
    EXPECT_EQ(calls_[0], 0) << "the owner closes and fails everything";
    mux.fail_all(Errc::kProtocol);
    EXPECT_EQ(outcomes_[0].error, Errc::kProtocol);
  }
  {
    Multiplexer mux({});
    EXPECT_EQ(mux.feed("+OK\r\n"), Errc::kProtocol) << "a reply nobody asked for";
  }
}

TEST_F(MultiplexerTest, NullHandlerDropsItsReply) {
  Multiplexer mux({});
  const std::string_view asking[] = {"ASKING"};
  ASSERT_FALSE(mux.add(asking, nullptr, now_ + 1s));
  const auto get = add(mux, {"GET", "k"});
  ASSERT_FALSE(mux.feed("+OK\r\n$1\r\nv\r\n"));
  EXPECT_EQ(outcomes_[get].reply.str, "v");
}

TEST_F(MultiplexerTest, HandlersMayAddRequestsWhileBeingCalled) {
  Multiplexer mux({});
  int second_calls = 0;
  const std::string_view first[] = {"FIRST"};
  ASSERT_FALSE(mux.add(
      first,
      [&](std::error_code, Reply&&) {
        const std::string_view second[] = {"SECOND"};
        ASSERT_FALSE(mux.add(
            second, [&](std::error_code, Reply&&) { ++second_calls; }, now_ + 1s));
      },
      now_ + 1s));
  write_all(mux);
  ASSERT_FALSE(mux.feed(":1\r\n"));
  EXPECT_EQ(write_all(mux), "*1\r\n$6\r\nSECOND\r\n");
  ASSERT_FALSE(mux.feed(":2\r\n"));
  EXPECT_EQ(second_calls, 1);
}

TEST_F(MultiplexerTest, AHandlerEndingTheConnectionStopsDelivery) {
  Multiplexer mux({});
  std::vector<std::error_code> seen;
  for (int i = 0; i < 3; ++i) {
    const std::string_view args[] = {"X"};
    ASSERT_FALSE(mux.add(
        args,
        [&, i](std::error_code ec, Reply&&) {
          seen.push_back(ec);
          if (i == 0) mux.fail_all(Errc::kStoreUnavailable);
        },
        now_ + 1s));
  }
  ASSERT_FALSE(mux.feed(":1\r\n:2\r\n:3\r\n"));
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen[0]);
  EXPECT_EQ(seen[1], Errc::kStoreUnavailable);
  EXPECT_EQ(seen[2], Errc::kStoreUnavailable);
}

TEST_F(MultiplexerTest, DestructionFailsWhatIsLeft) {
  {
    Multiplexer mux({});
    add(mux, {"A"});
  }
  EXPECT_EQ(calls_[0], 1);
  EXPECT_EQ(outcomes_[0].error, Errc::kStoreUnavailable);
}

TEST_F(MultiplexerTest, QueueGrowsAndWrapsAround) {
  Multiplexer mux({});
  int next_reply = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 37 + round; ++i) add(mux, {"X"});
    std::string replies;
    for (std::size_t i = 0; i < mux.in_flight(); ++i)
      replies += ":" + std::to_string(next_reply++) + "\r\n";
    write_all(mux);
    ASSERT_FALSE(mux.feed(replies));
  }
  for (std::size_t i = 0; i < outcomes_.size(); ++i) {
    ASSERT_EQ(calls_[i], 1);
    ASSERT_EQ(outcomes_[i].reply.integer, static_cast<std::int64_t>(i));
  }
}

// Issue 6, item 1: an exception from a handler used to escape feed() half-way through a batch
// of replies; the connection around it then never wrote again. Now it stops at the handler:
// the other replies reach their requests, and the stream goes on.
TEST_F(MultiplexerTest, ThrowingHandlersAreReportedAndTheStreamGoesOn) {
  std::vector<std::string> reported;
  Multiplexer mux(
      {.on_handler_error = [&](std::string_view what) { reported.emplace_back(what); }});
  const std::size_t before = add(mux, {"PING"});
  const std::array<std::string_view, 1> ping{"PING"};
  ASSERT_FALSE(mux.add(
      ping, [](std::error_code, Reply&&) { throw std::runtime_error("bad json"); }, now_ + 100ms));
  const std::size_t after = add(mux, {"PING"});
  write_all(mux);
  EXPECT_FALSE(mux.feed("+PONG\r\n+PONG\r\n+PONG\r\n"));
  EXPECT_EQ(calls_[before], 1);
  EXPECT_EQ(calls_[after], 1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(reported[0], "bad json");
  // Timeouts and fail_all() go through the same guard.
  ASSERT_FALSE(mux.add(
      ping, [](std::error_code, Reply&&) { throw 42; }, now_ + 1ms));
  const std::size_t late = add(mux, {"PING"}, now_ + 2ms);
  EXPECT_NO_THROW(mux.expire(now_ + 5ms));
  EXPECT_EQ(calls_[late], 1);
  ASSERT_FALSE(mux.add(
      ping, [](std::error_code, Reply&&) { throw std::logic_error("x"); }, now_ + 100ms));
  EXPECT_NO_THROW(mux.fail_all(Errc::kStoreUnavailable));
  EXPECT_EQ(reported.size(), 3u);
  // And the multiplexer is still usable.
  const std::size_t next = add(mux, {"PING"});
  EXPECT_TRUE(mux.wants_write());
  write_all(mux);
  EXPECT_FALSE(mux.feed("+PONG\r\n"));
  EXPECT_EQ(calls_[next], 1);
}

}  // namespace
}  // namespace pacer::redis::internal
