// The cluster routing rules without a cluster: replies recorded from Redis 7 (RESP bytes as a
// server sends them) are fed to the router, which says where each command goes next and when
// the slot map is asked for again.
#include "cluster_router.h"

#include <gtest/gtest.h>

#include <string>

#include "replies.h"

namespace pacer::redis::internal {
namespace {

using namespace std::chrono_literals;
using Kind = ClusterRouter::Step::Kind;
using Clock = ClusterRouter::Clock;
const auto parse = test_replies::read_one;

// `CLUSTER SLOTS` of a 3-master cluster with one replica each (redis-server 7.0, ports 7000-7005).
constexpr std::string_view kThreeMasters =
    "*3\r\n"
    "*4\r\n:0\r\n:5460\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b001\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b004\r\n*0\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b002\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7004\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b005\r\n*0\r\n"
    "*4\r\n:10923\r\n:16383\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7002\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b003\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7005\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b006\r\n*0\r\n";

// The same cluster after the replica on 7003 took over from 7000 (CLUSTER FAILOVER).
constexpr std::string_view kAfterFailover =
    "*3\r\n"
    "*3\r\n:0\r\n:5460\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b004\r\n*0\r\n"
    "*4\r\n:5461\r\n:10922\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b002\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7004\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b005\r\n*0\r\n"
    "*4\r\n:10923\r\n:16383\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7002\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b003\r\n*0\r\n"
    "*4\r\n$9\r\n127.0.0.1\r\n:7005\r\n$40\r\n4c1f6a1f37ac5e9e2c1b0cbd2a8f7d0a3ad1b006\r\n*0\r\n";

class ClusterRouterTest : public ::testing::Test {
 protected:
  ClusterRouterTest() : router_({{"127.0.0.1", 7000}, {"127.0.0.1", 7001}}, {}) {}

  // Runs one refresh answered by `resp` from the first candidate.
  ClusterRouter::Applied refresh(std::string_view resp) {
    const auto due = router_.next_refresh();
    EXPECT_TRUE(due.has_value());
    if (due && *due > now_) now_ = *due;
    const auto asked = router_.refresh_candidates().front();
    router_.refresh_started(now_);
    now_ += 1ms;
    return router_.refresh_finished(parse(resp), asked, now_);
  }

  ClusterRouter::NodeId node(std::uint16_t port) { return router_.find_or_add("127.0.0.1", port); }

  Clock::time_point now_ = Clock::now();
  ClusterRouter router_;
};

TEST_F(ClusterRouterTest, NoRouteBeforeTheFirstMapWhichIsWantedAtOnce) {
  EXPECT_FALSE(router_.has_map());
  EXPECT_EQ(router_.node_for(0), ClusterRouter::kNoNode);
  ASSERT_TRUE(router_.next_refresh().has_value());
  EXPECT_LE(*router_.next_refresh(), now_);
  // The seeds are the candidates until masters are known.
  EXPECT_EQ(router_.refresh_candidates(), (std::vector<ClusterRouter::NodeId>{0, 1}));
}

TEST_F(ClusterRouterTest, RoutesSlotsToMastersAndRetiresEveryOtherNode) {
  const auto applied = refresh(kThreeMasters);
  ASSERT_TRUE(applied.error.empty()) << applied.error;
  EXPECT_TRUE(applied.changed);
  EXPECT_EQ(router_.node_for(0), node(7000));
  EXPECT_EQ(router_.node_for(5460), node(7000));
  EXPECT_EQ(router_.node_for(5461), node(7001));
  EXPECT_EQ(router_.node_for(16383), node(7002));
  EXPECT_EQ(router_.masters().size(), 3u);
  // Replicas are never routed to: they are not even nodes of ours.
  EXPECT_EQ(router_.node_count(), 3u);
  EXPECT_TRUE(applied.retired.empty());
  // The next refresh is the periodic one.
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().refresh_interval);
}

TEST_F(ClusterRouterTest, OrdinaryRepliesAndErrorsGoToTheCaller) {
  refresh(kThreeMasters);
  EXPECT_EQ(router_.on_reply(parse(":1\r\n"), node(7000)).kind, Kind::kDeliver);
  EXPECT_EQ(router_.on_reply(parse("-NOSCRIPT No matching script\r\n"), node(7000)).kind,
            Kind::kDeliver);
  EXPECT_EQ(router_.on_reply(parse("-ERR unknown command\r\n"), node(7000)).kind, Kind::kDeliver);
  // Malformed redirects are errors like any other.
  EXPECT_EQ(router_.on_reply(parse("-MOVED 99999 127.0.0.1:7001\r\n"), node(7000)).kind,
            Kind::kDeliver);
  EXPECT_EQ(router_.on_reply(parse("-MOVED 12 nowhere\r\n"), node(7000)).kind, Kind::kDeliver);
}

TEST_F(ClusterRouterTest, AskIsFollowedOnceWithoutChangingTheMap) {
  refresh(kThreeMasters);
  const auto step = router_.on_reply(parse("-ASK 100 127.0.0.1:7001\r\n"), node(7000));
  EXPECT_EQ(step.kind, Kind::kResendAsking);
  EXPECT_EQ(step.node, node(7001));
  EXPECT_EQ(router_.node_for(100), node(7000));
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().refresh_interval);
}

