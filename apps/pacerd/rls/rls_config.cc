// RlsConfig apart from reading the YAML (rls_config.h; docs/DESIGN.md §1): the units, the
// configuration directory's files and stamps, lookup and summary. The YAML: rls_config_yaml.cc.
#include "rls_config.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "rls_config_tree.h"

namespace pacer::pacerd::rls {
namespace {

using namespace std::chrono_literals;

constexpr std::array<std::pair<std::string_view, Unit>, 6> kUnits{{{"second", Unit::kSecond},
                                                                   {"minute", Unit::kMinute},
                                                                   {"hour", Unit::kHour},
                                                                   {"day", Unit::kDay},
                                                                   {"month", Unit::kMonth},
                                                                   {"year", Unit::kYear}}};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<Unit> parse_unit(std::string_view text) {
  const std::string l = lower(text);
  for (const auto& [name, unit] : kUnits) {
    if (name == l) return unit;
  }
  return std::nullopt;
}

std::string_view to_string(Unit unit) {
  for (const auto& [name, u] : kUnits) {
    if (u == unit) return name;
  }
  return "unknown";
}

Nanos unit_length(Unit unit) {
  switch (unit) {
    case Unit::kSecond:
      return 1s;
    case Unit::kMinute:
      return 1min;
    case Unit::kHour:
      return 1h;
    case Unit::kDay:
      return 24h;
    case Unit::kMonth:
      return 24h * 30;
    case Unit::kYear:
      return 24h * 365;
    case Unit::kUnknown:
      break;
  }
  throw std::invalid_argument("unknown rate limit unit");
}

Rate window_rate(std::uint32_t requests_per_unit, Unit unit) {
  return Rate(requests_per_unit, unit_length(unit), std::int64_t{requests_per_unit} - 1);
}

std::vector<SourceFile> read_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  constexpr std::uintmax_t kMaxFileBytes = std::uintmax_t{4} * 1024 * 1024;
  std::error_code ec;
  std::vector<fs::path> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    const std::string ext = p.extension().string();
    if (name.starts_with('.') || (ext != ".yaml" && ext != ".yml")) continue;
    std::error_code type_error;
    if (fs::is_regular_file(p, type_error)) paths.push_back(p);  // follows links
  }
  if (ec) {
    throw ConfigError(fmt::format("{}: cannot read the directory: {}", dir, ec.message()));
  }
  std::sort(paths.begin(), paths.end());
  std::vector<SourceFile> files;
  for (const auto& p : paths) {
    std::error_code size_error;
    const auto size = fs::file_size(p, size_error);
    if (size_error || size > kMaxFileBytes) {
      throw ConfigError(
          fmt::format("{}: {}", p.string(),
                      size_error ? "cannot read: " + size_error.message() : "larger than 4 MiB"));
    }
    std::ifstream in(p, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof()) throw ConfigError(fmt::format("{}: cannot read", p.string()));
    files.push_back({p.string(), text.str()});
  }
  return files;
}

std::vector<FileStampEntry> read_directory_stamps(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<FileStampEntry> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    const std::string ext = p.extension().string();
    if (name.starts_with('.') || (ext != ".yaml" && ext != ".yml")) continue;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) continue;  // follows links
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
    out.push_back(
        {h, static_cast<std::uint64_t>(st.st_ino),
         static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
         static_cast<std::int64_t>(st.st_size)});
  }
  std::sort(out.begin(), out.end(), [](const FileStampEntry& a, const FileStampEntry& b) {
    return a.name_hash < b.name_hash;
  });
  return out;
}

const RlsLimit* RlsConfig::find(std::string_view domain, std::span<const Entry> entries) const {
  const auto d = domains_.find(domain);
  if (d == domains_.end() || entries.empty()) return nullptr;
  const Node* level = d->second.get();
  std::string composite;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    composite.assign(entries[i].key).append("_").append(entries[i].value);
    const Node* next = nullptr;
    if (auto it = level->children.find(composite); it != level->children.end()) {
      next = it->second.get();
    }
    if (next == nullptr) {
      for (const auto& [prefix, node] : level->wildcards) {
        if (composite.starts_with(prefix)) {
          next = node;
          break;
        }
      }
    }
    if (next == nullptr) {
      if (auto it = level->children.find(entries[i].key); it != level->children.end()) {
        next = it->second.get();
      }
    }
    if (next == nullptr) return nullptr;
    if (i + 1 == entries.size()) return next->limit ? &*next->limit : nullptr;
    level = next;
  }
  return nullptr;
}

std::string RlsConfig::summary() const {
  std::string out = fmt::format("{} domain(s), {} limit(s)\n", domains_.size(), all_.size());
  for (const RlsLimit* l : all_) {
    if (l->unlimited) {
      out += fmt::format("  {}: unlimited", l->full_key);
    } else {
      out += fmt::format("  {}: {} per {}", l->full_key, l->requests_per_unit, to_string(l->unit));
    }
    if (l->shadow) out += " (shadow)";
    if (!l->name.empty()) out += fmt::format(" name={}", l->name);
    out += '\n';
  }
  return out;
}

}  // namespace pacer::pacerd::rls
