// envoyproxy/ratelimit's YAML into descriptor trees (rls_config.h; docs/DESIGN.md §1): each
// file checked key by key and level by level, every problem collected with its place, then
// RlsConfig::load over all the files. Units, directory reading and lookup: rls_config.cc.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <utility>

#include "rls_config.h"
#include "rls_config_tree.h"

namespace pacer::pacerd::rls {
namespace {

// The keys envoyproxy/ratelimit accepts anywhere in a file; any other key is an error there
// too. Where each belongs is checked per level below.
constexpr std::array<std::string_view, 12> kKnownKeys{
    "domain",    "key",  "value",    "descriptors",     "rate_limit", "unit", "requests_per_unit",
    "unlimited", "name", "replaces", "detailed_metric", "shadow_mode"};

bool known_key(std::string_view key) {
  return std::find(kKnownKeys.begin(), kKnownKeys.end(), key) != kKnownKeys.end();
}

// Policy names allow [A-Za-z0-9_.-] and 64 bytes (pacer/rate.h); a descriptor path that does
// not fit is named by its digest, so two paths never share a bucket.
std::string policy_name(std::string_view full_key) {
  const bool fits =
      !full_key.empty() && full_key.size() <= 64 &&
      std::all_of(full_key.begin(), full_key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
      });
  if (fits) return std::string(full_key);
  std::uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (unsigned char c : full_key) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("rls-{:016x}", h);
}

// Collects every problem with its place, in file order.
class Problems {
 public:
  void add(const std::string& file, const YAML::Mark& mark, const std::string& what) {
    lines_.push_back({file, mark.line, mark.column, what});
  }
  bool empty() const { return lines_.empty(); }
  std::string text() const {
    std::string out;
    for (const auto& l : lines_) {
      if (!out.empty()) out += '\n';
      if (l.line >= 0) {
        out += fmt::format("{}:{}:{}: {}", l.file, l.line + 1, l.column + 1, l.what);
      } else {
        out += fmt::format("{}: {}", l.file, l.what);
      }
    }
    return out;
  }

 private:
  struct Line {
    std::string file;
    int line, column;
    std::string what;
  };
  std::vector<Line> lines_;
};

class Loader {
 public:
  Loader(const SourceFile& file, Problems& problems) : file_(file), problems_(problems) {}

  // The domain's tree, or nullptr after reporting why not.
  std::pair<std::string, std::unique_ptr<RlsConfig::Node>> load() {
    YAML::Node root;
    try {
      root = YAML::Load(file_.text);
    } catch (const YAML::ParserException& e) {
      problems_.add(file_.path, e.mark, "not YAML: " + e.msg);
      return {};
    }
    if (!root.IsMap()) {
      problems_.add(file_.path, root.Mark(), "expected a mapping with `domain` and `descriptors`");
      return {};
    }
    std::optional<std::string> domain;
    try {
      check_keys(root, {"domain", "descriptors"}, "the top level");
      domain = string_of(root, "domain");
    } catch (const YAML::Exception& e) {
      problems_.add(file_.path, e.mark, "cannot read: " + e.msg);
      return {};
    }
    if (!domain || domain->empty()) {
      problems_.add(file_.path, root.Mark(), "`domain` is required and must not be empty");
      return {};
    }
    auto tree = std::make_unique<RlsConfig::Node>();
    try {
      load_descriptors(root["descriptors"], *domain, *tree);
    } catch (const YAML::Exception& e) {  // a node of a shape no reader above expects
      problems_.add(file_.path, e.mark, "cannot read: " + e.msg);
      return {};
    }
    return {*domain, std::move(tree)};
  }

 private:
  void report(const YAML::Node& at, const std::string& what) {
    problems_.add(file_.path, at.Mark(), what);
  }

  // Unknown keys are errors (as in envoyproxy/ratelimit); a known key in the wrong place is an
  // error too here, since it would silently do nothing.
  void check_keys(const YAML::Node& map, std::initializer_list<std::string_view> allowed,
                  std::string_view where) {
    for (const auto& item : map) {
      const auto key = item.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      if (known_key(key)) {
        report(item.first, fmt::format("`{}` does not belong in {}; expected one of: {}", key,
                                       where, fmt::join(allowed, ", ")));
      } else {
        report(item.first, fmt::format("unknown key `{}` in {}; expected one of: {}", key, where,
                                       fmt::join(allowed, ", ")));
      }
    }
  }

  std::optional<std::string> string_of(const YAML::Node& map, const char* key) {
    const YAML::Node n = map[key];
    if (!n) return std::nullopt;
    if (!n.IsScalar()) {
      report(n, fmt::format("`{}` must be a string", key));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<bool> bool_of(const YAML::Node& map, const char* key) {
    const YAML::Node n = map[key];
    if (!n) return std::nullopt;
    bool value = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, value)) {
      report(n, fmt::format("`{}` must be true or false, got {}", key, shown(n)));
      return std::nullopt;
    }
    return value;
  }

  static std::string shown(const YAML::Node& n) {
    if (n.IsScalar()) return fmt::format("'{}'", n.Scalar());
    return n.IsSequence() ? "a list" : n.IsMap() ? "a mapping" : "nothing";
  }

