// pacerd's log lines (docs/OPERATIONS.md, "pacerd", Logs): one event per line, as logfmt or
// JSON, every value escaped in one place, so no value (a config error spanning lines, a key a
// client sent, a header) can break a line or forge a key.
//
//   log::install(log::Format::kLogfmt, spdlog::level::info);   // once, in main
//   log::info("config_reloaded", {{"trigger", "SIGHUP"}, {"version", 3}});
//   // ts=2026-12-06T09:40:00.123456Z level=info event=config_reloaded trigger=SIGHUP version=3
//   // {"ts":"2026-12-06T09:40:00.123456Z","level":"info","event":"config_reloaded",...}
//
// Lines the library writes through spdlog's default logger (Redis connections, the HTTP server)
// get the same shape: event=library msg="...".
#pragma once

#include <spdlog/common.h>
#include <spdlog/sinks/sink.h>

#include <concepts>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pacer::pacerd::log {

enum class Format { kLogfmt, kJson };

// "logfmt" or "json"; nullopt otherwise.
std::optional<Format> parse_format(std::string_view text);

// One key and its value. Keys are pacerd's own words (lower_snake_case); values are anything.
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), number(true) {}
  template <std::integral T>
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)), number(true) {}

  std::string_view key;
  std::string value;
  bool number = false;  // written bare in JSON (a number or a boolean)
};

// `value` as a double-quoted string, JSON's escapes: \" \\ \n \r \t, \u00XX for every other
// control character (and DEL), U+FFFD for each byte that is not UTF-8. Both formats use it.
std::string quote(std::string_view value);

// `value` as one logfmt value: as it is when it is non-empty printable ASCII without space,
// '"', '=' or '\'; quoted (above) otherwise.
std::string logfmt_value(std::string_view value);

// The line's fields after ts and level: `event=<event> k=v ...`, or `"event":"<event>","k":"v"`
// (the JSON object's braces and ts/level are the formatter's).
std::string render(Format format, std::string_view event, std::initializer_list<Field> fields);

// Sets spdlog up for pacerd: `sink` (stdout when null) gets every line, pacerd's and the
// library's, in `format`, from `level` on. Call before any thread logs.
void install(Format format, spdlog::level::level_enum level,
             std::shared_ptr<spdlog::sinks::sink> sink = nullptr);

// One event. Before install(), through spdlog's default logger as logfmt.
void write(spdlog::level::level_enum level, std::string_view event,
           std::initializer_list<Field> fields);
inline void debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(spdlog::level::debug, event, fields);
}
inline void info(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(spdlog::level::info, event, fields);
}
inline void warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(spdlog::level::warn, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(spdlog::level::err, event, fields);
}

}  // namespace pacer::pacerd::log
