// The TOML reading helpers of config_reader.h.
#include "config_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <stdexcept>

#include "pacer/text.h"

namespace pacer::pacerd::reader {

void Problems::add(const toml::source_region& where, const std::string& key,
                   const toml::node* value, const std::string& reason) {
  std::string line =
      fmt::format("{}:{}:{}: {}", printable(file_), where.begin.line, where.begin.column, key);
  if (value != nullptr) line += " = " + show(*value);
  lines_.push_back({where.begin.line, where.begin.column, line + ": " + reason});
}

std::string Problems::text() {
  std::stable_sort(lines_.begin(), lines_.end(), [](const Line& a, const Line& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  std::string out;
  for (const auto& line : lines_) out.append(out.empty() ? "" : "\n").append(line.text);
  return out;
}

std::string Problems::show(const toml::node& node) {
  if (const auto* s = node.as_string()) return "\"" + printable(s->get()) + "\"";
  if (node.is_table()) return "{...}";
  if (node.is_array()) return "[...]";
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) return fmt::format("{}", f->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  return "(a date or time)";
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

Section::~Section() {
  for (auto&& [key, node] : table_) {
    if (known_.count(std::string(key.str())) == 0)
      problems_.add(key.source(), name(key.str()), &node, "unknown key");
  }
}

std::optional<std::string> Section::string(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (const auto* s = n->as_string()) return s->get();
  problems_.add(*n, name(key), std::string("expected a string, got ") + type_name(*n));
  return std::nullopt;
}

std::optional<std::int64_t> Section::integer(std::string_view key, std::int64_t min,
                                             std::int64_t max) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* i = n->as_integer();
  if (i == nullptr || i->get() < min || i->get() > max) {
    problems_.add(*n, name(key), fmt::format("expected a whole number from {} to {}", min, max));
    return std::nullopt;
  }
  return i->get();
}

std::optional<bool> Section::boolean(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  if (const auto* b = n->as_boolean()) return b->get();
  problems_.add(*n, name(key), std::string("expected true or false, got ") + type_name(*n));
  return std::nullopt;
}

std::optional<Nanos> Section::duration(std::string_view key, Nanos min, Nanos max) {
  const toml::node* n = node(key);
  if (n == nullptr) return std::nullopt;
  const auto* s = n->as_string();
  if (s == nullptr) {
    problems_.add(*n, name(key), "expected a duration string such as \"50ms\" or \"1s\"");
    return std::nullopt;
  }
  try {
    const Nanos d = parse_duration(s->get());
    if (d < min || d > max) {
      problems_.add(*n, name(key),
                    "must be from " + format_duration(min) + " to " + format_duration(max));
      return std::nullopt;
    }
    return d;
  } catch (const std::invalid_argument& e) {
    problems_.add(*n, name(key), e.what());
    return std::nullopt;
  }
}

const toml::table* Section::table(std::string_view key) {
  const toml::node* n = node(key);
  if (n == nullptr) return nullptr;
  if (const auto* t = n->as_table()) return t;
  problems_.add(*n, name(key), std::string("expected a table, got ") + type_name(*n));
  return nullptr;
}

std::optional<ListenAddress> parse_listen(const toml::node& node, const std::string& key,
                                          Problems& problems) {
  const auto* s = node.as_string();
  const std::string expected = "expected \"<IP address>:<port>\", e.g. \"127.0.0.1:9090\"";
  if (s == nullptr) {
    problems.add(node, key, expected);
    return std::nullopt;
  }
  const std::string& text = s->get();
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    problems.add(node, key, expected);
    return std::nullopt;
  }
  std::string host = text.substr(0, colon);
  const std::string port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    problems.add(node, key, "IPv6 addresses need brackets, e.g. \"[::1]:9090\"");
    return std::nullopt;
  }
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec && host != "localhost") {
    problems.add(node, key, "'" + printable(host) + "' is not an IP address; " + expected);
    return std::nullopt;
  }
  const auto port = parse_port(port_text, /*allow_zero=*/true);
  if (!port) {
    problems.add(node, key, "the port must be a number from 0 to 65535");
    return std::nullopt;
  }
  return ListenAddress{host, *port};
}

}  // namespace pacer::pacerd::reader
