// Cluster routing without a cluster: hash slots, CLUSTER SLOTS parsing, redirect parsing.
#include "cluster.h"

#include <gtest/gtest.h>

#include "replies.h"

namespace pacer::redis::internal {
namespace {

using namespace test_replies;

TEST(ClusterTest, Crc16MatchesTheClusterSpecTestVector) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);
  EXPECT_EQ(crc16(""), 0);
}

TEST(ClusterTest, HashSlotsOfKnownKeys) {
  // Values as given by CLUSTER KEYSLOT on Redis 7.
  EXPECT_EQ(hash_slot("foo"), 12182);
  EXPECT_EQ(hash_slot("bar"), 5061);
  EXPECT_EQ(hash_slot("123456789"), 0x31C3);
  EXPECT_EQ(hash_slot(""), 0);
}

TEST(ClusterTest, HashTags) {
  // The spec's examples.
  EXPECT_EQ(hash_slot("{user1000}.following"), hash_slot("user1000"));
  EXPECT_EQ(hash_slot("{user1000}.followers"), hash_slot("user1000"));
  EXPECT_EQ(hash_slot("foo{}{bar}"), hash_slot("foo{}{bar}")) << "empty tag: whole key";
  EXPECT_NE(hash_slot("foo{}{bar}"), hash_slot("bar"));
  EXPECT_EQ(hash_slot("foo{{bar}}zap"), hash_slot("{bar"));
  EXPECT_EQ(hash_slot("foo{bar}{zap}"), hash_slot("bar"));
  EXPECT_EQ(hash_slot("{"), crc16("{") & 16383);
  EXPECT_EQ(hash_slot("}{"), crc16("}{") & 16383);
  EXPECT_EQ(hash_slot("a{b"), crc16("a{b") & 16383);
  // Pacer's storage keys: the identity part is the tag.
  EXPECT_EQ(hash_slot("pacer:{api:GET /x:1.2.3.4}"), hash_slot("api:GET /x:1.2.3.4"));
}

TEST(ClusterTest, ParsesClusterSlots) {
  // Three masters, one with a replica, one with Redis 7's metadata map and one whose endpoint
  // is unknown (nil / "?": use the node that was asked).
  const Reply reply = array({
      array({integer(0), integer(5460), array({string("10.0.0.1"), integer(7000), string("id1")}),
             array({string("10.0.0.4"), integer(7003), string("id4")})}),
      array({integer(5461), integer(10922),
             array({string("10.0.0.2"), integer(7001), string("id2"), array({})})}),
      array({integer(10923), integer(16000), array({nil(), integer(7002), string("id3")})}),
      array({integer(16001), integer(16383), array({string("?"), integer(7002), string("id3")})}),
  });
  const SlotMapResult result = parse_cluster_slots(reply, "seed.local");
  ASSERT_TRUE(result.error.empty()) << result.error;
  ASSERT_EQ(result.ranges.size(), 4u);
  EXPECT_EQ(result.ranges[0].first, 0);
  EXPECT_EQ(result.ranges[0].last, 5460);
  EXPECT_EQ(result.ranges[0].host, "10.0.0.1");
  EXPECT_EQ(result.ranges[0].port, 7000);
  EXPECT_EQ(result.ranges[1].host, "10.0.0.2");
  EXPECT_EQ(result.ranges[1].first, 5461);
  EXPECT_EQ(result.ranges[2].host, "seed.local");
  EXPECT_EQ(result.ranges[2].port, 7002);
  EXPECT_EQ(result.ranges[3].host, "seed.local");
  EXPECT_EQ(result.ranges[3].last, 16383);
}

TEST(ClusterTest, RejectsBadClusterSlotsReplies) {
  EXPECT_EQ(parse_cluster_slots(error("ERR This instance has cluster support disabled"), "h").error,
            "ERR This instance has cluster support disabled");
  EXPECT_FALSE(parse_cluster_slots(integer(1), "h").error.empty());
  EXPECT_FALSE(parse_cluster_slots(array({}), "h").error.empty()) << "no slots at all";
  EXPECT_FALSE(parse_cluster_slots(array({array({integer(0), integer(1)})}), "h").error.empty());
  EXPECT_FALSE(parse_cluster_slots(
                   array({array({integer(5), integer(4), array({string("a"), integer(1)})})}), "h")
                   .error.empty());
  EXPECT_FALSE(
      parse_cluster_slots(
          array({array({integer(0), integer(16384), array({string("a"), integer(1)})})}), "h")
          .error.empty());
  EXPECT_FALSE(
      parse_cluster_slots(
          array({array({integer(0), integer(1), array({string("a"), integer(70000)})})}), "h")
          .error.empty());
}

TEST(ClusterTest, ParsesRedirects) {
  auto moved = parse_redirect(error("MOVED 3999 127.0.0.1:6381"), "x");
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->kind, Redirect::Kind::kMoved);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->host, "127.0.0.1");
  EXPECT_EQ(moved->port, 6381);

  auto ask = parse_redirect(error("ASK 16383 redis-2.internal:7000"), "x");
  ASSERT_TRUE(ask);
  EXPECT_EQ(ask->kind, Redirect::Kind::kAsk);
  EXPECT_EQ(ask->slot, 16383);
  EXPECT_EQ(ask->host, "redis-2.internal");

  auto v6 = parse_redirect(error("MOVED 1 ::1:7000"), "x");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7000);
  auto bracketed = parse_redirect(error("MOVED 1 [::1]:7000"), "x");
  ASSERT_TRUE(bracketed);
  EXPECT_EQ(bracketed->host, "::1");

  auto unknown = parse_redirect(error("MOVED 1 :7000"), "asked.host");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->host, "asked.host");

  EXPECT_FALSE(parse_redirect(error("NOSCRIPT No matching script"), "x"));
  EXPECT_FALSE(parse_redirect(error("MOVED"), "x"));
  EXPECT_FALSE(parse_redirect(error("MOVED 16384 h:1"), "x"));
  EXPECT_FALSE(parse_redirect(error("MOVED 1 h"), "x"));
  EXPECT_FALSE(parse_redirect(error("MOVED 1 h:0"), "x"));
  EXPECT_FALSE(parse_redirect(string("MOVED 1 h:1"), "x")) << "not an error reply";
}

TEST(ClusterTest, EndpointNames) {
  EXPECT_EQ(endpoint_name("127.0.0.1", 6379), "127.0.0.1:6379");
  EXPECT_EQ(endpoint_name("::1", 7000), "[::1]:7000");
}

}  // namespace
}  // namespace pacer::redis::internal
