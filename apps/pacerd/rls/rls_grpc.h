// pacerd's gRPC listener for Envoy's rate limit service (docs/API.md, "Envoy rate limit
// service"): envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit and the standard
// grpc.health.v1.Health. Glue only: it parses protobuf into an RlsRequest, decides through
// rls::decide (the one Limiter) and maps the RlsAnswer back; nothing here decides.
//
//   RlsServer server(options, [&] { return current_snapshot(); });
//   server.start();                      // throws naming the address when it cannot listen
//   server.set_serving(store_ready);     // what Health/Check answers
//   server.shutdown(5s);                 // in-flight RPCs answered, then closed
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "pacer/limiter.h"
#include "rls_config.h"
#include "rls_metrics.h"

namespace pacer::pacerd::rls {

// What a store failure answered by a closed fail mode becomes on the wire: Envoy's
// `failure_mode_deny` decides what it does with an error status.
enum class UnavailableAnswer { kUnavailableStatus, kOverLimit };

struct RlsServerOptions {
  std::string address = "127.0.0.1:8081";  // host:port; port 0 = any free port
  int max_concurrent_streams = 1000;       // per connection
  int max_message_bytes = 1 << 20;         // requests larger are refused by gRPC
  UnavailableAnswer unavailable = UnavailableAnswer::kUnavailableStatus;
  bool ratelimit_headers = false;    // RateLimit-Limit/-Remaining/-Reset, Retry-After
  bool x_ratelimit_headers = false;  // envoyproxy/ratelimit's x-ratelimit-* names instead
};

// The configuration in force for one RPC: the Limiter, the descriptors, the key prefix, and
// `keep`, which owns them until the RPC's checks have answered.
struct RlsSnapshot {
  const Limiter* limiter = nullptr;
  const RlsConfig* config = nullptr;
  std::string key_prefix;
  std::shared_ptr<const void> keep;
  RlsMetrics* metrics = nullptr;  // counted into when set; must outlive the server
};

struct RlsServerStats {
  std::uint64_t requests = 0, invalid = 0, over_limit = 0, unavailable = 0;
};

class RlsServer {
 public:
  RlsServer(RlsServerOptions options, std::function<RlsSnapshot()> snapshot);
  ~RlsServer();  // shutdown(0s) when still running
  RlsServer(const RlsServer&) = delete;
  RlsServer& operator=(const RlsServer&) = delete;

  void start();
  int port() const;  // the bound port (after start)
  void set_serving(bool serving);
  // Stops accepting; RPCs in flight get until `grace` to be answered, then are cancelled.
  void shutdown(std::chrono::milliseconds grace);
  RlsServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pacer::pacerd::rls
