// What happens to a request without sockets: events (a request, a connection up, a reply, a
// tick) go into a RequestFlow, and the test checks the actions it queues (connect, send, complete)
// and when each request's handler is called. The nodes' connections are a table the test sets.
#include "request_flow.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "pacer/error.h"
#include "replies.h"

namespace pacer::redis::internal {
namespace {

using namespace std::chrono_literals;
using Action = RequestFlow::Action;
using Kind = RequestFlow::Action::Kind;
using Link = RequestFlow::Link;
using NodeId = RequestFlow::NodeId;
using Clock = RequestFlow::Clock;
const auto parse = test_replies::read_one;

// `CLUSTER SLOTS` of three masters: 0-5460 on 7000, 5461-10922 on 7001, 10923-16383 on 7002.
constexpr std::string_view kThreeMasters =
    "*3\r\n"
    "*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n"
    "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
    "*3\r\n:10923\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7002\r\n";
constexpr NodeId k7000 = 0;  // the seeds first, then the map's new nodes, then redirect targets
constexpr NodeId k7001 = 1;
constexpr NodeId k7002 = 2;
constexpr std::uint16_t kSlotOn7000 = 100;

// What a request's handler saw.
struct Outcome {
  int calls = 0;
  std::error_code error;
  Reply reply;
  bool later = false;  // answered through the deferred queue
};

class RequestFlowTest : public ::testing::Test, public RequestFlow::Links {
 protected:
  Link link(NodeId node) const override {
    const auto it = links_.find(node);
    return it == links_.end() ? Link::kNone : it->second;
  }

  static RequestFlow::Options cluster_options(int max_redirects = 5) {
    RequestFlow::Options options;
    options.cluster = true;
    options.command_timeout = 100ms;
    options.max_redirects = max_redirects;
    return options;
  }

  // A flow whose seeds are 7000 and 7001, with the three-master map applied and every master up.
  std::unique_ptr<RequestFlow> cluster_with_map(int max_redirects = 5) {
    auto flow = std::make_unique<RequestFlow>(
        std::vector<std::pair<std::string, std::uint16_t>>{{"127.0.0.1", 7000},
                                                           {"127.0.0.1", 7001}},
        cluster_options(max_redirects), *this);
    flow->start();
    EXPECT_EQ(actions(*flow).size(), 2u);  // connect both seeds
    links_[k7000] = Link::kUp;
    flow->on_node_up(now_);
    const auto ask = actions(*flow);
    EXPECT_EQ(ask.size(), 1u);
    EXPECT_EQ(ask.at(0).kind, Kind::kAskSlots);
    EXPECT_TRUE(flow->on_slots(ask.at(0).node, {}, parse(kThreeMasters), now_).empty());
    actions(*flow);  // connect the masters
    links_[k7001] = Link::kUp;
    links_[k7002] = Link::kUp;
    EXPECT_TRUE(flow->update_connected());
    return flow;
  }

  // Submits a request whose handler records into outcomes_[index]; returns the index.
  std::size_t submit(RequestFlow& flow, std::uint16_t slot,
                     std::optional<Clock::time_point> deadline = std::nullopt) {
    const std::size_t index = outcomes_.size();
    outcomes_.emplace_back();
    const std::string_view args[] = {"GET", "k"};
    flow.submit(
        args, slot,
        [this, index](std::error_code ec, Reply&& reply) {
          Outcome& outcome = outcomes_[index];
          ++outcome.calls;
          outcome.error = ec;
          outcome.reply = std::move(reply);
          outcome.later = completing_later_;
        },
        deadline, now_);
    return index;
  }

  // Takes the queued actions: completions are carried out (their handlers called), the others
  // returned in order.
  std::vector<Action> actions(RequestFlow& flow) {
    std::vector<Action> others;
    while (auto action = flow.next_action()) {
      if (action->kind == Kind::kComplete) {
        completing_later_ = action->later;
        action->handler(action->error, std::move(action->reply));
      } else {
        others.push_back(std::move(*action));
      }
    }
    return others;
  }

  // The one send the flow asked for.
  Action one_send(RequestFlow& flow) {
    auto queued = actions(flow);
    EXPECT_EQ(queued.size(), 1u);
    if (queued.size() != 1) return {};
    EXPECT_EQ(queued[0].kind, Kind::kSend);
    return std::move(queued[0]);
  }

  void reply(RequestFlow& flow, const Action& send, std::string_view resp) {
    flow.on_reply(send.ticket, send.node, {}, parse(resp), now_);
  }

