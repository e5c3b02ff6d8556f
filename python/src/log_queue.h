// The library's log lines for Python's `logging` (pacer._pacer): how a line written on one of
// Pacer's I/O threads reaches `logging.getLogger("pacer")` without that thread touching Python.
//
// The library's log handler (pacer/log.h) only queues the line here, under a plain mutex, and
// never waits for anything else: not the GIL, not the Python thread. A Python thread
// (python/pacer/_log.py) waits for lines without the GIL (wait()) and hands them to `logging`
// holding it. So no I/O thread ever waits for the GIL: a Python thread holding it while it waits
// on the engine (a blocking check, shutdown()) cannot deadlock with a line being logged, and
// neither can interpreter exit (docs/DESIGN.md §10). The queue is bounded: when Python falls
// behind, lines are counted and dropped, and the count is reported with the next line.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/log.h"

namespace pacer::python {

class LogQueue {
 public:
  struct Line {
    LogLevel level;
    std::string message;
  };
  static constexpr std::size_t kCapacity = 1024;

  // Any thread; never blocks on Python. Drops the line when the queue is full (counted) or
  // stopped.
  void push(LogLevel level, std::string_view message) noexcept;

  // Waits up to `timeout` for lines and takes them all; `stopped` is set once stop() was called
  // and nothing is left. A line saying how many were dropped comes first when some were.
  std::vector<Line> wait(std::chrono::milliseconds timeout, bool& stopped);

  // Wakes the waiter; later lines are dropped.
  void stop();

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Line> lines_;
  std::uint64_t dropped_ = 0;
  bool stopped_ = false;
};

// The process's queue, installed as the library's log handler (pacer::set_log_handler) by
// install_log_queue() and taken away by remove_log_queue() (back to spdlog's default logger).
std::shared_ptr<LogQueue> install_log_queue();
void remove_log_queue();

}  // namespace pacer::python
