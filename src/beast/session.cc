#include "session.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <charconv>
#include <exception>
#include <limits>

#include "core/logging.h"
#include "core/text.h"
#include "pacer/http/request_view.h"

namespace pacer::beast::internal {
namespace {

constexpr std::string_view kBadRequest = R"({"detail":"Bad request"})";
constexpr std::string_view kCodingNotImplemented =
    R"({"detail":"Transfer coding not implemented"})";
constexpr std::string_view kHeaderTooLarge = R"({"detail":"Request header fields too large"})";
constexpr std::string_view kBodyTooLarge = R"({"detail":"Request body too large"})";
constexpr std::string_view kInternalError = R"({"detail":"Internal Server Error"})";
constexpr std::string_view kHostRequired =
    R"({"detail":"Bad request: an HTTP/1.1 request needs exactly one Host header"})";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// After an error answer the client may still be sending (a big body): reading it for a while
// before closing keeps the kernel from answering with RST, which would destroy our response in
// the client's receive buffer before it reads it.
constexpr std::chrono::seconds kDrainTime{2};
constexpr std::size_t kDrainLimit = std::size_t{16} * 1024 * 1024;

bool is_http_error(const error_code& ec) {
  static const auto& category = make_error_code(bhttp::error::end_of_stream).category();
  return ec.category() == category;
}

// What a Transfer-Encoding header means for a request (RFC 9112 §6.1, §6.3).
enum class Framing { kOk, kBad, kNotImplemented };

// Only "chunked", exactly once and last, is a framing this server understands; anything else
// could make a proxy in front of it and this server disagree on where the body ends (request
// smuggling). Several Transfer-Encoding lines are one comma-separated list.
Framing check_transfer_encoding(const Parser& parser) {
  const auto& header = parser.get();
  const auto [first, last] = header.equal_range(bhttp::field::transfer_encoding);
  if (first == last) return Framing::kOk;
  // HTTP/1.0 has no transfer codings, and a length next to a coding is ambiguous by design.
  if (header.version() < 11) return Framing::kBad;
  if (header.find(bhttp::field::content_length) != header.end()) return Framing::kBad;
  std::size_t codings = 0;
  bool chunked_last = false;
  bool other = false;
  for (auto it = first; it != last; ++it) {
    std::string_view list = to_std(it->value());
    while (!list.empty()) {
      const auto comma = list.find(',');
      const std::string_view element = pacer::internal::trim(list.substr(0, comma));
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

}  // namespace

Session::Session(Worker& worker, Socket&& socket) : worker_(worker), stream_(std::move(socket)) {
  error_code ec;
  const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
  if (!ec) {
    asio::ip::address address = peer.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped())
      address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    client_.peer_address = address.to_string();
    // Parsed here once, not by the client-IP identity on every request of the connection.
    client_.peer_ip = pacer::http::IpAddress::parse(client_.peer_address);
    client_.peer_port = peer.port();
  }
  client_.worker = worker.index;
}

void Session::deliver(std::shared_ptr<Session> self, std::uint64_t generation, Response&& response,
                      std::string_view fields) {
  if (self->worker_.ioc.get_executor().running_in_this_thread()) {
    self->on_response(generation, std::move(response), fields);
    return;
  }
  Session* session = self.get();
  asio::post(session->worker_.ioc,
             [self = std::move(self), generation, response = std::move(response),
              fields = std::string(fields)]() mutable {
               self->on_response(generation, std::move(response), fields);
             });
}

void Session::dropped(std::shared_ptr<Session> self, std::uint64_t generation) noexcept {
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

void Session::close_if_idle() {
  if (state_ == State::kReadingHeader && buffer_.size() == 0) finish();
}

bool Session::idle_keep_alive() const {
  return state_ == State::kReadingHeader && buffer_.size() == 0 && generation_ > 0;
}

void Session::finish() {
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  stream_.close();
  worker_.unlink(this);
}

void Session::read_request() {
  state_ = State::kReadingHeader;
  worker_.requeue(this);
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(options().header_limit, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(static_cast<std::uint64_t>(options().body_limit));
  stream_.expires_after(options().idle_timeout);
  bhttp::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
}

void Session::on_header(error_code ec) {
  if (state_ == State::kDone) return;
  if (ec) return on_read_error(ec);
  // Before the body is read or anything dispatched: a body framed in a way we might not share
  // with a proxy must not be read as the next request.
  switch (check_transfer_encoding(*parser_)) {
    case Framing::kOk:
      break;
    case Framing::kBad:
      return answer_error(bhttp::status::bad_request, kBadRequest);
    case Framing::kNotImplemented:
      return answer_error(bhttp::status::not_implemented, kCodingNotImplemented);
  }
  // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request with no Host or several;
  // a proxy and this server could otherwise disagree on which site a request is for.
  if (const auto& header = parser_->get();
      header.version() >= 11 && header.count(bhttp::field::host) != 1) {
    return answer_error(bhttp::status::bad_request, kHostRequired);
  }
  if (parser_->is_done()) return dispatch();
  state_ = State::kReadingBody;
  const auto& fields = parser_->get();
  if (auto it = fields.find(bhttp::field::expect);
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

void Session::read_body() {
  if (state_ == State::kDone) return;
  body_started_ = std::chrono::steady_clock::now();
  body_received_ = 0;
  read_body_some();
}

std::chrono::steady_clock::time_point Session::body_deadline() const {
  const ServerOptions& o = options();
  std::chrono::seconds allowed = o.body_timeout;
  if (o.min_body_rate != 0) {
    const std::uint64_t earned = body_received_ / o.min_body_rate;
    allowed = earned >= static_cast<std::uint64_t>(o.body_timeout_max.count())
                  ? o.body_timeout_max
                  : std::min(o.body_timeout_max,
                             allowed + std::chrono::seconds(static_cast<std::int64_t>(earned)));
  }
  return body_started_ + allowed;
}

// Piece by piece rather than one async_read: each piece moves the deadline (a trickle is cut, a
// fast upload is not), where one operation would have one fixed expiry.
void Session::read_body_some() {
  stream_.expires_at(body_deadline());
  bhttp::async_read_some(stream_, buffer_, *parser_,
                         [self = shared_from_this()](error_code ec, std::size_t n) {
                           if (self->state_ == State::kDone) return;
                           self->body_received_ += n;
                           // The stream closed the socket at the deadline: nothing can be
                           // answered any more.
                           if (ec == bb::error::timeout)
                             self->worker_.body_timeouts.fetch_add(1, std::memory_order_relaxed);
                           if (ec) return self->on_read_error(ec);
                           if (self->parser_->is_done()) return self->dispatch();
                           self->read_body_some();
                         });
}

void Session::on_read_error(error_code ec) {
  if (ec == bhttp::error::header_limit)
    return answer_error(bhttp::status::request_header_fields_too_large, kHeaderTooLarge);
  if (ec == bhttp::error::body_limit)
    return answer_error(bhttp::status::payload_too_large, kBodyTooLarge);
  // end_of_stream / partial_message: the client went away; nobody is left to answer.
  if (is_http_error(ec) && ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
    return answer_error(bhttp::status::bad_request, kBadRequest);
  finish();  // closed, reset, timed out, or cancelled by stop()
}

void Session::dispatch() {
  Request request = parser_->release();
  keep_alive_ = request.keep_alive();
  version_ = request.version();
  head_ = request.method() == bhttp::verb::head;
  state_ = State::kHandling;
  const std::uint64_t generation = ++generation_;
  in_handler_ = true;
  dropped_in_handler_ = false;
  bool threw = false;
  try {
    worker_.server.handler(std::move(request), client_,
                           Send(Responder(shared_from_this(), generation)));
  } catch (const std::exception& e) {
    threw = true;
    pacer::internal::log_error("pacer::beast: handler threw for a request from {}: {}",
                               client_.peer_address, e.what());
  } catch (...) {
    threw = true;
    pacer::internal::log_error("pacer::beast: handler threw a non-exception for a request from {}",
                               client_.peer_address);
  }
  in_handler_ = false;
  if (state_ != State::kHandling || generation != generation_) return;  // answered already
  if (dropped_in_handler_ && !threw) {
    pacer::internal::log_error(
        "pacer::beast: handler dropped Send without calling it (request from {})",
        client_.peer_address);
  }
  if (threw || dropped_in_handler_) answer_internal_error();
}

void Session::on_dropped(std::uint64_t generation) {
  if (state_ != State::kHandling || generation != generation_) return;
  if (in_handler_) {
    // Decided in dispatch(), which knows whether the handler threw.
    dropped_in_handler_ = true;
    return;
  }
  pacer::internal::log_error("pacer::beast: Send destroyed without being called (request from {})",
                             client_.peer_address);
  answer_internal_error();
}

void Session::on_response(std::uint64_t generation, Response&& response, std::string_view fields) {
  // A stale answer (after a 500 for a throwing handler) or one for a closed connection.
  if (state_ != State::kHandling || generation != generation_) return;
  fields_.assign(fields);
  write(std::move(response), /*force_close=*/false, /*drain=*/false);
}

void Session::answer_internal_error() {
  fields_.clear();
  Response response{bhttp::status::internal_server_error, version_};
  response.set(bhttp::field::content_type, "application/json");
  response.body() = kInternalError;
  write(std::move(response), /*force_close=*/false, /*drain=*/false);
}

void Session::answer_error(bhttp::status status, std::string_view body) {
  fields_.clear();
  Response response{status, 11};
  response.set(bhttp::field::content_type, "application/json");
  response.body() = body;
  head_ = false;
  write(std::move(response), /*force_close=*/true, /*drain=*/true);
}

void Session::write(Response&& response, bool force_close, bool drain) {
  response_ = std::move(response);
  const bool keep_alive = keep_alive_ && !force_close && !worker_.stopping;
  response_.version(version_);
  response_.keep_alive(keep_alive);
  if (response_.find(bhttp::field::server) == response_.end())
    response_.set(bhttp::field::server, options().server_header);
  const auto status = response_.result();
  if (bhttp::to_status_class(status) == bhttp::status_class::informational ||
      status == bhttp::status::no_content || status == bhttp::status::not_modified) {
    // No body allowed; prepare_payload() would throw on one.
    response_.body().clear();
    response_.erase(bhttp::field::content_length);
    response_.erase(bhttp::field::transfer_encoding);
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

void Session::serialize_response() {
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
  out_ += fields_;
  out_ += "\r\n";
  out_ += response_.body();
}

void Session::on_write(error_code ec) {
  if (state_ == State::kDone) return;
  response_ = Response{};  // don't keep a large body around while idle
  if (out_.capacity() > std::size_t{64} * 1024) std::string().swap(out_);
  if (ec) return finish();
  if (close_after_write_ || worker_.stopping) return close(drain_after_write_);
  read_request();
}

void Session::close(bool drain) {
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

void Session::drain_some() {
  stream_.expires_at(drain_deadline_);
  stream_.async_read_some(buffer_.prepare(std::size_t{16} * 1024),
                          [self = shared_from_this()](error_code ec, std::size_t n) {
                            if (self->state_ == State::kDone) return;
                            self->drained_ += n;
                            if (ec || self->drained_ > kDrainLimit) return self->finish();
                            self->drain_some();
                          });
}

}  // namespace pacer::beast::internal
