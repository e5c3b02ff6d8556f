// The library's own log calls: every line it writes goes through these, to the sink chosen with
// pacer/log.h (spdlog's default logger unless the embedding program gave another).
//
//   internal::log_warn("redis {}: connection refused", name);
//
// A line below the sink's level is not formatted. Never throws: a line that cannot be formatted
// or written is dropped (logging is never the reason a request fails).
#pragma once

#include <fmt/format.h>

#include <string_view>
#include <utility>

#include "pacer/log.h"

namespace pacer::internal {

// Whether the sink in force writes lines of `level`.
bool log_enabled(LogLevel level) noexcept;

// Writes one finished line to the sink in force.
void log_line(LogLevel level, std::string_view message) noexcept;

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!log_enabled(level)) return;
  try {
    log_line(level, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {  // out of memory, or a formatter that threw: the line is dropped
  }
}

template <class... Args>
void log_debug(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log(LogLevel::kDebug, format, std::forward<Args>(args)...);
}
template <class... Args>
void log_info(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log(LogLevel::kInfo, format, std::forward<Args>(args)...);
}
template <class... Args>
void log_warn(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log(LogLevel::kWarn, format, std::forward<Args>(args)...);
}
template <class... Args>
void log_error(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log(LogLevel::kError, format, std::forward<Args>(args)...);
}

}  // namespace pacer::internal
