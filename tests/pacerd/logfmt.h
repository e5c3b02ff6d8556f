// A strict reader of the log lines pacerd writes (docs/OPERATIONS.md, "pacerd", Logs), for the
// tests: a line is `key=value` pairs separated by one space, keys lower_snake_case, values bare
// (printable ASCII without space, '"', '=' or '\') or double-quoted with JSON's escapes.
//
//   auto fields = parse_logfmt(line);   // nullopt: not such a line
//   EXPECT_EQ(value_of(*fields, "event"), "config_reloaded");
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pacer::testing {

using LogFields = std::vector<std::pair<std::string, std::string>>;

inline std::optional<LogFields> parse_logfmt(std::string_view line) {
  LogFields out;
  std::size_t at = 0;
  while (at < line.size()) {
    if (at > 0) {
      if (line[at] != ' ') return std::nullopt;
      ++at;
    }
    const std::size_t key_start = at;
    while (at < line.size() && ((line[at] >= 'a' && line[at] <= 'z') ||
                                (line[at] >= '0' && line[at] <= '9') || line[at] == '_'))
      ++at;
    if (at == key_start || at >= line.size() || line[at] != '=') return std::nullopt;
    std::string key(line.substr(key_start, at - key_start));
    ++at;
    if (at < line.size() && line[at] == '"') {
      std::size_t end = at + 1;
      while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
      if (end >= line.size()) return std::nullopt;
      const auto value = nlohmann::json::parse(line.substr(at, end + 1 - at), nullptr, false);
      if (!value.is_string()) return std::nullopt;
      out.emplace_back(std::move(key), value.get<std::string>());
      at = end + 1;
    } else {
      const std::size_t start = at;
      while (at < line.size() && line[at] > 0x20 && line[at] < 0x7f && line[at] != '"' &&
             line[at] != '=' && line[at] != '\\')
        ++at;
      if (at == start) return std::nullopt;
      out.emplace_back(std::move(key), std::string(line.substr(start, at - start)));
    }
  }
  if (out.empty()) return std::nullopt;
  return out;
}

// The value of `key` ("" when absent).
inline std::string value_of(const LogFields& fields, std::string_view key) {
  for (const auto& [k, v] : fields)
    if (k == key) return v;
  return "";
}

// The lines of `text` (without their '\n').
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace pacer::testing
