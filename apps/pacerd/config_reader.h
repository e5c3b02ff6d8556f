// How pacerd reads its TOML file (docs/DESIGN.md §8): every problem of the file is collected, not
// only the first, and each names file, line, column, key and value. Internal to config_*.cc.
//
//   Problems problems(path);
//   {
//     Section server(*table, "server", problems);
//     if (auto v = server.integer("threads", 0, 256)) config.threads = *v;
//   }  // the keys nobody read are reported here, as unknown
//   if (!problems.empty()) throw ConfigError(problems.text());
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "pacer/rate.h"

namespace pacer::pacerd::reader {

// Collects every problem of one file, each naming file, line, column, key and value.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_region& where, const std::string& key, const toml::node* value,
           const std::string& reason);
  void add(const toml::node& node, const std::string& key, const std::string& reason) {
    add(node.source(), key, &node, reason);
  }
  void add_plain(const std::string& message) { lines_.push_back({~0u, 0, message}); }

  bool empty() const { return lines_.empty(); }
  // In file order.
  std::string text();

  // The value as written (strings quoted), safe for a log line.
  static std::string show(const toml::node& node);

 private:
  struct Line {
    unsigned line, column;
    std::string text;
  };
  std::string file_;
  std::vector<Line> lines_;
};

// "a string", "an integer", ... for "expected X, got Y".
const char* type_name(const toml::node& node);

// One table's keys: typed reads, and every key nobody read is reported as unknown.
class Section {
 public:
  Section(const toml::table& table, std::string path, Problems& problems)
      : table_(table), path_(std::move(path)), problems_(problems) {}
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;
  ~Section();

  // The key's full name ("server.listen", "policy[0].rates").
  std::string name(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // The key's value (or nullptr), marking it read.
  const toml::node* node(std::string_view key) {
    known_.emplace(key);
    return table_.get(key);
  }

  // Each of these reads the key; a value of the wrong type or out of range is reported, and
  // the answer is then nullopt, as for a missing key.
  std::optional<std::string> string(std::string_view key);
  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max);
  std::optional<bool> boolean(std::string_view key);
  // A duration string ("50ms", "1s") within [min, max].
  std::optional<Nanos> duration(std::string_view key, Nanos min, Nanos max);
  // A sub-table (or nothing).
  const toml::table* table(std::string_view key);

  Problems& problems() { return problems_; }
  // Where the table starts (for a missing key).
  const toml::source_region& where() const { return table_.source(); }

 private:
  const toml::table& table_;
  std::string path_;
  Problems& problems_;
  std::set<std::string, std::less<>> known_;
};

// A listen address ("127.0.0.1:9090", "[::1]:9090", "localhost:9090"); problems are reported
// under `key`.
std::optional<ListenAddress> parse_listen(const toml::node& node, const std::string& key,
                                          Problems& problems);

}  // namespace pacer::pacerd::reader
