// pacerd's configuration around the parse (docs/DESIGN.md §8): reading the file with its stamp,
// what a reload compares (restart_needed), the --check-config summary, and the values shown or
// keyed by (listen addresses, store URLs, rates digests). The TOML itself is read in
// config_sections.cc and config_store.cc, through config_reader.h.
#include "config.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <cerrno>
#include <iterator>
#include <system_error>

#include "pacer/http/ip.h"
#include "pacer/redis/redis_store.h"
#include "pacer/redis/url.h"
#include "pacer/text.h"

namespace pacer::pacerd {
namespace {

constexpr std::size_t kMaxFileBytes = std::size_t{4} * 1024 * 1024;

FileStamp stamp_of(const struct stat& st) {
  return {
      .mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
      .inode = st.st_ino,
      .device = st.st_dev,
      .size = st.st_size};
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
  if (is_memory_url(url)) return url;
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

FileStamp stamp_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return stamp_of(st);
}

ConfigFile read_config_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw ConfigError(printable(path) + ": cannot open: " + std::system_category().message(errno));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  ConfigFile file;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw ConfigError(printable(path) +
                      ": cannot examine: " + std::system_category().message(errno));
  }
  file.stamp = stamp_of(st);
  file.text.resize(kMaxFileBytes + 1);
  std::size_t got = 0;
  while (got < file.text.size()) {
    const ssize_t n = ::read(fd, file.text.data() + got, file.text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw ConfigError(printable(path) +
                        ": cannot read: " + std::system_category().message(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  file.text.resize(got);
  if (got > kMaxFileBytes)
    throw ConfigError(printable(path) + ": larger than 4 MiB; not a pacerd config");
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
    out.push_back(fmt::format("{}{}: {} ({} -> {})", printable(next.file),
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
  // The Redis connections are made once (docs/OPERATIONS.md, "pacerd", Redis TLS).
  auto or_none = [](const std::string& v) {
    return v.empty() ? std::string("none") : printable(v);
  };
  differs("store.tls.ca_file", or_none(tls.ca_file), or_none(next.tls.ca_file));
  differs("store.tls.cert_file", or_none(tls.cert_file), or_none(next.tls.cert_file));
  differs("store.tls.key_file", or_none(tls.key_file), or_none(next.tls.key_file));
  differs("store.tls.server_name", or_none(tls.server_name), or_none(next.tls.server_name));
  auto format_name = [](log::Format f) { return f == log::Format::kJson ? "json" : "logfmt"; };
  differs("log.format", format_name(log_format), format_name(next.log_format));
  // The gRPC listener and the directory it reads are set up once.
  differs("grpc.listen", grpc ? grpc->listen.to_string() : "none",
          next.grpc ? next.grpc->listen.to_string() : "none");
  if (grpc && next.grpc) {
    differs("grpc.max_concurrent_streams", std::to_string(grpc->max_concurrent_streams),
            std::to_string(next.grpc->max_concurrent_streams));
    differs("grpc.max_message_bytes", std::to_string(grpc->max_message_bytes),
            std::to_string(next.grpc->max_message_bytes));
    differs("grpc.config_dir", printable(grpc->config_dir), printable(next.grpc->config_dir));
    auto unavailable = [](const GrpcConfig& g) {
      return g.unavailable == rls::UnavailableAnswer::kOverLimit ? "over_limit" : "unavailable";
    };
    differs("grpc.unavailable", unavailable(*grpc), unavailable(*next.grpc));
    auto header_style = [](const GrpcConfig& g) {
      return g.ratelimit_headers ? "ratelimit" : g.x_ratelimit_headers ? "x-ratelimit" : "none";
    };
    differs("grpc.response_headers", header_style(*grpc), header_style(*next.grpc));
  }
  return out;
}

std::string Config::summary() const {
  std::string out = fmt::format("config {}: ok\n", printable(file));
  fmt::format_to(
      std::back_inserter(out), "  listen          {}{}\n", listen.to_string(),
      admin_listen ? fmt::format(" (admin {})", admin_listen->to_string()) : std::string());
  fmt::format_to(std::back_inserter(out), "  store           {} (fail mode {}, timeout {}ms)\n",
                 display_store_url(store_url), to_string(fail_mode), timeout.count());
  if (!memory_store() && redis::parse_redis_url(store_url).tls) {
    fmt::format_to(
        std::back_inserter(out), "  store tls       CA {}; client certificate {}; server name {}\n",
        tls.ca_file.empty() ? "the system's" : printable(tls.ca_file),
        tls.cert_file.empty() ? "none"
                              : printable(tls.cert_file) + " (key " + printable(tls.key_file) + ")",
        tls.server_name.empty() ? "the URL's host" : printable(tls.server_name));
  }
  fmt::format_to(std::back_inserter(out), "  key prefix      {}\n", key_prefix);
  fmt::format_to(std::back_inserter(out), "  trusted proxies {}\n",
                 http::TrustedProxies::parse(trusted_proxies).to_string());
  fmt::format_to(std::back_inserter(out), "  auth denies     {}{}; unavailable {}\n",
                 auth.deny_status,
                 auth.deny_body ? fmt::format(" with a body of {} bytes ({})",
                                              auth.deny_body->size(), auth.deny_content_type)
                                : std::string(" with the JSON body"),
                 auth.unavailable_status);
  if (grpc) {
    fmt::format_to(std::back_inserter(out),
                   "  grpc            {} (Envoy rate limit service; descriptors from {})\n",
                   grpc->listen.to_string(), printable(grpc->config_dir));
  }
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
