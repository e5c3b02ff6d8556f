// pacer/log.h — where the library's log lines go.
//
// The library logs rarely: Redis connections lost and regained, Sentinel failovers, handlers and
// hooks that throw, the HTTP server's connection limits. By default each line goes to spdlog's
// default logger, looked up for every line (so `spdlog::set_default_logger` keeps working). An
// embedding program can give the library a logger of its own, or a callback:
//
//   pacer::set_logger(spdlog::stderr_color_mt("pacer"));        // an spdlog logger
//   pacer::set_log_handler(                                      // or a callback
//       [](pacer::LogLevel level, std::string_view message) { my_log(level, message); },
//       pacer::LogLevel::kInfo);                                  // lines below it are not made
//   pacer::set_logger(nullptr);                                  // the default again
//
// The last call wins; `set_logger(nullptr)` and `set_log_handler(nullptr)` both restore the
// default. Applications (pacerd, pacer-demo) log through spdlog themselves.
//
// Threads (docs/DESIGN.md §10): the setters may be called at any time, from any thread, also
// while the library's I/O threads log. The sink in force is an immutable value behind a shared
// pointer swapped under a mutex: a line is written whole to one sink, and a line being written on
// another thread when a setter returns may still reach the previous sink, which stays alive (with
// whatever the handler captured) until that line is done. So a handler owns what it uses
// (capture a shared_ptr, not a raw pointer to something that may go first), is thread-safe
// (several threads may call it at once), returns quickly and never calls the library's blocking
// API (it runs on I/O threads, which that would stall). What it throws is dropped.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

namespace spdlog {
class logger;
}

namespace pacer {

// spdlog's levels, in its order.
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError, kCritical };

using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

// Every library line goes to `logger` (its own level decides what is written); nullptr: spdlog's
// default logger again. The logger must be thread-safe (an `_mt` logger).
void set_logger(std::shared_ptr<spdlog::logger> logger);

// Every library line at `min_level` or above goes to `handler`, on the thread that logs; lines
// below it are not even formatted. An empty handler: spdlog's default logger again.
void set_log_handler(LogHandler handler, LogLevel min_level = LogLevel::kInfo);

// "trace", "debug", "info", "warning", "error", "critical".
std::string_view to_string(LogLevel level) noexcept;

}  // namespace pacer
