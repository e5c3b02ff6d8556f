// One Redis connection: the Asio shell around a Multiplexer. Resolves, connects (with a
// timeout), optionally does TLS, pipelines AUTH / SELECT / PING as its first writes, then runs
// one read loop and one write at a time; on any failure it fails its requests, closes, and
// reconnects with exponential backoff and jitter. While it is not up, send() refuses requests
// instead of queueing them for a reconnect that may be far away.
//
// Everything runs on the io_context's single thread. Pending operations hold a shared_ptr to
// the connection, so the owner may drop it at any time after stop().
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "circuit_breaker.h"
#include "core/handler_guard.h"
#include "multiplexer.h"
#include "pacer/error.h"
#include "pacer/redis/reply.h"

namespace pacer::redis::internal {

// What a client's connections share with its thread-safe accessors.
struct ClientShared {
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> handler_errors{0};  // completion handlers that threw
  std::atomic<std::uint64_t> fast_failures{0};   // refused by an open circuit breaker
  std::atomic<bool> connected{false};
  mutable std::mutex mutex;
  std::string last_error;                    // guarded by mutex
  pacer::internal::LogThrottle handler_log;  // guarded by mutex

  // Counts a handler that threw and logs it, at most once a second (a handler that throws on
  // every request must not flood the log).
  void handler_threw(std::string_view where, std::string_view what) noexcept;
};

struct ConnectionConfig {
  std::string host;
  std::uint16_t port = 6379;
  std::string username;
  std::string password;
  int db = 0;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: plain TCP
  std::string server_name;                         // TLS: SNI and certificate name
  bool verify_peer = true;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{100};
  std::chrono::milliseconds reconnect_min{20};
  std::chrono::milliseconds reconnect_max{1000};
  std::size_t max_in_flight = 16384;
  // The node's circuit breaker: this many timeouts in a row open it, and it stays open this
  // long before one request probes the server again (0 failures: no breaker).
  int breaker_failures = 5;
  std::chrono::milliseconds breaker_open_for{200};
};

class Connection;

class ConnectionListener {
 public:
  virtual void on_up(Connection& connection) = 0;
  // A connection that was up has failed (it is already reconnecting).
  virtual void on_down(Connection& connection) = 0;

 protected:
  ~ConnectionListener() = default;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Executor = boost::asio::io_context::executor_type;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
  using TlsStream = boost::asio::ssl::stream<Socket>;
  using Timer = boost::asio::basic_waitable_timer<
      std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;
  using Resolver = boost::asio::ip::basic_resolver<boost::asio::ip::tcp, Executor>;
  using Clock = std::chrono::steady_clock;

  Connection(boost::asio::io_context& io, ConnectionConfig config,
             std::shared_ptr<ClientShared> shared, ConnectionListener* listener);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Final: fails pending requests with `ec`, closes, never reconnects, forgets the listener.
  void stop(std::error_code ec);

  bool up() const { return state_ == State::kUp; }
  // On its first attempt, never up yet: worth waiting for (a node just discovered), unlike one
  // that failed (a dead server: requests fail fast).
  bool connecting_first_time() const {
    return !was_up_ && attempts_ == 0 &&
           (state_ == State::kIdle || state_ == State::kConnecting || state_ == State::kHandshake);
  }
  std::size_t in_flight() const { return mux_.in_flight(); }
  const std::string& host() const { return config_.host; }
  std::uint16_t port() const { return config_.port; }
  const std::string& name() const { return name_; }

  // Queue a command, failed with kTimeout at `deadline` (default: now + command_timeout). On
  // success `handler` is moved from; on error (kStoreUnavailable: not up, kOverloaded: full,
  // kCircuitOpen: the breaker is open) it is left untouched, and the caller must fail it.
  std::error_code send(std::span<const std::string_view> args, ReplyHandler& handler,
                       std::optional<Clock::time_point> deadline = std::nullopt);
  std::error_code send_encoded(std::string_view command, ReplyHandler& handler,
                               std::optional<Clock::time_point> deadline = std::nullopt);
  // ASKING then `command`, back to back (a cluster ASK redirect).
  std::error_code send_asking(std::string_view command, ReplyHandler& handler,
                              std::optional<Clock::time_point> deadline = std::nullopt);

