#include "pacer/beast/server.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "../core/handler_guard.h"
#include "pacer/detail/text.h"
#include "spdlog/spdlog.h"

namespace pacer::beast {

namespace {

namespace asio = boost::asio;
namespace bb = boost::beast;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// The concrete executor instead of any_io_executor: no type erasure on every completion.
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Stream = bb::basic_stream<tcp, Executor, bb::unlimited_rate_policy>;
using Parser = http::request_parser<http::string_body>;
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

constexpr std::string_view kBadRequest = R"({"detail":"Bad request"})";
constexpr std::string_view kCodingNotImplemented =
    R"({"detail":"Transfer coding not implemented"})";
constexpr std::string_view kHeaderTooLarge = R"({"detail":"Request header fields too large"})";
constexpr std::string_view kBodyTooLarge = R"({"detail":"Request body too large"})";
constexpr std::string_view kInternalError = R"({"detail":"Internal Server Error"})";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// After an error answer the client may still be sending (a big body): reading it for a while
// before closing keeps the kernel from answering with RST, which would destroy our response in
// the client's receive buffer before it reads it.
constexpr std::chrono::seconds kDrainTime{2};
constexpr std::size_t kDrainLimit = 16 * 1024 * 1024;

std::string_view to_std(bb::string_view s) { return {s.data(), s.size()}; }
bb::string_view to_beast(std::string_view s) { return {s.data(), s.size()}; }

std::string describe(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool is_http_error(const error_code& ec) {
  static const auto& category = make_error_code(http::error::end_of_stream).category();
  return ec.category() == category;
}

// Descriptors left for everything but client connections (listeners, io_context internals,
// Redis connections, log files) when the connection cap is derived from RLIMIT_NOFILE.
constexpr std::size_t kReservedDescriptors = 64;
// Never ask for more than this (Linux's default fs.nr_open), even when the hard limit is
// "unlimited": setrlimit would fail above nr_open.
constexpr rlim_t kMaxDescriptors = rlim_t{1} << 20;

// Raises the soft RLIMIT_NOFILE to the hard limit (when asked) and returns the soft limit in
// force, and a note for the log saying what happened.
std::size_t descriptor_limit(bool raise, std::string& note) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    note = "unknown (getrlimit failed), assuming 1024";
    return 1024;
  }
  const rlim_t hard = std::min(limit.rlim_max, kMaxDescriptors);
  note = "hard limit " + (limit.rlim_max == RLIM_INFINITY ? std::string("unlimited")
                                                          : std::to_string(limit.rlim_max));
  if (raise && limit.rlim_cur < hard) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = hard;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
      note += ", raised from " + std::to_string(before);
    } else {
      limit.rlim_cur = before;
      note += std::string(", could not raise: ") + std::strerror(errno);
    }
  }
  return static_cast<std::size_t>(std::min(limit.rlim_cur, kMaxDescriptors));
}

// What a Transfer-Encoding header means for a request (RFC 9112 §6.1, §6.3).
enum class Framing { kOk, kBad, kNotImplemented };

// Only "chunked", exactly once and last, is a framing this server understands; anything else
// could make a proxy in front of it and this server disagree on where the body ends (request
// smuggling). Several Transfer-Encoding lines are one comma-separated list.
Framing check_transfer_encoding(const Parser& parser) {
  const auto& header = parser.get();
  const auto [first, last] = header.equal_range(http::field::transfer_encoding);
  if (first == last) return Framing::kOk;
  // HTTP/1.0 has no transfer codings, and a length next to a coding is ambiguous by design.
  if (header.version() < 11) return Framing::kBad;
  if (header.find(http::field::content_length) != header.end()) return Framing::kBad;
  std::size_t codings = 0;
  bool chunked_last = false;
  bool other = false;
  for (auto it = first; it != last; ++it) {
    std::string_view list = to_std(it->value());
    while (!list.empty()) {
      const auto comma = list.find(',');
      const std::string_view element = pacer::detail::trim(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (element.empty()) continue;  // empty list elements are allowed and mean nothing
      // Chunked was applied already: nothing may follow it, not even chunked again.
      if (chunked_last) return Framing::kBad;
      ++codings;
      // "chunked" takes no parameters; other codings may ("gzip;q=1"), they are not read.
      if (pacer::http::iequals(element, "chunked")) {
        chunked_last = true;
      } else {
        other = true;
      }
    }
  }
  if (codings == 0 || !chunked_last) return Framing::kBad;
  if (other) return Framing::kNotImplemented;  // framing is clear, but the body is encoded
  // Beast must read the body as chunked too, or the check above protects nothing.
  return parser.chunked() ? Framing::kOk : Framing::kBad;
}

// At most one line a second for a kind of event; the next line says how many were left out.
using internal::LogThrottle;

std::string skipped_note(std::uint64_t skipped) {
  return skipped == 0 ? std::string()
                      : " (" + std::to_string(skipped) + " more since the last such line)";
}

class Session;
struct Worker;

}  // namespace

