// pacerd's configuration sections (docs/DESIGN.md §8): [server], [admin], [api],
// [headers] and [[policy]], read through config_reader.h, and the whole validated (the
// sections for what it connects to and what answers proxies, [store], [grpc] and [auth]:
// config_store.cc).
#include "config_sections.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <set>
#include <stdexcept>

#include "config.h"
#include "config_reader.h"
#include "pacer/http/identity.h"
#include "pacer/http/ip.h"
#include "pacer/redis/redis_store.h"
#include "pacer/redis/url.h"
#include "pacer/text.h"

namespace pacer::pacerd {
namespace {

using reader::Problems;
using reader::Section;

constexpr std::size_t kMaxPolicies = 1000;

void read_server(Section& s, Config& c) {
  if (const auto* n = s.node("listen"))
    if (auto a = reader::parse_listen(*n, s.name("listen"), s.problems())) c.listen = *a;
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

}  // namespace

Config parse_config(std::string_view text, const std::string& path) {
  Problems problems(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}:{}: not valid TOML: {}", printable(path),
                                  e.source().begin.line, e.source().begin.column,
                                  printable(e.description())));
  }
  Config c;
  c.file = path;
  {
    Section top(root, "", problems);
    // [store] first: whether rates must fit Redis' clock depends on it.
    if (const auto* t = top.table("store")) {
      Section s(*t, "store", problems);
      sections::read_store(s, c);
      if (const auto* tls = s.table("tls")) {
        Section st(*tls, "store.tls", problems);
        sections::read_store_tls(st, c);
        // (A store.url that was refused is reported already; it leaves the default.)
        const toml::node* url = s.node("url");
        const bool url_refused = url != nullptr && (url->as_string() == nullptr ||
                                                    url->as_string()->get() != c.store_url);
        if (!url_refused && (c.memory_store() || !redis::parse_redis_url(c.store_url).tls)) {
          problems.add(*s.node("tls"), "store.tls",
                       "only used with TLS URLs (rediss://, rediss+cluster://, "
                       "rediss+sentinel://); store.url is \"" +
                           display_store_url(c.store_url) + "\"");
        }
      }
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
        if (auto a = reader::parse_listen(*n, "admin.listen", problems)) c.admin_listen = *a;
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
    for (const char* section : {"server", "admin", "store", "store.tls", "api", "log", "grpc"}) {
      if (const auto* t = root.at_path(section).as_table()) {
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
    if (const auto* t = top.table("auth")) {
      Section s(*t, "auth", problems);
      sections::read_auth(s, c);
    }
    if (const auto* t = top.table("grpc")) {
      Section s(*t, "grpc", problems);
      sections::read_grpc(s, c);
    }
    if (const auto* t = top.table("log")) {
      Section s(*t, "log", problems);
      if (auto format = s.string("format")) {
        if (auto f = log::parse_format(*format)) {
          c.log_format = *f;
        } else {
          s.problems().add(*s.node("format"), s.name("format"), "expected logfmt or json");
        }
      }
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
      // An Envoy rate limit service alone needs no [[policy]]: its limits are in YAML.
      if (!c.grpc) {
        problems.add_plain(printable(path) +
                           ": policy: missing: at least one [[policy]] table is needed (or a "
                           "[grpc] section with envoyproxy/ratelimit descriptors)");
      }
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
    problems.add_plain(printable(path) + ": admin.listen = \"" + c.admin_listen->to_string() +
                       "\": must differ from server.listen");
  }
  if (!problems.empty()) throw ConfigError(problems.text());
  return c;
}

}  // namespace pacer::pacerd
