// The library's log sink (pacer/log.h, core/logging.h).
#include "pacer/log.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

#include "core/logging.h"

namespace pacer {
namespace {

// What set_logger / set_log_handler chose; immutable once published.
struct Sink {
  std::shared_ptr<spdlog::logger> logger;
  LogHandler handler;
  LogLevel min_level = LogLevel::kInfo;
};

spdlog::level::level_enum spdlog_level(LogLevel level) {
  return static_cast<spdlog::level::level_enum>(static_cast<int>(level));
}

// The sink in force (null: spdlog's default logger), behind a mutex. Not
// std::atomic<std::shared_ptr>: GCC 12's guards the pointer with a lock bit ThreadSanitizer
// cannot see, so every swap while a thread logs was reported as a race. The library logs
// rarely; one short lock per line costs nothing. Never destroyed: a thread that logs while the
// program exits must not find it gone.
struct CurrentSink {
  std::mutex mutex;
  std::shared_ptr<const Sink> sink;
};

CurrentSink& current() {
  static auto* current = new CurrentSink();
  return *current;
}

std::shared_ptr<const Sink> load_sink() {
  CurrentSink& c = current();
  std::lock_guard lock(c.mutex);
  return c.sink;
}

void store_sink(std::shared_ptr<const Sink> sink) {
  CurrentSink& c = current();
  {
    std::lock_guard lock(c.mutex);
    c.sink.swap(sink);
  }
  // The previous sink (and what its handler captured) goes here, outside the lock, or later with
  // the last line that still holds it.
}

}  // namespace

static_assert(static_cast<int>(LogLevel::kTrace) == spdlog::level::trace &&
              static_cast<int>(LogLevel::kCritical) == spdlog::level::critical);

void set_logger(std::shared_ptr<spdlog::logger> logger) {
  std::shared_ptr<const Sink> sink;
  if (logger) sink = std::make_shared<const Sink>(Sink{std::move(logger), nullptr});
  store_sink(std::move(sink));
}

void set_log_handler(LogHandler handler, LogLevel min_level) {
  std::shared_ptr<const Sink> sink;
  if (handler) sink = std::make_shared<const Sink>(Sink{nullptr, std::move(handler), min_level});
  store_sink(std::move(sink));
}

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kCritical:
      return "critical";
  }
  return "unknown";
}

namespace internal {

bool log_enabled(LogLevel level) noexcept {
  try {
    const std::shared_ptr<const Sink> sink = load_sink();
    if (!sink) return spdlog::default_logger_raw()->should_log(spdlog_level(level));
    if (sink->logger) return sink->logger->should_log(spdlog_level(level));
    return level >= sink->min_level;
  } catch (...) {  // a lock that could not be taken: the line is not written
    return false;
  }
}

void log_line(LogLevel level, std::string_view message) noexcept {
  try {
    // Held until the line is written: a setter on another thread cannot free it meanwhile.
    const std::shared_ptr<const Sink> sink = load_sink();
    if (!sink) {
      spdlog::default_logger_raw()->log(spdlog_level(level), message);
    } else if (sink->logger) {
      sink->logger->log(spdlog_level(level), message);
    } else if (level >= sink->min_level) {
      sink->handler(level, message);
    }
  } catch (...) {  // a handler that threw: the line is dropped
  }
}

}  // namespace internal
}  // namespace pacer
