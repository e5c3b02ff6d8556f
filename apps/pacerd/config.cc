#include "config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "core/text.h"
#include "pacer/http/identity.h"
#include "pacer/http/ip.h"
#include "pacer/redis/redis_store.h"
#include "pacer/redis/url.h"

namespace pacer::pacerd {
namespace {

constexpr std::size_t kMaxPolicies = 1000;
constexpr std::size_t kMaxFileBytes = std::size_t{4} * 1024 * 1024;

FileStamp stamp_of(const struct stat& st) {
  return {
      .mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      .inode = st.st_ino,
      .device = st.st_dev,
      .size = st.st_size};
}

// Collects every problem of one file, each naming file, line, column, key and value.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_region& where, const std::string& key, const toml::node* value,
           const std::string& reason) {
    std::string line = fmt::format("{}:{}:{}: {}", internal::printable(file_), where.begin.line,
                                   where.begin.column, key);
    if (value != nullptr) line += " = " + show(*value);
    lines_.push_back({where.begin.line, where.begin.column, line + ": " + reason});
  }
  void add(const toml::node& node, const std::string& key, const std::string& reason) {
    add(node.source(), key, &node, reason);
  }
  void add_plain(const std::string& message) { lines_.push_back({~0u, 0, message}); }

  bool empty() const { return lines_.empty(); }
  // In file order.
  std::string text() {
    std::stable_sort(lines_.begin(), lines_.end(), [](const Line& a, const Line& b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    std::string out;
    for (const auto& line : lines_) out.append(out.empty() ? "" : "\n").append(line.text);
    return out;
  }

  // The value as written (strings quoted), safe for a log line.
  static std::string show(const toml::node& node) {
    if (const auto* s = node.as_string()) return "\"" + internal::printable(s->get()) + "\"";
    if (node.is_table()) return "{...}";
    if (node.is_array()) return "[...]";
    if (const auto* i = node.as_integer()) return std::to_string(i->get());
    if (const auto* f = node.as_floating_point()) return fmt::format("{}", f->get());
    if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
    return "(a date or time)";
  }

 private:
  struct Line {
    unsigned line, column;
    std::string text;
  };
  std::string file_;
  std::vector<Line> lines_;
};

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

// One table's keys: typed reads, and every key nobody read is reported as unknown.
class Section {
 public:
  Section(const toml::table& table, std::string path, Problems& problems)
      : table_(table), path_(std::move(path)), problems_(problems) {}

  ~Section() {
    for (auto&& [key, node] : table_) {
      if (known_.count(std::string(key.str())) == 0)
        problems_.add(key.source(), name(key.str()), &node, "unknown key");
    }
  }

  std::string name(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  const toml::node* node(std::string_view key) {
    known_.emplace(key);
    return table_.get(key);
  }

  std::optional<std::string> string(std::string_view key) {
    const toml::node* n = node(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* s = n->as_string()) return s->get();
    problems_.add(*n, name(key), std::string("expected a string, got ") + type_name(*n));
    return std::nullopt;
  }

  std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max) {
    const toml::node* n = node(key);
    if (n == nullptr) return std::nullopt;
    const auto* i = n->as_integer();
    if (i == nullptr || i->get() < min || i->get() > max) {
      problems_.add(*n, name(key), fmt::format("expected a whole number from {} to {}", min, max));
      return std::nullopt;
    }
    return i->get();
  }

  std::optional<bool> boolean(std::string_view key) {
    const toml::node* n = node(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* b = n->as_boolean()) return b->get();
    problems_.add(*n, name(key), std::string("expected true or false, got ") + type_name(*n));
    return std::nullopt;
  }

  // A duration string ("50ms", "1s") within [min, max].
  std::optional<Nanos> duration(std::string_view key, Nanos min, Nanos max) {
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

  // A sub-table (or nothing).
  const toml::table* table(std::string_view key) {
    const toml::node* n = node(key);
    if (n == nullptr) return nullptr;
    if (const auto* t = n->as_table()) return t;
    problems_.add(*n, name(key), std::string("expected a table, got ") + type_name(*n));
    return nullptr;
  }

  Problems& problems() { return problems_; }

 private:
  const toml::table& table_;
  std::string path_;
  Problems& problems_;
  std::set<std::string, std::less<>> known_;
};

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
    problems.add(node, key,
                 "'" + internal::printable(host) + "' is not an IP address; " + expected);
    return std::nullopt;
  }
  const auto port = internal::parse_port(port_text, /*allow_zero=*/true);
  if (!port) {
    problems.add(node, key, "the port must be a number from 0 to 65535");
    return std::nullopt;
  }
  return ListenAddress{host, *port};
}

void read_server(Section& s, Config& c) {
  if (const auto* n = s.node("listen"))
    if (auto a = parse_listen(*n, s.name("listen"), s.problems())) c.listen = *a;
  if (auto v = s.integer("threads", 0, 256)) c.threads = static_cast<unsigned>(*v);
  if (auto v = s.integer("max_connections", 0, 10'000'000))
    c.max_connections = static_cast<std::size_t>(*v);
  if (auto v = s.duration("idle_timeout", std::chrono::seconds(1), std::chrono::hours(1)))
    c.idle_timeout = std::chrono::ceil<std::chrono::seconds>(*v);
  if (auto v = s.duration("shutdown_grace", std::chrono::seconds(1), std::chrono::minutes(10)))
    c.shutdown_grace = std::chrono::ceil<std::chrono::seconds>(*v);
  if (auto v = s.duration("body_timeout", std::chrono::seconds(1), std::chrono::seconds(120)))
    c.body_timeout = std::chrono::ceil<std::chrono::seconds>(*v);
  if (auto v = s.integer("min_body_rate", 0, 1'000'000'000))
    c.min_body_rate = static_cast<std::size_t>(*v);
  if (auto v = s.integer("max_connections_per_client", 0, 10'000'000))
    c.max_connections_per_client = static_cast<std::size_t>(*v);
  if (auto v = s.duration("watch_settle", std::chrono::milliseconds(0), std::chrono::minutes(1)))
    c.watch_settle = std::chrono::ceil<std::chrono::milliseconds>(*v);
  if (auto v = s.integer("max_body_bytes", 1024, std::int64_t{64} * 1024 * 1024))
    c.max_body_bytes = static_cast<std::size_t>(*v);
  if (auto v = s.integer("ipv6_prefix", 0, 128)) c.ipv6_prefix = static_cast<int>(*v);
  if (auto v = s.boolean("shadow")) c.shadow = *v;
  if (const auto* n = s.node("trusted_proxies")) {
    std::string list;
    bool ok = true;
    if (const auto* str = n->as_string()) {
      list = str->get();
    } else if (const auto* arr = n->as_array()) {
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::node& item = *arr->get(i);
        const std::string key = fmt::format("{}[{}]", s.name("trusted_proxies"), i);
        const auto* e = item.as_string();
        if (e == nullptr) {
          s.problems().add(item, key, "expected a CIDR string such as \"10.0.0.0/8\"");
          ok = false;
          continue;
        }
        try {
          http::TrustedProxies::parse(e->get());
          list.append(list.empty() ? "" : ", ").append(e->get());
        } catch (const std::invalid_argument& error) {
          s.problems().add(item, key, error.what());
          ok = false;
        }
      }
    } else {
      s.problems().add(*n, s.name("trusted_proxies"),
                       "expected a string or an array of CIDRs, e.g. [\"loopback\", "
                       "\"10.0.0.0/8\"]");
      ok = false;
    }
    if (ok) {
      try {
        http::TrustedProxies::parse(list);  // (an array was checked item by item above)
        c.trusted_proxies = list;
      } catch (const std::invalid_argument& e) {
        s.problems().add(*n, s.name("trusted_proxies"), e.what());
      }
    }
  }
}

void read_store(Section& s, Config& c) {
  if (auto url = s.string("url")) {
    if (*url == "memory") {
      c.store_url = *url;
    } else {
      try {
        redis::parse_redis_url(*url);
        c.store_url = *url;
      } catch (const std::invalid_argument& e) {
        // The library's message names the URL with the password masked; so does ours.
        const toml::node* n = s.node("url");
        s.problems().add(n->source(), s.name("url"), nullptr,
                         std::string(e.what()) +
                             " (expected \"memory\", redis://, rediss:// or redis+cluster://)");
      }
    }
  }
  if (auto mode = s.string("fail_mode")) {
    try {
      c.fail_mode = parse_fail_mode(*mode);
    } catch (const std::invalid_argument& e) {
      s.problems().add(*s.node("fail_mode"), s.name("fail_mode"), "expected open, closed or local");
    }
  }
  if (auto v = s.duration("timeout", std::chrono::milliseconds(1), std::chrono::seconds(60)))
    c.timeout = std::chrono::ceil<std::chrono::milliseconds>(*v);
  if (auto v =
          s.duration("connect_timeout", std::chrono::milliseconds(1), std::chrono::seconds(60)))
    c.connect_timeout = std::chrono::ceil<std::chrono::milliseconds>(*v);
  if (auto v = s.integer("max_keys", 1024, 1'000'000'000))
    c.max_keys = static_cast<std::size_t>(*v);
  if (auto script = s.string("script")) {
    try {
      c.store_script = redis::parse_redis_script(*script);
    } catch (const std::invalid_argument&) {
      s.problems().add(*s.node("script"), s.name("script"), "expected auto, lua or module");
    }
  }
  if (auto prefix = s.string("key_prefix")) {
    if (http::valid_key_prefix(*prefix)) {
      c.key_prefix = *prefix;
    } else {
      s.problems().add(*s.node("key_prefix"), s.name("key_prefix"),
                       "must be 1 to 64 bytes without braces or control characters");
    }
  }
}

void read_policy(const toml::table& table, std::size_t index, Config& c, Problems& problems,
                 std::set<std::string, std::less<>>& names) {
  Section s(table, fmt::format("policy[{}]", index), problems);
  std::optional<std::string> name = s.string("name");
  const bool name_ok = name.has_value();
  if (!name) {
    if (s.node("name") == nullptr)
      problems.add(table.source(), s.name("name"), nullptr, "missing: every policy needs a name");
    name = "";
  }
  std::vector<Rate> rates;
  const toml::node* rates_node = s.node("rates");
  if (rates_node == nullptr) {
    problems.add(table.source(), s.name("rates"), nullptr,
                 "missing: e.g. rates = [{ limit = \"10/1m\", burst = 5 }]");
  } else if (const auto* arr = rates_node->as_array()) {
    if (arr->empty() || arr->size() > Policy::kMaxRates) {
      problems.add(*rates_node, s.name("rates"),
                   fmt::format("expected 1 to {} rates", Policy::kMaxRates));
    }
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const toml::node& item = *arr->get(i);
      const std::string key = fmt::format("{}[{}]", s.name("rates"), i);
      const auto* rate_table = item.as_table();
      if (rate_table == nullptr) {
        problems.add(item, key, "expected { limit = \"10/1m\", burst = 5 }");
        continue;
      }
      Section r(*rate_table, key, problems);
      const auto limit = r.string("limit");
      const auto burst = r.integer("burst", 0, 1'000'000'000'000);
      if (!limit) {
        if (r.node("limit") == nullptr)
          problems.add(item.source(), r.name("limit"), nullptr, "missing, e.g. limit = \"10/1m\"");
        continue;
      }
      try {
        if (!burst && r.node("burst") != nullptr) {
          Rate::parse(*limit, 0);  // still report a bad limit
          continue;
        }
        rates.push_back(Rate::parse(*limit, burst.value_or(0)));
        if (!c.memory_store())
          redis::RedisStore::validate(Policy(name->empty() ? "x" : *name, {rates.back()}));
      } catch (const std::invalid_argument& e) {
        problems.add(*r.node("limit"), r.name("limit"), e.what());
      }
    }
  } else {
    problems.add(*rates_node, s.name("rates"),
                 "expected an array, e.g. [{ limit = \"10/1m\", burst = 5 }]");
  }
  std::vector<std::string> identity{"client_ip"};
  if (const toml::node* n = s.node("identity")) {
    std::vector<const toml::node*> items;
    if (const auto* arr = n->as_array()) {
      for (const auto& item : *arr) items.push_back(&item);
      if (items.empty()) problems.add(*n, s.name("identity"), "expected at least one selector");
    } else {
      items.push_back(n);
    }
    identity.clear();
    for (const toml::node* item : items) {
      const auto* str = item->as_string();
      if (str == nullptr) {
        problems.add(*item, s.name("identity"),
                     "expected a selector string such as \"client_ip\", \"api_key\" or "
                     "\"header:<Header-Name>\" (or an array of them, tried in order)");
        continue;
      }
      try {
        http::Identity::parse(str->get());  // the grammar every front end shares
      } catch (const std::invalid_argument& e) {
        problems.add(*item, s.name("identity"), e.what());
        continue;
      }
      identity.push_back(str->get());
    }
  }
  const bool shadow = s.boolean("shadow").value_or(false);
  http::MissingIdentity missing = http::MissingIdentity::kRefuse;
  if (auto text = s.string("missing_identity")) {
    try {
      missing = http::parse_missing_identity(*text);
    } catch (const std::invalid_argument& e) {
      problems.add(*s.node("missing_identity"), s.name("missing_identity"),
                   "expected \"refuse\" (401) or \"shared\" (one anonymous bucket)");
    }
  }
  if (!name->empty() && names.count(*name) != 0) {
    problems.add(*s.node("name"), s.name("name"), "duplicate policy name");
    return;
  }
  if (!name_ok) return;
  try {
    Policy policy(*name,
                  rates.empty() ? std::vector<Rate>{Rate(1, std::chrono::seconds(1))} : rates);
    names.insert(*name);
    if (!rates.empty() && !identity.empty())
      c.policies.push_back({std::move(policy), std::move(identity), shadow, missing});
  } catch (const std::invalid_argument& e) {
    problems.add(*s.node("name"), s.name("name"), e.what());
  }
}

std::uint64_t fnv1a(std::uint64_t hash, std::int64_t value) {
  for (int i = 0; i < 8; ++i) {
    hash ^= static_cast<std::uint64_t>(value >> (8 * i)) & 0xff;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

std::string ListenAddress::to_string() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::string display_store_url(const std::string& url) {
  if (url == "memory") return url;
  try {
    return redis::parse_redis_url(url).to_string();
  } catch (const std::exception&) {
    return "(invalid URL)";
  }
}

std::string rates_digest(const Policy& policy) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const Rate& rate : policy.rates()) {
    hash = fnv1a(hash, rate.permits());
    hash = fnv1a(hash, rate.period().count());
    hash = fnv1a(hash, rate.burst());
  }
  return fmt::format("r{:012x}", hash & 0xffffffffffffULL);
}

Config parse_config(std::string_view text, const std::string& path) {
  Problems problems(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}:{}: not valid TOML: {}", internal::printable(path),
                                  e.source().begin.line, e.source().begin.column,
                                  internal::printable(e.description())));
  }
  Config c;
  c.file = path;
  {
    Section top(root, "", problems);
    // [store] first: whether rates must fit Redis' clock depends on it.
    if (const auto* t = top.table("store")) {
      Section s(*t, "store", problems);
      read_store(s, c);
    }
    if (const auto* t = top.table("server")) {
      Section s(*t, "server", problems);
      read_server(s, c);
    }
    if (const auto* t = top.table("admin")) {
      Section s(*t, "admin", problems);
      const auto on_main = s.boolean("on_main");
      if (on_main) c.admin_on_main = *on_main;
      if (const auto* n = s.node("listen")) {
        if (auto a = parse_listen(*n, "admin.listen", problems)) c.admin_listen = *a;
        if (c.admin_on_main) {
          problems.add(*s.node("on_main"), "admin.on_main",
                       "cannot be true with admin.listen: the admin endpoints are served on one "
                       "listener");
        }
      } else if (!on_main) {
        problems.add(t->source(), "admin.listen", nullptr,
                     "missing: e.g. \"127.0.0.1:9091\" (or on_main = true)");
      }
    }
    for (const char* section : {"server", "admin", "store", "api"}) {
      if (const auto* t = root[section].as_table()) {
        for (auto&& [key, node] : *t) {
          c.locations.emplace(
              fmt::format("{}.{}", section, key.str()),
              fmt::format("{}:{}", node.source().begin.line, node.source().begin.column));
        }
      }
    }
    if (const auto* t = top.table("api")) {
      Section s(*t, "api", problems);
      if (auto v = s.integer("max_batch", 1, 100'000)) c.max_batch = static_cast<std::size_t>(*v);
      if (auto v = s.integer("max_key_bytes", 1, 65'536))
        c.max_key_bytes = static_cast<std::size_t>(*v);
      if (auto v = s.integer("batch_in_flight", 1, 1'000'000))
        c.batch_in_flight = static_cast<std::size_t>(*v);
      if (auto v = s.integer("batch_in_flight_per_request", 1, 100'000))
        c.batch_in_flight_per_request = static_cast<std::size_t>(*v);
    }
    if (const auto* t = top.table("headers")) {
      Section s(*t, "headers", problems);
      if (auto v = s.boolean("ratelimit")) c.headers.ratelimit = *v;
      if (auto v = s.boolean("x_ratelimit_reset")) c.headers.x_ratelimit_reset = *v;
      if (auto v = s.boolean("x_ratelimit_policy")) c.headers.x_ratelimit_policy = *v;
      if (auto v = s.boolean("ietf_draft")) c.headers.ietf_draft = *v;
    }
    const toml::node* policies = top.node("policy");
    if (policies == nullptr) {
      problems.add_plain(internal::printable(path) +
                         ": policy: missing: at least one [[policy]] table is needed");
    } else if (const auto* arr = policies->as_array();
               arr == nullptr || !arr->is_array_of_tables()) {
      problems.add(*policies, "policy", "expected [[policy]] tables");
    } else if (arr->size() > kMaxPolicies) {
      problems.add(*policies, "policy", fmt::format("at most {} policies", kMaxPolicies));
    } else {
      std::set<std::string, std::less<>> names;
      for (std::size_t i = 0; i < arr->size(); ++i)
        read_policy(*arr->get(i)->as_table(), i, c, problems, names);
    }
  }
  if (c.admin_listen && c.admin_listen->port != 0 && *c.admin_listen == c.listen) {
    problems.add_plain(internal::printable(path) + ": admin.listen = \"" +
                       c.admin_listen->to_string() + "\": must differ from server.listen");
  }
  if (!problems.empty()) throw ConfigError(problems.text());
  return c;
}

FileStamp stamp_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return stamp_of(st);
}

ConfigFile read_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw ConfigError(internal::printable(path) +
                      ": cannot open: " + std::system_category().message(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  ConfigFile file;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw ConfigError(internal::printable(path) +
                      ": cannot examine: " + std::system_category().message(errno));
  }
  file.stamp = stamp_of(st);
  file.text.resize(kMaxFileBytes + 1);
  std::size_t got = 0;
  while (got < file.text.size()) {
    const ssize_t n = ::read(fd, file.text.data() + got, file.text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw ConfigError(internal::printable(path) +
                        ": cannot read: " + std::system_category().message(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  file.text.resize(got);
  if (got > kMaxFileBytes)
    throw ConfigError(internal::printable(path) + ": larger than 4 MiB; not a pacerd config");
  return file;
}

LoadedConfig load_config(const std::string& path) {
  ConfigFile file = read_config_file(path);
  Config config = parse_config(file.text, path);
  return {std::move(config), std::move(file)};
}

bool Config::admin_endpoints_on_main() const {
  if (admin_listen) return false;
  if (admin_on_main || listen.host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(listen.host, ec);
  return !ec && address.is_loopback();
}

std::vector<std::string> Config::restart_needed(const Config& next) const {
  std::vector<std::string> out;
  auto differs = [&](const char* key, const std::string& a, const std::string& b) {
    if (a == b) return;
    // Where the new file says it (or, when the key was removed, the file alone).
    const auto at = next.locations.find(key);
    out.push_back(fmt::format("{}{}: {} ({} -> {})", internal::printable(next.file),
                              at == next.locations.end() ? "" : ":" + at->second, key, a, b));
  };
  differs("server.listen", listen.to_string(), next.listen.to_string());
  differs("server.threads", std::to_string(threads), std::to_string(next.threads));
  differs("server.max_connections", std::to_string(max_connections),
          std::to_string(next.max_connections));
  differs("server.idle_timeout", std::to_string(idle_timeout.count()) + "s",
          std::to_string(next.idle_timeout.count()) + "s");
  differs("server.shutdown_grace", std::to_string(shutdown_grace.count()) + "s",
          std::to_string(next.shutdown_grace.count()) + "s");
  differs("server.max_body_bytes", std::to_string(max_body_bytes),
          std::to_string(next.max_body_bytes));
  differs("server.body_timeout", std::to_string(body_timeout.count()) + "s",
          std::to_string(next.body_timeout.count()) + "s");
  differs("server.min_body_rate", std::to_string(min_body_rate),
          std::to_string(next.min_body_rate));
  differs("server.max_connections_per_client", std::to_string(max_connections_per_client),
          std::to_string(next.max_connections_per_client));
  differs("server.watch_settle", std::to_string(watch_settle.count()) + "ms",
          std::to_string(next.watch_settle.count()) + "ms");
  differs("api.batch_in_flight", std::to_string(batch_in_flight),
          std::to_string(next.batch_in_flight));
  differs("admin.listen", admin_listen ? admin_listen->to_string() : "none",
          next.admin_listen ? next.admin_listen->to_string() : "none");
  differs("store.url", display_store_url(store_url), display_store_url(next.store_url));
  differs("store.timeout", std::to_string(timeout.count()) + "ms",
          std::to_string(next.timeout.count()) + "ms");
  differs("store.connect_timeout", std::to_string(connect_timeout.count()) + "ms",
          std::to_string(next.connect_timeout.count()) + "ms");
  differs("store.max_keys", std::to_string(max_keys), std::to_string(next.max_keys));
  differs("store.script", std::string(redis::to_string(store_script)),
          std::string(redis::to_string(next.store_script)));
  return out;
}

std::string Config::summary() const {
  std::string out = fmt::format("config {}: ok\n", internal::printable(file));
  fmt::format_to(
      std::back_inserter(out), "  listen          {}{}\n", listen.to_string(),
      admin_listen ? fmt::format(" (admin {})", admin_listen->to_string()) : std::string());
  fmt::format_to(std::back_inserter(out), "  store           {} (fail mode {}, timeout {}ms)\n",
                 display_store_url(store_url), to_string(fail_mode), timeout.count());
  fmt::format_to(std::back_inserter(out), "  key prefix      {}\n", key_prefix);
  fmt::format_to(std::back_inserter(out), "  trusted proxies {}\n",
                 http::TrustedProxies::parse(trusted_proxies).to_string());
  fmt::format_to(std::back_inserter(out), "  policies        {}{}\n", policies.size(),
                 shadow ? " (server.shadow: all enforce nothing)" : "");
  for (const auto& p : policies) {
    std::string rates;
    for (const Rate& r : p.policy.rates())
      rates.append(rates.empty() ? "" : ", ").append(r.to_string());
    std::string who;
    for (const auto& sel : p.identity) who.append(who.empty() ? "" : " | ").append(sel);
    fmt::format_to(std::back_inserter(out), "    {:<14} {}; identity {}{}\n", p.policy.name(),
                   rates, who, p.shadow || shadow ? "; shadow" : "");
  }
  return out;
}

}  // namespace pacer::pacerd