TEST_F(ClusterRouterTest, ManyMovedRepliesForOneMoveAskForOneRefresh) {
  refresh(kThreeMasters);
  const auto started = router_.refreshes_started();
  // 256 commands for slot 100 were in flight when it moved to 7001: each is redirected.
  for (int i = 0; i < 256; ++i) {
    const auto step = router_.on_reply(parse("-MOVED 100 127.0.0.1:7001\r\n"), node(7000));
    ASSERT_EQ(step.kind, Kind::kResend);
    ASSERT_EQ(step.node, node(7001));
  }
  // The route is fixed at once, the neighbours keep theirs.
  EXPECT_EQ(router_.node_for(100), node(7001));
  EXPECT_EQ(router_.node_for(101), node(7000));
  // One refresh, due no sooner than the minimum gap after the last one.
  ASSERT_TRUE(router_.next_refresh().has_value());
  EXPECT_LE(*router_.next_refresh(), now_ + router_.options().min_refresh_gap);
  refresh(kThreeMasters);  // the servers still answer with the old map: the patch is undone...
  EXPECT_EQ(router_.refreshes_started(), started + 1);
  // ...and no further refresh is wanted until something else happens.
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().refresh_interval);
}

TEST_F(ClusterRouterTest, AMoveDuringARefreshInFlightAsksForExactlyOneMore) {
  refresh(kThreeMasters);
  router_.want_refresh();
  router_.refresh_started(now_);
  EXPECT_FALSE(router_.next_refresh().has_value());  // one at a time
  for (int i = 0; i < 10; ++i) router_.on_reply(parse("-MOVED 200 127.0.0.1:7002\r\n"), node(7000));
  // The answer in flight may predate the move: one more refresh after it, not ten.
  router_.refresh_finished(parse(kThreeMasters), node(7000), now_ + 1ms);
  ASSERT_TRUE(router_.next_refresh().has_value());
  EXPECT_EQ(*router_.next_refresh(), now_ + router_.options().min_refresh_gap);
  now_ += 100ms;
  router_.refresh_started(now_);
  router_.refresh_finished(parse(kThreeMasters), node(7000), now_);
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().refresh_interval);
}

TEST_F(ClusterRouterTest, MovedToANewNodeMakesItAMasterAtOnce) {
  refresh(kThreeMasters);
  const auto step = router_.on_reply(parse("-MOVED 3000 127.0.0.1:7006\r\n"), node(7000));
  EXPECT_EQ(step.kind, Kind::kResend);
  EXPECT_EQ(router_.endpoint(step.node).port, 7006);
  EXPECT_TRUE(router_.is_master(step.node));
  EXPECT_EQ(router_.node_for(3000), step.node);
}

TEST_F(ClusterRouterTest, MovedWithAnEmptyHostMeansTheNodeThatAnswered) {
  refresh(kThreeMasters);
  const auto step = router_.on_reply(parse("-MOVED 3000 :7001\r\n"), node(7000));
  EXPECT_EQ(step.node, node(7001));
}

TEST_F(ClusterRouterTest, TryAgainAndClusterDownAreRetriedLater) {
  refresh(kThreeMasters);
  EXPECT_EQ(router_
                .on_reply(parse("-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
                          node(7000))
                .kind,
            Kind::kRetryLater);
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().refresh_interval);
  EXPECT_EQ(router_.on_reply(parse("-CLUSTERDOWN The cluster is down\r\n"), node(7001)).kind,
            Kind::kRetryLater);
  // CLUSTERDOWN means a failover may be under way: look at the map again soon.
  ASSERT_TRUE(router_.next_refresh().has_value());
  EXPECT_LE(*router_.next_refresh(), now_ + router_.options().min_refresh_gap);
}

TEST_F(ClusterRouterTest, FailoverRetiresTheOldMasterAndRoutesToThePromotedReplica) {
  refresh(kThreeMasters);
  const auto old_master = node(7000);
  router_.set_degraded(true);  // the client saw 7000 go down
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().degraded_refresh_interval);
  const auto applied = refresh(kAfterFailover);
  EXPECT_TRUE(applied.changed);
  EXPECT_EQ(router_.endpoint(router_.node_for(0)).port, 7003);
  EXPECT_EQ(applied.retired, (std::vector<ClusterRouter::NodeId>{old_master}));
  EXPECT_FALSE(router_.is_master(old_master));
}

TEST_F(ClusterRouterTest, BadMapsChangeNothingAndAreRetriedWithBackoff) {
  refresh(kThreeMasters);
  router_.want_refresh();
  const auto first = refresh("-ERR This instance has cluster support disabled\r\n");
  EXPECT_FALSE(first.error.empty());
  EXPECT_EQ(router_.node_for(0), node(7000));
  const auto delay1 = *router_.next_refresh() - now_;
  refresh("*0\r\n");
  const auto delay2 = *router_.next_refresh() - now_;
  EXPECT_EQ(delay1, router_.options().failed_refresh_delay);
  EXPECT_EQ(delay2, 2 * router_.options().failed_refresh_delay);
  // Bounded by the periodic interval.
  for (int i = 0; i < 20; ++i) refresh("+OK\r\n");
  EXPECT_EQ(*router_.next_refresh() - now_, router_.options().refresh_interval);
  // A good map resets it.
  refresh(kThreeMasters);
  EXPECT_EQ(router_.next_refresh(), now_ + router_.options().refresh_interval);
}

TEST_F(ClusterRouterTest, AFailedRequestForTheMapIsRetried) {
  router_.refresh_started(now_);
  router_.refresh_failed(now_ + 1ms);
  EXPECT_EQ(router_.next_refresh(), now_ + 1ms + router_.options().failed_refresh_delay);
}

}  // namespace
}  // namespace pacer::redis::internal
