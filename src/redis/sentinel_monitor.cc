#include "sentinel_monitor.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <span>
#include <string_view>

#include "cluster.h"
#include "core/logging.h"
#include "core/text.h"
#include "reply_reader.h"
#include "resp.h"

namespace pacer::redis::internal {
namespace {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using pacer::internal::printable;

constexpr std::size_t kReadBufferSize = 4096;
constexpr std::chrono::seconds kWarningInterval{1};
// A subscription that keeps failing is retried at most this often.
constexpr std::chrono::milliseconds kResubscribeMin{250};

std::string ms(std::chrono::milliseconds value) { return std::to_string(value.count()) + " ms"; }

// Runs a completion; nothing escapes into io_context::run(). An exception becomes `on_error`.
template <class F, class E>
void guarded(F&& f, E&& on_error) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    try {
      on_error(std::string("internal error: ") + e.what());
    } catch (...) {
    }
  } catch (...) {
    try {
      on_error("internal error");
    } catch (...) {
    }
  }
}

}  // namespace

// A connection subscribed to +switch-master on one sentinel: pushes arrive without requests, so
// this is a read loop over a ReplyReader rather than a Multiplexer. It never reconnects: when it
// fails it calls on_closed once, and its owner decides what next.
class SentinelSubscriber : public std::enable_shared_from_this<SentinelSubscriber> {
 public:
  using Socket = Connection::Socket;
  using TlsStream = Connection::TlsStream;
  using Resolver = Connection::Resolver;
  using Timer = Connection::Timer;

  struct Handlers {
    std::function<void(std::string_view payload)> on_message;
    std::function<void(const std::string& why)> on_closed;
  };

  SentinelSubscriber(asio::io_context& io, ConnectionConfig config, Handlers handlers)
      : io_(io),
        config_(std::move(config)),
        handlers_(std::move(handlers)),
        resolver_(io.get_executor()),
        timer_(io.get_executor()),
        // A sentinel's pushes are three short strings: a hostile one cannot make us buffer much.
        reader_(ReplyReader::Limits{.max_values = 64, .max_item_bytes = std::size_t{64} * 1024}) {}