struct Server::Impl {
  Impl(ServerOptions options_in, Handler handler_in);

  void stop();

  ServerOptions options;
  Handler handler;
  std::uint16_t port = 0;
  std::size_t max_connections = 0;  // all workers together
  // Declared before `signals`, which lives on worker 0's io_context and must go first.
  std::vector<std::unique_ptr<Worker>> workers;
  std::optional<asio::signal_set> signals;

  std::mutex mutex;
  std::condition_variable cv;
  bool started = false;
  bool stop_requested = false;
  bool joining = false;
  bool joined = false;
  std::vector<std::thread> threads;
};

namespace {

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
  // Read by Server::stats() from any thread.
  std::atomic<std::uint64_t> open_count{0};
  std::atomic<std::uint64_t> shed{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> accept_failures{0};
  std::atomic<std::uint64_t> escaped_exceptions{0};
};

// One connection. Owned by the pending operation's handler (or by the Send awaiting a response),
// so it lives exactly as long as there is something to do for it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& worker, Socket&& socket) : worker_(worker), stream_(std::move(socket)) {
    error_code ec;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      asio::ip::address address = peer.address();
      if (address.is_v6() && address.to_v6().is_v4_mapped())
        address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
      connection_.peer_address = address.to_string();
      connection_.peer_port = peer.port();
    }
    connection_.worker = worker.index;
  }

  void start() { read_request(); }

  // Any thread: the handler's answer for request `generation`.
  static void deliver(std::shared_ptr<Session> self, std::uint64_t generation,
                      Response&& response) {
    if (self->worker_.ioc.get_executor().running_in_this_thread()) {
      self->on_response(generation, std::move(response));
      return;
    }
    Session* session = self.get();
    asio::post(session->worker_.ioc,
               [self = std::move(self), generation, response = std::move(response)]() mutable {
                 self->on_response(generation, std::move(response));
               });
  }

  // Any thread: the Send for request `generation` was destroyed without being called.
  static void dropped(std::shared_ptr<Session> self, std::uint64_t generation) noexcept {
    try {
      if (self->worker_.ioc.get_executor().running_in_this_thread()) {
        self->on_dropped(generation);
        return;
      }
      Session* session = self.get();
      asio::post(session->worker_.ioc,
                 [self = std::move(self), generation] { self->on_dropped(generation); });
    } catch (...) {
      // Out of memory while posting: the connection times out instead.
    }
  }

  // On stop(): a connection waiting for the next request, with no byte of it received, is idle.
  void close_if_idle() {
    if (state_ == State::kReadingHeader && buffer_.size() == 0) finish();
  }

  // For shedding at the connection cap (Worker::find_victim).
  bool reading_header() const { return state_ == State::kReadingHeader; }
  // Served before and now waiting for the next request, with no byte of it received.
  bool idle_keep_alive() const {
    return state_ == State::kReadingHeader && buffer_.size() == 0 && generation_ > 0;
  }
  // Answered and closed for sending; only reading what the client still sends.
  bool draining() const { return state_ == State::kClosing; }
  const std::string& peer() const { return connection_.peer_address; }

  void finish() {
    if (state_ == State::kDone) return;
    state_ = State::kDone;
    stream_.close();
    worker_.unlink(this);
  }

  Session* prev = nullptr;
  Session* next = nullptr;

 private:
  enum class State : unsigned char {
    kReadingHeader,
    kReadingBody,
    kHandling,
    kWriting,
    kClosing,
    kDone
  };

  const ServerOptions& options() const { return worker_.server.options; }

  void read_request() {
    state_ = State::kReadingHeader;
    worker_.requeue(this);
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(options().header_limit, std::numeric_limits<std::uint32_t>::max())));
    parser_->body_limit(static_cast<std::uint64_t>(options().body_limit));
    stream_.expires_after(options().idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (state_ == State::kDone) return;
    if (ec) return on_read_error(ec);
    // Before the body is read or anything dispatched: a body framed in a way we might not share
    // with a proxy must not be read as the next request.
    switch (check_transfer_encoding(*parser_)) {
      case Framing::kOk:
        break;
      case Framing::kBad:
        return answer_error(http::status::bad_request, kBadRequest);
      case Framing::kNotImplemented:
        return answer_error(http::status::not_implemented, kCodingNotImplemented);
    }
    if (parser_->is_done()) return dispatch();
    state_ = State::kReadingBody;
    const auto& fields = parser_->get();
    if (auto it = fields.find(http::field::expect);
        it != fields.end() && pacer::http::iequals(to_std(it->value()), "100-continue")) {
      stream_.expires_after(options().idle_timeout);
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](error_code write_ec, std::size_t) {
                          if (write_ec) return self->finish();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    if (state_ == State::kDone) return;
    stream_.expires_after(options().idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) {
                       if (self->state_ == State::kDone) return;
                       if (ec) return self->on_read_error(ec);
                       self->dispatch();
                     });
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::header_limit)
      return answer_error(http::status::request_header_fields_too_large, kHeaderTooLarge);
    if (ec == http::error::body_limit)
      return answer_error(http::status::payload_too_large, kBodyTooLarge);
    // end_of_stream / partial_message: the client went away; nobody is left to answer.
    if (is_http_error(ec) && ec != http::error::end_of_stream && ec != http::error::partial_message)
      return answer_error(http::status::bad_request, kBadRequest);
    finish();  // closed, reset, timed out, or cancelled by stop()
  }

  void dispatch() {
    Request request = parser_->release();
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    head_ = request.method() == http::verb::head;
    state_ = State::kHandling;
    const std::uint64_t generation = ++generation_;
    in_handler_ = true;
    dropped_in_handler_ = false;
    bool threw = false;
    try {
      worker_.server.handler(std::move(request), connection_,
                             Send(Responder(shared_from_this(), generation)));
    } catch (const std::exception& e) {
      threw = true;
      spdlog::error("pacer::beast: handler threw for a request from {}: {}",
                    connection_.peer_address, e.what());
    } catch (...) {
      threw = true;
      spdlog::error("pacer::beast: handler threw a non-exception for a request from {}",
                    connection_.peer_address);
    }
    in_handler_ = false;
    if (state_ != State::kHandling || generation != generation_) return;  // answered already
    if (dropped_in_handler_ && !threw) {
      spdlog::error("pacer::beast: handler dropped Send without calling it (request from {})",
                    connection_.peer_address);
    }
    if (threw || dropped_in_handler_) answer_internal_error();
  }

  void on_dropped(std::uint64_t generation) {
    if (state_ != State::kHandling || generation != generation_) return;
    if (in_handler_) {
      // Decided in dispatch(), which knows whether the handler threw.
      dropped_in_handler_ = true;
      return;
    }
    spdlog::error("pacer::beast: Send destroyed without being called (request from {})",
                  connection_.peer_address);
    answer_internal_error();
  }

  void on_response(std::uint64_t generation, Response&& response) {
    // A stale answer (after a 500 for a throwing handler) or one for a closed connection.
    if (state_ != State::kHandling || generation != generation_) return;
    write(std::move(response), /*force_close=*/false, /*drain=*/false);
  }

  void answer_internal_error() {
    Response response{http::status::internal_server_error, version_};
    response.set(http::field::content_type, "application/json");
    response.body() = kInternalError;
    write(std::move(response), /*force_close=*/false, /*drain=*/false);
  }

  // The request could not be read completely: answer and close, draining what the client sends.
  void answer_error(http::status status, std::string_view body) {
    Response response{status, 11};
    response.set(http::field::content_type, "application/json");
    response.body() = body;
    head_ = false;
    write(std::move(response), /*force_close=*/true, /*drain=*/true);
  }

  void write(Response&& response, bool force_close, bool drain) {
    response_ = std::move(response);
    const bool keep_alive = keep_alive_ && !force_close && !worker_.stopping;
    response_.version(version_);
    response_.keep_alive(keep_alive);
    if (response_.find(http::field::server) == response_.end())
      response_.set(http::field::server, options().server_header);
    const auto status = response_.result();
    if (http::to_status_class(status) == http::status_class::informational ||
        status == http::status::no_content || status == http::status::not_modified) {
      // No body allowed; prepare_payload() would throw on one.
      response_.body().clear();
      response_.erase(http::field::content_length);
      response_.erase(http::field::transfer_encoding);
    } else {
      response_.prepare_payload();
      if (head_) response_.body().clear();  // Content-Length of the GET, no body
    }
    close_after_write_ = !keep_alive;
    drain_after_write_ = drain;
    state_ = State::kWriting;
    stream_.expires_after(options().idle_timeout);
    serialize_response();
    asio::async_write(
        stream_, asio::buffer(out_),
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_write(ec); });
  }

  // One contiguous buffer per response: Beast's serializer hands the kernel a buffer per
  // header name, separator and value, which costs more than the copy (measured: about
  // 0.1 us per extra header under wrk). The body is a string with Content-Length set above.
  void serialize_response() {
    out_.clear();
    out_ += response_.version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    char status[8];
    const auto code = std::to_chars(status, status + sizeof status, response_.result_int()).ptr;
    out_.append(status, code);
    out_ += ' ';
    const auto reason = response_.reason();
    out_.append(reason.data(), reason.size());
    out_ += "\r\n";
    for (const auto& field : response_) {
      const auto name = field.name_string();
      const auto value = field.value();
      out_.append(name.data(), name.size()).append(": ").append(value.data(), value.size());
      out_ += "\r\n";
    }
    out_ += "\r\n";
    out_ += response_.body();
  }

  void on_write(error_code ec) {
    if (state_ == State::kDone) return;
    response_ = Response{};  // don't keep a large body around while idle
    if (out_.capacity() > 64 * 1024) std::string().swap(out_);
    if (ec) return finish();
    if (close_after_write_ || worker_.stopping) return close(drain_after_write_);
    read_request();
  }

  void close(bool drain) {
    state_ = State::kClosing;
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    if (!drain) return finish();
    drain_deadline_ =
        std::chrono::steady_clock::now() +
        std::min<std::chrono::steady_clock::duration>(kDrainTime, options().idle_timeout);
    drained_ = 0;
    buffer_.clear();
    drain_some();
  }

  void drain_some() {
    stream_.expires_at(drain_deadline_);
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            [self = shared_from_this()](error_code ec, std::size_t n) {
                              if (self->state_ == State::kDone) return;
                              self->drained_ += n;
                              if (ec || self->drained_ > kDrainLimit) return self->finish();
                              self->drain_some();
                            });
  }

  // The callable inside Send. Answers 500 when destroyed without having been called.
  class Responder {
   public:
    Responder(std::shared_ptr<Session> session, std::uint64_t generation) noexcept
        : session_(std::move(session)), generation_(generation) {}
    Responder(Responder&& other) noexcept
        : session_(std::move(other.session_)), generation_(other.generation_) {}
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;
    Responder& operator=(Responder&&) = delete;
    ~Responder() {
      if (session_) Session::dropped(std::move(session_), generation_);
    }

    void operator()(Response&& response) {
      if (session_) Session::deliver(std::move(session_), generation_, std::move(response));
    }

   private:
    std::shared_ptr<Session> session_;
    std::uint64_t generation_;
  };

  Worker& worker_;
  Stream stream_;
  bb::flat_buffer buffer_;  // per connection, reused for every request
  std::optional<Parser> parser_;
  Response response_;  // being written
  std::string out_;    // response_ serialised; its capacity is reused
  Connection connection_;
  std::uint64_t generation_ = 0;  // of the request being handled
  State state_ = State::kReadingHeader;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  bool close_after_write_ = false;
  bool drain_after_write_ = false;
  bool in_handler_ = false;
  bool dropped_in_handler_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::size_t drained_ = 0;
};

