#include "pacer/redis/client.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "cluster.h"
#include "cluster_router.h"
#include "connection.h"
#include "core/handler_guard.h"
#include "pacer/error.h"
#include "resp.h"
#include "sentinel_monitor.h"
#include "spdlog/spdlog.h"

namespace pacer::redis {

namespace asio = boost::asio;
using internal::ClientShared;
using internal::Connection;

namespace {

using Clock = std::chrono::steady_clock;
using NodeId = internal::ClusterRouter::NodeId;
constexpr NodeId kNoNode = internal::ClusterRouter::kNoNode;
constexpr Clock::time_point kNever = Clock::time_point::max();

// A cluster command until its caller has the answer: the encoded bytes are kept for a resend,
// and the deadline is the caller's, however many times it is redirected or retried. Recycled
// through a free list, so a steady stream of commands allocates nothing here.
struct ClusterRequest {
  std::string command;
  ReplyHandler handler;
  Clock::time_point deadline{};
  std::uint16_t slot = 0;
  int redirects = 0;
  // While held: the node it waits for (kNoNode: route by slot), whether ASKING goes first, and
  // when to try again (kNever: when that node or the slot map arrives).
  NodeId target = kNoNode;
  bool asking = false;
  Clock::time_point wake = kNever;
  ClusterRequest* next_free = nullptr;
};

struct Node {
  std::string host;
  std::uint16_t port = 0;
  std::shared_ptr<Connection> connection;  // null until needed, and once retired
};

// A command from another thread, waiting for the io thread.
struct Handoff {
  std::string command;
  std::uint16_t slot = 0;
  std::optional<Clock::time_point> deadline;
  ReplyHandler handler;   // one node
  AllRepliesHandler all;  // or every master (execute_on_all)
};

internal::ClusterRouter::Options router_options(const ClientOptions& options) {
  internal::ClusterRouter::Options out;
  out.refresh_interval = options.cluster_refresh_interval;
  return out;
}

}  // namespace

struct Client::Impl final : internal::ConnectionListener, std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_in, ClientOptions options_in)
      : io(io_in),
        options(std::move(options_in)),
        shared(std::make_shared<ClientShared>()),
        router(options.url.hosts, router_options(options)),
        tick_timer(io_in) {}

  // shutdown()'s only throwing steps are Asio's timer cancel(), which throws on OS errors an
  // epoll timer never reports; if one ever did, std::terminate beats handlers never run.
  // NOLINTNEXTLINE(bugprone-exception-escape)
  ~Impl() {
    shutdown();
    while (free_requests != nullptr) delete std::exchange(free_requests, free_requests->next_free);
  }

  bool on_io_thread() const { return io.get_executor().running_in_this_thread(); }
  bool cluster() const { return options.url.cluster; }

  // ---- lifecycle -----------------------------------------------------------------------------

  void start() {
    if (stopped) return;
    // The seeds; CLUSTER SLOTS from the first one up names the masters.
    for (const NodeId seed : router.seeds()) ensure_connection(seed);
  }

  // On the io thread, or with no thread running it. Every request not yet answered is failed
  // here, exactly once: in the connections, held, deferred, or still in the inbox.
  void shutdown() {
    std::vector<Handoff> unsent;
    {
      std::lock_guard lock(inbox_mutex);
      inbox_closed = true;
      unsent.swap(inbox);
    }
    if (!stopped) {
      stopped = true;
      shared->connected.store(false);
      tick_timer.cancel();
      if (sentinel) std::exchange(sentinel, nullptr)->stop();
      // Stopping fails the requests in flight; their handlers (ours for cluster requests, then
      // the caller's) run now, while everything is still alive.
      for (Node& node : nodes) {
        if (node.connection) std::exchange(node.connection, nullptr)->stop(Errc::kStoreUnavailable);
      }
      for (auto& [connection, until] : draining) connection->stop(Errc::kStoreUnavailable);
      draining.clear();
      for (ClusterRequest* request : std::exchange(held, {}))
        finish(request, Errc::kStoreUnavailable);
      // Once stopped, fail_later() answers at once: nothing is deferred after this.
      drain_deferred();
    }
    for (Handoff& item : unsent) {
      if (item.all) {
        call(item.all, make_error_code(Errc::kStoreUnavailable), std::vector<Reply>{});
      } else {
        call(item.handler, make_error_code(Errc::kStoreUnavailable), Reply{});
      }
    }
  }

  internal::ConnectionConfig config_for(const std::string& host, std::uint16_t port) const {
    internal::ConnectionConfig config;
    config.host = host;
    config.port = port;
    config.username = options.url.username;
    config.password = options.url.password;
    config.db = options.url.cluster ? 0 : options.url.db;
    config.tls = tls;
    config.server_name = options.tls.server_name;
    config.verify_peer = options.tls.verify_peer;
    config.connect_timeout = options.connect_timeout;
    config.command_timeout = options.command_timeout;
    config.reconnect_min = options.reconnect_min;
    config.reconnect_max = options.reconnect_max;
    config.max_in_flight = options.max_in_flight;
    config.breaker_failures = options.breaker_failures;
    config.breaker_open_for = options.breaker_open_for;
    return config;
  }

  // The node's connection, opened if there is none (cluster; standalone and Sentinel have
  // theirs opened by the constructor or switch_master()).
  const std::shared_ptr<Connection>& ensure_connection(NodeId id) {
    if (!cluster()) return nodes[0].connection;
    while (nodes.size() < router.node_count()) {
      const auto& endpoint = router.endpoint(static_cast<NodeId>(nodes.size()));
      nodes.push_back({endpoint.host, endpoint.port, nullptr});
    }
    Node& node = nodes[static_cast<std::size_t>(id)];
    if (!node.connection && !stopped) {
      node.connection =
          std::make_shared<Connection>(io, config_for(node.host, node.port), shared, this);
      node.connection->start();
    }
    return node.connection;
  }

  NodeId node_of(const Connection& connection) const {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].connection.get() == &connection) return static_cast<NodeId>(i);
    return kNoNode;
  }

  // ---- connection events ---------------------------------------------------------------------

  void on_up(Connection&) override {
    update_connected();
    if (cluster()) {
      refresh_needs_connection = false;
      maybe_refresh(Clock::now());  // first: requests waiting for the map see it on its way
    }
    // Requests waiting for this node, or for a first slot map this node can now give.
    release_held(Clock::now(), true);
    arm_tick();
    // By index and by copy: a callback may register another one (and grow the vector).
    for (std::size_t i = 0; i < connect_callbacks.size() && !stopped; ++i) {
      const std::function<void()> callback = connect_callbacks[i];
      callback();
    }
  }

  void on_down(Connection& connection) override {
    update_connected();
    if (cluster() && router.is_master(node_of(connection))) {
      // A failover may move its slots.
      router.want_refresh();
      maybe_refresh(Clock::now());
      arm_tick();
    }
    // The master may have failed over: the sentinels may know already.
    if (sentinel && !nodes.empty() && &connection == nodes[0].connection.get()) sentinel->ask_now();
  }

  bool any_connection_up() const {
    return std::any_of(nodes.begin(), nodes.end(),
                       [](const Node& node) { return node.connection && node.connection->up(); });
  }

  void update_connected() {
    bool up = !stopped;
    if (!cluster()) {
      up = up && !nodes.empty() && nodes[0].connection && nodes[0].connection->up();
    } else {
      bool masters_up = true;
      for (const NodeId master : router.masters()) {
        const Node* node =
            static_cast<std::size_t>(master) < nodes.size() ? &nodes[master] : nullptr;
        masters_up = masters_up && node != nullptr && node->connection && node->connection->up();
      }
      router.set_degraded(!masters_up);
      up = up && router.has_map() && !router.masters().empty() && masters_up;
    }
    shared->connected.store(up, std::memory_order_relaxed);
  }

  void set_error(std::string text) {
    spdlog::warn("redis {}", text);
    std::lock_guard lock(shared->mutex);
    shared->last_error = std::move(text);
  }

  // ---- requests ------------------------------------------------------------------------------

  // Calls a handler of ours; what it throws is reported and goes no further. A null handler
  // drops the reply, as the multiplexer's do.
  template <class Handler, class... Args>
  void call(Handler& handler, Args&&... args) noexcept {
    if (!handler) return;
    pacer::internal::call_guarded(
        handler,
        [this](std::string_view what) { shared->handler_threw(options.url.to_string(), what); },
        std::forward<Args>(args)...);
  }

  void fail_later(ReplyHandler&& handler, std::error_code ec) {
    if (stopped) {
      // After shutdown nothing runs the io_context for us any more: answer now.
      call(handler, ec, Reply{});
      return;
    }
    // Never call the handler inside execute(): callers may hold locks or be mid-update.
    deferred.emplace_back(std::move(handler), ec);
    if (deferred_posted) return;
    deferred_posted = true;
    asio::post(io, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->drain_deferred();
    });
  }

  void drain_deferred() {
    deferred_posted = false;
    auto batch = std::move(deferred);
    deferred.clear();
    for (auto& [handler, ec] : batch) call(handler, ec, Reply{});
  }

  // ---- hand-over from other threads ----------------------------------------------------------

  // Any thread. On success `item` is moved from; on error (kOverloaded, kStoreUnavailable) it is
  // left untouched, for the caller to answer at once.
  std::error_code hand_over(Handoff& item) {
    bool post = false;
    {
      std::lock_guard lock(inbox_mutex);
      if (inbox_closed) return Errc::kStoreUnavailable;
      if (inbox.size() >= options.max_in_flight) return Errc::kOverloaded;
      inbox.push_back(std::move(item));
      post = !std::exchange(inbox_posted, true);
    }
    if (post) {
      asio::post(io, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->drain_inbox();
      });
    }
    return {};
  }

  void drain_inbox() {
    std::vector<Handoff> batch;
    {
      std::lock_guard lock(inbox_mutex);
      batch.swap(inbox);
      inbox_posted = false;
    }
    for (Handoff& item : batch) {
      if (item.all) {
        execute_on_all_here(std::move(item.command), std::move(item.all));
      } else {
        execute_encoded_here(std::move(item.command), item.slot, std::move(item.handler),
                             item.deadline);
      }
    }
  }

  void execute_here(std::span<const std::string_view> args, std::string_view slot_key,
                    ReplyHandler&& handler, std::optional<Clock::time_point> deadline) {
    if (!cluster() && !standalone_waits_for_first_connection()) {
      // Sentinel: no connection until the master is known.
      if (stopped || !nodes[0].connection)
        return fail_later(std::move(handler), Errc::kStoreUnavailable);
      // Straight into the connection's write buffer: no copy of the command.
      if (auto ec = nodes[0].connection->send(args, handler, deadline))
        fail_later(std::move(handler), ec);
      return;
    }
    ClusterRequest* request = acquire();
    internal::append_command(request->command, args);
    start_cluster_request(request, internal::hash_slot(slot_key), std::move(handler), deadline);
  }

  void execute_encoded_here(std::string&& command, std::uint16_t slot, ReplyHandler&& handler,
                            std::optional<Clock::time_point> deadline) {
    if (!cluster() && !standalone_waits_for_first_connection()) {
      if (stopped || !nodes[0].connection)
        return fail_later(std::move(handler), Errc::kStoreUnavailable);
      if (auto ec = nodes[0].connection->send_encoded(command, handler, deadline))
        fail_later(std::move(handler), ec);
      return;
    }
    ClusterRequest* request = acquire();
    request->command = std::move(command);
    start_cluster_request(request, slot, std::move(handler), deadline);
  }

  // Standalone, a command sent before the first connection is up (a server that takes traffic
  // the moment it starts) waits for it within its deadline, like a cluster command waiting for
  // its node, instead of failing: it goes through the cluster path, to node 0.
  bool standalone_waits_for_first_connection() const {
    return !stopped && nodes[0].connection && nodes[0].connection->connecting_first_time();
  }

  ClusterRequest* acquire() {
    ClusterRequest* request = free_requests;
    if (request != nullptr) {
      free_requests = request->next_free;
      request->command.clear();
    } else {
      request = new ClusterRequest;
    }
    request->redirects = 0;
    request->target = kNoNode;
    request->asking = false;
    request->wake = kNever;
    return request;
  }

  void release(ClusterRequest* request) {
    if (request->command.capacity() > 4096) std::string().swap(request->command);
    request->next_free = free_requests;
    free_requests = request;
  }

  void start_cluster_request(ClusterRequest* request, std::uint16_t slot, ReplyHandler&& handler,
                             std::optional<Clock::time_point> deadline) {
    const auto now = Clock::now();
    request->handler = std::move(handler);
    request->slot = slot;
    request->deadline = deadline.value_or(now + options.command_timeout);
    if (stopped) return finish_later(request, Errc::kStoreUnavailable);
    route(request, kNoNode, false, now);
  }

  // Answers the caller now (we are not inside execute()).
  void finish(ClusterRequest* request, std::error_code ec, Reply&& reply = Reply{}) {
    ReplyHandler handler = std::move(request->handler);
    release(request);
    call(handler, ec, std::move(reply));
  }

  void finish_later(ClusterRequest* request, std::error_code ec) {
    ReplyHandler handler = std::move(request->handler);
    release(request);
    fail_later(std::move(handler), ec);
  }

  // Sends the request to `target` (kNoNode: the node that serves its slot; standalone: node 0,
  // the server), or holds it until
  // that node or the slot map is there. Every failure here is known not to have run the script.
  void route(ClusterRequest* request, NodeId target, bool asking, Clock::time_point now) {
    if (now >= request->deadline) return finish_later(request, Errc::kTimeout);
    const NodeId node =
        target != kNoNode ? target : (cluster() ? router.node_for(request->slot) : 0);
    if (node == kNoNode) {
      // No slot map yet: worth waiting for while one is on its way, not when it cannot come.
      if (map_on_its_way()) return hold(request, kNoNode, false, kNever);
      return finish_later(request, Errc::kStoreUnavailable);
    }
    const std::shared_ptr<Connection>& connection = ensure_connection(node);
    if (!connection) return finish_later(request, Errc::kStoreUnavailable);
    if (!connection->up()) {
      // A node just discovered (a MOVED target, a promoted replica) is worth waiting for; one
      // that was up and went down is not: fail fast, the slot map will move on without it.
      if (connection->connecting_first_time()) return hold(request, node, asking, kNever);
      return finish_later(request, Errc::kStoreUnavailable);
    }
    ReplyHandler handler = [this, request, node](std::error_code ec, Reply&& reply) {
      on_cluster_reply(request, node, ec, std::move(reply));
    };
    const std::error_code ec =
        asking ? connection->send_asking(request->command, handler, request->deadline)
               : connection->send_encoded(request->command, handler, request->deadline);
    if (ec) finish_later(request, ec);
  }

  void on_cluster_reply(ClusterRequest* request, NodeId node, std::error_code ec, Reply&& reply) {
    // A failure (timeout, connection lost after the write) leaves the outcome unknown: never
    // resent. Only a reply that says the command did not run is.
    if (ec || stopped || reply.type != Reply::Type::kError)
      return finish(request, ec, std::move(reply));
    const auto now = Clock::now();
    const internal::ClusterRouter::Step step = router.on_reply(reply, node);
    using Kind = internal::ClusterRouter::Step::Kind;
    switch (step.kind) {
      case Kind::kDeliver:
        return finish(request, ec, std::move(reply));
      case Kind::kResend:
      case Kind::kResendAsking:
        if (++request->redirects > options.max_redirects)
          return finish(request, ec, std::move(reply));
        route(request, step.node, step.kind == Kind::kResendAsking, now);
        break;
      case Kind::kRetryLater:
        hold(request, kNoNode, false, now + router.options().retry_delay);
        break;
    }
    maybe_refresh(now);
    arm_tick();
  }

  void hold(ClusterRequest* request, NodeId target, bool asking, Clock::time_point wake) {
    request->target = target;
    request->asking = asking;
    request->wake = wake;
    held.push_back(request);
    arm_tick();
  }

  bool map_on_its_way() const {
    if (router.refresh_in_flight()) return true;
    return std::any_of(nodes.begin(), nodes.end(), [](const Node& node) {
      return node.connection && node.connection->connecting_first_time();
    });
  }

  // Tries held requests again: those due by `now`, and with `event` (a node came up, a slot map
  // arrived) those waiting for one. Past their deadline they fail with kTimeout.
  void release_held(Clock::time_point now, bool event) {
    if (held.empty()) return;
    std::vector<ClusterRequest*> batch;
    batch.swap(held);
    for (ClusterRequest* request : batch) {
      if (now >= request->deadline) {
        finish(request, Errc::kTimeout);
      } else if (request->wake <= now || (event && request->wake == kNever)) {
        route(request, request->target, request->asking, now);  // may hold it again
      } else {
        held.push_back(request);
      }
    }
  }

  void execute_on_all_here(std::string&& command, AllRepliesHandler&& handler) {
    std::vector<NodeId> targets;
    if (!stopped) {
      if (cluster()) {
        targets = router.masters();
      } else {
        targets.push_back(0);
      }
    }
    if (targets.empty()) {
      // Through the deferred queue (inline once stopped), never inside the call.
      fail_later([handler = std::move(handler)](
                     std::error_code ec, Reply&&) mutable { handler(ec, std::vector<Reply>{}); },
                 Errc::kStoreUnavailable);
      return;
    }
    struct Gather {
      AllRepliesHandler handler;
      std::vector<Reply> replies;
      std::size_t remaining;
      std::error_code error;
    };
    // Every part runs exactly once (on the I/O thread); the last one answers.
    auto gather = std::make_shared<Gather>(
        Gather{std::move(handler), std::vector<Reply>(targets.size()), targets.size(), {}});
    for (std::size_t i = 0; i < targets.size(); ++i) {
      ReplyHandler part = [gather, i](std::error_code ec, Reply&& reply) {
        if (ec) {
          if (!gather->error) gather->error = ec;
        } else {
          gather->replies[i] = std::move(reply);
        }
        if (--gather->remaining == 0) {
          gather->handler(gather->error, std::move(gather->replies));  // the caller's guard catches
        }
      };
      const auto& connection = cluster() ? ensure_connection(targets[i]) : nodes[0].connection;
      const std::error_code ec = connection ? connection->send_encoded(command, part)
                                            : std::error_code(Errc::kStoreUnavailable);
      if (ec) fail_later(std::move(part), ec);
    }
  }

  // ---- the one timer: slot map refreshes, held requests, retired connections -----------------

  void arm_tick() {
    if (stopped) return;
    Clock::time_point next = kNever;
    if (cluster() && !refresh_needs_connection) {
      if (auto refresh = router.next_refresh()) next = *refresh;
    }
    for (const ClusterRequest* request : held)
      next = std::min({next, request->wake, request->deadline});
    for (const auto& [connection, until] : draining) next = std::min(next, until);
    if (next == kNever || (tick_armed && tick_due <= next)) return;
    tick_armed = true;
    tick_due = next;
    tick_timer.expires_at(next);
    tick_timer.async_wait([weak = weak_from_this(),
                           generation = ++tick_generation](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || generation != self->tick_generation || self->stopped) return;
      self->tick_armed = false;
      self->on_tick();
    });
  }

  void on_tick() {
    const auto now = Clock::now();
    release_held(now, false);
    retire_idle(now);
    maybe_refresh(now);
    arm_tick();
  }

  // Connections of nodes that serve no slots any more close once the requests written there
  // have their answers (or their deadlines have passed).
  void retire(NodeId id, Clock::time_point now) {
    if (static_cast<std::size_t>(id) >= nodes.size() || !nodes[id].connection) return;
    draining.emplace_back(std::exchange(nodes[id].connection, nullptr),
                          now + 2 * options.command_timeout);
  }

  void retire_idle(Clock::time_point now) {
    std::erase_if(draining, [now](auto& entry) {
      auto& [connection, until] = entry;
      if (connection->in_flight() > 0 && now < until) return false;
      connection->stop(Errc::kStoreUnavailable);
      return true;
    });
  }

  // ---- Sentinel ------------------------------------------------------------------------------

  // The monitor found (or verified a new) master: node 0 connects there. Requests in flight on
  // the old master fail with kStoreUnavailable: whether they ran is unknown, so they are never
  // resent.
  void switch_master(const std::string& host, std::uint16_t port) {
    if (stopped) return;
    Node& node = nodes[0];
    if (node.connection && node.host == host && node.port == port) return;
    if (!node.host.empty()) {
      spdlog::warn("redis sentinel: master '{}' moved from {} to {}", options.url.master_name,
                   internal::endpoint_name(node.host, node.port),
                   internal::endpoint_name(host, port));
    }
    node.host = host;
    node.port = port;
    auto old = std::exchange(
        node.connection, std::make_shared<Connection>(io, config_for(host, port), shared, this));
    node.connection->start();
    if (old) old->stop(Errc::kStoreUnavailable);  // its handlers run now; they may stop us
    update_connected();
  }

  void start_sentinel() {
    internal::SentinelMonitorConfig config;
    config.sentinels = options.url.hosts;
    config.master_name = options.url.master_name;
    config.sentinel = config_for(options.url.hosts.front().first, options.url.hosts.front().second);
    config.sentinel.username = options.url.sentinel_username;
    config.sentinel.password = options.url.sentinel_password;
    config.sentinel.db = 0;
    config.data = config_for(options.url.hosts.front().first, options.url.hosts.front().second);
    sentinel = std::make_shared<internal::SentinelMonitor>(
        io, std::move(config), shared,
        [weak = weak_from_this()](const internal::MasterAddress& master) {
          if (auto self = weak.lock()) self->switch_master(master.host, master.port);
        });
    sentinel->start();
  }

  // ---- cluster slot map ----------------------------------------------------------------------

  void maybe_refresh(Clock::time_point now) {
    if (!cluster() || stopped) return;
    const auto due = router.next_refresh();
    if (!due || *due > now) return;
    NodeId chosen = kNoNode;
    for (const NodeId candidate : router.refresh_candidates()) {
      if (static_cast<std::size_t>(candidate) < nodes.size() && nodes[candidate].connection &&
          nodes[candidate].connection->up()) {
        chosen = candidate;
        break;
      }
    }
    if (chosen == kNoNode) {
      // Nobody to ask: (re)connect to the seeds; the first to come up is asked (on_up), and
      // until then the timer does not keep asking.
      refresh_needs_connection = true;
      for (const NodeId seed : router.seeds()) ensure_connection(seed);
      return;
    }
    refresh_needs_connection = false;
    static constexpr std::string_view kClusterSlots[] = {"CLUSTER", "SLOTS"};
    ReplyHandler handler = [this, chosen](std::error_code ec, Reply&& reply) {
      on_cluster_slots(chosen, ec, std::move(reply));
    };
    router.refresh_started(now);
    if (nodes[chosen].connection->send(kClusterSlots, handler)) router.refresh_failed(now);
  }

  void on_cluster_slots(NodeId asked, std::error_code ec, Reply&& reply) {
    if (stopped) return;
    const auto now = Clock::now();
    const auto& endpoint = router.endpoint(asked);
    const std::string who = internal::endpoint_name(endpoint.host, endpoint.port);
    if (ec) {
      router.refresh_failed(now);
      set_error(who + ": CLUSTER SLOTS failed: " + ec.message());
    } else {
      const internal::ClusterRouter::Applied applied = router.refresh_finished(reply, asked, now);
      if (!applied.error.empty()) {
        set_error(who + ": CLUSTER SLOTS failed: " + applied.error);
      } else {
        for (const NodeId master : router.masters()) ensure_connection(master);
        for (const NodeId node : applied.retired) retire(node, now);
        release_held(now, true);
      }
    }
    update_connected();
    arm_tick();
  }

  asio::io_context& io;
  const ClientOptions options;
  std::shared_ptr<ClientShared> shared;
  std::shared_ptr<asio::ssl::context> tls;

  // Everything below is touched on the io thread only.
  std::vector<std::function<void()>> connect_callbacks;
  bool stopped = false;
  std::vector<Node> nodes;  // standalone: one; cluster: indexed like the router's nodes
  internal::ClusterRouter router;
  std::vector<ClusterRequest*> held;  // waiting for a node, the slot map or a retry delay
  std::vector<std::pair<std::shared_ptr<Connection>, Clock::time_point>> draining;
  asio::steady_timer tick_timer;
  bool tick_armed = false;
  Clock::time_point tick_due{};
  std::uint64_t tick_generation = 0;
  bool refresh_needs_connection = false;  // a refresh is due but no connection is up to ask
  ClusterRequest* free_requests = nullptr;
  std::shared_ptr<internal::SentinelMonitor> sentinel;  // sentinel mode only

  // Failures answered later on the io thread (never inside execute()); drained by one posted
  // task, or by shutdown().
  std::vector<std::pair<ReplyHandler, std::error_code>> deferred;
  bool deferred_posted = false;

  // Commands handed over by other threads: bounded (max_in_flight), drained by one posted task
  // per batch, failed by shutdown() if never drained.
  std::mutex inbox_mutex;
  std::vector<Handoff> inbox;  // guarded by inbox_mutex
  bool inbox_posted = false;   // guarded by inbox_mutex
  bool inbox_closed = false;   // guarded by inbox_mutex
};

