// Redis Cluster routing without I/O: which node serves a slot, what a reply says to do next, and
// when to ask for the slot map again. The client (client.cc) owns the connections and the
// timers; this class owns the rules, so they are unit-tested with recorded replies.
//
// The rules:
// - A command goes to the master that serves its key's slot. Before the first slot map there is
//   no route: the client holds the command until the map arrives or its deadline passes.
// - MOVED, ASK, TRYAGAIN and CLUSTERDOWN are answered before the command runs, so resending is
//   safe: MOVED goes to the named node (and fixes that slot's route at once), ASK goes there
//   once behind ASKING, TRYAGAIN and CLUSTERDOWN are retried after `retry_delay`. Every other
//   reply, and every failure (a timeout, a connection lost after the write: the outcome is
//   unknown), goes to the caller unchanged.
// - The slot map is refreshed once per topology change, not once per redirect: a MOVED that
//   agrees with the route already known asks for nothing, one that changes it asks for one
//   refresh; events during a refresh in flight ask for exactly one more after it; refreshes are
//   at least `min_refresh_gap` apart. Otherwise every `refresh_interval`, or every
//   `degraded_refresh_interval` while a master is unreachable (a replica may be promoted).
// - Nodes that no longer serve slots (replicas, removed masters, the seeds) are retired: the
//   client closes them once the requests already written there are answered.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster.h"
#include "pacer/redis/reply.h"

namespace pacer::redis::internal {

class ClusterRouter {
 public:
  using Clock = std::chrono::steady_clock;
  using NodeId = std::int32_t;
  static constexpr NodeId kNoNode = -1;

  struct Options {
    Clock::duration refresh_interval = std::chrono::seconds(30);
    Clock::duration degraded_refresh_interval = std::chrono::milliseconds(100);
    Clock::duration min_refresh_gap = std::chrono::milliseconds(50);
    // After a failed refresh (error reply, bad map), doubling up to `refresh_interval`.
    Clock::duration failed_refresh_delay = std::chrono::milliseconds(100);
    Clock::duration retry_delay = std::chrono::milliseconds(5);  // TRYAGAIN, CLUSTERDOWN
  };

  struct Endpoint {
    std::string host;
    std::uint16_t port = 0;
  };

  // What to do with a reply to a command for `slot` sent to a node.
  struct Step {
    enum class Kind : std::uint8_t {
      kDeliver,       // hand the reply to the caller
      kResend,        // send again to `node` (MOVED)
      kResendAsking,  // ASKING, then the command, to `node` (ASK)
      kRetryLater,    // route again after `retry_delay` (TRYAGAIN, CLUSTERDOWN)
    };
    Kind kind = Kind::kDeliver;
    NodeId node = kNoNode;
  };

  struct Applied {
    std::string error;            // non-empty: the reply was no usable map; nothing changed
    std::vector<NodeId> retired;  // every node that serves no slot now: close it when idle
    bool changed = false;         // the slot -> node routes differ from before
  };

  ClusterRouter(const std::vector<std::pair<std::string, std::uint16_t>>& seeds, Options options);

  // ---- nodes ---------------------------------------------------------------------------------
  NodeId find_or_add(std::string_view host, std::uint16_t port);
  const Endpoint& endpoint(NodeId node) const { return nodes_[static_cast<std::size_t>(node)]; }
  std::size_t node_count() const { return nodes_.size(); }
  const std::vector<NodeId>& seeds() const { return seeds_; }
  const std::vector<NodeId>& masters() const { return masters_; }
  bool is_master(NodeId node) const;

  // ---- routing -------------------------------------------------------------------------------
  bool has_map() const { return !slots_.empty(); }
  NodeId node_for(std::uint16_t slot) const { return slots_.empty() ? kNoNode : slots_[slot]; }
  Step on_reply(const Reply& reply, NodeId from);
  const Options& options() const { return options_; }

  // ---- slot map refresh (one in flight at a time) --------------------------------------------
  // Something suggests the map is stale (a node went down, CLUSTERDOWN, a connection came up
  // before the first map).
  void want_refresh() { stale_ = true; }
  // While a master is unreachable the map is polled faster.
  void set_degraded(bool degraded) { degraded_ = degraded; }
  // When a refresh should start: nullopt while one is in flight.
  std::optional<Clock::time_point> next_refresh() const;
  bool refresh_in_flight() const { return in_flight_; }
  // Which nodes to ask, best first: masters, then the others (the client picks the first one
  // whose connection is up).
  std::vector<NodeId> refresh_candidates() const;
  void refresh_started(Clock::time_point now);
  // The CLUSTER SLOTS reply of `asked` (hosts it leaves unknown are `asked`'s own).
  Applied refresh_finished(const Reply& reply, NodeId asked, Clock::time_point now);
  // The request failed (timeout, connection lost): try again after the failure delay.
  void refresh_failed(Clock::time_point now);

  std::uint64_t refreshes_started() const { return refreshes_; }

 private:
  Options options_;
  std::vector<Endpoint> nodes_;
  std::unordered_map<std::string, NodeId> index_;  // endpoint_name() -> node
  std::vector<NodeId> seeds_;
  std::vector<NodeId> slots_;    // slot -> node; empty until the first map
  std::vector<NodeId> masters_;  // nodes that serve slots
  bool degraded_ = false;
  bool in_flight_ = false;
  bool stale_ = false;  // a refresh is wanted (if in flight: one more after it)
  Clock::time_point last_start_{};
  Clock::time_point last_end_{};
  Clock::duration failure_delay_{};  // zero while the last refresh succeeded
  std::uint64_t refreshes_ = 0;
};

}  // namespace pacer::redis::internal
