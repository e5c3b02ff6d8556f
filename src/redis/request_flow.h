// What happens to a request between Client::execute() and its handler, without I/O: which node
// it goes to, when it waits, when it is sent again, when it fails, and when the cluster slot map
// is asked for. Its Asio shell (node_connections.h) owns the connections and the one timer; it
// feeds this class events and carries out the actions it queues, so the rules are unit-tested
// without sockets (tests/redis/request_flow_test.cc). ClusterRouter says what a reply means; this
// class decides what then happens to the request.
//
// The rules (docs/DESIGN.md §5, §6):
// - A request has one deadline, the caller's (default: submit time + command_timeout), however
//   often it is redirected or retried. A request waiting here fails with kTimeout at its
//   deadline; one written to a connection belongs to that connection's multiplexer, which times
//   it out, so a deadline and a reply never both answer it.
// - A request is held while its node cannot take it yet: before the slot map while one is on its
//   way, or while its node is on its first connection attempt (a node just named by a MOVED or
//   a new map). A node that was up and went down is not waited for: kStoreUnavailable at once.
//   Standalone (and Sentinel), the only node is node 0; the client sends through here only
//   while that node's first connection is under way.
// - MOVED and ASK are followed for up to `max_redirects` hops (ASK behind ASKING); the redirect
//   past that budget reaches the caller as it is. TRYAGAIN and CLUSTERDOWN are tried again after
//   the router's retry_delay, until the deadline. Every other reply, and every failure of a
//   request already written (its outcome is unknown), goes to the caller: never sent again.
// - Cluster: CLUSTER SLOTS goes to the first of the router's candidates whose connection is up
//   when the router says a refresh is due; with none up, the seeds are connected and the first
//   to come up is asked (on_node_up).
// - Exactly once: every submitted request is completed by exactly one kComplete action. Each
//   send has its own ticket; an answer with any other ticket (a stale one) is ignored.
//
// Events (start() to fail_held()) queue actions, which the owner takes with next_action() and
// carries out in order; carrying one out may cause further events (a send refused, a handler that
// submits another request), whose actions join the same queue. The owner arms one timer for
// next_wake() and calls on_tick() then. The state of the nodes' connections is asked through
// Links, not told: a first connection attempt can fail without an event.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cluster_router.h"
#include "pacer/redis/client.h"
#include "pacer/redis/reply.h"
#include "ring_queue.h"

namespace pacer::redis::internal {

class RequestFlow {
 public:
  using Clock = std::chrono::steady_clock;
  using NodeId = ClusterRouter::NodeId;
  static constexpr NodeId kNoNode = ClusterRouter::kNoNode;
  static constexpr Clock::time_point kNever = Clock::time_point::max();

  struct Options {
    bool cluster = false;  // false: standalone or Sentinel, one node (0)
    Clock::duration command_timeout = std::chrono::milliseconds(100);
    int max_redirects = 5;  // MOVED/ASK hops per request
    ClusterRouter::Options router;
  };

  // A node's connection as the owner sees it.
  enum class Link : std::uint8_t {
    kNone,        // no connection: never needed yet, retired, or stopped
    kConnecting,  // on its first attempt, never up yet: worth waiting for
    kUp,
    kDown,  // was up and failed, or its first attempt failed: requests fail fast
  };
  class Links {
   public:
    virtual Link link(NodeId node) const = 0;

   protected:
    ~Links() = default;
  };

  // One send of one request; its answer comes back with it.
  struct Ticket {
    std::uint32_t index = 0;
    std::uint32_t generation = 0;
  };

  struct Action {
    enum class Kind : std::uint8_t {
      kConnect,   // give `node` a connection if it has none
      kSend,      // write command(ticket) to `node` (behind ASKING when `asking`), timed out at
                  // `deadline`; answer with on_reply(), or on_send_failed() if it is refused
      kAskSlots,  // send CLUSTER SLOTS to `node`; answer with on_slots(), or on_slots_not_sent()
      kRetire,    // `node` serves no slots: close its connection once its requests are answered,
                  // at the latest at `deadline`
      kComplete,  // call `handler` with (error, reply): now, or with `later` not inside the
                  // current call (which may be execute()); `later` is only set with an error
    };
    Kind kind = Kind::kComplete;
    NodeId node = kNoNode;
    Ticket ticket;
    bool asking = false;
    bool later = false;
    Clock::time_point deadline{};
    ReplyHandler handler;
    std::error_code error;
    Reply reply;
  };

  RequestFlow(const std::vector<std::pair<std::string, std::uint16_t>>& seeds, Options options,
              const Links& links);
  RequestFlow(const RequestFlow&) = delete;
  RequestFlow& operator=(const RequestFlow&) = delete;

