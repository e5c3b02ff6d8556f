// pacer-demo: the C++ counterpart of the original FastAPI Pacer test service.
//
// Configured from the environment (flags override, see main.cc); routes and bodies follow the
// original so its clients and tests work unchanged. Per-route 429s use the nested body,
// middleware 429s the flat one.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "pacer/beast/limit.h"
#include "pacer/beast/server.h"
#include "pacer/http/http_limiter.h"
#include "pacer/limiter.h"
#include "pacer/memory_store.h"
#include "pacer/redis/redis_store.h"

namespace pacer::demo {

struct RateSettings {
  std::int64_t permits;
  std::string period;  // as given, e.g. "1m"
  std::int64_t burst;
};

struct DemoConfig {
  std::string service_name = "default";
  std::string redis_url;  // empty: in-process store
  std::chrono::milliseconds redis_timeout{50};
  RateSettings rate{10, "1m", 5};
  FailMode fail_mode = FailMode::kOpen;
  bool use_middleware = false;
  RateSettings middleware{100, "1m", 20};
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string trusted_proxies = "loopback";
  unsigned threads = 0;
  std::size_t max_connections = 0;  // 0 = derived from the descriptor limit (see beast/server.h)
  std::size_t max_connections_per_client = 0;  // 0 = none (see beast/server.h)
};

// Reads SERVICE_NAME, REDIS_URL, RATE_PERMITS, RATE_PERIOD, RATE_BURST, FAIL_MODE,
// USE_MIDDLEWARE, MIDDLEWARE_PERMITS, MIDDLEWARE_PERIOD, MIDDLEWARE_BURST, HOST, PORT,
// TRUSTED_PROXIES, THREADS, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT and REDIS_TIMEOUT_MS
// through `getenv`. Throws
// std::invalid_argument naming the variable and its bad value.
DemoConfig config_from_env(const std::function<const char*(const char*)>& getenv);

// Checks everything that can be checked before serving: rates, durations, proxies, the Redis URL,
// the service name as a key prefix, threads, and HOST (an IP address or a name that resolves);
// every string must be valid UTF-8 without control characters. Throws std::invalid_argument
// naming the variable (or flag) and its bad value.
void validate(const DemoConfig& config);

class DemoApp {
 public:
  // With `io` (the HTTP server's worker contexts), the Redis store runs one client on each, so
  // a request and its Redis round trip stay on one thread. The contexts must not be running
  // yet and must outlive the DemoApp (destroy it after they stop).
  explicit DemoApp(DemoConfig config, const std::vector<boost::asio::io_context*>& io = {});
  ~DemoApp();

  // The request handler to give to pacer::beast::Server.
  void handle(beast::Request&& request, const beast::ClientEndpoint& client, beast::Send send);

  const DemoConfig& config() const { return config_; }
  Limiter& limiter() { return *limiter_; }

  // The server whose connection counters /metrics/prometheus reports (open, shed, refused,
  // accept failures, escaped exceptions). Set it before the server starts; it must outlive
  // the DemoApp's handling of requests.
  void set_server(const beast::Server* server) { server_ = server; }

 private:
  beast::Response route(const beast::Request& request, const http::RequestView& view) const;

  // The bodies that depend only on the configuration, rendered once: a request copies its
  // route's instead of building and serialising a JSON value.
  struct Bodies {
    explicit Bodies(const DemoConfig& config);
    std::string root;     // GET /
    std::string limited;  // GET /limited
    std::string custom;   // GET /custom
    std::string api_key;  // GET /api-key
  };

  DemoConfig config_;
  Bodies bodies_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Limiter> limiter_;
  std::unique_ptr<http::HttpLimiter> http_;
  beast::Handler handler_;  // the routes behind the limits
  const beast::Server* server_ = nullptr;
};

}  // namespace pacer::demo
