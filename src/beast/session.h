// One HTTP connection: reads requests, hands them to the handler, writes the answers.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net.h"
#include "worker.h"

namespace pacer::beast::internal {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Worker& worker, Socket&& socket);

  void start() { read_request(); }
  void set_no_delay() {
    error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
  }

  // Any thread: the handler's answer for request `generation`, and raw header lines to add.
  static void deliver(std::shared_ptr<Session> self, std::uint64_t generation, Response&& response,
                      std::string_view fields);

  // Any thread: the Send for request `generation` was destroyed without being called.
  static void dropped(std::shared_ptr<Session> self, std::uint64_t generation) noexcept;

  // On stop(): a connection waiting for the next request, with no byte of it received, is idle.
  void close_if_idle();

  // For shedding at the connection cap (Worker::find_victim): waiting for the request's header or
  // body to arrive.
  bool reading_request() const {
    return state_ == State::kReadingHeader || state_ == State::kReadingBody;
  }
  // Served before and now waiting for the next request, with no byte of it received.
  bool idle_keep_alive() const;
  // Answered and closed for sending; only reading what the client still sends.
  bool draining() const { return state_ == State::kClosing; }
  const std::string& peer() const { return client_.peer_address; }

  void finish();

  Session* prev = nullptr;
  Session* next = nullptr;
  bool counted_per_client = false;  // holds one of its peer's max_connections_per_client

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
      if (session_) Session::deliver(std::move(session_), generation_, std::move(response), {});
    }
    // With `fields` ("Name: value\r\n" lines) written after the response's own header fields:
    // an adapter's headers without a Beast field (an allocation) each (see limit.cc).
    void operator()(Response&& response, std::string_view fields) {
      if (session_) Session::deliver(std::move(session_), generation_, std::move(response), fields);
    }

   private:
    std::shared_ptr<Session> session_;
    std::uint64_t generation_;
  };

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
  void read_request();
  void on_header(error_code ec);
  void read_body();
  // One piece of the body, under the deadline of "Slow bodies" (pacer/beast/server.h).
  void read_body_some();
  std::chrono::steady_clock::time_point body_deadline() const;
  void on_read_error(error_code ec);
  void dispatch();
  void on_dropped(std::uint64_t generation);
  void on_response(std::uint64_t generation, Response&& response, std::string_view fields);
  void answer_internal_error();

  // The request could not be read completely: answer and close, draining what the client sends.
  void answer_error(bhttp::status status, std::string_view body);

  void write(Response&& response, bool force_close, bool drain);
  // One contiguous buffer per response: Beast's serializer hands the kernel a buffer per
  // header name, separator and value, which costs more than the copy (measured: about
  // 0.1 us per extra header under wrk). The body is a string with Content-Length set above.
  void serialize_response();
  void on_write(error_code ec);
  void close(bool drain);
  void drain_some();

  Worker& worker_;
  Stream stream_;
  bb::flat_buffer buffer_;  // per connection, reused for every request
  std::optional<Parser> parser_;
  Response response_;   // being written
  std::string out_;     // response_ serialised; its capacity is reused
  std::string fields_;  // raw header lines for response_ (Responder); capacity reused
  ClientEndpoint client_;
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
  std::chrono::steady_clock::time_point body_started_;
  std::uint64_t body_received_ = 0;
  std::size_t drained_ = 0;
};

static_assert(sizeof(std::shared_ptr<Session>) + sizeof(std::uint64_t) <= Send::kInlineSize,
              "Send keeps its Responder inline");

}  // namespace pacer::beast::internal
