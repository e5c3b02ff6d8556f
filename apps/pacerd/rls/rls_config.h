// pacerd's reading of envoyproxy/ratelimit's YAML configuration (docs/API.md, "Envoy rate limit
// service"; docs/DESIGN.md §8): one file per domain, nested descriptors (`key`, optional
// `value`, `rate_limit {unit, requests_per_unit, name, unlimited, replaces}`, `shadow_mode`,
// `detailed_metric`, `descriptors`), looked up most specific first as envoyproxy/ratelimit does.
// A descriptor is one more way to name an identity: each configured limit compiles to a
// pacer::Policy (a fixed window of N per unit becomes GCRA with N at once, then one every
// unit / N), and the service decides through the one Limiter like every other front end.
//
//   auto config = RlsConfig::load({{"ratelimit/api.yaml", text}});   // throws ConfigError
//   const RlsLimit* limit = config.find("edge", entries);            // nullptr: not limited
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/rate.h"

namespace pacer::pacerd::rls {

// RateLimitResponse.RateLimit.Unit's values (the wire numbers).
enum class Unit : int { kUnknown = 0, kSecond = 1, kMinute, kHour, kDay, kMonth, kYear };

// "second", "MINUTE", ... (any case, as envoyproxy/ratelimit reads them); nullopt otherwise.
std::optional<Unit> parse_unit(std::string_view text);
std::string_view to_string(Unit unit);
// The fixed window a unit names: a month is 30 days and a year 365, as in envoyproxy/ratelimit.
Nanos unit_length(Unit unit);

// A fixed window of `requests_per_unit` per `unit` as GCRA: the whole window's count at once
// (burst = requests_per_unit - 1), then one every unit / requests_per_unit. In any window of one
// unit at most 2 * requests_per_unit pass, as with fixed windows across a boundary; docs/API.md
// has the worked example.
Rate window_rate(std::uint32_t requests_per_unit, Unit unit);

struct RlsLimit {
  std::string full_key;  // "<domain>.<key>[_<value>].<key>...": the metric and log name
  std::uint32_t requests_per_unit = 0;
  Unit unit = Unit::kUnknown;
  std::string name;  // rate_limit.name (may be empty)
  bool unlimited = false;
  bool shadow = false;
  bool detailed_metric = false;
  std::vector<std::string> replaces;  // names of limits this one replaces in one request
  std::optional<Policy> policy;       // absent when unlimited
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SourceFile {
  std::string path;  // for messages only
  std::string text;
};

// The YAML files of a configuration directory, sorted by name: `*.yaml` and `*.yml`, symbolic
// links followed, names starting with '.' skipped (a Kubernetes ConfigMap volume keeps its
// files behind `..data`, swapped atomically; the links to them are what is read). Throws
// ConfigError naming the directory or file that cannot be read.
std::vector<SourceFile> read_directory(const std::string& dir);

// What tells one version of those files from another, without reading them: per file (links
// followed) a digest of its name, its inode, modification time and size. Nothing for a
// directory that cannot be read (the reload then says why).
struct FileStampEntry {
  std::uint64_t name_hash = 0, inode = 0;
  std::int64_t mtime_ns = 0, size = 0;
};
std::vector<FileStampEntry> read_directory_stamps(const std::string& dir);

class RlsConfig {
 public:
  struct Entry {
    std::string_view key;
    std::string_view value;
  };

  // Every problem of every file, each as "<file>:<line>:<column>: <what>: <why>", in one
  // ConfigError. Two files naming one domain are an error naming both.
  static RlsConfig load(std::span<const SourceFile> files);

  // The limit for one request descriptor: at each level the entry's `key_value` first, then a
  // `value` ending in `*` that prefixes it, then the value-less `key`; the limit is the one on
  // the level of the descriptor's last entry. nullptr: no limit applies.
  const RlsLimit* find(std::string_view domain, std::span<const Entry> entries) const;

  // Every configured limit, in file order (for metrics and --check-config).
  std::span<const RlsLimit* const> limits() const { return all_; }
  std::size_t domain_count() const { return domains_.size(); }
  std::string summary() const;

  struct Node;

 private:
  std::map<std::string, std::shared_ptr<Node>, std::less<>> domains_;
  std::vector<const RlsLimit*> all_;
};

}  // namespace pacer::pacerd::rls