  Clock::time_point now_ = Clock::now();
  std::map<NodeId, Link> links_;
  std::vector<Outcome> outcomes_;
  bool completing_later_ = false;
};

TEST_F(RequestFlowTest, ARequestGoesToItsSlotsMasterAndGetsItsReply) {
  auto flow = cluster_with_map();
  const auto request = submit(*flow, kSlotOn7000);
  const Action send = one_send(*flow);
  EXPECT_EQ(send.node, k7000);
  EXPECT_FALSE(send.asking);
  EXPECT_EQ(send.deadline, now_ + 100ms);
  EXPECT_EQ(flow->command(send.ticket), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
  reply(*flow, send, ":7\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_FALSE(outcomes_[request].error);
  EXPECT_EQ(outcomes_[request].reply.integer, 7);
  EXPECT_FALSE(outcomes_[request].later);
}

TEST_F(RequestFlowTest, DeadlineWhileHeldForTheFirstSlotMap) {
  RequestFlow flow({{"127.0.0.1", 7000}}, cluster_options(), *this);
  flow.start();
  actions(flow);
  links_[k7000] = Link::kConnecting;  // the seed's first attempt: a map is on its way
  // The map is due at once, but nobody is up to ask: the timer waits for a connection.
  flow.on_tick(now_);
  actions(flow);
  const auto request = submit(flow, kSlotOn7000, now_ + 30ms);
  EXPECT_TRUE(actions(flow).empty());
  EXPECT_EQ(flow.held(), 1u);
  EXPECT_EQ(flow.next_wake(), now_ + 30ms);
  flow.on_tick(now_ + 29ms);
  actions(flow);
  EXPECT_EQ(outcomes_[request].calls, 0);
  flow.on_tick(now_ + 30ms);
  actions(flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kTimeout);
  EXPECT_EQ(flow.held(), 0u);
  // The seed comes up after all: nothing is left to send, nothing is answered twice.
  links_[k7000] = Link::kUp;
  flow.on_node_up(now_ + 31ms);
  for (const Action& action : actions(flow)) EXPECT_NE(action.kind, Kind::kSend);
  EXPECT_EQ(outcomes_[request].calls, 1);
}

TEST_F(RequestFlowTest, DeadlineWhileHeldForANodeOnItsFirstConnection) {
  auto flow = cluster_with_map();
  links_[k7000] = Link::kConnecting;
  const auto request = submit(*flow, kSlotOn7000, now_ + 10ms);
  EXPECT_TRUE(actions(*flow).empty());
  // Another node coming up retries it; 7000 is still connecting: held again.
  flow->on_node_up(now_ + 5ms);
  EXPECT_TRUE(actions(*flow).empty());
  EXPECT_EQ(flow->held(), 1u);
  flow->on_tick(now_ + 10ms);
  actions(*flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kTimeout);
  EXPECT_FALSE(outcomes_[request].later);
}

TEST_F(RequestFlowTest, NoSlotMapAndNoneComingFailsAtOnce) {
  RequestFlow flow({{"127.0.0.1", 7000}}, cluster_options(), *this);
  links_[k7000] = Link::kDown;  // its first attempt failed
  const auto request = submit(flow, kSlotOn7000);
  actions(flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kStoreUnavailable);
  EXPECT_TRUE(outcomes_[request].later) << "inside execute(): answered later";
}

TEST_F(RequestFlowTest, ANodeThatWentDownFailsFast) {
  auto flow = cluster_with_map();
  links_[k7000] = Link::kDown;
  const auto request = submit(*flow, kSlotOn7000);
  actions(*flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kStoreUnavailable);
  EXPECT_EQ(flow->held(), 0u);
}

TEST_F(RequestFlowTest, MovedToANodeNotYetConnected) {
  auto flow = cluster_with_map();
  const auto request = submit(*flow, kSlotOn7000);
  const Action first = one_send(*flow);
  reply(*flow, first, "-MOVED 100 127.0.0.1:7005\r\n");
  // 7005 is new: its connection is opened and the request waits for it.
  auto queued = actions(*flow);
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].kind, Kind::kConnect);
  const NodeId k7005 = queued[0].node;
  EXPECT_EQ(flow->router().endpoint(k7005).port, 7005);
  EXPECT_EQ(flow->router().node_for(kSlotOn7000), k7005);
  EXPECT_EQ(flow->held(), 1u);
  links_[k7005] = Link::kConnecting;
  flow->on_node_up(now_ + 1ms);  // some other node: 7005 is still connecting
  for (const Action& action : actions(*flow)) EXPECT_NE(action.kind, Kind::kSend);
  EXPECT_EQ(flow->held(), 1u);
  links_[k7005] = Link::kUp;
  flow->on_node_up(now_ + 2ms);
  Action second;
  for (Action& action : actions(*flow))
    if (action.kind == Kind::kSend) second = std::move(action);
  ASSERT_EQ(second.kind, Kind::kSend);
  EXPECT_EQ(second.node, k7005);
  EXPECT_FALSE(second.asking);
  EXPECT_EQ(second.deadline, first.deadline) << "one deadline, however often redirected";
  reply(*flow, second, "+OK\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].reply.str, "OK");
}

TEST_F(RequestFlowTest, MovedAfterTheDeadlineIsNotSentAgain) {
  auto flow = cluster_with_map();
  const auto request = submit(*flow, kSlotOn7000, now_ + 10ms);
  const Action send = one_send(*flow);
  now_ += 10ms;
  reply(*flow, send, "-MOVED 100 127.0.0.1:7001\r\n");
  for (const Action& action : actions(*flow)) EXPECT_NE(action.kind, Kind::kSend);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kTimeout);
}

TEST_F(RequestFlowTest, AskGoesOnceBehindAskingAndKeepsTheRoute) {
  auto flow = cluster_with_map();
  const auto request = submit(*flow, kSlotOn7000);
  reply(*flow, one_send(*flow), "-ASK 100 127.0.0.1:7001\r\n");
  const Action asked = one_send(*flow);
  EXPECT_EQ(asked.node, k7001);
  EXPECT_TRUE(asked.asking);
  reply(*flow, asked, ":1\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].reply.integer, 1);
  // The slot still belongs to 7000: the next request goes there, without ASKING.
  submit(*flow, kSlotOn7000);
  const Action next = one_send(*flow);
  EXPECT_EQ(next.node, k7000);
  EXPECT_FALSE(next.asking);
}

TEST_F(RequestFlowTest, TryAgainIsRetriedUntilTheDeadline) {
  auto flow = cluster_with_map();
  const auto start = now_;
  const auto request = submit(*flow, kSlotOn7000, start + 20ms);
  Action send = one_send(*flow);
  int sends = 1;
  for (int round = 0; round < 100 && outcomes_[request].calls == 0; ++round) {
    if (send.kind == Kind::kSend) {
      reply(*flow, send, "-TRYAGAIN Multiple keys request during rehashing of slot\r\n");
      EXPECT_TRUE(actions(*flow).empty());
      ASSERT_EQ(flow->held(), 1u);
      // Retried after the router's retry delay (5 ms), or failed at the deadline.
      EXPECT_EQ(flow->next_wake(), std::min(now_ + 5ms, start + 20ms));
    }
    now_ = flow->next_wake();
    flow->on_tick(now_);
    send = {};
    for (Action& action : actions(*flow)) {
      if (action.kind != Kind::kSend) continue;
      send = std::move(action);
      ++sends;
    }
  }
  EXPECT_EQ(sends, 4);  // at 0, 5, 10 and 15 ms
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kTimeout);
  EXPECT_EQ(now_, start + 20ms);
}

TEST_F(RequestFlowTest, ClusterDownIsRetriedAndAsksForTheMap) {
  auto flow = cluster_with_map();
  const auto request = submit(*flow, kSlotOn7000);
  reply(*flow, one_send(*flow), "-CLUSTERDOWN The cluster is down\r\n");
  EXPECT_TRUE(actions(*flow).empty());  // the map is asked for, but not before the minimum gap
  now_ += 50ms;
  flow->on_tick(now_);
  bool asked_for_map = false;
  Action send;
  for (Action& action : actions(*flow)) {
    asked_for_map = asked_for_map || action.kind == Kind::kAskSlots;
    if (action.kind == Kind::kSend) send = std::move(action);
  }
  EXPECT_TRUE(asked_for_map);
  ASSERT_EQ(send.kind, Kind::kSend);
  reply(*flow, send, ":3\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[request].reply.integer, 3);
}

TEST_F(RequestFlowTest, TheRedirectPastTheBudgetReachesTheCaller) {
  auto flow = cluster_with_map(/*max_redirects=*/2);
  const auto request = submit(*flow, kSlotOn7000);
  Action send = one_send(*flow);
  int sends = 1;
  // Two nodes that each say the slot is on the other.
  for (int i = 0; i < 10 && outcomes_[request].calls == 0; ++i) {
    reply(*flow, send,
          send.node == k7000 ? "-MOVED 100 127.0.0.1:7001\r\n" : "-MOVED 100 127.0.0.1:7000\r\n");
    for (Action& action : actions(*flow)) {
      if (action.kind != Kind::kSend) continue;
      send = std::move(action);
      ++sends;
    }
  }
  EXPECT_EQ(sends, 3) << "the first send and two redirects";
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_FALSE(outcomes_[request].error);
  EXPECT_TRUE(outcomes_[request].reply.is_error_prefix("MOVED")) << outcomes_[request].reply.str;
}

TEST_F(RequestFlowTest, DeadlineAndReplyRaceAnswerOnce) {
  auto flow = cluster_with_map();
  // Sent: the deadline is the connection's (its multiplexer fails it), not the flow's.
  const auto sent = submit(*flow, kSlotOn7000, now_ + 10ms);
  const Action send = one_send(*flow);
  flow->on_tick(now_ + 10ms);
  actions(*flow);
  EXPECT_EQ(outcomes_[sent].calls, 0);
  flow->on_reply(send.ticket, send.node, Errc::kTimeout, Reply{}, now_ + 10ms);
  actions(*flow);
  EXPECT_EQ(outcomes_[sent].calls, 1);
  EXPECT_EQ(outcomes_[sent].error, Errc::kTimeout);
  // Whatever comes for that send afterwards is not answered again.
  reply(*flow, send, ":1\r\n");
  flow->on_send_failed(send.ticket, Errc::kOverloaded);
  actions(*flow);
  EXPECT_EQ(outcomes_[sent].calls, 1);

  // Held for a retry when its deadline passes: a reply still on its way for an earlier send of
  // the same request is not answered either.
  const auto held = submit(*flow, kSlotOn7000, now_ + 10ms);
  const Action first = one_send(*flow);
  reply(*flow, first, "-TRYAGAIN\r\n");
  flow->on_tick(now_ + 10ms);
  actions(*flow);
  EXPECT_EQ(outcomes_[held].calls, 1);
  EXPECT_EQ(outcomes_[held].error, Errc::kTimeout);
  reply(*flow, first, ":2\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[held].calls, 1);

  // The request slot is reused by the next request: the old ticket does not reach it.
  const auto next = submit(*flow, kSlotOn7000);
  const Action fresh = one_send(*flow);
  EXPECT_EQ(fresh.ticket.index, first.ticket.index);
  reply(*flow, first, ":3\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[next].calls, 0);
  reply(*flow, fresh, ":4\r\n");
  actions(*flow);
  EXPECT_EQ(outcomes_[next].calls, 1);
  EXPECT_EQ(outcomes_[next].reply.integer, 4);
}

TEST_F(RequestFlowTest, FailuresAfterTheWriteAreNeverResent) {
  auto flow = cluster_with_map();
  const auto request = submit(*flow, kSlotOn7000);
  const Action send = one_send(*flow);
  flow->on_reply(send.ticket, send.node, Errc::kStoreUnavailable, Reply{}, now_);
  EXPECT_TRUE(actions(*flow).empty());
  EXPECT_EQ(outcomes_[request].calls, 1);
  EXPECT_EQ(outcomes_[request].error, Errc::kStoreUnavailable);
}

TEST_F(RequestFlowTest, StandaloneWaitsForTheFirstConnection) {
  RequestFlow flow({{"127.0.0.1", 6379}}, RequestFlow::Options{}, *this);
  links_[0] = Link::kConnecting;
  const auto request = submit(flow, 0, now_ + 50ms);
  EXPECT_TRUE(actions(flow).empty());
  links_[0] = Link::kUp;
  flow.on_node_up(now_ + 1ms);
  const Action send = one_send(flow);
  EXPECT_EQ(send.node, 0);
  reply(flow, send, "+PONG\r\n");
  actions(flow);
  EXPECT_EQ(outcomes_[request].reply.str, "PONG");
}

TEST_F(RequestFlowTest, StopFailsHeldRequestsAndRefusesNewOnes) {
  auto flow = cluster_with_map();
  links_[k7000] = Link::kConnecting;
  const auto held = submit(*flow, kSlotOn7000);
  actions(*flow);
  flow->stop();
  flow->fail_held();
  const auto after = submit(*flow, kSlotOn7000);
  actions(*flow);
  EXPECT_EQ(outcomes_[held].calls, 1);
  EXPECT_EQ(outcomes_[held].error, Errc::kStoreUnavailable);
  EXPECT_FALSE(outcomes_[held].later);
  EXPECT_EQ(outcomes_[after].calls, 1);
  EXPECT_EQ(outcomes_[after].error, Errc::kStoreUnavailable);
  EXPECT_TRUE(outcomes_[after].later);
}

}  // namespace
}  // namespace pacer::redis::internal
