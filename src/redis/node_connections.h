// A client's connections to its nodes, and the Asio shell around its RequestFlow, as Connection
// is around Multiplexer: it opens a node's connection when the flow first needs it, carries out
// the flow's actions (a send, CLUSTER SLOTS, retiring a node) and feeds it connection events,
// replies and the ticks of one timer. The decisions are the flow's (request_flow.h).
//
// - Retired connections (nodes that serve no slots any more) close once the requests written
//   there have their answers, or two command timeouts after they were retired.
// - Sentinel: node 0 is pointed at each new master (point_at); the old connection's requests
//   fail with kStoreUnavailable.
// - stop() is final: every connection stops, every request fails, and every handler has run
//   when it returns.
//
// On the io thread only. Handlers are called by the owner (the client), through Owner.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cluster_router.h"
#include "connection.h"
#include "request_flow.h"

namespace pacer::redis::internal {

class NodeConnections final : public ConnectionListener,
                              public RequestFlow::Links,
                              public std::enable_shared_from_this<NodeConnections> {
 public:
  using Clock = std::chrono::steady_clock;
  using NodeId = RequestFlow::NodeId;

  class Owner {
   public:
    // Calls a request's handler: now, or with `later` on a later turn of the io thread (this
    // may be inside execute()).
    virtual void complete(ReplyHandler& handler, std::error_code ec, Reply&& reply, bool later) = 0;
    // A connection came up (the flow has seen it), or one that was up went down.
    virtual void node_up() = 0;
    virtual void node_down(Connection& connection) = 0;

   protected:
    ~Owner() = default;
  };

  NodeConnections(boost::asio::io_context& io,
                  const std::vector<std::pair<std::string, std::uint16_t>>& seeds,
                  RequestFlow::Options options, ConnectionConfig base,
                  std::shared_ptr<ClientShared> shared, Owner& owner);
  NodeConnections(const NodeConnections&) = delete;
  NodeConnections& operator=(const NodeConnections&) = delete;

  // ---- requests through the flow -------------------------------------------------------------
  // Cluster: connects the seeds.
  void start();
  // `args`, or with `encoded` a command already in RESP form.
  void submit(std::span<const std::string_view> args, std::string* encoded, std::uint16_t slot,
              ReplyHandler&& handler, std::optional<Clock::time_point> deadline);
  const ClusterRouter& router() const { return flow_.router(); }

  // ---- connections ---------------------------------------------------------------------------
  const ConnectionConfig& base() const { return base_; }
  // The node's connection, or null.
  Connection* get(NodeId node) const;
  // Cluster: the node's connection, opened if it has none; null once stopped.
  Connection* open(NodeId node);
  RequestFlow::Link link(NodeId node) const override;
  bool any_up() const;
  // "host:port" of the node, empty if it has never had one.
  std::string address(NodeId node) const;
  // Points `node` at host:port with a new connection, started now or (`start` false) by the
  // caller; the old one's requests fail with kStoreUnavailable (whether they ran is unknown, so
  // they are never resent). False when it is there already, or once stopped.
  bool point_at(NodeId node, const std::string& host, std::uint16_t port, bool start);
  // Publishes Client::connected().
  void update_connected();
  void stop();

 private:
  struct Node {
    std::string host;
    std::uint16_t port = 0;
    std::shared_ptr<Connection> connection;  // null until needed, and once retired
  };

  void on_up(Connection& connection) override;
  void on_down(Connection& connection) override;
  NodeId node_of(const Connection& connection) const;
  ConnectionConfig config_for(const std::string& host, std::uint16_t port) const;
  // Carries out the flow's actions, then arms the timer.
  void after_event();
  void run(RequestFlow::Action& action);
  void on_cluster_slots(NodeId asked, std::error_code ec, Reply&& reply);
  void arm_tick();
  void retire_idle(Clock::time_point now);
  void set_error(std::string text);

  boost::asio::io_context& io_;
  const ConnectionConfig base_;
  std::shared_ptr<ClientShared> shared_;
  Owner& owner_;
  RequestFlow flow_;
  bool stopped_ = false;
  bool pumping_ = false;     // after_event() is carrying out the flow's actions
  std::vector<Node> nodes_;  // standalone and Sentinel: one; cluster: like the router's nodes
  std::vector<std::pair<std::shared_ptr<Connection>, Clock::time_point>> draining_;
  boost::asio::steady_timer tick_timer_;  // the flow's wake-ups and the draining connections
  bool tick_armed_ = false;
  Clock::time_point tick_due_{};
  std::uint64_t tick_generation_ = 0;
};

}  // namespace pacer::redis::internal
