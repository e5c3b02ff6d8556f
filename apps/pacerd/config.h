// pacerd configuration: a TOML file read with toml++, validated as a whole.
//
//   [server]
//   listen = "127.0.0.1:9090"
//   [store]
//   url = "memory"          # or redis://, rediss://, redis+cluster://
//   fail_mode = "open"      # open | closed | local
//   [[policy]]
//   name = "api"
//   rates = [{ limit = "10/1m", burst = 5 }]
//   identity = "header:X-API-Key"
//
// Every problem is reported (not only the first), one per line, as
//   <file>:<line>:<column>: <key> = <value>: <what is wrong>
// The full reference is docs/API.md ("Configuration").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "log.h"
#include "pacer/http/response.h"
#include "pacer/http/rule.h"
#include "pacer/limiter.h"
#include "pacer/open_store.h"
#include "pacer/rate.h"
#include "pacer/redis/redis_store.h"

namespace pacer::pacerd {

struct ListenAddress {
  std::string host;
  std::uint16_t port = 0;
  // "127.0.0.1:9090", "[::1]:9090"
  std::string to_string() const;
  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

struct PolicyConfig {
  Policy policy;
  // Identity selectors for /v1/auth, tried in order: "client_ip", "api_key", "header:<Name>".
  std::vector<std::string> identity;
  bool shadow = false;
  // A request without the identity: 401 (refuse) or one shared bucket (docs/DESIGN.md §7).
  http::MissingIdentity missing_identity = http::MissingIdentity::kRefuse;
};

// [auth]: how /v1/auth answers a refusal (docs/API.md, "GET /v1/auth/{policy}"). nginx's
// auth_request understands only 2xx, 401 and 403; forward-auth proxies (Traefik ForwardAuth,
// Envoy ext_authz over HTTP, Caddy forward_auth) hand the status to the client as it is.
struct AuthAnswers {
  unsigned deny_status = 403;         // a limit said no: 403 or 429
  unsigned unavailable_status = 403;  // the store failed, fail mode closed: 403 or 503
  // The body of a denial: nullopt for the HTTP layer's {"detail":"rate_limited",...}.
  std::optional<std::string> deny_body;
  std::string deny_content_type = "application/json";
};

struct Config {
  std::string file;  // where it was read from (for messages and reloads)

  // [server]
  ListenAddress listen{"127.0.0.1", 9090};
  unsigned threads = 0;  // 0 = one per core
  std::size_t max_connections = 0;
  std::chrono::seconds idle_timeout{30};
  std::chrono::seconds shutdown_grace{5};
  std::size_t max_body_bytes = std::size_t{1024} * 1024;
  // Slow bodies and the per-client cap (pacer/beast/server.h, "Slow bodies").
  std::chrono::seconds body_timeout{20};
  std::size_t min_body_rate = 500;
  std::size_t max_connections_per_client = 0;
  // The file watch reads a changed file once it stayed the same this long (file_watch.h).
  std::chrono::milliseconds watch_settle{2000};
  std::string trusted_proxies = "loopback";
  int ipv6_prefix = 128;
  // server.shadow = true: every policy is a shadow policy (decides, counts, logs, enforces
  // nothing); reloadable, to try a configuration in production before it enforces.
  bool shadow = false;

  // [admin]: when set, /metrics, /v1/config and /v1/reset are served only there.
  std::optional<ListenAddress> admin_listen;
  // admin.on_main = true: serve them on server.listen even when it is not a loopback address.
  bool admin_on_main = false;

  // [store]
  std::string store_url = "memory";
  FailMode fail_mode = FailMode::kOpen;
  std::chrono::milliseconds timeout{50};
  std::chrono::milliseconds connect_timeout{1000};
  std::string key_prefix = "pacerd";
  std::size_t max_keys = 1'000'000;  // in-process store (and the local fallback)
  redis::RedisScript store_script = redis::RedisScript::kAuto;  // PACER.GCRA or the Lua script
  // [store.tls]: CA, client certificate and key, server name; for rediss:// URLs only.
  redis::TlsOptions tls;

  // [api]
  std::size_t max_batch = 1000;
  std::size_t max_key_bytes = 1024;
  // Batch items at the store at once: all batches of the process, and one batch (item_window.h).
  std::size_t batch_in_flight = 1024;
  std::size_t batch_in_flight_per_request = 128;

  // [headers]
  http::HeaderOptions headers;

  // [auth]
  AuthAnswers auth;

  // [log]: --log-format overrides it.
  log::Format log_format = log::Format::kLogfmt;

  std::vector<PolicyConfig> policies;

  // Where each key of [server], [admin], [store], [store.tls], [api] and [log] was written
  // ("server.listen" -> "3:10"), so a refused reload can point at the line.
  std::map<std::string, std::string, std::less<>> locations;

  bool memory_store() const { return is_memory_url(store_url); }
  // Whether /metrics, /v1/config and /v1/reset are served on the main listener: only without
  // an [admin] listener, and then when server.listen is a loopback address (only local
  // processes can reach it) or admin.on_main = true says so.
  bool admin_endpoints_on_main() const;
  // The settings a reload cannot change (listeners, threads, the store and its options),
  // named with where `next` sets them and their old and new values
  // ("p.toml:2:10: server.listen (127.0.0.1:9090 -> 127.0.0.1:9091)"); empty when none differ.
  std::vector<std::string> restart_needed(const Config& next) const;
  // A human-readable summary (pacerd --check-config).
  std::string summary() const;
};

// All problems of a file, one per line.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What identifies one version of a file: a change of any part means it was rewritten.
struct FileStamp {
  std::int64_t mtime_ns = 0;
  std::uint64_t inode = 0;
  std::uint64_t device = 0;
  std::int64_t size = -1;  // -1: the file could not be examined
  bool operator==(const FileStamp&) const = default;
};

// The stamp of `path` now (size -1 when it cannot be examined).
FileStamp stamp_file(const std::string& path);

// A configuration file's text and the stamp it had when it was read (taken before reading, so
// a write that races the read shows as a change later).
struct ConfigFile {
  std::string text;
  FileStamp stamp;
};

// Reads `path` (at most 4 MiB). Throws ConfigError naming the file.
ConfigFile read_config_file(const std::string& path);

struct LoadedConfig {
  Config config;
  ConfigFile file;
};

// Reads and validates `path`. Throws ConfigError.
LoadedConfig load_config(const std::string& path);
// Validates `text` as if read from `path`. Throws ConfigError.
Config parse_config(std::string_view text, const std::string& path);

// The store URL with any password masked ("memory" as is).
std::string display_store_url(const std::string& url);

// A short digest of a policy's rates ("r" + 12 hex digits): storage keys carry it, so a policy
// whose rates change on reload starts from fresh state instead of misreading the old one.
std::string rates_digest(const Policy& policy);

}  // namespace pacer::pacerd