  void start() {
    if (config_.tls) {
      tls_.emplace(io_.get_executor(), *config_.tls);
    } else {
      plain_.emplace(io_.get_executor());
    }
    timer_.expires_after(config_.connect_timeout);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->closed_ || self->subscribed_) return;
      self->fail("not subscribed within " + ms(self->config_.connect_timeout));
    });
    error_code ec;
    const auto address = asio::ip::make_address(config_.host, ec);
    if (!ec) {
      socket().async_connect(
          tcp::endpoint(address, config_.port),
          [self = shared_from_this()](const error_code& error) { self->on_connect(error); });
      return;
    }
    resolver_.async_resolve(
        config_.host, std::to_string(config_.port),
        [self = shared_from_this()](const error_code& error,
                                    const tcp::resolver::results_type& results) {
          if (self->closed_) return;
          if (error)
            return self->fail("cannot resolve '" + self->config_.host + "': " + error.message());
          guarded(
              [&] {
                asio::async_connect(
                    self->socket(), results,
                    [self](const error_code& e, const tcp::endpoint&) { self->on_connect(e); });
              },
              [&](const std::string& why) { self->fail(why); });
        });
  }

  // No handler is called after this.
  void stop() {
    if (closed_) return;
    closed_ = true;
    close();
  }

 private:
  Socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  void close() {
    error_code ignored;
    resolver_.cancel();
    timer_.cancel();
    if (plain_ || tls_) socket().close(ignored);
  }

  void fail(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    close();
    if (handlers_.on_closed) handlers_.on_closed(why);
  }

  void on_connect(const error_code& error) {
    if (closed_) return;
    if (error) return fail("connect failed: " + error.message());
    guarded(
        [&] {
          error_code ignored;
          socket().set_option(tcp::no_delay(true), ignored);
          socket().set_option(asio::socket_base::keep_alive(true), ignored);
          if (!tls_) return subscribe();
          prepare_tls_client(tls_->native_handle(), config_);
          tls_->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](
                                                                    const error_code& e) {
            if (self->closed_) return;
            if (e) return self->fail("TLS handshake failed: " + e.message());
            guarded([&] { self->subscribe(); }, [&](const std::string& why) { self->fail(why); });
          });
        },
        [&](const std::string& why) { fail(why); });
  }

  void subscribe() {
    if (!config_.password.empty()) {
      expect_auth_ok_ = true;
      if (config_.username.empty()) {
        const std::string_view args[] = {"AUTH", config_.password};
        append_command(out_, args);
      } else {
        const std::string_view args[] = {"AUTH", config_.username, config_.password};
        append_command(out_, args);
      }
    }
    const std::string_view args[] = {"SUBSCRIBE", kSwitchMasterChannel};
    append_command(out_, args);
    auto on_write = [self = shared_from_this()](const error_code& e, std::size_t) {
      if (self->closed_) return;
      if (e) self->fail("write failed: " + e.message());
    };
    if (tls_) {
      asio::async_write(*tls_, asio::buffer(out_), std::move(on_write));
    } else {
      asio::async_write(*plain_, asio::buffer(out_), std::move(on_write));
    }
    read();
  }

  void read() {
    auto handler = [self = shared_from_this()](const error_code& e, std::size_t n) {
      if (self->closed_) return;
      guarded([&] { self->on_read(e, n); }, [&](const std::string& why) { self->fail(why); });
    };
    const auto buffer = asio::buffer(buffer_, sizeof(buffer_));
    if (tls_) {
      tls_->async_read_some(buffer, std::move(handler));
    } else {
      plain_->async_read_some(buffer, std::move(handler));
    }
  }

  void on_read(const error_code& e, std::size_t n) {
    if (e) {
      return fail(e == asio::error::eof || e == asio::ssl::error::stream_truncated
                      ? std::string("connection closed by the sentinel")
                      : "read failed: " + e.message());
    }
    if (!reader_.feed(std::string_view(buffer_, n)))
      return fail("protocol error: " + std::string(reader_.error()));
    Reply reply;
    for (;;) {
      const auto status = reader_.next(reply);
      if (status == ReplyReader::Status::kNeedMore) break;
      if (status == ReplyReader::Status::kError)
        return fail("protocol error: " + std::string(reader_.error()));
      if (reply.is_error()) {
        return fail((expect_auth_ok_ ? "AUTH failed: " : "SUBSCRIBE failed: ") +
                    printable(reply.str));
      }
      if (expect_auth_ok_ && reply.type == Reply::Type::kStatus) {
        expect_auth_ok_ = false;
        continue;
      }
      const auto push = parse_pubsub_push(reply);
      if (!push) return fail("unexpected reply on the subscription");
      if (push->kind == PubSubPush::Kind::kSubscribe) {
        subscribed_ = true;
        timer_.cancel();
      } else if (push->kind == PubSubPush::Kind::kMessage &&
                 push->channel == kSwitchMasterChannel && handlers_.on_message) {
        handlers_.on_message(push->payload);
        if (closed_) return;  // the handler stopped us
      }
    }
    read();
  }

  asio::io_context& io_;
  const ConnectionConfig config_;
  Handlers handlers_;
  Resolver resolver_;
  Timer timer_;
  std::optional<Socket> plain_;
  std::optional<TlsStream> tls_;
  ReplyReader reader_;
  std::string out_;
  char buffer_[kReadBufferSize];
  bool closed_ = false;
  bool subscribed_ = false;
  bool expect_auth_ok_ = false;
};

SentinelMonitor::SentinelMonitor(asio::io_context& io, SentinelMonitorConfig config,
                                 std::shared_ptr<ClientShared> shared, MasterHandler on_master)
    : io_(io),
      config_(std::move(config)),
      shared_(std::move(shared)),
      on_master_(std::move(on_master)),
      rotation_(config_.sentinels.size()),
      attempt_timer_(io.get_executor()),
      ask_timer_(io.get_executor()),
      verify_timer_(io.get_executor()) {}

