// The protocol half of a Redis connection, without I/O: commands in, bytes out; bytes in,
// replies to the right handlers. The Asio shell (connection.h) moves the bytes.
//
// - Automatic pipelining: commands added while a write is in flight are appended to one buffer
//   and go out together in the next write (begin_write/end_write).
// - Replies are matched to requests first-in first-out.
// - Every request has a deadline. At its deadline the handler gets kTimeout, but the request
//   stays in the queue (without a handler) until its late reply arrives and is dropped, so later
//   replies still meet their own requests. When the oldest request has waited `stall_after`
//   past its deadline and no byte has come from the server for `stall_after` either, expire()
//   reports the connection as stalled: the owner should close it. A connection still receiving
//   a long pipeline of replies is busy, not stalled (replies arriving means the server is alive).
//   Deadlines usually grow along the queue; a request with an earlier one than a request before
//   it (a redirected command keeps its caller's deadline) is still failed on time.
// - Bounded: at most `max_in_flight` requests (queued, written, or timed out and unanswered).
// - fail_all() ends a connection: every request fails exactly once, buffers and parser reset.
//
// Handlers may add requests, or call fail_all(), while the multiplexer is calling them.
// Handlers must not throw; one that does is caught here and reported to
// Options::on_handler_error, and the stream goes on as if it had returned.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "pacer/redis/reply.h"
#include "reply_reader.h"
#include "ring_queue.h"

namespace pacer::redis::internal {

class Multiplexer {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::size_t max_in_flight = 16384;
    Clock::duration stall_after = std::chrono::milliseconds(100);
    // Told what a throwing handler threw (logging, counting). Must not throw itself.
    std::function<void(std::string_view what)> on_handler_error;
  };

  explicit Multiplexer(Options options) : options_(std::move(options)) {}
  // Fails what is left with kStoreUnavailable: every handler runs exactly once.
  ~Multiplexer();
  Multiplexer(const Multiplexer&) = delete;
  Multiplexer& operator=(const Multiplexer&) = delete;

  // Queues a command (encoded into the write buffer at once). A null handler drops the reply.
  // On error (kOverloaded when full) `handler` is left untouched for the caller to fail.
  std::error_code add(std::span<const std::string_view> args, ReplyHandler&& handler,
                      Clock::time_point deadline);
  // The same with a command already in RESP form.
  std::error_code add_encoded(std::string_view command, ReplyHandler&& handler,
                              Clock::time_point deadline);

  std::size_t in_flight() const { return queue_.size(); }
  // Replies received (late ones included: the server is alive), and requests failed with
  // kTimeout, since construction.
  std::uint64_t replies() const { return replies_; }
  std::uint64_t timeouts() const { return timeouts_; }
  std::size_t room() const {
    return queue_.size() >= options_.max_in_flight ? 0 : options_.max_in_flight - queue_.size();
  }

  // True when bytes are waiting and no write is in progress.
  bool wants_write() const { return !writing_ && !pending_.empty(); }
  // Takes everything queued so far as one write; the view stays valid until end_write().
  std::string_view begin_write();
  void end_write();

  // Parses bytes from the server, which arrived at `now`, and completes requests in order.
  // kProtocol when the stream is broken (malformed RESP, a reply nobody asked for); then the
  // connection must be closed.
  std::error_code feed(std::string_view data, Clock::time_point now = {});
  std::string_view error_text() const { return error_text_; }

  // When expire() should be called next: the earliest deadline of a request still waiting, or
  // the moment the oldest request counts as stalled.
  std::optional<Clock::time_point> next_timer() const;
  // Fails requests past their deadline with kTimeout. Returns true when the oldest request has
  // waited `stall_after` past its deadline and nothing came from the server for `stall_after`:
  // the server is not answering.
  bool expire(Clock::time_point now);

  // Fails every request with `ec` (in order) and resets for a new connection.
  void fail_all(std::error_code ec);

 private:
  struct Request {
    ReplyHandler handler;
    Clock::time_point deadline;
  };
  // A request whose deadline is earlier than that of a request queued before it: the walk along
  // the queue would reach it late, so it is expired from this list. `sequence` counts requests
  // ever added; its position in queue_ is sequence - popped_.
  struct Early {
    std::uint64_t sequence;
    Clock::time_point deadline;
  };

  std::error_code admit(ReplyHandler&& handler, Clock::time_point deadline);
  void pop_front();
  // Fails the early requests past their deadline; false when a handler ended the connection.
  bool expire_early(Clock::time_point now);
  // Calls `handler`; an exception it throws stops here.
  void call(ReplyHandler& handler, std::error_code ec, Reply&& reply) noexcept;
  // When the oldest request counts as stalled (the queue is not empty).
  Clock::time_point stall_point() const {
    return std::max(queue_.front().deadline, last_input_) + options_.stall_after;
  }

  Options options_;
  RingQueue<Request> queue_;
  // queue_[0, expired_) have had their kTimeout and wait only for their late replies. Deadlines
  // grow along the queue (same timeout, later start), so expired requests form a prefix.
  std::size_t expired_ = 0;
  std::uint64_t popped_ = 0;             // requests ever taken off the front
  Clock::time_point latest_deadline_{};  // the latest deadline queued since the queue was empty
  std::vector<Early> early_;             // usually empty
  Clock::time_point last_input_{};       // when bytes last came from the server
  std::uint64_t replies_ = 0;
  std::uint64_t timeouts_ = 0;
  std::string pending_;  // commands not yet handed to a write
  std::string written_;  // the write in flight; swapped with pending_, capacities kept
  bool writing_ = false;
  ReplyReader reader_;
  Reply reply_;
  std::string error_text_;
  // Bumped by fail_all(): a loop that called a handler stops if the handler ended the connection.
  std::uint64_t epoch_ = 0;
};

}  // namespace pacer::redis::internal
