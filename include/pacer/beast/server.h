// pacer/beast/server.h — a small HTTP/1.1 server on Boost.Beast.
//
// Every worker thread runs its own io_context with its own listening socket on the same port
// (SO_REUSEPORT; the kernel spreads connections), so a connection lives on one thread from accept
// to close and the request path takes no lock and makes no thread hand-off. The handler is called
// on the connection's thread and answers through `send`, now or later, from any thread.
//
//   pacer::beast::Server server({.port = 8080, .handle_signals = true},
//       [](pacer::beast::Request&& request, const pacer::beast::ClientEndpoint& client,
//          pacer::beast::Send send) {
//         pacer::beast::Response response{boost::beast::http::status::ok, request.version()};
//         response.set(boost::beast::http::field::content_type, "text/plain");
//         response.body() = "hello " + client.peer_address;
//         send(std::move(response));  // Content-Length, keep-alive and Server are filled in
//       });
//   server.run();  // until SIGINT/SIGTERM or server.stop()
//
// Rate limiting is a wrapper around the handler (pacer/beast/limit.h), and BeastRequestView
// (pacer/beast/request_view.h) shows a request to the framework-neutral HTTP layer.
//
// Connection cap: at most ServerOptions::max_connections connections are open (split evenly over
// the workers; by default the soft RLIMIT_NOFILE less 64, and the soft limit is first raised to
// the hard one). At the cap a worker still accepts, and closes to make room, in this order: a
// connection that was answered and is only draining, the oldest idle keep-alive connection, the
// one that has been reading its request (header or body) the longest: slowloris, or a body
// trickling in. When all are busy with a request, the new one is closed at once. accept()
// failing for lack of descriptors sheds the same way. Log lines about either are at most one a
// second per worker; stats() counts them. Optionally, max_connections_per_client caps the
// connections one peer address may hold (beyond it a new one is closed at once).
//
// Slow bodies: a request body must arrive within body_timeout, extended by one second for every
// min_body_rate bytes received (the rule of Apache's mod_reqtimeout: a fast upload of a big body
// is never cut, a trickle is), and never past body_timeout_max; otherwise the connection is
// closed (like a header that never ends: a client this slow is not waiting for an answer).
//
// Host (RFC 9112 §3.2): an HTTP/1.1 request without exactly one Host header is answered 400 and
// the connection closed; the handler never sees it.
//
// Framing (RFC 9112 §6.1): Transfer-Encoding must be exactly "chunked", once and last; any other
// final coding, chunked twice, Transfer-Encoding with Content-Length or on HTTP/1.0 is answered
// 400 and the connection closed before the body is read (a body read as "none" would otherwise
// run as a second, smuggled request); another coding before chunked is 501 and close.
//
// Lifetime rules: the handler is called concurrently from all worker threads. `request` dies when
// the handler returns (move it into whatever answers later); `client` is valid until `send`
// is called. Every Send must be called or destroyed before the Server is destroyed (one dropped
// without being called answers 500). Do not call wait() or destroy the Server from a handler
// (stop() is fine).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pacer/beast/message.h"
#include "pacer/beast/request_view.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace pacer::beast {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;                          // 0 = pick a free port (see Server::port())
  unsigned threads = 0;                               // 0 = std::thread::hardware_concurrency()
  std::size_t header_limit = std::size_t{8} * 1024;   // bigger request headers -> 431 and close
  std::size_t body_limit = std::size_t{1024} * 1024;  // bigger bodies -> 413 and close
  std::chrono::seconds idle_timeout{30};              // keep-alive idle / slow client read timeout
  // The time a request body may take (see "Slow bodies" above).
  std::chrono::seconds body_timeout{20};
  std::size_t min_body_rate = 500;  // bytes per second that earn one more second; 0 = none
  std::chrono::seconds body_timeout_max{120};  // however fast the body comes
  std::chrono::seconds shutdown_grace{5};      // how long in-flight requests may finish on stop()
  bool handle_signals = false;                 // stop() on SIGINT/SIGTERM
  std::string server_header = "pacer";         // value of the Server header on every response
  // Open connections allowed, all workers together (split evenly; at least one per worker).
  // 0 = derived from the descriptor limit: the soft RLIMIT_NOFILE less 64 descriptors kept for
  // everything else (listeners, Redis connections, files). See "Connection cap" above.
  std::size_t max_connections = 0;
  // Open connections one peer address may hold, all workers together; 0 = no per-client cap.
  std::size_t max_connections_per_client = 0;
  // Raise the soft RLIMIT_NOFILE to the hard limit when the Server is constructed (process-wide;
  // never lowers it).
  bool raise_fd_limit = true;
};

// Counters since the server was constructed, all workers together.
struct ServerStats {
  std::uint64_t open_connections = 0;
  std::uint64_t shed = 0;                // closed to make room for a new one (see Connection cap)
  std::uint64_t refused = 0;             // closed right after accept: at the cap, nothing to shed
  std::uint64_t accept_failures = 0;     // accept() errors, such as out of descriptors (EMFILE)
  std::uint64_t refused_per_client = 0;  // closed right after accept: the client's cap reached
  std::uint64_t body_timeouts = 0;       // closed: the body came too slowly
  // Exceptions that escaped a completion handler into a worker's io_context::run() (a bug in
  // that handler: it is logged, and the worker goes on).
  std::uint64_t escaped_exceptions = 0;
};

class Server {
 public:
  // Binds and listens right away, so port() is known before start(). Throws std::runtime_error
  // naming host:port when it cannot resolve, bind or listen (also when another process listens
  // on that port).
  Server(ServerOptions options, Handler handler);
  ~Server();  // stop() and wait()

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts the worker threads and returns. Does nothing when already started or stopped.
  void start();
  // Blocks until stop() was called and every worker thread has finished (returns at once if the
  // server never started and stop() was called). Not from a worker thread.
  void wait();
  void run() {
    start();
    wait();
  }
  // Graceful: stop accepting, answer in-flight requests with "Connection: close", close idle
  // keep-alive connections at once, and force-close whatever is left after shutdown_grace.
  // Thread-safe, idempotent, non-blocking, callable from a handler. Not async-signal-safe: use
  // handle_signals for signals.
  void stop();

  std::uint16_t port() const;  // the bound port (useful with port 0)
  unsigned threads() const;    // number of worker threads
  // The connection cap in force: ServerOptions::max_connections, or the derived one, rounded
  // down to a multiple of threads().
  std::size_t max_connections() const;
  ServerStats stats() const;  // thread-safe

  // The io_context of worker `worker` (0 .. threads() - 1), e.g. to run per-thread clients on the
  // same thread as the connections they serve (see ClientEndpoint::worker).
  boost::asio::io_context& io_context(unsigned worker);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pacer::beast