  // ---- events --------------------------------------------------------------------------------
  // Cluster: connect the seeds (CLUSTER SLOTS goes to the first one up).
  void start();
  // A request for hash slot `slot` (ignored standalone): `args` encoded, or a command already
  // in RESP form. `deadline` defaults to now + command_timeout.
  void submit(std::span<const std::string_view> args, std::uint16_t slot, ReplyHandler&& handler,
              std::optional<Clock::time_point> deadline, Clock::time_point now);
  void submit_encoded(std::string&& command, std::uint16_t slot, ReplyHandler&& handler,
                      std::optional<Clock::time_point> deadline, Clock::time_point now);
  // The answer to a kSend: a reply, or the connection's failure (kTimeout, the connection lost).
  void on_reply(Ticket ticket, NodeId node, std::error_code ec, Reply&& reply,
                Clock::time_point now);
  // The connection refused a kSend (not up, full, breaker open): nothing was written.
  void on_send_failed(Ticket ticket, std::error_code ec);
  // A node's connection came up; one that was up went down.
  void on_node_up(Clock::time_point now);
  void on_node_down(NodeId node, Clock::time_point now);
  // The timer (armed for next_wake()) fired.
  void on_tick(Clock::time_point now);
  // The answer to a kAskSlots. Returns what went wrong ("host:port: CLUSTER SLOTS failed: ..."),
  // empty when the map was applied.
  std::string on_slots(NodeId asked, std::error_code ec, const Reply& reply, Clock::time_point now);
  void on_slots_not_sent(Clock::time_point now) { router_.refresh_failed(now); }
  // From now on nothing is routed: new requests fail with kStoreUnavailable.
  void stop() { stopped_ = true; }
  // Completes every held request with kStoreUnavailable, now (after stop()).
  void fail_held();

  // ---- actions and state ---------------------------------------------------------------------
  std::optional<Action> next_action();
  // The command of a request while it is sent (valid until the next event).
  std::string_view command(Ticket ticket) const { return requests_[ticket.index].command; }
  // When on_tick() is next needed: a held request's retry time or deadline, or the next slot map
  // refresh. kNever: nothing to wait for.
  Clock::time_point next_wake() const;
  // Standalone: node 0 is up. Cluster: the slot map is known and every master is up (and the
  // router polls faster while one is not). Asked after connection events.
  bool update_connected();
  const ClusterRouter& router() const { return router_; }
  std::size_t held() const { return held_.size(); }

 private:
  enum class State : std::uint8_t { kFree, kHeld, kSent };

  // A request until its caller has the answer: the encoded bytes are kept for a resend, and the
  // deadline is the caller's. Slots are recycled, so a steady stream of requests allocates
  // nothing here.
  struct Request {
    std::string command;
    ReplyHandler handler;
    Clock::time_point deadline{};
    std::uint16_t slot = 0;
    int redirects = 0;
    State state = State::kFree;
    std::uint32_t generation = 0;  // bumped by every send and completion: stale tickets miss
    // While held: the node it waits for (kNoNode: route by slot), whether ASKING goes first, and
    // when to try again (kNever: when a node comes up or a slot map arrives).
    NodeId target = kNoNode;
    bool asking = false;
    Clock::time_point wake = kNever;
  };

  std::uint32_t acquire();
  void start_request(std::uint32_t index, std::uint16_t slot, ReplyHandler&& handler,
                     std::optional<Clock::time_point> deadline, Clock::time_point now);
  Request* sent(Ticket ticket);
  void complete(std::uint32_t index, std::error_code ec, Reply&& reply, bool later);
  void route(std::uint32_t index, NodeId target, bool asking, Clock::time_point now);
  void hold(std::uint32_t index, NodeId target, bool asking, Clock::time_point wake);
  // Tries held requests again: those due by `now`, and with `event` (a node came up, a slot map
  // arrived) those waiting for one. Past their deadline they fail with kTimeout.
  void release_held(Clock::time_point now, bool event);
  bool map_on_its_way() const;
  void maybe_refresh(Clock::time_point now);
  void push(Action&& action) { actions_.emplace_back(std::move(action)); }

  Options options_;
  const Links& links_;
  ClusterRouter router_;
  bool stopped_ = false;
  bool refresh_needs_connection_ = false;  // a refresh is due but no connection is up to ask
  std::vector<Request> requests_;
  std::vector<std::uint32_t> free_;
  std::vector<std::uint32_t> held_;  // waiting for a node, the slot map or a retry delay
  RingQueue<Action> actions_;
};

// Client::execute_on_all's fan-in: `parts` handlers, each called exactly once; the last to run
// answers `handler` with one reply per part (kNil where a part failed) and the first failure.
std::vector<ReplyHandler> gather_replies(std::size_t parts, AllRepliesHandler&& handler);

}  // namespace pacer::redis::internal
