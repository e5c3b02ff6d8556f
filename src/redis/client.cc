#include "pacer/redis/client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <utility>

#include "client_options.h"
#include "cluster.h"
#include "connection.h"
#include "core/handler_guard.h"
#include "core/logging.h"
#include "handover.h"
#include "node_connections.h"
#include "pacer/error.h"
#include "request_flow.h"
#include "resp.h"
#include "sentinel_monitor.h"

namespace pacer::redis {

namespace asio = boost::asio;
using internal::ClientShared;
using internal::Connection;
using internal::RequestFlow;

namespace {

using Clock = std::chrono::steady_clock;
using NodeId = RequestFlow::NodeId;
using Link = RequestFlow::Link;

// A command from another thread, waiting for the io thread.
struct Handoff {
  std::string command;
  std::uint16_t slot = 0;
  std::optional<Clock::time_point> deadline;
  ReplyHandler handler;   // one node
  AllRepliesHandler all;  // or every master (execute_on_all)
};

}  // namespace

// The io-thread half of the client: the hand-over from other threads, failures answered later,
// the standalone fast path, Sentinel and the on_connect callbacks. Requests that may wait, be
// redirected or retried go through `nodes` (node_connections.h), the shell around the
// RequestFlow that decides what happens to them (request_flow.h).
struct Client::Impl final : internal::NodeConnections::Owner, std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_in, ClientOptions options_in, std::shared_ptr<asio::ssl::context> tls)
      : io(io_in),
        options(std::move(options_in)),
        shared(std::make_shared<ClientShared>()),
        nodes(std::make_shared<internal::NodeConnections>(
            io_in, options.url.hosts, internal::flow_options(options),
            internal::connection_config(options, std::move(tls)), shared, *this)),
        inbox(options.max_in_flight, [this] {
          asio::post(io, [weak = weak_from_this()] {
            if (auto self = weak.lock()) self->drain_inbox();
          });
        }) {}

  // shutdown()'s only throwing steps are Asio's timer cancel(), which throws on OS errors an
  // epoll timer never reports; if one ever did, std::terminate beats handlers never run.
  // NOLINTNEXTLINE(bugprone-exception-escape)
  ~Impl() { shutdown(); }

  bool on_io_thread() const { return io.get_executor().running_in_this_thread(); }
  bool cluster() const { return options.url.cluster; }

  // On the io thread, or with no thread running it. Every request not yet answered is failed
  // here, exactly once: in the connections, held, deferred, or still in the inbox.
  void shutdown() {
    inbox.close();
    std::vector<Handoff> unsent = inbox.take();
    if (!stopped) {
      stopped = true;
      shared->connected.store(false);
      if (sentinel) std::exchange(sentinel, nullptr)->stop();
      nodes->stop();
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

  // ---- NodeConnections::Owner ----------------------------------------------------------------

  void complete(ReplyHandler& handler, std::error_code ec, Reply&& reply, bool later) override {
    if (later) return fail_later(std::move(handler), ec);
    call(handler, ec, std::move(reply));
  }

  void node_up() override {
    // By index and by copy: a callback may register another one (and grow the vector).
    for (std::size_t i = 0; i < connect_callbacks.size() && !stopped; ++i) {
      const std::function<void()> callback = connect_callbacks[i];
      callback();
    }
  }

  void node_down(Connection& connection) override {
    // The master may have failed over: the sentinels may know already.
    if (sentinel && &connection == nodes->get(0)) sentinel->ask_now();
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

  void drain_inbox() {
    for (Handoff& item : inbox.take()) {
      if (item.all) {
        execute_on_all_here(std::move(item.command), std::move(item.all));
      } else {
        execute_here({}, &item.command, item.slot, std::move(item.handler), item.deadline);
      }
    }
  }

  // `args`, or with `encoded` a command already in RESP form (from another thread). Standalone
  // with its connection open, and Sentinel: straight into the connection's write buffer, no copy
  // of the command. Otherwise through the flow: in a cluster, and standalone before the first
  // connection is up (a server that takes traffic the moment it starts), where a command waits
  // for it within its deadline instead of failing.
  void execute_here(std::span<const std::string_view> args, std::string* encoded,
                    std::uint16_t slot, ReplyHandler&& handler,
                    std::optional<Clock::time_point> deadline) {
    if (cluster() || (!stopped && nodes->link(0) == Link::kConnecting))
      return nodes->submit(args, encoded, slot, std::move(handler), deadline);
    // Sentinel: no connection until the master is known.
    Connection* connection = stopped ? nullptr : nodes->get(0);
    if (connection == nullptr) return fail_later(std::move(handler), Errc::kStoreUnavailable);
    const std::error_code ec = encoded != nullptr
                                   ? connection->send_encoded(*encoded, handler, deadline)
                                   : connection->send(args, handler, deadline);
    if (ec) fail_later(std::move(handler), ec);
  }

  void execute_on_all_here(std::string&& command, AllRepliesHandler&& handler) {
    std::vector<NodeId> targets;
    if (!stopped) targets = cluster() ? nodes->router().masters() : std::vector<NodeId>{0};
    if (targets.empty()) {
      // Through the deferred queue (inline once stopped), never inside the call.
      fail_later([handler = std::move(handler)](
                     std::error_code ec, Reply&&) mutable { handler(ec, std::vector<Reply>{}); },
                 Errc::kStoreUnavailable);
      return;
    }
    std::vector<ReplyHandler> parts = internal::gather_replies(targets.size(), std::move(handler));
    for (std::size_t i = 0; i < targets.size(); ++i) {
      Connection* connection = cluster() ? nodes->open(targets[i]) : nodes->get(0);
      const std::error_code ec = connection != nullptr ? connection->send_encoded(command, parts[i])
                                                       : std::error_code(Errc::kStoreUnavailable);
      if (ec) fail_later(std::move(parts[i]), ec);
    }
  }

  // ---- Sentinel ------------------------------------------------------------------------------

  // The monitor found (or verified a new) master: node 0 connects there. Requests in flight on
  // the old master fail with kStoreUnavailable: whether they ran is unknown, so they are never
  // resent.
  void switch_master(const std::string& host, std::uint16_t port) {
    const std::string from = nodes->address(0);
    if (stopped || !nodes->point_at(0, host, port, true)) return;
    if (!from.empty()) {
      pacer::internal::log_warn("redis sentinel: master '{}' moved from {} to {}",
                                options.url.master_name, from, internal::endpoint_name(host, port));
    }
    nodes->update_connected();
  }

  void start_sentinel() {
    sentinel = std::make_shared<internal::SentinelMonitor>(
        io, internal::sentinel_config(options, nodes->base()), shared,
        [weak = weak_from_this()](const internal::MasterAddress& master) {
          if (auto self = weak.lock()) self->switch_master(master.host, master.port);
        });
    sentinel->start();
  }

  asio::io_context& io;
  const ClientOptions options;
  std::shared_ptr<ClientShared> shared;
  // Everything but `inbox` is touched on the io thread only.
  std::shared_ptr<internal::NodeConnections> nodes;
  // Commands handed over by other threads: bounded (max_in_flight), drained by one posted task
  // per batch, failed by shutdown() if never drained.
  internal::Handover<Handoff> inbox;
  std::vector<std::function<void()>> connect_callbacks;
  bool stopped = false;
  std::shared_ptr<internal::SentinelMonitor> sentinel;  // sentinel mode only
  // Failures answered later on the io thread (never inside execute()); drained by one posted
  // task, or by shutdown().
  std::vector<std::pair<ReplyHandler, std::error_code>> deferred;
  bool deferred_posted = false;
};

Client::Client(asio::io_context& io, ClientOptions options) {
  internal::check_client_options(options);
  std::shared_ptr<asio::ssl::context> tls;
  if (options.url.tls) {
    tls = internal::make_tls_context(options.tls.ca_file, options.tls.cert_file,
                                     options.tls.key_file, options.tls.verify_peer);
  }
  impl_ = std::make_shared<Impl>(io, std::move(options), std::move(tls));
  if (impl_->options.url.sentinel) {
    if (impl_->options.url.master_name.empty())
      throw std::invalid_argument("invalid Redis client options: Sentinel needs a master name");
    // Node 0 gets its connection when the sentinels have named a master that says it is one.
    asio::post(io, [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto impl = weak.lock(); impl && !impl->stopped) impl->start_sentinel();
    });
  } else if (!impl_->options.url.cluster) {
    // Standalone: the connection object exists from the start, so execute() never finds none.
    const auto& [host, port] = impl_->options.url.hosts.front();
    impl_->nodes->point_at(0, host, port, false);
    asio::post(io, [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto impl = weak.lock(); impl && !impl->stopped) impl->nodes->get(0)->start();
    });
  } else {
    asio::post(io, [weak = std::weak_ptr<Impl>(impl_)] {
      if (auto impl = weak.lock(); impl && !impl->stopped) impl->nodes->start();
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
    impl.execute_here(args, nullptr, impl.cluster() ? internal::hash_slot(slot_key) : 0,
                      std::move(handler), deadline);
    return;
  }
  Handoff item;
  internal::append_command(item.command, args);
  item.slot = impl.options.url.cluster ? internal::hash_slot(slot_key) : 0;
  item.deadline = deadline;
  item.handler = std::move(handler);
  if (const std::error_code ec = impl.inbox.push(item))
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
  if (const std::error_code ec = impl_->inbox.push(item))
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
    if (self->nodes->any_up()) {
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
  impl_->inbox.close();  // whatever is still waiting for the io thread is refused from now on
  asio::post(impl_->io, [weak = std::weak_ptr<Impl>(impl_)] {
    if (auto self = weak.lock()) self->shutdown();
  });
}

}  // namespace pacer::redis
