#include "connection.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <limits>
#include <stdexcept>
#include <utility>

#include "cluster.h"
#include "core/logging.h"
#include "pacer/error.h"

namespace pacer::redis::internal {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

// Large enough for a few thousand pipelined replies per read system call.
constexpr std::size_t kReadBufferSize = std::size_t{64} * 1024;
constexpr std::chrono::seconds kWarningInterval{1};

std::string describe(const error_code& ec) { return ec.message(); }

std::int64_t nanoseconds_since_epoch(Connection::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string milliseconds_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count()) + " ms";
}

}  // namespace

void ClientShared::handler_threw(std::string_view where, std::string_view what) noexcept {
  handler_errors.fetch_add(1, std::memory_order_relaxed);
  try {
    std::lock_guard lock(mutex);
    std::uint64_t skipped = 0;
    if (!handler_log.allow(skipped)) return;
    pacer::internal::log_error(
        "redis {}: a completion handler threw ({}); handlers must not throw ({} more "
        "since the last report)",
        where, what, skipped);
  } catch (...) {
    // Logging failed (out of memory): the count above is all there is.
  }
}

Connection::Connection(asio::io_context& io, ConnectionConfig config,
                       std::shared_ptr<ClientShared> shared, ConnectionListener* listener)
    : io_(io),
      config_(std::move(config)),
      name_(endpoint_name(config_.host, config_.port)),
      shared_(std::move(shared)),
      listener_(listener),
      breaker_(
          config_.breaker_failures > 0 ? config_.breaker_failures : std::numeric_limits<int>::max(),
          config_.breaker_open_for),
      mux_({.max_in_flight = config_.max_in_flight,
            .stall_after = config_.command_timeout,
            .on_handler_error = [shared = shared_, name = name_](
                                    std::string_view what) { shared->handler_threw(name, what); }}),
      resolver_(io.get_executor()),
      read_buffer_(std::make_unique<char[]>(kReadBufferSize)),
      connect_timer_(io.get_executor()),
      deadline_timer_(io.get_executor()),
      retry_timer_(io.get_executor()),
      random_(std::random_device()()) {}

Connection::~Connection() {
  // Handlers still in the multiplexer (the handshake's) check the epoch and do nothing.
  ++epoch_;
  state_ = State::kStopped;
  mux_.fail_all(Errc::kStoreUnavailable);
}

void Connection::start() {
  if (state_ == State::kIdle) start_attempt();
}

void Connection::stop(std::error_code ec) {
  if (state_ == State::kStopped) return;
  state_ = State::kStopped;
  ++epoch_;
  listener_ = nullptr;
  close_transport();
  retry_timer_.cancel();
  mux_.fail_all(ec);
}

Connection::Socket& Connection::socket() { return tls_ ? tls_->next_layer() : *plain_; }

void Connection::op_done() {
  if (--stream_ops_ == 0 && restart_when_idle_) {
    restart_when_idle_ = false;
    start_attempt();
  }
}

void Connection::start_attempt() {
  if (state_ == State::kStopped) return;
  if (stream_ops_ > 0) {
    restart_when_idle_ = true;
    return;
  }
  ++epoch_;
  state_ = State::kConnecting;
  plain_.reset();
  tls_.reset();
  if (config_.tls) {
    tls_.emplace(io_.get_executor(), *config_.tls);
  } else {
    plain_.emplace(io_.get_executor());
  }

  attempt_deadline_ = Clock::now() + config_.connect_timeout;
  connect_timer_.expires_at(attempt_deadline_);
  connect_timer_.async_wait([self = shared_from_this(), epoch = epoch_](const error_code& ec) {
    if (ec || epoch != self->epoch_) return;
    self->fail("no connection within " + milliseconds_text(self->config_.connect_timeout),
               Errc::kStoreUnavailable);
  });

  error_code ec;
  const asio::ip::address address = asio::ip::make_address(config_.host, ec);
  if (!ec) {
    ++stream_ops_;
    socket().async_connect(tcp::endpoint(address, config_.port),
                           [self = shared_from_this(), epoch = epoch_](const error_code& error) {
                             self->op_done();
                             if (epoch != self->epoch_) return;
                             if (error) {
                               self->fail("connect failed: " + describe(error),
                                          Errc::kStoreUnavailable);
                               return;
                             }
                             self->guarded([&] { self->start_tls(); });
                           });
    return;
  }
  resolver_.async_resolve(config_.host, std::to_string(config_.port),
                          [self = shared_from_this(), epoch = epoch_](
                              const error_code& error, const tcp::resolver::results_type& results) {
                            if (epoch != self->epoch_) return;
                            if (error) {
                              self->fail(
                                  "cannot resolve '" + self->config_.host + "': " + describe(error),
                                  Errc::kStoreUnavailable);
                              return;
                            }
                            self->guarded([&] { self->connect(results); });
                          });
}

