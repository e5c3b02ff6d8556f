#include "node_connections.h"

#include <algorithm>

#include "cluster.h"
#include "core/logging.h"
#include "pacer/error.h"

namespace pacer::redis::internal {

NodeConnections::NodeConnections(boost::asio::io_context& io,
                                 const std::vector<std::pair<std::string, std::uint16_t>>& seeds,
                                 RequestFlow::Options options, ConnectionConfig base,
                                 std::shared_ptr<ClientShared> shared, Owner& owner)
    : io_(io),
      base_(std::move(base)),
      shared_(std::move(shared)),
      owner_(owner),
      flow_(seeds, options, *this),
      tick_timer_(io) {}

// ---- requests through the flow ---------------------------------------------------------------

void NodeConnections::start() {
  flow_.start();
  after_event();
}

void NodeConnections::submit(std::span<const std::string_view> args, std::string* encoded,
                             std::uint16_t slot, ReplyHandler&& handler,
                             std::optional<Clock::time_point> deadline) {
  if (encoded != nullptr) {
    flow_.submit_encoded(std::move(*encoded), slot, std::move(handler), deadline, Clock::now());
  } else {
    flow_.submit(args, slot, std::move(handler), deadline, Clock::now());
  }
  after_event();
}

// A handler called here may cause events (it may call execute()): their actions are carried out
// by this loop after it returns, so no other request's handler runs inside that execute().
void NodeConnections::after_event() {
  if (!pumping_) {
    pumping_ = true;
    struct Done {
      bool& flag;
      ~Done() { flag = false; }
    } done{pumping_};
    while (auto action = flow_.next_action()) run(*action);
  }
  arm_tick();
}

void NodeConnections::run(RequestFlow::Action& action) {
  using Kind = RequestFlow::Action::Kind;
  switch (action.kind) {
    case Kind::kConnect:
      open(action.node);
      break;
    case Kind::kSend: {
      ReplyHandler handler = [this, ticket = action.ticket, node = action.node](std::error_code ec,
                                                                                Reply&& reply) {
        flow_.on_reply(ticket, node, ec, std::move(reply), Clock::now());
        after_event();
      };
      Connection* connection = get(action.node);
      const std::string_view command = flow_.command(action.ticket);
      std::error_code ec = Errc::kStoreUnavailable;  // retired or stopped since the decision
      if (connection != nullptr && action.asking) {
        ec = connection->send_asking(command, handler, action.deadline);
      } else if (connection != nullptr) {
        ec = connection->send_encoded(command, handler, action.deadline);
      }
      if (ec) flow_.on_send_failed(action.ticket, ec);
      break;
    }
    case Kind::kAskSlots: {
      static constexpr std::string_view kClusterSlots[] = {"CLUSTER", "SLOTS"};
      ReplyHandler handler = [this, asked = action.node](std::error_code ec, Reply&& reply) {
        on_cluster_slots(asked, ec, std::move(reply));
      };
      Connection* connection = get(action.node);
      if (connection == nullptr || connection->send(kClusterSlots, handler))
        flow_.on_slots_not_sent(Clock::now());
      break;
    }
    case Kind::kRetire:
      if (get(action.node) != nullptr) {
        draining_.emplace_back(
            std::exchange(nodes_[static_cast<std::size_t>(action.node)].connection, nullptr),
            action.deadline);
      }
      break;
    case Kind::kComplete:
      owner_.complete(action.handler, action.error, std::move(action.reply), action.later);
      break;
  }
}

void NodeConnections::on_cluster_slots(NodeId asked, std::error_code ec, Reply&& reply) {
  if (stopped_) return;
  const std::string error = flow_.on_slots(asked, ec, reply, Clock::now());
  if (!error.empty()) set_error(error);
  after_event();
  update_connected();
  arm_tick();  // again: a master's connection may change how soon the map is asked for again
}

void NodeConnections::arm_tick() {
  if (stopped_) return;
  Clock::time_point next = flow_.next_wake();
  for (const auto& [connection, until] : draining_) next = std::min(next, until);
  if (next == RequestFlow::kNever || (tick_armed_ && tick_due_ <= next)) return;
  tick_armed_ = true;
  tick_due_ = next;
  tick_timer_.expires_at(next);
  tick_timer_.async_wait([weak = weak_from_this(),
                          generation = ++tick_generation_](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || generation != self->tick_generation_ || self->stopped_) return;
    self->tick_armed_ = false;
    const auto now = Clock::now();
    self->retire_idle(now);
    self->flow_.on_tick(now);
    self->after_event();
  });
}