// stop()'s only throwing steps are Asio's timer cancel(), which throws on OS errors an epoll
// timer never reports.
// NOLINTNEXTLINE(bugprone-exception-escape)
SentinelMonitor::~SentinelMonitor() { stop(); }

void SentinelMonitor::start() {
  if (stopped_ || started_ || config_.sentinels.empty()) return;
  started_ = true;
  ask();
}

void SentinelMonitor::stop() {
  if (stopped_) return;
  stopped_ = true;
  ++ask_epoch_;
  ++verify_epoch_;
  ++ask_timer_generation_;
  on_master_ = nullptr;
  attempt_timer_.cancel();
  ask_timer_.cancel();
  verify_timer_.cancel();
  if (query_) std::exchange(query_, nullptr)->stop(Errc::kStoreUnavailable);
  if (verifier_) std::exchange(verifier_, nullptr)->stop(Errc::kStoreUnavailable);
  if (subscriber_) std::exchange(subscriber_, nullptr)->stop();
}

void SentinelMonitor::ask_now() {
  if (stopped_ || !started_ || asking_) return;
  ++ask_timer_generation_;
  ask_timer_.cancel();
  ask();
}

std::chrono::milliseconds SentinelMonitor::attempt_timeout() const {
  return config_.sentinel.connect_timeout + config_.sentinel.command_timeout;
}

ConnectionConfig SentinelMonitor::sentinel_config(std::size_t index) const {
  ConnectionConfig config = config_.sentinel;
  config.host = config_.sentinels[index].first;
  config.port = config_.sentinels[index].second;
  config.db = 0;
  return config;
}

std::string SentinelMonitor::sentinel_name(std::size_t index) const {
  return "sentinel " +
         endpoint_name(config_.sentinels[index].first, config_.sentinels[index].second);
}

void SentinelMonitor::report(const std::string& text) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ >= kWarningInterval) {
    if (suppressed_warnings_ > 0) {
      pacer::internal::log_warn("redis {} ({} more sentinel failures in the last second)", text,
                                suppressed_warnings_);
    } else {
      pacer::internal::log_warn("redis {}", text);
    }
    last_warning_ = now;
    suppressed_warnings_ = 0;
  } else {
    ++suppressed_warnings_;
  }
  std::lock_guard lock(shared_->mutex);
  shared_->last_error = text;
}

// ---- asking for the master -------------------------------------------------------------------

void SentinelMonitor::ask() {
  if (stopped_ || asking_) return;
  asking_ = true;
  query_sent_ = false;
  const std::uint64_t epoch = ++ask_epoch_;
  const std::size_t index = rotation_.current();
  if (!query_ || query_index_ != index) {
    if (query_) std::exchange(query_, nullptr)->stop(Errc::kStoreUnavailable);
    query_index_ = index;
    query_ = std::make_shared<Connection>(io_, sentinel_config(index), shared_, this);
    query_->start();
  }
  attempt_timer_.expires_after(attempt_timeout());
  attempt_timer_.async_wait([weak = weak_from_this(), epoch](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_ || epoch != self->ask_epoch_ || !self->asking_) return;
    guarded(
        [&] {
          self->attempt_failed(self->sentinel_name(self->query_index_) + ": no answer within " +
                               ms(self->attempt_timeout()));
        },
        [](const std::string&) {});
  });
  if (query_->up()) send_query();
}

void SentinelMonitor::send_query() {
  if (!asking_ || query_sent_ || !query_) return;
  query_sent_ = true;
  const std::string_view args[] = {"SENTINEL", "get-master-addr-by-name", config_.master_name};
  ReplyHandler handler = [weak = weak_from_this(), epoch = ask_epoch_](std::error_code ec,
                                                                       Reply&& reply) {
    auto self = weak.lock();
    if (!self) return;
    guarded([&] { self->on_answer(epoch, ec, std::move(reply)); },
            [&](const std::string& why) { self->attempt_failed(why); });
  };
  if (const std::error_code ec = query_->send(args, handler))
    attempt_failed(sentinel_name(query_index_) + ": cannot ask: " + ec.message());
}

