// Sentinel replies and messages without a sentinel: recorded bytes through the reply reader,
// and hostile variants of each.
#include "sentinel.h"

#include <gtest/gtest.h>

#include <random>

#include "replies.h"

namespace pacer::redis::internal {
namespace {

using namespace test_replies;
const auto text = test_replies::string;

// Recorded from redis-server 7.0 --sentinel.
constexpr std::string_view kMasterAddress = "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n40001\r\n";
constexpr std::string_view kUnknownMaster = "*-1\r\n";
constexpr std::string_view kSubscribed = "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n";
constexpr std::string_view kSwitchMessage =
    "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n"
    "$40\r\nmymaster 127.0.0.1 40001 127.0.0.1 40002\r\n";

TEST(SentinelTest, MasterAddress) {
  const MasterAddressResult result = parse_master_address(read_one(kMasterAddress));
  ASSERT_TRUE(result.address) << result.error;
  EXPECT_EQ(result.address->host, "127.0.0.1");
  EXPECT_EQ(result.address->port, 40001);
  EXPECT_FALSE(result.unknown_master);
  EXPECT_TRUE(result.error.empty());
  // IPv6 and host names as announced (announce-ip / resolve-hostnames).
  const auto v6 = parse_master_address(array({text("::1"), text("6379")}));
  ASSERT_TRUE(v6.address);
  EXPECT_EQ(v6.address->host, "::1");
  const auto name = parse_master_address(array({text("redis-0.svc"), integer(6380)}));
  ASSERT_TRUE(name.address);
  EXPECT_EQ(name.address->port, 6380);
}

TEST(SentinelTest, UnknownMasterIsNil) {
  const MasterAddressResult result = parse_master_address(read_one(kUnknownMaster));
  EXPECT_FALSE(result.address);
  EXPECT_TRUE(result.unknown_master);
  EXPECT_TRUE(result.error.empty());
  EXPECT_TRUE(parse_master_address(array({})).unknown_master);
}

TEST(SentinelTest, MalformedAddressRepliesAreErrors) {
  const auto expect_error = [](const Reply& reply, std::string_view what) {
    const MasterAddressResult result = parse_master_address(reply);
    EXPECT_FALSE(result.address) << what;
    EXPECT_FALSE(result.unknown_master) << what;
    EXPECT_FALSE(result.error.empty()) << what;
    return result.error;
  };
  EXPECT_EQ(expect_error(read_one("-NOAUTH Authentication required.\r\n"), "noauth"),
            "NOAUTH Authentication required.");
  EXPECT_NE(expect_error(read_one("-ERR unknown command 'SENTINEL'\r\n"), "not a sentinel")
                .find("unknown command"),
            std::string::npos);
  expect_error(read_one("+OK\r\n"), "status");
  expect_error(read_one(":1\r\n"), "integer");
  expect_error(array({text("h")}), "one element");
  expect_error(array({text("h"), text("1"), text("2")}), "three elements");
  expect_error(array({integer(1), text("1")}), "integer host");
  expect_error(array({text(""), text("1")}), "empty host");
  expect_error(array({text("a b"), text("1")}), "space in host");
  expect_error(array({text(std::string("a\0b", 3)), text("1")}), "NUL in host");
  expect_error(array({text(std::string(300, 'h')), text("1")}), "long host");
  expect_error(array({array({}), text("1")}), "array host");
  for (const char* port : {"0", "65536", "-1", "", "12a", " 1", "99999999999999999999", "+1"})
    EXPECT_NE(expect_error(array({text("h"), text(port)}), port).find("bad port"),
              std::string::npos);
  expect_error(array({text("h"), integer(0)}), "integer port 0");
  expect_error(array({text("h"), integer(70000)}), "integer port too large");
  expect_error(array({text("h"), Reply{}}), "nil port");
  expect_error(array({text("h"), array({text("1")})}), "array port");
  Reply empty_error;
  empty_error.type = Reply::Type::kError;
  expect_error(empty_error, "empty error");
}

TEST(SentinelTest, SwitchMasterMessage) {
  const auto push = parse_pubsub_push(read_one(kSwitchMessage));
  ASSERT_TRUE(push);
  EXPECT_EQ(push->kind, PubSubPush::Kind::kMessage);
  EXPECT_EQ(push->channel, kSwitchMasterChannel);
  const auto message = parse_switch_master(push->payload);
  ASSERT_TRUE(message);
  EXPECT_EQ(message->master_name, "mymaster");
  EXPECT_EQ(message->from, (MasterAddress{"127.0.0.1", 40001}));
  EXPECT_EQ(message->to, (MasterAddress{"127.0.0.1", 40002}));
}

TEST(SentinelTest, MalformedSwitchMasterMessages) {
  for (const std::string_view payload :
       {"", " ", "mymaster", "mymaster 127.0.0.1 1 127.0.0.1", "mymaster 127.0.0.1 1 127.0.0.1 2 x",
        "mymaster  127.0.0.1 1 127.0.0.1 2", " mymaster 127.0.0.1 1 127.0.0.1 2",
        "mymaster 127.0.0.1 1 127.0.0.1 2 ", "mymaster 127.0.0.1 x 127.0.0.1 2",
        "mymaster 127.0.0.1 1 127.0.0.1 0", "mymaster 127.0.0.1 1 127.0.0.1 65536",
        "mymaster 127.0.0.1 1 127.0.0.1 -2", "mymaster 127.0.0.1 1 127.\x01.0.1 2"})
    EXPECT_FALSE(parse_switch_master(payload)) << payload;
}

TEST(SentinelTest, PubSubPushes) {
  const auto subscribed = parse_pubsub_push(read_one(kSubscribed));
  ASSERT_TRUE(subscribed);
  EXPECT_EQ(subscribed->kind, PubSubPush::Kind::kSubscribe);
  EXPECT_EQ(subscribed->channel, "+switch-master");
  const auto pong = parse_pubsub_push(read_one("*2\r\n$4\r\npong\r\n$0\r\n\r\n"));
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->kind, PubSubPush::Kind::kPong);
  // Anything else is not a push.
  for (const std::string_view bytes :
       {std::string_view("+OK\r\n"), std::string_view("-ERR x\r\n"), std::string_view(":3\r\n"),
        std::string_view("*0\r\n"), std::string_view("*-1\r\n"), std::string_view("$-1\r\n"),
        std::string_view("*1\r\n:1\r\n"), std::string_view("*2\r\n$7\r\nmessage\r\n$1\r\nc\r\n"),
        std::string_view("*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n*0\r\n"),
        std::string_view("*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n$1\r\n1\r\n"),
        std::string_view("*2\r\n$8\r\npmessage\r\n$1\r\nc\r\n"),
        std::string_view("*3\r\n$4\r\npong\r\n$0\r\n\r\n$0\r\n\r\n")})
    EXPECT_FALSE(parse_pubsub_push(read_one(bytes))) << bytes;
}

TEST(SentinelTest, Role) {
  EXPECT_EQ(parse_role(read_one("*3\r\n$6\r\nmaster\r\n:3129659\r\n*0\r\n")), Role::kMaster);
  EXPECT_EQ(parse_role(read_one("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:9999\r\n"
                                "$9\r\nconnected\r\n:3167038\r\n")),
            Role::kReplica);
  EXPECT_EQ(parse_role(read_one("*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n")),
            Role::kSentinel);
  EXPECT_EQ(parse_role(read_one("-NOPERM no permission\r\n")), Role::kUnknown);
  EXPECT_EQ(parse_role(read_one("*0\r\n")), Role::kUnknown);
  EXPECT_EQ(parse_role(read_one("*1\r\n:1\r\n")), Role::kUnknown);
  EXPECT_EQ(parse_role(read_one("*1\r\n$4\r\nboss\r\n")), Role::kUnknown);
  EXPECT_EQ(parse_role(Reply{}), Role::kUnknown);
  EXPECT_EQ(role_name(Role::kReplica), "replica");
}

TEST(SentinelTest, RandomRepliesNeverCrashTheParsers) {
  // Random trees of replies with short strings from a small alphabet that hits the edge cases
  // (digits, spaces, the keywords).
  std::mt19937 random(1234);
  const std::vector<std::string> words = {
      "message", "subscribe", "pong", "master", "slave", "+switch-master",       "1",
      "65535",   "0",         "h",    "",       " ",     "m 1.2.3.4 1 5.6.7.8 2"};
  std::function<Reply(int)> make = [&](int depth) {
    Reply r;
    switch (random() % (depth > 2 ? 4 : 5)) {
      case 0:
        return r;
      case 1:
        r.type = Reply::Type::kInteger;
        r.integer = static_cast<std::int64_t>(random() % 70000) - 2;
        return r;
      case 2:
        r.type = Reply::Type::kError;
        r.str = words[random() % words.size()];
        return r;
      case 3:
        r.type = Reply::Type::kString;
        r.str = words[random() % words.size()];
        return r;
      default:
        r.type = Reply::Type::kArray;
        for (int i = static_cast<int>(random() % 5); i > 0; --i)
          r.elements.push_back(make(depth + 1));
        return r;
    }
  };
  for (int i = 0; i < 20000; ++i) {
    const Reply reply = make(0);
    const auto address = parse_master_address(reply);
    EXPECT_EQ(static_cast<int>(address.address.has_value()) + address.unknown_master +
                  !address.error.empty(),
              1);
    if (const auto push = parse_pubsub_push(reply)) (void)parse_switch_master(push->payload);
    (void)parse_role(reply);
  }
}

TEST(SentinelTest, RotationKeepsTheSentinelThatAnswers) {
  SentinelRotation rotation(3);
  EXPECT_EQ(rotation.current(), 0u);
  EXPECT_FALSE(rotation.fail());
  EXPECT_EQ(rotation.current(), 1u);
  rotation.succeed();
  EXPECT_EQ(rotation.current(), 1u) << "the sentinel that answered stays first";
  EXPECT_FALSE(rotation.fail());
  EXPECT_FALSE(rotation.fail());
  EXPECT_TRUE(rotation.fail()) << "all three failed in a row: the round is over";
  EXPECT_EQ(rotation.current(), 1u);
  EXPECT_FALSE(rotation.fail());
  SentinelRotation one(1);
  EXPECT_TRUE(one.fail());
  EXPECT_EQ(one.current(), 0u);
  SentinelRotation none(0);  // treated as one
  EXPECT_TRUE(none.fail());
}

}  // namespace
}  // namespace pacer::redis::internal