static_assert(sizeof(std::shared_ptr<Session>) + sizeof(std::uint64_t) <= Send::kInlineSize,
              "Send keeps its Responder inline");

tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) return {address, port};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  const auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("pacer::beast: cannot resolve " + describe(host, port) + ": " +
                             (ec ? ec.message() : std::string("no address")));
  }
  return results.begin()->endpoint();
}

[[noreturn]] void fail(const char* what, const tcp::endpoint& endpoint, const std::string& host,
                       const error_code& ec) {
  throw std::runtime_error(std::string("pacer::beast: cannot ") + what + " " +
                           describe(host, endpoint.port()) + ": " + ec.message());
}

// SO_REUSEPORT lets any socket of the same user share the port, so a second server would silently
// take half the connections. A plain bind first fails when anything listens there already.
void ensure_port_free(const tcp::endpoint& endpoint, const std::string& host) {
  asio::io_context ioc;
  tcp::acceptor probe(ioc);
  error_code ec;
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(endpoint, ec);
  if (ec) fail("bind", endpoint, host, ec);
}

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
// header the longest (slowloris). Never one whose request is being handled or answered.
Session* Worker::find_victim(const char*& what) const {
  Session* idle = nullptr;
  Session* slow = nullptr;
  for (Session* session = sessions; session != nullptr; session = session->next) {
    if (session->draining()) {
      what = "an answered connection still draining";
      return session;
    }
    if (idle == nullptr && session->idle_keep_alive()) idle = session;
    if (slow == nullptr && session->reading_header()) slow = session;
  }
  if (idle != nullptr) {
    what = "the oldest idle keep-alive connection";
    return idle;
  }
  what = "the connection reading its request header the longest";
  return slow;
}