void Connection::connect(const tcp::resolver::results_type& endpoints) {
  ++stream_ops_;
  asio::async_connect(
      socket(), endpoints,
      [self = shared_from_this(), epoch = epoch_](const error_code& error, const tcp::endpoint&) {
        self->op_done();
        if (epoch != self->epoch_) return;
        if (error) {
          self->fail("connect failed: " + describe(error), Errc::kStoreUnavailable);
          return;
        }
        self->guarded([&] { self->start_tls(); });
      });
}

void Connection::start_tls() {
  error_code ignored;
  // Requests are small and latency matters more than packet count.
  socket().set_option(tcp::no_delay(true), ignored);
  socket().set_option(asio::socket_base::keep_alive(true), ignored);
  if (!tls_) {
    on_transport_ready();
    return;
  }
  prepare_tls_client(tls_->native_handle(), config_);
  ++stream_ops_;
  tls_->async_handshake(asio::ssl::stream_base::client,
                        [self = shared_from_this(), epoch = epoch_](const error_code& error) {
                          self->op_done();
                          if (epoch != self->epoch_) return;
                          if (error) {
                            std::string text = "TLS handshake failed: " + describe(error);
                            const long result = SSL_get_verify_result(self->tls_->native_handle());
                            if (result != X509_V_OK) {
                              text += std::string(" (certificate verification: ") +
                                      X509_verify_cert_error_string(result) + ")";
                            }
                            self->fail(text, Errc::kStoreUnavailable);
                            return;
                          }
                          self->guarded([&] { self->on_transport_ready(); });
                        });
}

void Connection::on_transport_ready() {
  state_ = State::kHandshake;
  do_read();
  // AUTH, SELECT and PING go out in the first write; PING's answer proves the connection usable
  // (and surfaces NOAUTH when the server wants a password we do not have).
  auto step = [this, epoch = epoch_](std::string_view what, bool last) -> ReplyHandler {
    return [this, epoch, what, last](std::error_code ec, Reply&& reply) {
      if (epoch != epoch_) return;
      if (ec) {
        fail(std::string(what) + " got no reply: " + ec.message(), Errc::kStoreUnavailable);
      } else if (reply.is_error()) {
        fail(std::string(what) + " failed: " + reply.str, Errc::kStoreUnavailable);
      } else if (last) {
        become_up();
      }
    };
  };
  if (!config_.password.empty()) {
    if (config_.username.empty()) {
      const std::string_view args[] = {"AUTH", config_.password};
      (void)mux_.add(args, step("AUTH", false), attempt_deadline_);
    } else {
      const std::string_view args[] = {"AUTH", config_.username, config_.password};
      (void)mux_.add(args, step("AUTH", false), attempt_deadline_);
    }
  }
  if (config_.db != 0) {
    const std::string db = std::to_string(config_.db);
    const std::string_view args[] = {"SELECT", db};
    (void)mux_.add(args, step("SELECT", false), attempt_deadline_);
  }
  const std::string_view ping[] = {"PING"};
  (void)mux_.add(ping, step("PING", true), attempt_deadline_);
  flush();
  arm_timer();
}

void Connection::become_up() {
  connect_timer_.cancel();
  state_ = State::kUp;
  was_up_ = true;
  if (attempts_ > 0 || suppressed_warnings_ > 0)
    pacer::internal::log_info("redis {}: connected", name_);
  attempts_ = 0;
  if (listener_ != nullptr) listener_->on_up(*this);
}

void Connection::fail(const std::string& text, std::error_code request_error) {
  if (state_ != State::kConnecting && state_ != State::kHandshake && state_ != State::kUp) return;
  const bool was_up = state_ == State::kUp;
  ++epoch_;
  state_ = State::kWaiting;
  close_transport();
  report(text);
  // Handlers may stop the client from here: check the state again afterwards.
  mux_.fail_all(request_error);
  if (was_up && listener_ != nullptr) listener_->on_down(*this);
  if (state_ == State::kWaiting) schedule_retry();
}

void Connection::close_transport() {
  error_code ignored;
  resolver_.cancel();
  connect_timer_.cancel();
  ++timer_generation_;
  timer_armed_ = false;
  deadline_timer_.cancel();
  if (plain_ || tls_) socket().close(ignored);
}

