#include "multiplexer.h"

#include <algorithm>
#include <utility>

#include "core/handler_guard.h"
#include "pacer/error.h"
#include "resp.h"

namespace pacer::redis::internal {

namespace {
// A write buffer that once held a huge burst is given back rather than kept forever.
constexpr std::size_t kMaxKeptBuffer = 4 << 20;
}  // namespace

Multiplexer::~Multiplexer() { fail_all(Errc::kStoreUnavailable); }

void Multiplexer::call(ReplyHandler& handler, std::error_code ec, Reply&& reply) noexcept {
  // Everything after this call (the next replies, the write of what handlers queued, the read
  // loop) must happen whatever the handler does: an exception escaping into the connection's
  // read handler would leave the connection half-way through a batch, never writing again.
  pacer::internal::call_guarded(
      handler,
      [this](std::string_view what) {
        if (options_.on_handler_error) options_.on_handler_error(what);
      },
      ec, std::move(reply));
}

std::error_code Multiplexer::admit(ReplyHandler&& handler, Clock::time_point deadline) {
  if (queue_.size() >= options_.max_in_flight) return Errc::kOverloaded;
  if (queue_.empty() || deadline >= latest_deadline_) {
    latest_deadline_ = deadline;
  } else {
    early_.push_back({popped_ + queue_.size(), deadline});
  }
  queue_.emplace_back(std::move(handler), deadline);
  return {};
}

void Multiplexer::pop_front() {
  queue_.pop_front();
  ++popped_;
  if (!early_.empty() && queue_.empty()) early_.clear();
}

std::error_code Multiplexer::add(std::span<const std::string_view> args, ReplyHandler&& handler,
                                 Clock::time_point deadline) {
  if (auto ec = admit(std::move(handler), deadline)) return ec;
  append_command(pending_, args);
  return {};
}

std::error_code Multiplexer::add_encoded(std::string_view command, ReplyHandler&& handler,
                                         Clock::time_point deadline) {
  if (auto ec = admit(std::move(handler), deadline)) return ec;
  pending_.append(command);
  return {};
}

std::string_view Multiplexer::begin_write() {
  written_.swap(pending_);
  writing_ = true;
  return written_;
}

void Multiplexer::end_write() {
  writing_ = false;
  if (written_.capacity() > kMaxKeptBuffer) {
    std::string().swap(written_);
  } else {
    written_.clear();
  }
}

std::error_code Multiplexer::feed(std::string_view data, Clock::time_point now) {
  last_input_ = std::max(last_input_, now);
  if (!reader_.feed(data)) {
    error_text_ = reader_.error();
    return Errc::kProtocol;
  }
  const std::uint64_t epoch = epoch_;
  for (;;) {
    switch (reader_.next(reply_)) {
      case ReplyReader::Status::kNeedMore:
        return {};
      case ReplyReader::Status::kError:
        error_text_ = reader_.error();
        return Errc::kProtocol;
      case ReplyReader::Status::kReply:
        break;
    }
    if (queue_.empty()) {
      error_text_ = "a reply without a request";
      return Errc::kProtocol;
    }
    // Take the request out before calling it: the handler may add requests or fail them all.
    ReplyHandler handler = std::move(queue_.front().handler);
    pop_front();
    ++replies_;
    if (expired_ > 0) {
      --expired_;  // a late reply to a request that already had its kTimeout: dropped
      continue;
    }
    if (handler) {
      call(handler, std::error_code(), std::move(reply_));
      if (epoch != epoch_) return {};
    }
  }
}

std::optional<Multiplexer::Clock::time_point> Multiplexer::next_timer() const {
  if (queue_.empty()) return std::nullopt;
  Clock::time_point next = stall_point();
  if (expired_ < queue_.size()) next = std::min(next, queue_[expired_].deadline);
  for (const Early& early : early_) next = std::min(next, early.deadline);
  return next;
}

bool Multiplexer::expire_early(Clock::time_point now) {
  const std::uint64_t epoch = epoch_;
  for (std::size_t i = 0; i < early_.size();) {
    const Early early = early_[i];
    // Answered already (its reply came, or the walk along the queue got to it first).
    if (early.sequence < popped_ + expired_) {
      early_[i] = early_.back();
      early_.pop_back();
      continue;
    }
    if (early.deadline > now) {
      ++i;
      continue;
    }
    early_[i] = early_.back();
    early_.pop_back();
    // It stays in the queue without a handler: its late reply is dropped when it comes.
    ReplyHandler handler =
        std::move(queue_[static_cast<std::size_t>(early.sequence - popped_)].handler);
    if (handler) {
      ++timeouts_;
      call(handler, Errc::kTimeout, Reply{});
      if (epoch != epoch_) return false;
    }
    i = 0;  // a handler may have added requests (and early ones)
  }
  return true;
}

bool Multiplexer::expire(Clock::time_point now) {
  const std::uint64_t epoch = epoch_;
  if (!early_.empty() && !expire_early(now)) return false;
  while (expired_ < queue_.size() && queue_[expired_].deadline <= now) {
    ReplyHandler handler = std::move(queue_[expired_].handler);
    ++expired_;
    if (handler) {
      ++timeouts_;
      call(handler, Errc::kTimeout, Reply{});
      if (epoch != epoch_) return false;
    }
  }
  return !queue_.empty() && stall_point() <= now;
}

void Multiplexer::fail_all(std::error_code ec) {
  ++epoch_;
  reader_.reset();
  pending_.clear();
  written_.clear();
  writing_ = false;
  expired_ = 0;
  early_.clear();
  // Only the requests there now: any a handler adds below are for the next connection (expired
  // requests have no handler left, they already had their answer).
  for (std::size_t n = queue_.size(); n > 0; --n) {
    ReplyHandler handler = std::move(queue_.front().handler);
    pop_front();
    if (handler) call(handler, ec, Reply{});
  }
}

}  // namespace pacer::redis::internal