void Worker::admit(Socket&& socket) {
  if (open >= max_connections) {
    const char* what = "";
    Session* victim = find_victim(what);
    std::uint64_t skipped = 0;
    if (victim == nullptr) {
      refused.fetch_add(1, std::memory_order_relaxed);
      error_code ignored;
      const auto peer = socket.remote_endpoint(ignored);
      socket.close(ignored);
      if (cap_log.allow(skipped)) {
        spdlog::warn(
            "pacer::beast: worker {}: connection cap of {} reached and every connection is busy: "
            "refused a new one from {}{}",
            index, max_connections, peer.address().to_string(), skipped_note(skipped));
      }
      return;
    }
    shed.fetch_add(1, std::memory_order_relaxed);
    if (cap_log.allow(skipped)) {
      spdlog::warn(
          "pacer::beast: worker {}: connection cap of {} reached: closed {} (from {}) "
          "to make room{}",
          index, max_connections, what, victim->peer(), skipped_note(skipped));
    }
    victim->finish();
  }
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  auto session = std::make_shared<Session>(*this, std::move(socket));
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
    spdlog::warn("pacer::beast: worker {}: accept failed: {} ({} connections open); {}{}", index,
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
      spdlog::error(
          "pacer::beast: worker {}: an exception escaped a completion handler ({}); "
          "that operation is lost, the worker goes on",
          index, e.what());
    } catch (...) {
      escaped_exceptions.fetch_add(1, std::memory_order_relaxed);
      spdlog::error(
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
    spdlog::warn("pacer::beast: worker {}: closed {} connection(s) still busy after the grace",
                 index, forced);
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
  --open;
  open_count.store(open, std::memory_order_relaxed);
  if (stopping && sessions == nullptr) {
    grace.cancel();
    ioc.stop();
  }
}

Server::Impl::Impl(ServerOptions options_in, Handler handler_in)
    : options(std::move(options_in)), handler(std::move(handler_in)) {
  if (!handler) throw std::invalid_argument("pacer::beast::Server: the handler is empty");
  const unsigned count =
      options.threads != 0 ? options.threads : std::max(1U, std::thread::hardware_concurrency());
  tcp::endpoint endpoint = resolve(options.host, options.port);
  const bool reuse_port = count > 1;
  if (reuse_port && endpoint.port() != 0) ensure_port_free(endpoint, options.host);
  workers.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Worker>(*this, i));
    workers.back()->listen(endpoint, reuse_port);
    // With port 0 the first bind picks the port; the others join it.
    if (i == 0) endpoint.port(workers.back()->acceptor.local_endpoint().port());
  }
  port = endpoint.port();

  std::string note;
  const std::size_t descriptors = descriptor_limit(options.raise_fd_limit, note);
  const std::size_t wanted = options.max_connections != 0
                                 ? options.max_connections
                                 : descriptors - std::min(kReservedDescriptors, descriptors / 2);
  const std::size_t per_worker = std::max<std::size_t>(1, wanted / count);
  for (auto& worker : workers) worker->max_connections = per_worker;
  max_connections = per_worker * count;
  spdlog::info("pacer::beast: descriptor limit {} ({}); up to {} connections ({} per worker{})",
               descriptors, note, max_connections, per_worker,
               options.max_connections != 0 ? "" : ", derived from the descriptor limit");
  if (max_connections > descriptors) {
    spdlog::warn(
        "pacer::beast: the connection cap {} is above the descriptor limit {}: accept "
        "will fail before the cap is reached, and connections are shed then",
        max_connections, descriptors);
  }
}