void Connection::schedule_retry() {
  using std::chrono::milliseconds;
  const milliseconds floor = std::max(config_.reconnect_min, milliseconds(1));
  const milliseconds ceiling = std::max(config_.reconnect_max, floor);
  milliseconds base = floor;
  for (int i = 0; i < attempts_ && base < ceiling; ++i) base *= 2;
  base = std::min(base, ceiling);
  ++attempts_;
  // Jitter in [base/2, base]: clients that lost the same server do not return in lockstep.
  std::uniform_int_distribution<std::int64_t> jitter(base.count() / 2, base.count());
  retry_timer_.expires_after(milliseconds(jitter(random_)));
  retry_timer_.async_wait([self = shared_from_this(), epoch = epoch_](const error_code& ec) {
    if (ec || epoch != self->epoch_ || self->state_ != State::kWaiting) return;
    self->guarded([&] { self->start_attempt(); });
  });
}

void Connection::report(const std::string& text) {
  std::string message = name_ + ": " + text;
  const auto now = Clock::now();
  if (now - last_warning_ >= kWarningInterval) {
    if (suppressed_warnings_ > 0) {
      pacer::internal::log_warn("redis {} ({} more failures in the last second)", message,
                                suppressed_warnings_);
    } else {
      pacer::internal::log_warn("redis {}", message);
    }
    last_warning_ = now;
    suppressed_warnings_ = 0;
  } else {
    ++suppressed_warnings_;
  }
  std::lock_guard lock(shared_->mutex);
  shared_->last_error = std::move(message);
}

std::error_code Connection::admit() {
  if (state_ != State::kUp) return Errc::kStoreUnavailable;
  if (breaker_.is_open() && !breaker_.allow(nanoseconds_since_epoch(Clock::now()))) {
    shared_->fast_failures.fetch_add(1, std::memory_order_relaxed);
    return Errc::kCircuitOpen;
  }
  return {};
}

void Connection::update_breaker(std::uint64_t replies_before, std::uint64_t timeouts_before) {
  // Any answer shows the server alive; only timeouts count against it (a lost connection is
  // found by the reconnect, and requests fail fast while it is down anyway).
  if (mux_.replies() != replies_before) breaker_.record_success();
  const std::int64_t now = nanoseconds_since_epoch(Clock::now());
  for (auto n = mux_.timeouts() - timeouts_before; n > 0; --n) breaker_.record_failure(now);
}

std::error_code Connection::send(std::span<const std::string_view> args, ReplyHandler& handler,
                                 std::optional<Clock::time_point> deadline) {
  if (auto ec = admit()) return ec;
  if (auto ec = mux_.add(args, std::move(handler), deadline_or_default(deadline))) return ec;
  flush();
  arm_timer();
  return {};
}

std::error_code Connection::send_encoded(std::string_view command, ReplyHandler& handler,
                                         std::optional<Clock::time_point> deadline) {
  if (auto ec = admit()) return ec;
  if (auto ec = mux_.add_encoded(command, std::move(handler), deadline_or_default(deadline)))
    return ec;
  flush();
  arm_timer();
  return {};
}

std::error_code Connection::send_asking(std::string_view command, ReplyHandler& handler,
                                        std::optional<Clock::time_point> deadline) {
  if (auto ec = admit()) return ec;
  if (mux_.room() < 2) return Errc::kOverloaded;
  const auto when = deadline_or_default(deadline);
  const std::string_view asking[] = {"ASKING"};
  (void)mux_.add(asking, nullptr, when);  // its +OK is dropped
  (void)mux_.add_encoded(command, std::move(handler), when);
  flush();
  arm_timer();
  return {};
}

void Connection::do_read() {
  ++stream_ops_;
  auto handler = [self = shared_from_this(), epoch = epoch_](const error_code& ec, std::size_t n) {
    self->guarded([&] { self->on_read(epoch, ec, n); });
  };
  const auto buffer = asio::buffer(read_buffer_.get(), kReadBufferSize);
  if (tls_) {
    tls_->async_read_some(buffer, std::move(handler));
  } else {
    plain_->async_read_some(buffer, std::move(handler));
  }
}

void Connection::on_read(std::uint64_t epoch, const error_code& ec, std::size_t n) {
  op_done();
  if (epoch != epoch_) return;
  if (ec) {
    fail(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
             ? std::string("connection closed by the server")
             : "read failed: " + describe(ec),
         Errc::kStoreUnavailable);
    return;
  }
  // Requests that handlers add while replies are delivered go out in one write afterwards.
  std::error_code error;
  {
    struct EndBatch {
      bool& batching;
      ~EndBatch() { batching = false; }
    } end_batch{batching_};
    batching_ = true;
    const std::uint64_t replies = mux_.replies();
    error = mux_.feed(std::string_view(read_buffer_.get(), n), Clock::now());
    if (mux_.replies() != replies) breaker_.record_success();
  }
  if (epoch != epoch_) return;  // a handler stopped the connection
  if (error) {
    fail("protocol error: " + std::string(mux_.error_text()), Errc::kProtocol);
    return;
  }
  flush();
  arm_timer();
  do_read();
}