Client::Client(asio::io_context& io, ClientOptions options) {
  if (options.url.hosts.empty())
    throw std::invalid_argument("invalid Redis client options: the URL names no host");
  if (!options.url.cluster && !options.url.sentinel && options.url.hosts.size() > 1) {
    throw std::invalid_argument(
        "invalid Redis client options: several hosts need cluster mode (redis+cluster://)");
  }
  if (options.max_in_flight == 0)
    throw std::invalid_argument("invalid Redis client options: max_in_flight must be at least 1");
  if (options.command_timeout.count() <= 0 || options.connect_timeout.count() <= 0)
    throw std::invalid_argument("invalid Redis client options: timeouts must be positive");
  if (options.max_redirects < 0)
    throw std::invalid_argument("invalid Redis client options: max_redirects must be >= 0");
  impl_ = std::make_shared<Impl>(io, std::move(options));
  if (impl_->options.url.tls) {
    const TlsOptions& tls = impl_->options.tls;
    impl_->tls =
        internal::make_tls_context(tls.ca_file, tls.cert_file, tls.key_file, tls.verify_peer);
  }
  if (impl_->options.url.sentinel) {
    if (impl_->options.url.master_name.empty())
      throw std::invalid_argument("invalid Redis client options: Sentinel needs a master name");
    // Node 0 gets its connection when the sentinels have named a master that says it is one.
    impl_->nodes.push_back({});
    asio::post(io, [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto impl = weak.lock(); impl && !impl->stopped) impl->start_sentinel();
    });
  } else if (!impl_->options.url.cluster) {
    // Standalone: the connection object exists from the start, so execute() never finds none.
    const auto& [host, port] = impl_->options.url.hosts.front();
    impl_->nodes.push_back({host, port, nullptr});
    impl_->nodes[0].connection =
        std::make_shared<Connection>(io, impl_->config_for(host, port), impl_->shared, impl_.get());
    asio::post(io, [weak = std::weak_ptr<Connection>(impl_->nodes[0].connection)] {
      if (auto connection = weak.lock()) connection->start();
    });
  } else {
    asio::post(io, [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto impl = weak.lock()) impl->start();
    });
  }
}