void Server::Impl::stop() {
  std::lock_guard lock(mutex);
  if (stop_requested) return;
  stop_requested = true;
  if (started) {
    // Inline on the caller's own worker (stop() from a handler), so the answer it is about to
    // send already says "Connection: close".
    for (auto& worker : workers)
      asio::dispatch(worker->ioc, [worker = worker.get()] { worker->begin_shutdown(); });
  } else {
    // No thread runs the io_contexts: release the port now.
    error_code ignored;
    for (auto& worker : workers) worker->acceptor.close(ignored);
  }
  cv.notify_all();
}

Server::Server(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Server::~Server() {
  stop();
  wait();
}

void Server::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started || impl_->stop_requested) return;
  impl_->started = true;
  if (impl_->options.handle_signals) {
    Impl* impl = impl_.get();
    impl->signals.emplace(impl->workers.front()->ioc, SIGINT, SIGTERM);
    impl->signals->async_wait([impl](error_code ec, int signal) {
      if (ec) return;
      spdlog::info("pacer::beast: signal {} received, stopping", signal);
      impl->stop();
    });
  }
  for (auto& worker : impl_->workers) worker->accept();
  impl_->threads.reserve(impl_->workers.size());
  for (auto& worker : impl_->workers)
    impl_->threads.emplace_back([worker = worker.get()] { worker->run(); });
}