  void load_descriptors(const YAML::Node& list, const std::string& parent_key,
                        RlsConfig::Node& into) {
    if (!list || list.IsNull()) return;
    if (!list.IsSequence()) {
      report(list, "`descriptors` must be a list of mappings");
      return;
    }
    for (const auto& d : list) {
      if (!d.IsMap()) {
        report(d, "each descriptor must be a mapping with `key`");
        continue;
      }
      check_keys(d, {"key", "value", "rate_limit", "descriptors", "shadow_mode", "detailed_metric"},
                 "a descriptor");
      const auto key = string_of(d, "key");
      if (!key || key->empty()) {
        report(d, "a descriptor needs a non-empty `key`");
        continue;
      }
      const auto value = string_of(d, "value").value_or("");
      const std::string composite = value.empty() ? *key : *key + "_" + value;
      std::string full_key = parent_key;
      full_key.append(".").append(composite);
      if (into.children.contains(composite)) {
        report(d, fmt::format("duplicate descriptor '{}'", full_key));
        continue;
      }
      auto node = std::make_unique<RlsConfig::Node>();
      if (const YAML::Node rl = d["rate_limit"]) {
        node->limit = load_limit(rl, full_key, bool_of(d, "shadow_mode").value_or(false),
                                 bool_of(d, "detailed_metric").value_or(false));
      } else {
        bool_of(d, "shadow_mode");  // type-checked even without a limit
        bool_of(d, "detailed_metric");
      }
      load_descriptors(d["descriptors"], full_key, *node);
      if (!value.empty() && value.back() == '*') {
        into.wildcards.emplace_back(composite.substr(0, composite.size() - 1), node.get());
      }
      into.children.emplace(composite, std::move(node));
    }
  }

  std::optional<RlsLimit> load_limit(const YAML::Node& rl, const std::string& full_key, bool shadow,
                                     bool detailed) {
    if (!rl.IsMap()) {
      report(rl, "`rate_limit` must be a mapping with `unit` and `requests_per_unit`");
      return std::nullopt;
    }
    check_keys(rl, {"unit", "requests_per_unit", "unlimited", "name", "replaces"}, "`rate_limit`");
    RlsLimit limit;
    limit.full_key = full_key;
    limit.shadow = shadow;
    limit.detailed_metric = detailed;
    limit.unlimited = bool_of(rl, "unlimited").value_or(false);
    limit.name = string_of(rl, "name").value_or("");
    const auto unit_text = string_of(rl, "unit");
    const auto unit = unit_text ? parse_unit(*unit_text) : std::nullopt;
    if (limit.unlimited) {
      if (unit) {
        report(rl["unit"], "an `unlimited` limit takes no `unit`");
        return std::nullopt;
      }
    } else if (!unit) {
      report(rl["unit"] ? rl["unit"] : rl,
             fmt::format("`unit` {}: expected second, minute, hour, day, month or year",
                         unit_text ? "'" + *unit_text + "' is not a unit" : "is required"));
      return std::nullopt;
    } else {
      limit.unit = *unit;
    }
    if (const YAML::Node n = rl["requests_per_unit"]) {
      std::int64_t v = -1;
      if (!n.IsScalar() || !YAML::convert<std::int64_t>::decode(n, v) || v < 0 ||
          v > std::numeric_limits<std::uint32_t>::max()) {
        report(n, fmt::format("`requests_per_unit` must be a whole number from 0 to {}, got {}",
                              std::numeric_limits<std::uint32_t>::max(), shown(n)));
        return std::nullopt;
      }
      limit.requests_per_unit = static_cast<std::uint32_t>(v);
    } else if (!limit.unlimited) {
      report(rl, "`requests_per_unit` is required");
      return std::nullopt;
    }
    if (const YAML::Node list = rl["replaces"]) {
      if (!list.IsSequence()) {
        report(list, "`replaces` must be a list of `name:` mappings");
        return std::nullopt;
      }
      for (const auto& r : list) {
        const auto name = r.IsMap() ? string_of(r, "name") : std::nullopt;
        if (!name || name->empty()) {
          report(r, "each `replaces` entry needs a non-empty `name`");
          return std::nullopt;
        }
        if (*name == limit.name) {
          report(r, fmt::format("a limit cannot replace itself ('{}')", *name));
          return std::nullopt;
        }
        limit.replaces.push_back(*name);
      }
    }
    if (!limit.unlimited && limit.requests_per_unit > 0) {
      limit.policy.emplace(policy_name(full_key),
                           std::vector<Rate>{window_rate(limit.requests_per_unit, limit.unit)});
    }
    return limit;
  }

  const SourceFile& file_;
  Problems& problems_;
};

void collect(const RlsConfig::Node& node, std::vector<const RlsLimit*>& out) {
  if (node.limit) out.push_back(&*node.limit);
  for (const auto& [_, child] : node.children) collect(*child, out);
}

}  // namespace

RlsConfig RlsConfig::load(std::span<const SourceFile> files) {
  Problems problems;
  RlsConfig config;
  std::map<std::string, std::string, std::less<>> domain_file;
  for (const auto& file : files) {
    auto [domain, tree] = Loader(file, problems).load();
    if (!tree) continue;
    if (auto it = domain_file.find(domain); it != domain_file.end()) {
      problems.add(file.path, YAML::Mark::null_mark(),
                   fmt::format("domain '{}' is also configured in {}; one file per domain", domain,
                               it->second));
      continue;
    }
    domain_file.emplace(domain, file.path);
    config.domains_.emplace(domain, std::shared_ptr<Node>(std::move(tree)));
  }
  if (!problems.empty()) throw ConfigError(problems.text());
  for (const auto& [_, tree] : config.domains_) collect(*tree, config.all_);
  return config;
}

}  // namespace pacer::pacerd::rls