void NodeConnections::retire_idle(Clock::time_point now) {
  std::erase_if(draining_, [now](auto& entry) {
    auto& [connection, until] = entry;
    if (connection->in_flight() > 0 && now < until) return false;
    connection->stop(Errc::kStoreUnavailable);
    return true;
  });
}

// ---- connection events -------------------------------------------------------------------------

void NodeConnections::on_up(Connection&) {
  update_connected();
  flow_.on_node_up(Clock::now());
  after_event();
  owner_.node_up();
}

void NodeConnections::on_down(Connection& connection) {
  update_connected();
  flow_.on_node_down(node_of(connection), Clock::now());
  after_event();
  owner_.node_down(connection);
}

void NodeConnections::update_connected() {
  shared_->connected.store(!stopped_ && flow_.update_connected(), std::memory_order_relaxed);
}

void NodeConnections::set_error(std::string text) {
  pacer::internal::log_warn("redis {}", text);
  std::lock_guard lock(shared_->mutex);
  shared_->last_error = std::move(text);
}

// ---- connections -------------------------------------------------------------------------------

ConnectionConfig NodeConnections::config_for(const std::string& host, std::uint16_t port) const {
  ConnectionConfig config = base_;
  config.host = host;
  config.port = port;
  return config;
}

Connection* NodeConnections::get(NodeId node) const {
  const auto index = static_cast<std::size_t>(node);
  return node >= 0 && index < nodes_.size() ? nodes_[index].connection.get() : nullptr;
}

RequestFlow::Link NodeConnections::link(NodeId node) const {
  using Link = RequestFlow::Link;
  const Connection* connection = get(node);
  if (connection == nullptr) return Link::kNone;
  if (connection->up()) return Link::kUp;
  return connection->connecting_first_time() ? Link::kConnecting : Link::kDown;
}

NodeConnections::NodeId NodeConnections::node_of(const Connection& connection) const {
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].connection.get() == &connection) return static_cast<NodeId>(i);
  return RequestFlow::kNoNode;
}

bool NodeConnections::any_up() const {
  return std::any_of(nodes_.begin(), nodes_.end(),
                     [](const Node& node) { return node.connection && node.connection->up(); });
}

std::string NodeConnections::address(NodeId node) const {
  const auto index = static_cast<std::size_t>(node);
  if (node < 0 || index >= nodes_.size() || nodes_[index].host.empty()) return {};
  return endpoint_name(nodes_[index].host, nodes_[index].port);
}

Connection* NodeConnections::open(NodeId id) {
  while (nodes_.size() < flow_.router().node_count()) {
    const auto& endpoint = flow_.router().endpoint(static_cast<NodeId>(nodes_.size()));
    nodes_.push_back({endpoint.host, endpoint.port, nullptr});
  }
  Node& node = nodes_[static_cast<std::size_t>(id)];
  if (!node.connection && !stopped_) {
    node.connection =
        std::make_shared<Connection>(io_, config_for(node.host, node.port), shared_, this);
    node.connection->start();
  }
  return node.connection.get();
}

bool NodeConnections::point_at(NodeId id, const std::string& host, std::uint16_t port, bool start) {
  if (stopped_) return false;
  const auto index = static_cast<std::size_t>(id);
  if (nodes_.size() <= index) nodes_.resize(index + 1);
  Node& node = nodes_[index];
  if (node.connection && node.host == host && node.port == port) return false;
  node.host = host;
  node.port = port;
  auto old = std::exchange(
      node.connection, std::make_shared<Connection>(io_, config_for(host, port), shared_, this));
  if (start) node.connection->start();
  if (old) old->stop(Errc::kStoreUnavailable);  // its handlers run now; they may stop us
  return true;
}

void NodeConnections::stop() {
  if (stopped_) return;
  stopped_ = true;
  flow_.stop();
  tick_timer_.cancel();
  // Stopping fails the requests in flight; their handlers (ours for the flow's requests, then
  // the caller's) run now, while everything is still alive.
  for (Node& node : nodes_) {
    if (node.connection) std::exchange(node.connection, nullptr)->stop(Errc::kStoreUnavailable);
  }
  for (auto& [connection, until] : draining_) connection->stop(Errc::kStoreUnavailable);
  draining_.clear();
  flow_.fail_held();
  // All of it now, even inside a handler that after_event() called: stop() completes before
  // returning.
  while (auto action = flow_.next_action()) run(*action);
}

}  // namespace pacer::redis::internal