void Connection::flush() {
  if (batching_ || !mux_.wants_write()) return;
  if (state_ != State::kHandshake && state_ != State::kUp) return;
  const std::string_view bytes = mux_.begin_write();
  // Only the io thread writes the counter: a relaxed load and store, no locked instruction.
  shared_->writes.store(shared_->writes.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
  ++stream_ops_;
  auto handler = [self = shared_from_this(), epoch = epoch_](const error_code& ec, std::size_t) {
    self->guarded([&] { self->on_write(epoch, ec); });
  };
  if (tls_) {
    asio::async_write(*tls_, asio::buffer(bytes.data(), bytes.size()), std::move(handler));
  } else {
    asio::async_write(*plain_, asio::buffer(bytes.data(), bytes.size()), std::move(handler));
  }
}

void Connection::on_write(std::uint64_t epoch, const error_code& ec) {
  op_done();
  if (epoch != epoch_) return;
  if (ec) {
    fail("write failed: " + describe(ec), Errc::kStoreUnavailable);
    return;
  }
  mux_.end_write();
  flush();
}

void Connection::arm_timer() {
  const auto next = mux_.next_timer();
  if (!next) return;
  // Already armed early enough: it re-arms itself for the next deadline when it fires.
  if (timer_armed_ && timer_expiry_ <= *next) return;
  timer_armed_ = true;
  timer_expiry_ = *next;
  deadline_timer_.expires_at(*next);  // a pending wait is cancelled and sees a stale generation
  deadline_timer_.async_wait(
      [self = shared_from_this(), generation = ++timer_generation_](const error_code& ec) {
        self->guarded([&] { self->on_timer(generation, ec); });
      });
}

void Connection::on_timer(std::uint64_t generation, const error_code&) {
  if (generation != timer_generation_) return;
  timer_armed_ = false;
  if (state_ != State::kHandshake && state_ != State::kUp) return;
  const std::uint64_t epoch = epoch_;
  const std::uint64_t replies = mux_.replies(), timeouts = mux_.timeouts();
  const bool stalled = mux_.expire(Clock::now());
  update_breaker(replies, timeouts);
  if (stalled) {
    // The oldest request is a full command timeout past its own deadline and not a byte came
    // for as long: the server is paused, overloaded or gone without a FIN. A new connection is
    // the only way to find out.
    fail("no reply for " + milliseconds_text(2 * config_.command_timeout) + " and no byte for " +
             milliseconds_text(config_.command_timeout) + "; reconnecting",
         Errc::kStoreUnavailable);
    return;
  }
  if (epoch != epoch_) return;
  arm_timer();
}

void prepare_tls_client(SSL* ssl, const ConnectionConfig& config) {
  const std::string& name = config.server_name.empty() ? config.host : config.server_name;
  error_code not_ip;
  asio::ip::make_address(name, not_ip);
  // SNI carries host names only (RFC 6066), never IP addresses.
  if (not_ip) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (config.verify_peer) {
    // Boost 1.74 has no host_name_verification: let OpenSSL check the name during the handshake.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (not_ip) {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    } else {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    }
  }
}

std::shared_ptr<asio::ssl::context> make_tls_context(const std::string& ca_file,
                                                     const std::string& cert_file,
                                                     const std::string& key_file,
                                                     bool verify_peer) {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1);
  error_code ec;
  if (!ca_file.empty()) {
    context->load_verify_file(ca_file, ec);
    if (ec)
      throw std::invalid_argument("cannot use TLS CA file '" + ca_file + "': " + ec.message());
  } else {
    context->set_default_verify_paths(ec);
    if (ec)
      throw std::invalid_argument("cannot load the system's TLS CA certificates: " + ec.message());
  }
  if (cert_file.empty() != key_file.empty())
    throw std::invalid_argument("a TLS client certificate needs both cert_file and key_file");
  if (!cert_file.empty()) {
    context->use_certificate_chain_file(cert_file, ec);
    if (ec) {
      throw std::invalid_argument("cannot use TLS certificate file '" + cert_file +
                                  "': " + ec.message());
    }
    context->use_private_key_file(key_file, asio::ssl::context::pem, ec);
    if (ec)
      throw std::invalid_argument("cannot use TLS key file '" + key_file + "': " + ec.message());
  }
  context->set_verify_mode(verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none);
  return context;
}

}  // namespace pacer::redis::internal