void SentinelMonitor::on_answer(std::uint64_t epoch, std::error_code ec, Reply&& reply) {
  if (stopped_ || epoch != ask_epoch_ || !asking_) return;
  const std::string name = sentinel_name(query_index_);
  if (ec) return attempt_failed(name + ": no answer: " + ec.message());
  const MasterAddressResult result = parse_master_address(reply);
  if (result.unknown_master) {
    return attempt_failed(name + " knows no master named '" + printable(config_.master_name) + "'");
  }
  if (!result.address) {
    return attempt_failed(
        name + ": unusable answer to get-master-addr-by-name: " + printable(result.error));
  }
  asking_ = false;
  attempt_timer_.cancel();
  rotation_.succeed();
  if (!subscriber_) subscribe(query_index_);
  schedule_ask(config_.ask_interval);
  consider(*result.address, name.c_str());
}

void SentinelMonitor::attempt_failed(const std::string& text) {
  if (stopped_ || !asking_) return;
  asking_ = false;
  ++ask_epoch_;
  attempt_timer_.cancel();
  report(text);
  // The next attempt goes to the next sentinel, on a new connection.
  if (query_) std::exchange(query_, nullptr)->stop(Errc::kStoreUnavailable);
  if (stopped_) return;
  if (rotation_.fail()) {
    schedule_ask(config_.ask_interval);  // every sentinel failed in a row: wait a little
  } else {
    // Posted: no recursion through a chain of sentinels that fail at once.
    asio::post(io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) guarded([&] { self->ask(); }, [](const std::string&) {});
    });
  }
}

void SentinelMonitor::schedule_ask(std::chrono::milliseconds delay) {
  if (stopped_) return;
  ask_timer_.expires_after(delay);
  ask_timer_.async_wait(
      [weak = weak_from_this(), generation = ++ask_timer_generation_](const error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->stopped_ || generation != self->ask_timer_generation_) return;
        guarded([&] { self->ask(); }, [](const std::string&) {});
      });
}

void SentinelMonitor::on_up(Connection& connection) {
  if (stopped_) return;
  if (&connection == query_.get()) {
    send_query();
  } else if (&connection == verifier_.get()) {
    send_role();
  }
}

void SentinelMonitor::on_down(Connection&) {
  // A question in flight fails through its handler; one not yet sent meets the attempt timer.
}

// ---- +switch-master --------------------------------------------------------------------------

void SentinelMonitor::subscribe(std::size_t index) {
  const auto now = std::chrono::steady_clock::now();
  if (stopped_ || subscriber_ || now - last_subscribe_ < kResubscribeMin) return;
  last_subscribe_ = now;
  std::weak_ptr<SentinelMonitor> weak = weak_from_this();
  SentinelSubscriber::Handlers handlers{.on_message =
                                            [weak, index](std::string_view payload) {
                                              if (auto self = weak.lock())
                                                self->on_switch_master(index, payload);
                                            },
                                        .on_closed =
                                            [weak, index](const std::string& why) {
                                              if (auto self = weak.lock())
                                                self->on_subscription_closed(index, why);
                                            }};
  subscriber_ =
      std::make_shared<SentinelSubscriber>(io_, sentinel_config(index), std::move(handlers));
  subscriber_->start();
}

void SentinelMonitor::on_switch_master(std::size_t index, std::string_view payload) {
  if (stopped_) return;
  const auto message = parse_switch_master(payload);
  if (!message) {
    report(sentinel_name(index) + ": malformed +switch-master message '" + printable(payload) +
           "'");
    ask_now();
    return;
  }
  if (message->master_name != config_.master_name) return;
  pacer::internal::log_info("redis {}: +switch-master {} {} -> {}", sentinel_name(index),
                            printable(message->master_name),
                            endpoint_name(message->from.host, message->from.port),
                            endpoint_name(message->to.host, message->to.port));
  consider(message->to, "+switch-master");
}

