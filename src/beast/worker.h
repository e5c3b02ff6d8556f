// One worker thread of the server: its io_context, listening socket and sessions; and the
// server state the workers share (Server::Impl).
#pragma once

#include <atomic>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net.h"
#include "pacer/beast/server.h"

namespace pacer::beast {
namespace internal {

class Session;
struct Worker;

}  // namespace internal

struct Server::Impl {
  Impl(ServerOptions options_in, Handler handler_in);

  void stop();

  ServerOptions options;
  Handler handler;
  std::uint16_t port = 0;
  std::size_t max_connections = 0;  // all workers together
  // Declared before `signals`, which lives on worker 0's io_context and must go first.
  std::vector<std::unique_ptr<internal::Worker>> workers;
  std::optional<boost::asio::signal_set> signals;

  std::mutex mutex;
  std::condition_variable cv;
  bool started = false;
  bool stop_requested = false;
  bool joining = false;
  bool joined = false;
  std::vector<std::thread> threads;

  // ServerOptions::max_connections_per_client: open connections per peer address, all workers
  // together (a client's connections are spread over the workers by the kernel). Taken once per
  // connection, not per request.
  bool take_client_slot(const std::string& peer);
  void release_client_slot(const std::string& peer);
  std::mutex clients_mutex;
  std::unordered_map<std::string, std::size_t> clients;
};

namespace internal {

// One thread's share of the server. Everything but `ioc` is touched only on that thread.
struct Worker {
  Worker(Server::Impl& server_in, unsigned index_in) : server(server_in), index(index_in) {}

  void listen(const tcp::endpoint& endpoint, bool reuse_port);
  void accept();
  void admit(Socket&& socket);
  void on_accept_error(const error_code& ec);
  Session* find_victim(const char*& what) const;
  void run();
  void begin_shutdown();
  void link(Session* session);
  void unlink(Session* session);
  void requeue(Session* session);
  // The list of sessions, oldest first (by when they last started waiting for a request).
  void append(Session* session);
  void detach(Session* session);

  Server::Impl& server;
  const unsigned index;
  // Concurrency hint 1: only this worker's thread runs it (posts from others are still safe).
  // First member, so it is destroyed last, after every I/O object that refers to it.
  asio::io_context ioc{1};
  Acceptor acceptor{ioc.get_executor()};
  asio::steady_timer accept_retry{ioc};
  asio::steady_timer grace{ioc};
  // Intrusive list of live sessions (for shutdown and shedding), ordered by when each last
  // started to wait for a request: the head has waited longest.
  Session* sessions = nullptr;
  Session* tail = nullptr;
  std::size_t open = 0;             // sessions in the list, each holding a socket
  std::size_t max_connections = 1;  // this worker's share of the cap
  bool stopping = false;
  LogThrottle cap_log;
  LogThrottle accept_log;
  LogThrottle client_cap_log;
  // Read by Server::stats() from any thread.
  std::atomic<std::uint64_t> open_count{0};
  std::atomic<std::uint64_t> shed{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> accept_failures{0};
  std::atomic<std::uint64_t> escaped_exceptions{0};
  std::atomic<std::uint64_t> refused_per_client{0};
  std::atomic<std::uint64_t> body_timeouts{0};
};

}  // namespace internal
}  // namespace pacer::beast