void Server::wait() {
  std::unique_lock lock(impl_->mutex);
  impl_->cv.wait(lock, [&] { return impl_->stop_requested; });
  if (impl_->joining) {
    impl_->cv.wait(lock, [&] { return impl_->joined; });
    return;
  }
  impl_->joining = true;
  std::vector<std::thread> threads = std::move(impl_->threads);
  lock.unlock();
  for (auto& thread : threads) thread.join();
  lock.lock();
  impl_->joined = true;
  impl_->cv.notify_all();
}

void Server::stop() { impl_->stop(); }

std::uint16_t Server::port() const { return impl_->port; }

unsigned Server::threads() const { return static_cast<unsigned>(impl_->workers.size()); }

std::size_t Server::max_connections() const { return impl_->max_connections; }

ServerStats Server::stats() const {
  ServerStats stats;
  for (const auto& worker : impl_->workers) {
    stats.open_connections += worker->open_count.load(std::memory_order_relaxed);
    stats.shed += worker->shed.load(std::memory_order_relaxed);
    stats.refused += worker->refused.load(std::memory_order_relaxed);
    stats.accept_failures += worker->accept_failures.load(std::memory_order_relaxed);
    stats.escaped_exceptions += worker->escaped_exceptions.load(std::memory_order_relaxed);
  }
  return stats;
}

boost::asio::io_context& Server::io_context(unsigned worker) {
  return impl_->workers.at(worker)->ioc;
}

// --- BeastRequestView -------------------------------------------------------------------------

BeastRequestView::BeastRequestView(const Request& request, const Connection& connection)
    : request_(request), connection_(connection), target_(to_std(request.target())) {
  // Absolute form ("http://host/path?q", sent to proxies): keep only the path and query.
  if (const auto scheme = target_.find("://");
      scheme != std::string_view::npos && target_.substr(0, 1) != "/") {
    const auto slash = target_.find_first_of("/?", scheme + 3);
    target_ = slash == std::string_view::npos ? std::string_view("/") : target_.substr(slash);
  }
  query_start_ = std::min(target_.find('?'), target_.size());
}

void BeastRequestView::set_attribute(std::string name, std::string value) {
  for (auto& [key, existing] : attributes_) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  attributes_.emplace_back(std::move(name), std::move(value));
}

std::string_view BeastRequestView::method() const { return to_std(request_.method_string()); }

std::string_view BeastRequestView::path() const { return target_.substr(0, query_start_); }

std::string_view BeastRequestView::query() const {
  return query_start_ < target_.size() ? target_.substr(query_start_ + 1) : std::string_view();
}

std::string_view BeastRequestView::peer_address() const { return connection_.peer_address; }

std::optional<std::string_view> BeastRequestView::header(std::string_view name) const {
  const auto it = request_.find(to_beast(name));
  if (it == request_.end()) return std::nullopt;
  return to_std(it->value());
}

std::string BeastRequestView::header_list(std::string_view name) const {
  std::string joined;
  const auto [first, last] = request_.equal_range(to_beast(name));
  for (auto it = first; it != last; ++it) {
    if (!joined.empty()) joined += ", ";
    joined += to_std(it->value());
  }
  return joined;
}

std::optional<std::string_view> BeastRequestView::attribute(std::string_view name) const {
  for (const auto& [key, value] : attributes_)
    if (key == name) return std::string_view(value);
  return std::nullopt;
}

}  // namespace pacer::beast