void SentinelMonitor::on_subscription_closed(std::size_t index, const std::string& why) {
  if (stopped_) return;
  subscriber_.reset();
  report(sentinel_name(index) + ": +switch-master subscription lost: " + why);
  // A message may have been missed: ask now (and subscribe again when a sentinel answers).
  ask_now();
}

// ---- verifying an announced master -----------------------------------------------------------

void SentinelMonitor::consider(const MasterAddress& address, const char* source) {
  if (stopped_) return;
  if (verifier_ && candidate_ == address) return;  // already being checked
  // The current master again. A check of another address goes on: this answer may come from a
  // sentinel that has not yet seen the failover another one announced.
  if (master_ && *master_ == address) return;
  pacer::internal::log_debug("redis sentinel: {} names {} as master '{}'", source,
                             endpoint_name(address.host, address.port),
                             printable(config_.master_name));
  stop_verifier();
  candidate_ = address;
  role_sent_ = false;
  const std::uint64_t epoch = ++verify_epoch_;
  ConnectionConfig config = config_.data;
  config.host = address.host;
  config.port = address.port;
  verifier_ = std::make_shared<Connection>(io_, std::move(config), shared_, this);
  verifier_->start();
  verify_timer_.expires_after(config_.data.connect_timeout + config_.data.command_timeout);
  verify_timer_.async_wait([weak = weak_from_this(), epoch](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_ || epoch != self->verify_epoch_ || !self->verifier_) return;
    guarded(
        [&] {
          self->verify_failed(endpoint_name(self->candidate_.host, self->candidate_.port) +
                              " (announced master) did not answer ROLE");
        },
        [](const std::string&) {});
  });
}

void SentinelMonitor::send_role() {
  if (!verifier_ || role_sent_) return;
  role_sent_ = true;
  const std::string_view args[] = {"ROLE"};
  ReplyHandler handler = [weak = weak_from_this(), epoch = verify_epoch_](std::error_code ec,
                                                                          Reply&& reply) {
    auto self = weak.lock();
    if (!self) return;
    guarded([&] { self->on_role(epoch, ec, std::move(reply)); },
            [&](const std::string& why) { self->verify_failed(why); });
  };
  if (const std::error_code ec = verifier_->send(args, handler))
    verify_failed("cannot send ROLE: " + ec.message());
}

void SentinelMonitor::on_role(std::uint64_t epoch, std::error_code ec, Reply&& reply) {
  if (stopped_ || epoch != verify_epoch_ || !verifier_) return;
  const std::string name = endpoint_name(candidate_.host, candidate_.port);
  if (ec) return verify_failed(name + " (announced master): ROLE failed: " + ec.message());
  const Role role = parse_role(reply);
  if (role != Role::kMaster) {
    return verify_failed(name + " (announced master) reports role " + std::string(role_name(role)) +
                         (reply.is_error() ? " (" + printable(reply.str) + ")" : "") +
                         "; asking the sentinels again");
  }
  const MasterAddress address = candidate_;
  stop_verifier();
  const bool first = !master_;
  master_ = address;
  pacer::internal::log_info("redis sentinel: master '{}' is {}{}", printable(config_.master_name),
                            name, first ? "" : " (switched)");
  if (on_master_) {
    const MasterHandler handler = on_master_;  // it may stop us
    handler(address);
  }
}

void SentinelMonitor::verify_failed(const std::string& text) {
  if (stopped_) return;
  stop_verifier();
  report(text);
  // The next periodic question (at most ask_interval away) tries again.
}

void SentinelMonitor::stop_verifier() {
  ++verify_epoch_;
  verify_timer_.cancel();
  if (verifier_) std::exchange(verifier_, nullptr)->stop(Errc::kStoreUnavailable);
}

}  // namespace pacer::redis::internal
