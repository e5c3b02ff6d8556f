// The library's log lines for Python's `logging` (see log_queue.h).
#include "log_queue.h"

#include <string>
#include <utility>

namespace pacer::python {

void LogQueue::push(LogLevel level, std::string_view message) noexcept {
  try {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;  // nobody reads any more
      if (lines_.size() >= kCapacity) {
        ++dropped_;
        return;
      }
      lines_.push_back({level, std::string(message)});
    }
    ready_.notify_one();
  } catch (...) {  // out of memory: the line is lost
  }
}

std::vector<LogQueue::Line> LogQueue::wait(std::chrono::milliseconds timeout, bool& stopped) {
  std::vector<Line> out;
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [this] { return stopped_ || !lines_.empty() || dropped_ > 0; });
  if (dropped_ > 0) {
    out.push_back({LogLevel::kWarn, "pacer: " + std::to_string(dropped_) +
                                        " log lines dropped (Python's logging fell behind)"});
    dropped_ = 0;
  }
  out.insert(out.end(), std::make_move_iterator(lines_.begin()),
             std::make_move_iterator(lines_.end()));
  lines_.clear();
  stopped = stopped_ && out.empty();
  return out;
}

void LogQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  ready_.notify_all();
}

std::shared_ptr<LogQueue> install_log_queue() {
  auto queue = std::make_shared<LogQueue>();
  // The handler owns the queue: a line being written while another queue replaces this one
  // still has it (pacer/log.h).
  set_log_handler(
      [queue](LogLevel level, std::string_view message) { queue->push(level, message); },
      LogLevel::kDebug);
  return queue;
}

void remove_log_queue() { set_log_handler(nullptr); }

}  // namespace pacer::python
