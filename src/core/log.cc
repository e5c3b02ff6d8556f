// The library's log sink (pacer/log.h, core/logging.h).
#include "pacer/log.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
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

// Null: spdlog's default logger. Never destroyed: a thread that logs while the program exits
// must not find it gone.
std::atomic<std::shared_ptr<const Sink>>& current_sink() {
  static auto* sink = new std::atomic<std::shared_ptr<const Sink>>();
  return *sink;
}

}  // namespace

static_assert(static_cast<int>(LogLevel::kTrace) == spdlog::level::trace &&
              static_cast<int>(LogLevel::kCritical) == spdlog::level::critical);

void set_logger(std::shared_ptr<spdlog::logger> logger) {
  std::shared_ptr<const Sink> sink;
  if (logger) sink = std::make_shared<const Sink>(Sink{std::move(logger), nullptr});
  current_sink().store(std::move(sink));
}

void set_log_handler(LogHandler handler, LogLevel min_level) {
  std::shared_ptr<const Sink> sink;
  if (handler) sink = std::make_shared<const Sink>(Sink{nullptr, std::move(handler), min_level});
  current_sink().store(std::move(sink));
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
  const std::shared_ptr<const Sink> sink = current_sink().load();
  if (!sink) return spdlog::default_logger_raw()->should_log(spdlog_level(level));
  if (sink->logger) return sink->logger->should_log(spdlog_level(level));
  return level >= sink->min_level;
}

void log_line(LogLevel level, std::string_view message) noexcept {
  try {
    // Held until the line is written: a setter on another thread cannot free it meanwhile.
    const std::shared_ptr<const Sink> sink = current_sink().load();
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
