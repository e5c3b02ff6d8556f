// pacer/redis/client.h — an asynchronous Redis client for one io_context: standalone or Cluster,
// plain TCP or TLS, with automatic pipelining.
//
// Every command is queued on the connection of its node and written together with every other
// command queued while the previous write was in flight (one write per batch); replies are
// matched in order. The number of requests per node is bounded and each has a deadline, so a
// slow or dead server costs a caller at most `command_timeout`, and while a connection is down
// requests fail at once instead of piling up for the reconnect.
//
//   boost::asio::io_context io;
//   pacer::redis::Client client(io, {.url = pacer::redis::parse_redis_url("redis://localhost")});
//   client.execute({"SET", "greeting", "hello"}, "greeting",
//                  [](std::error_code ec, pacer::redis::Reply&& reply) { ... });
//   io.run();
//
// The io_context must be run by one thread (the usual one-io_context-per-thread layout); the
// client has no locks on that path. `execute` may also be called from other threads: the
// command is encoded at once and handed to the io thread through a queue bounded by
// `max_in_flight` (full: the handler gets kOverloaded at once, inside the call).
//
// Handlers must not throw. One that does is caught where the client called it, logged at most
// once a second and counted (handler_errors()); the connection and other requests go on.
// Every handler runs exactly once: at the latest inside stop() or the destructor.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pacer/detail/unique_function.h"
#include "pacer/redis/reply.h"
#include "pacer/redis/url.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace pacer::redis {

struct TlsOptions {
  std::string ca_file;    // PEM CA bundle; empty: the system's default trust store
  std::string cert_file;  // client certificate chain (PEM), for servers that verify clients
  std::string key_file;   // its private key (PEM)
  bool verify_peer = true;
  std::string server_name;  // SNI and the name the certificate must match; empty: the host
};

struct ClientOptions {
  RedisUrl url;
  TlsOptions tls;                                   // used when url.tls
  std::chrono::milliseconds connect_timeout{1000};  // resolve + connect + TLS + AUTH/SELECT
  // Per command, from execute() to the reply, redirects and retries included.
  std::chrono::milliseconds command_timeout{100};
  std::size_t max_in_flight = 16384;  // queued + written per node; beyond it requests fail fast
  std::chrono::milliseconds reconnect_min{20};    // backoff after a failure, doubling up to...
  std::chrono::milliseconds reconnect_max{1000};  // ...this, with jitter
  std::chrono::seconds cluster_refresh_interval{30};
  int max_redirects = 5;  // MOVED/ASK hops per command before the redirect reaches the caller
  // One circuit breaker per node: this many timeouts in a row open it; requests to that node
  // then fail at once with kCircuitOpen, until after `breaker_open_for` one request probes it
  // (its answer closes the breaker). Other nodes are not affected. 0 turns the breakers off.
  int breaker_failures = 5;
  std::chrono::milliseconds breaker_open_for{200};
};

using AllRepliesHandler =
    pacer::detail::UniqueFunction<void(std::error_code, std::vector<Reply>&&)>;

class Client {
 public:
  // All I/O and all handler calls happen on `io`, which the caller runs. Connecting starts as
  // soon as `io` runs. Throws std::invalid_argument for unusable options (no host, unreadable
  // TLS files, ...).
  Client(boost::asio::io_context& io, ClientOptions options);
  // Fails pending requests (their handlers run inside the destructor). Destroy the client on
  // the io thread or after `io` has stopped (not while another thread runs it).
  ~Client();  // NOLINT(bugprone-exception-escape): see client.cc
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  using Deadline = std::chrono::steady_clock::time_point;

  // Sends one command. `args` are encoded before this returns. `slot_key` is the key whose hash
  // slot routes the command in cluster mode (ignored standalone). `handler` runs exactly once,
  // on `io` and never inside this call (except when the hand-over queue is full and after
  // stop(): then inside it): with kStoreUnavailable (not connected, stopped), kOverloaded
  // (max_in_flight reached), kCircuitOpen (the node's breaker is open), kTimeout or kProtocol,
  // or with the reply. Redis error replies arrive as Reply::Type::kError without an error code.
  // Cluster: MOVED and ASK are followed (up to max_redirects), TRYAGAIN and CLUSTERDOWN retried,
  // all before `deadline` (default: now + command_timeout); a command whose outcome is unknown
  // (timed out, connection lost after it was written) is never sent again.
  void execute(std::span<const std::string_view> args, std::string_view slot_key,
               ReplyHandler handler);
  // The same with the caller's deadline, e.g. the one of a first attempt this one follows.
  void execute(std::span<const std::string_view> args, std::string_view slot_key,
               ReplyHandler handler, std::optional<Deadline> deadline);
  void execute(std::initializer_list<std::string_view> args, std::string_view slot_key,
               ReplyHandler handler) {
    execute(std::span<const std::string_view>(args.begin(), args.size()), slot_key,
            std::move(handler));
  }

  // Sends the command to every master (cluster) or to the server (standalone), e.g. SCRIPT LOAD.
  // The handler gets one reply per node; the error is the first failure, if any (the failed
  // nodes' entries are then kNil).
  void execute_on_all(std::span<const std::string_view> args, AllRepliesHandler handler);
  void execute_on_all(std::initializer_list<std::string_view> args, AllRepliesHandler handler) {
    execute_on_all(std::span<const std::string_view>(args.begin(), args.size()),
                   std::move(handler));
  }

  // Thread-safe. Standalone: the connection is up. Cluster: the slot map is known and every
  // master's connection is up.
  bool connected() const;

  // Thread-safe. The last connection failure ("127.0.0.1:6379: AUTH failed: WRONGPASS ..."),
  // empty if none yet. Kept after a successful reconnect, for diagnosis.
  std::string last_error() const;

  // Thread-safe. Number of write operations so far (one per pipelined batch), for tests/metrics.
  std::uint64_t writes() const;
  // Thread-safe. Requests refused by an open circuit breaker.
  std::uint64_t fast_failures() const;
  // Thread-safe. Completion handlers that threw (and were caught).
  std::uint64_t handler_errors() const;

  // Called on `io` each time a connection to a node is (re)established, after AUTH and SELECT,
  // e.g. to reload scripts. Thread-safe; registered on `io`, so a callback registered right
  // after construction sees the first connection. If a connection is already up when it is
  // registered, the callback is also called once soon after.
  void on_connect(std::function<void()> callback);

  // Closes the connections and fails pending requests; later requests fail with
  // kStoreUnavailable. Idempotent. On the io thread, or when `io` is stopped, it completes
  // before returning; from another thread while `io` runs it takes effect there.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace pacer::redis
