#include "pacer/redis/client.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "../core/handler_guard.h"
#include "cluster.h"
#include "connection.h"
#include "pacer/error.h"
#include "resp.h"
#include "sentinel_monitor.h"
#include "spdlog/spdlog.h"

namespace pacer::redis {

namespace asio = boost::asio;
using internal::ClientShared;
using internal::Connection;

namespace {

// A cluster command between redirects: the encoded bytes are kept for a resend. Recycled
// through a free list, so a steady stream of commands allocates nothing here.
struct ClusterRequest {
  std::string command;
  ReplyHandler handler;
  int redirects = 0;
  ClusterRequest* next_free = nullptr;
};

struct Node {
  std::string host;
  std::uint16_t port = 0;
  std::shared_ptr<Connection> connection;  // null when retired (serves no slots)
};

constexpr std::int32_t kNoNode = -1;

// A command from another thread, waiting for the io thread.
struct Handoff {
  std::string command;
  std::uint16_t slot = 0;
  ReplyHandler handler;   // one node
  AllRepliesHandler all;  // or every master (execute_on_all)
};

}  // namespace

struct Client::Impl final : internal::ConnectionListener, std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_in, ClientOptions options_in)
      : io(io_in),
        options(std::move(options_in)),
        shared(std::make_shared<ClientShared>()),
        refresh_timer(io_in) {}

  ~Impl() {
    shutdown();
    while (free_requests != nullptr) delete std::exchange(free_requests, free_requests->next_free);
  }

  bool on_io_thread() const { return io.get_executor().running_in_this_thread(); }

  // ---- lifecycle -----------------------------------------------------------------------------

  void start() {
    if (stopped) return;
    // The seeds; CLUSTER SLOTS from the first one up names the masters.
    for (const auto& [host, port] : options.url.hosts) find_or_add_node(host, port);
  }

  // On the io thread, or with no thread running it. Every request not yet answered is failed
  // here, exactly once: in the connections, deferred, or still in the inbox.
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
      refresh_timer.cancel();
      if (sentinel) std::exchange(sentinel, nullptr)->stop();
      // Stopping fails the requests in flight; their handlers (ours for cluster requests, then
      // the caller's) run now, while everything is still alive.
      for (Node& node : nodes) {
        if (node.connection) std::exchange(node.connection, nullptr)->stop(Errc::kStoreUnavailable);
      }
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
    return config;
  }

  std::int32_t find_or_add_node(const std::string& host, std::uint16_t port) {
    const std::string name = internal::endpoint_name(host, port);
    auto it = node_index.find(name);
    std::int32_t index;
    if (it != node_index.end()) {
      index = it->second;
    } else {
      index = static_cast<std::int32_t>(nodes.size());
      nodes.push_back({host, port, nullptr});
      node_index.emplace(name, index);
    }
    Node& node = nodes[static_cast<std::size_t>(index)];
    if (!node.connection && !stopped) {
      node.connection = std::make_shared<Connection>(io, config_for(host, port), shared, this);
      node.connection->start();
    }
    return index;
  }

  // ---- connection events ---------------------------------------------------------------------

  void on_up(Connection&) override {
    if (options.url.cluster && (refresh_wanted || (slots.empty() && !refresh_in_flight))) {
      refresh_wanted = false;
      request_refresh();
    }
    update_connected();
    // By index and by copy: a callback may register another one (and grow the vector).
    for (std::size_t i = 0; i < connect_callbacks.size() && !stopped; ++i) {
      const std::function<void()> callback = connect_callbacks[i];
      callback();
    }
  }

  void on_down(Connection& connection) override {
    update_connected();
    // The master may have failed over: the sentinels may know already.
    if (sentinel && !nodes.empty() && &connection == nodes[0].connection.get()) sentinel->ask_now();
    if (options.url.cluster) request_refresh();  // a failover may have moved its slots
  }

  bool any_connection_up() const {
    return std::any_of(nodes.begin(), nodes.end(),
                       [](const Node& node) { return node.connection && node.connection->up(); });
  }

  void update_connected() {
    bool up = !stopped;
    if (!options.url.cluster) {
      up = up && !nodes.empty() && nodes[0].connection && nodes[0].connection->up();
    } else {
      up = up && !slots.empty() && !masters.empty();
      for (const std::int32_t master : masters) {
        const Node& node = nodes[static_cast<std::size_t>(master)];
        up = up && node.connection && node.connection->up();
      }
    }
    shared->connected.store(up, std::memory_order_relaxed);
  }

  void set_error(std::string text) {
    spdlog::warn("redis {}", text);
    std::lock_guard lock(shared->mutex);
    shared->last_error = std::move(text);
  }

  // ---- requests ------------------------------------------------------------------------------

  // Calls a handler of ours; what it throws is reported and goes no further.
  template <class Handler, class... Args>
  void call(Handler& handler, Args&&... args) noexcept {
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

  // Any thread. Returns the error to answer at once (kOverloaded, kStoreUnavailable), or none.
  std::error_code hand_over(Handoff&& item) {
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
        execute_encoded_here(std::move(item.command), item.slot, std::move(item.handler));
      }
    }
  }

  void execute_here(std::span<const std::string_view> args, std::string_view slot_key,
                    ReplyHandler&& handler) {
    if (!options.url.cluster) {
      // Sentinel: no connection until the master is known.
      if (stopped || !nodes[0].connection)
        return fail_later(std::move(handler), Errc::kStoreUnavailable);
      // Straight into the connection's write buffer: no copy of the command.
      if (auto ec = nodes[0].connection->send(args, std::move(handler)))
        fail_later(std::move(handler), ec);
      return;
    }
    ClusterRequest* request = acquire();
    internal::append_command(request->command, args);
    start_cluster_request(request, internal::hash_slot(slot_key), std::move(handler));
  }

  void execute_encoded_here(std::string&& command, std::uint16_t slot, ReplyHandler&& handler) {
    if (!options.url.cluster) {
      if (stopped || !nodes[0].connection)
        return fail_later(std::move(handler), Errc::kStoreUnavailable);
      if (auto ec = nodes[0].connection->send_encoded(command, std::move(handler)))
        fail_later(std::move(handler), ec);
      return;
    }
    ClusterRequest* request = acquire();
    request->command = std::move(command);
    start_cluster_request(request, slot, std::move(handler));
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
    return request;
  }

  void release(ClusterRequest* request) {
    if (request->command.capacity() > 4096) std::string().swap(request->command);
    request->next_free = free_requests;
    free_requests = request;
  }

  void start_cluster_request(ClusterRequest* request, std::uint16_t slot, ReplyHandler&& handler) {
    request->handler = std::move(handler);
    const std::int32_t node = slots.empty() ? kNoNode : slots[slot];
    if (stopped || node == kNoNode) return finish_later(request, Errc::kStoreUnavailable);
    dispatch(request, node, false);
  }

  void finish_later(ClusterRequest* request, std::error_code ec) {
    ReplyHandler handler = std::move(request->handler);
    release(request);
    fail_later(std::move(handler), ec);
  }

  void dispatch(ClusterRequest* request, std::int32_t node, bool asking) {
    const std::shared_ptr<Connection>& connection =
        nodes[static_cast<std::size_t>(node)].connection;
    if (!connection) return finish_later(request, Errc::kStoreUnavailable);
    ReplyHandler handler = [this, request, node](std::error_code ec, Reply&& reply) {
      on_cluster_reply(request, node, ec, std::move(reply));
    };
    const std::error_code ec = asking
                                   ? connection->send_asking(request->command, std::move(handler))
                                   : connection->send_encoded(request->command, std::move(handler));
    if (ec) finish_later(request, ec);
  }

  void on_cluster_reply(ClusterRequest* request, std::int32_t node, std::error_code ec,
                        Reply&& reply) {
    if (!ec && reply.type == Reply::Type::kError && !stopped &&
        request->redirects < options.max_redirects) {
      const Node& from = nodes[static_cast<std::size_t>(node)];
      if (auto redirect = internal::parse_redirect(reply, from.host)) {
        ++request->redirects;
        const std::int32_t target = find_or_add_node(redirect->host, redirect->port);
        if (redirect->kind == internal::Redirect::Kind::kMoved) {
          // Route the slot's next commands right away; the full map follows (single flight).
          slots[redirect->slot] = target;
          request_refresh();
        }
        dispatch(request, target, redirect->kind == internal::Redirect::Kind::kAsk);
        return;
      }
    }
    ReplyHandler handler = std::move(request->handler);
    release(request);
    handler(ec, std::move(reply));
  }

  void execute_on_all_here(std::string&& command, AllRepliesHandler&& handler) {
    std::vector<std::int32_t> targets;
    if (!stopped) {
      if (options.url.cluster) {
        targets = masters;
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
    auto* gather =
        new Gather{std::move(handler), std::vector<Reply>(targets.size()), targets.size(), {}};
    for (std::size_t i = 0; i < targets.size(); ++i) {
      ReplyHandler part = [gather, i](std::error_code ec, Reply&& reply) {
        if (ec) {
          if (!gather->error) gather->error = ec;
        } else {
          gather->replies[i] = std::move(reply);
        }
        if (--gather->remaining == 0) {
          std::unique_ptr<Gather> done(gather);
          done->handler(done->error, std::move(done->replies));  // the caller's guard catches
        }
      };
      const auto& connection = nodes[static_cast<std::size_t>(targets[i])].connection;
      const std::error_code ec = connection ? connection->send_encoded(command, std::move(part))
                                            : std::error_code(Errc::kStoreUnavailable);
      if (ec) fail_later(std::move(part), ec);
    }
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
    node_index.erase(internal::endpoint_name(node.host, node.port));
    node.host = host;
    node.port = port;
    node_index.emplace(internal::endpoint_name(host, port), 0);
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

  void request_refresh() {
    if (stopped) return;
    if (refresh_in_flight) {
      refresh_again = true;  // the answer in flight may predate what triggered this
      return;
    }
    std::int32_t chosen = kNoNode;
    for (const std::int32_t master : masters) {
      const Node& node = nodes[static_cast<std::size_t>(master)];
      if (node.connection && node.connection->up()) {
        chosen = master;
        break;
      }
    }
    for (std::size_t i = 0; chosen == kNoNode && i < nodes.size(); ++i) {
      if (nodes[i].connection && nodes[i].connection->up()) chosen = static_cast<std::int32_t>(i);
    }
    if (chosen == kNoNode) {
      // Nobody to ask: (re)connect to the seeds and ask the first node that comes up.
      for (const auto& [host, port] : options.url.hosts) find_or_add_node(host, port);
      refresh_wanted = true;
      return;
    }
    refresh_in_flight = true;
    static constexpr std::string_view kClusterSlots[] = {"CLUSTER", "SLOTS"};
    ReplyHandler handler = [this, chosen](std::error_code ec, Reply&& reply) {
      on_cluster_slots(chosen, ec, std::move(reply));
    };
    if (nodes[static_cast<std::size_t>(chosen)].connection->send(kClusterSlots,
                                                                 std::move(handler))) {
      refresh_in_flight = false;
      refresh_wanted = true;
    }
  }

  void on_cluster_slots(std::int32_t asked, std::error_code ec, Reply&& reply) {
    refresh_in_flight = false;
    if (stopped) return;
    // Copies: apply_slot_map() may add nodes.
    const std::string host = nodes[static_cast<std::size_t>(asked)].host;
    const std::string who =
        internal::endpoint_name(host, nodes[static_cast<std::size_t>(asked)].port);
    if (ec) {
      set_error(who + ": CLUSTER SLOTS failed: " + ec.message());
      schedule_refresh(options.reconnect_max);
    } else {
      internal::SlotMapResult result = internal::parse_cluster_slots(reply, host);
      if (!result.error.empty()) {
        set_error(who + ": CLUSTER SLOTS failed: " + result.error);
        schedule_refresh(std::max(options.reconnect_max, std::chrono::milliseconds(1000)));
      } else {
        apply_slot_map(result.ranges);
      }
    }
    if (refresh_again) {
      refresh_again = false;
      request_refresh();
    }
  }

  void apply_slot_map(const std::vector<internal::SlotRange>& ranges) {
    std::vector<std::int32_t> map(internal::kSlotCount, kNoNode);
    std::vector<std::int32_t> new_masters;
    for (const internal::SlotRange& range : ranges) {
      const std::int32_t index = find_or_add_node(range.host, range.port);
      std::fill(map.begin() + range.first, map.begin() + range.last + 1, index);
      if (std::find(new_masters.begin(), new_masters.end(), index) == new_masters.end())
        new_masters.push_back(index);
    }
    slots = std::move(map);
    masters = std::move(new_masters);
    // Nodes that serve no slots (replicas, removed masters, seeds) are closed; their requests
    // fail, but the masters answer with MOVED anyway.
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const bool is_master =
          std::find(masters.begin(), masters.end(), static_cast<std::int32_t>(i)) != masters.end();
      if (!is_master && nodes[i].connection)
        std::exchange(nodes[i].connection, nullptr)->stop(Errc::kStoreUnavailable);
    }
    update_connected();
    // While a master is unreachable, look again soon: a replica may be promoted.
    schedule_refresh(shared->connected.load(std::memory_order_relaxed)
                         ? std::chrono::duration_cast<std::chrono::milliseconds>(
                               options.cluster_refresh_interval)
                         : std::max(options.reconnect_max, std::chrono::milliseconds(1000)));
  }

  void schedule_refresh(std::chrono::milliseconds delay) {
    if (stopped) return;
    const auto when = std::chrono::steady_clock::now() + delay;
    if (refresh_timer_armed && refresh_due <= when) return;
    refresh_timer_armed = true;
    refresh_due = when;
    refresh_timer.expires_at(when);
    refresh_timer.async_wait([weak = weak_from_this(), generation = ++refresh_generation](
                                 const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || generation != self->refresh_generation) return;
      self->refresh_timer_armed = false;
      self->request_refresh();
    });
  }

  asio::io_context& io;
  const ClientOptions options;
  std::shared_ptr<ClientShared> shared;
  std::shared_ptr<asio::ssl::context> tls;

  // Everything below is touched on the io thread only.
  std::vector<std::function<void()>> connect_callbacks;
  bool stopped = false;
  std::vector<Node> nodes;
  std::unordered_map<std::string, std::int32_t> node_index;
  std::vector<std::int32_t> slots;    // slot -> node; empty until the first CLUSTER SLOTS
  std::vector<std::int32_t> masters;  // nodes that own slots
  bool refresh_in_flight = false;
  bool refresh_again = false;
  bool refresh_wanted = false;
  asio::steady_timer refresh_timer;
  bool refresh_timer_armed = false;
  std::chrono::steady_clock::time_point refresh_due{};
  std::uint64_t refresh_generation = 0;
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
  if (!options.url.cluster && !options.url.sentinel && options.url.hosts.size() > 1)
    throw std::invalid_argument(
        "invalid Redis client options: several hosts need cluster mode (redis+cluster://)");
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
    impl_->node_index.emplace(internal::endpoint_name(host, port), 0);
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

Client::~Client() {
  if (impl_) impl_->shutdown();
}

void Client::execute(std::span<const std::string_view> args, std::string_view slot_key,
                     ReplyHandler handler) {
  Impl& impl = *impl_;
  if (impl.on_io_thread()) {
    impl.execute_here(args, slot_key, std::move(handler));
    return;
  }
  Handoff item;
  internal::append_command(item.command, args);
  item.slot = impl.options.url.cluster ? internal::hash_slot(slot_key) : 0;
  item.handler = std::move(handler);
  if (const std::error_code ec = impl.hand_over(std::move(item)))
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
  if (const std::error_code ec = impl_->hand_over(std::move(item)))
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