 private:
  enum class State : std::uint8_t { kIdle, kConnecting, kHandshake, kUp, kWaiting, kStopped };

  void start_attempt();
  void connect(const boost::asio::ip::tcp::resolver::results_type& endpoints);
  void start_tls();
  void on_transport_ready();
  void become_up();
  void fail(const std::string& text, std::error_code request_error);
  void close_transport();
  void schedule_retry();
  void report(const std::string& text);

  void do_read();
  void on_read(std::uint64_t epoch, const boost::system::error_code& ec, std::size_t n);
  void flush();
  void on_write(std::uint64_t epoch, const boost::system::error_code& ec);
  void arm_timer();
  void on_timer(std::uint64_t generation, const boost::system::error_code& ec);
  void op_done();
  Socket& socket();
  // kCircuitOpen while the breaker refuses requests; else admits the request.
  std::error_code admit();
  Clock::time_point deadline_or_default(std::optional<Clock::time_point> deadline) const {
    return deadline ? *deadline : Clock::now() + config_.command_timeout;
  }
  // After the multiplexer answered requests: replies close the breaker, timeouts count against.
  void update_breaker(std::uint64_t replies_before, std::uint64_t timeouts_before);
  // Runs an I/O completion. Nothing may escape into io_context::run(): the read loop or the
  // timer would silently stop while the connection still looked up. An exception (out of
  // memory, a bug) fails the connection instead, which reconnects.
  template <class F>
  void guarded(F&& f) noexcept {
    try {
      f();
    } catch (const std::exception& e) {
      try {
        fail(std::string("internal error: ") + e.what(), make_error_code(Errc::kStoreUnavailable));
      } catch (...) {
      }
    } catch (...) {
      try {
        fail("internal error", make_error_code(Errc::kStoreUnavailable));
      } catch (...) {
      }
    }
  }

  boost::asio::io_context& io_;
  const ConnectionConfig config_;
  const std::string name_;
  std::shared_ptr<ClientShared> shared_;
  ConnectionListener* listener_;

  State state_ = State::kIdle;
  bool was_up_ = false;
  CircuitBreaker breaker_;
  // Bumped whenever the connection fails or restarts: completions of an older epoch are stale.
  std::uint64_t epoch_ = 0;
  Multiplexer mux_;
  Resolver resolver_;
  std::optional<Socket> plain_;
  std::optional<TlsStream> tls_;
  // Operations in flight on the stream. A new stream replaces the old one only at zero: an
  // ssl::stream must outlive its operations, even aborted ones.
  int stream_ops_ = 0;
  bool restart_when_idle_ = false;
  bool batching_ = false;  // inside the read handler: flush once at its end
  std::unique_ptr<char[]> read_buffer_;

  Timer connect_timer_;
  Clock::time_point attempt_deadline_{};
  Timer deadline_timer_;
  bool timer_armed_ = false;
  Clock::time_point timer_expiry_{};
  std::uint64_t timer_generation_ = 0;
  Timer retry_timer_;
  int attempts_ = 0;
  std::minstd_rand random_;

  Clock::time_point last_warning_{};
  int suppressed_warnings_ = 0;
};

// SNI and certificate name verification for a client handshake to `config.host` (or
// `config.server_name`), as `config.verify_peer` says.
void prepare_tls_client(SSL* ssl, const ConnectionConfig& config);

// A TLS client context from `options` (CA file or system paths, client certificate, verify mode).
// Throws std::invalid_argument naming the file that could not be used.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::string& ca_file,
                                                            const std::string& cert_file,
                                                            const std::string& key_file,
                                                            bool verify_peer);

}  // namespace pacer::redis::internal