// See ~Impl: nothing throws in practice.
// NOLINTNEXTLINE(bugprone-exception-escape)
Client::~Client() {
  if (impl_) impl_->shutdown();
}

void Client::execute(std::span<const std::string_view> args, std::string_view slot_key,
                     ReplyHandler handler) {
  execute(args, slot_key, std::move(handler), std::nullopt);
}

void Client::execute(std::span<const std::string_view> args, std::string_view slot_key,
                     ReplyHandler handler, std::optional<Deadline> deadline) {
  Impl& impl = *impl_;
  if (impl.on_io_thread()) {
    impl.execute_here(args, slot_key, std::move(handler), deadline);
    return;
  }
  Handoff item;
  internal::append_command(item.command, args);
  item.slot = impl.options.url.cluster ? internal::hash_slot(slot_key) : 0;
  item.deadline = deadline;
  item.handler = std::move(handler);
  if (const std::error_code ec = impl.hand_over(item))
    impl.call(item.handler, ec, Reply{});  // full or stopped: answered at once, here
}

void Client::execute_on_all(std::span<const std::string_view> args, AllRepliesHandler handler) {
  std::string command;
  internal::append_command(command, args);
  if (impl_->on_io_thread()) {
    impl_->execute_on_all_here(std::move(command), std::move(handler));
    return;
  }
  Handoff item;
  item.command = std::move(command);
  item.all = std::move(handler);
  if (const std::error_code ec = impl_->hand_over(item))
    impl_->call(item.all, ec, std::vector<Reply>{});
}

