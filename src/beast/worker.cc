#include "worker.h"

#include <boost/asio/socket_base.hpp>
#include <cerrno>
#include <exception>

#include "core/logging.h"
#include "session.h"

namespace pacer::beast::internal {
namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

}  // namespace

void Worker::listen(const tcp::endpoint& endpoint, bool reuse_port) {
  const std::string& host = server.options.host;
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (ec) fail("open a socket for", endpoint, host, ec);
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec && reuse_port) acceptor.set_option(ReusePort(true), ec);
  if (ec) fail("set socket options for", endpoint, host, ec);
  acceptor.bind(endpoint, ec);
  if (ec) fail("bind", endpoint, host, ec);
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on", endpoint, host, ec);
}

void Worker::accept() {
  acceptor.async_accept([this](error_code ec, Socket socket) {
    if (stopping || ec == asio::error::operation_aborted) return;
    if (ec) return on_accept_error(ec);
    admit(std::move(socket));
    accept();
  });
}

// The connection that can best be closed to make room, or null. In this order: one that was
// answered and only drains, the oldest idle keep-alive one, the one that has been reading its
// request (header or body) the longest: slowloris, or a body sent a byte at a time, which
// would otherwise hold its descriptor for the whole body deadline. Never one whose request is
// being handled or answered.
Session* Worker::find_victim(const char*& what) const {
  Session* idle = nullptr;
  Session* slow = nullptr;
  for (Session* session = sessions; session != nullptr; session = session->next) {
    if (session->draining()) {
      what = "an answered connection still draining";
      return session;
    }
    if (idle == nullptr && session->idle_keep_alive()) idle = session;
    if (slow == nullptr && session->reading_request()) slow = session;
  }
  if (idle != nullptr) {
    what = "the oldest idle keep-alive connection";
    return idle;
  }
  what = "the connection reading its request the longest";
  return slow;
}

void Worker::admit(Socket&& socket) {
  // At the cap with nothing to close, the new connection goes at once: no session is built for
  // it (this is the path a flood takes).
  const char* what = "";
  Session* victim = open >= max_connections ? find_victim(what) : nullptr;
  if (open >= max_connections && victim == nullptr) {
    refused.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t skipped = 0;
    if (cap_log.allow(skipped)) {
      error_code ignored;
      const auto peer = socket.remote_endpoint(ignored);
      pacer::internal::log_warn(
          "pacer::beast: worker {}: connection cap of {} reached and every connection is busy: "
          "refused a new one from {}{}",
          index, max_connections, peer.address().to_string(), skipped_note(skipped));
    }
    error_code ignored;
    socket.close(ignored);
    return;
  }
  auto session = std::make_shared<Session>(*this, std::move(socket));
  // Before anyone is shed for it: a client over its own cap must not cost another a connection.
  if (server.options.max_connections_per_client != 0 && !session->peer().empty()) {
    if (!server.take_client_slot(session->peer())) {
      refused_per_client.fetch_add(1, std::memory_order_relaxed);
      std::uint64_t skipped = 0;
      if (client_cap_log.allow(skipped)) {
        pacer::internal::log_warn(
            "pacer::beast: worker {}: {} already holds {} connections "
            "(max_connections_per_client): refused a new one{}",
            index, session->peer(), server.options.max_connections_per_client,
            skipped_note(skipped));
      }
      return;  // the session closes its socket as it goes
    }
    session->counted_per_client = true;
  }
  if (victim != nullptr) {
    shed.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t skipped = 0;
    if (cap_log.allow(skipped)) {
      pacer::internal::log_warn(
          "pacer::beast: worker {}: connection cap of {} reached: closed {} (from {}) "
          "to make room{}",
          index, max_connections, what, victim->peer(), skipped_note(skipped));
    }
    victim->finish();
  }
  session->set_no_delay();
  link(session.get());
  session->start();
}