bool Client::connected() const { return impl_->shared->connected.load(std::memory_order_relaxed); }

std::string Client::last_error() const {
  std::lock_guard lock(impl_->shared->mutex);
  return impl_->shared->last_error;
}

std::uint64_t Client::writes() const {
  return impl_->shared->writes.load(std::memory_order_relaxed);
}

std::uint64_t Client::fast_failures() const {
  return impl_->shared->fast_failures.load(std::memory_order_relaxed);
}

std::uint64_t Client::handler_errors() const {
  return impl_->shared->handler_errors.load(std::memory_order_relaxed);
}

void Client::on_connect(std::function<void()> callback) {
  // Registered on the io thread, behind the start posted by the constructor: a callback
  // registered right after construction cannot miss the first connection, even when another
  // thread already runs `io`. One registered later still hears of a connection already up.
  auto add = [weak = std::weak_ptr<Impl>(impl_), callback = std::move(callback)]() mutable {
    auto self = weak.lock();
    if (!self || self->stopped) return;
    self->connect_callbacks.push_back(callback);
    if (self->any_connection_up()) {
      // Checked again when it runs: a callback never runs after stop().
      asio::post(self->io, [weak, callback = std::move(callback)] {
        auto again = weak.lock();
        if (again && !again->stopped) callback();
      });
    }
  };
  if (impl_->on_io_thread()) {
    add();
  } else {
    asio::post(impl_->io, std::move(add));
  }
}

void Client::stop() {
  if (impl_->on_io_thread() || impl_->io.stopped()) {
    impl_->shutdown();
    return;
  }
  {
    // Whatever is still waiting for the io thread is refused from now on.
    std::lock_guard lock(impl_->inbox_mutex);
    impl_->inbox_closed = true;
  }
  asio::post(impl_->io, [weak = std::weak_ptr<Impl>(impl_)] {
    if (auto self = weak.lock()) self->shutdown();
  });
}

}  // namespace pacer::redis