void Worker::on_accept_error(const error_code& ec) {
  if (ec == asio::error::connection_aborted) return accept();  // the client gave up
  accept_failures.fetch_add(1, std::memory_order_relaxed);
  // Out of descriptors (EMFILE, ENFILE) or memory: make room the way the cap does, then accept
  // again at once. Other errors, or nothing to close: wait a little instead of spinning.
  const bool out_of_resources = ec.category() == boost::system::system_category() &&
                                (ec.value() == EMFILE || ec.value() == ENFILE ||
                                 ec.value() == ENOBUFS || ec.value() == ENOMEM);
  const char* what = "";
  Session* victim = out_of_resources ? find_victim(what) : nullptr;
  std::uint64_t skipped = 0;
  if (accept_log.allow(skipped)) {
    pacer::internal::log_warn(
        "pacer::beast: worker {}: accept failed: {} ({} connections open); {}{}", index,
        ec.message(), open,
        victim != nullptr ? std::string("closing ") + what : "retrying in 100 ms",
        skipped_note(skipped));
  }
  if (victim != nullptr) {
    shed.fetch_add(1, std::memory_order_relaxed);
    victim->finish();
    return accept();
  }
  accept_retry.expires_after(std::chrono::milliseconds(100));
  accept_retry.async_wait([this](error_code wait_ec) {
    if (!wait_ec && !stopping) accept();
  });
}

void Worker::run() {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      // Whatever threw was a completion of something running on this io_context (ours, or a
      // client the application runs here) and has lost its continuation. Handlers must not
      // throw (pacer/store.h); say so loudly and keep serving the other connections.
      escaped_exceptions.fetch_add(1, std::memory_order_relaxed);
      pacer::internal::log_error(
          "pacer::beast: worker {}: an exception escaped a completion handler ({}); "
          "that operation is lost, the worker goes on",
          index, e.what());
    } catch (...) {
      escaped_exceptions.fetch_add(1, std::memory_order_relaxed);
      pacer::internal::log_error(
          "pacer::beast: worker {}: an exception of unknown type escaped a completion "
          "handler; that operation is lost, the worker goes on",
          index);
    }
  }
}

void Worker::begin_shutdown() {
  if (stopping) return;
  stopping = true;
  error_code ignored;
  acceptor.close(ignored);
  accept_retry.cancel();
  if (index == 0 && server.signals) server.signals->cancel(ignored);
  for (Session* session = sessions; session != nullptr;) {
    Session* next = session->next;  // close_if_idle() may unlink `session`
    session->close_if_idle();
    session = next;
  }
  if (sessions == nullptr) {
    // Also ends anything else the user runs on this io_context (see Server::io_context()).
    ioc.stop();
    return;
  }
  grace.expires_after(server.options.shutdown_grace);
  grace.async_wait([this](error_code ec) {
    if (ec) return;  // everything finished in time
    unsigned forced = 0;
    while (sessions != nullptr) {
      sessions->finish();
      ++forced;
    }
    pacer::internal::log_warn(
        "pacer::beast: worker {}: closed {} connection(s) still busy after the grace", index,
        forced);
    ioc.stop();
  });
}

void Worker::append(Session* session) {
  session->prev = tail;
  session->next = nullptr;
  if (tail != nullptr) tail->next = session;
  tail = session;
  if (sessions == nullptr) sessions = session;
}

void Worker::detach(Session* session) {
  if (session->prev != nullptr) session->prev->next = session->next;
  if (session->next != nullptr) session->next->prev = session->prev;
  if (sessions == session) sessions = session->next;
  if (tail == session) tail = session->prev;
  session->prev = session->next = nullptr;
}

void Worker::link(Session* session) {
  append(session);
  ++open;
  open_count.store(open, std::memory_order_relaxed);
}

// To the tail: the session starts to wait for a request now.
void Worker::requeue(Session* session) {
  if (tail == session) return;
  detach(session);
  append(session);
}

void Worker::unlink(Session* session) {
  detach(session);
  if (session->counted_per_client) {
    session->counted_per_client = false;
    server.release_client_slot(session->peer());
  }
  --open;
  open_count.store(open, std::memory_order_relaxed);
  if (stopping && sessions == nullptr) {
    grace.cancel();
    ioc.stop();
  }
}

}  // namespace pacer::beast::internal

namespace pacer::beast {

bool Server::Impl::take_client_slot(const std::string& peer) {
  std::lock_guard lock(clients_mutex);
  std::size_t& held = clients[peer];
  if (held >= options.max_connections_per_client) {
    if (held == 0) clients.erase(peer);
    return false;
  }
  ++held;
  return true;
}

void Server::Impl::release_client_slot(const std::string& peer) {
  std::lock_guard lock(clients_mutex);
  const auto it = clients.find(peer);
  if (it == clients.end()) return;
  if (--it->second == 0) clients.erase(it);
}

}  // namespace pacer::beast
