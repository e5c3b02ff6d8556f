#include "client_options.h"

#include <stdexcept>
#include <utility>

namespace pacer::redis::internal {

void check_client_options(const ClientOptions& options) {
  if (options.url.hosts.empty())
    throw std::invalid_argument("invalid Redis client options: the URL names no host");
  if (!options.url.cluster && !options.url.sentinel && options.url.hosts.size() > 1) {
    throw std::invalid_argument(
        "invalid Redis client options: several hosts need cluster mode (redis+cluster://)");
  }
  if (options.max_in_flight == 0)
    throw std::invalid_argument("invalid Redis client options: max_in_flight must be at least 1");
  if (options.command_timeout.count() <= 0 || options.connect_timeout.count() <= 0)
    throw std::invalid_argument("invalid Redis client options: timeouts must be positive");
  if (options.max_redirects < 0)
    throw std::invalid_argument("invalid Redis client options: max_redirects must be >= 0");
}

ConnectionConfig connection_config(const ClientOptions& options,
                                   std::shared_ptr<boost::asio::ssl::context> tls) {
  ConnectionConfig config;
  config.username = options.url.username;
  config.password = options.url.password;
  config.db = options.url.cluster ? 0 : options.url.db;
  config.tls = std::move(tls);
  config.server_name = options.tls.server_name;
  config.verify_peer = options.tls.verify_peer;
  config.connect_timeout = options.connect_timeout;
  config.command_timeout = options.command_timeout;
  config.reconnect_min = options.reconnect_min;
  config.reconnect_max = options.reconnect_max;
  config.max_in_flight = options.max_in_flight;
  config.breaker_failures = options.breaker_failures;
  config.breaker_open_for = options.breaker_open_for;
  return config;
}

RequestFlow::Options flow_options(const ClientOptions& options) {
  RequestFlow::Options out;
  out.cluster = options.url.cluster;
  out.command_timeout = options.command_timeout;
  out.max_redirects = options.max_redirects;
  out.router.refresh_interval = options.cluster_refresh_interval;
  return out;
}

SentinelMonitorConfig sentinel_config(const ClientOptions& options, const ConnectionConfig& data) {
  SentinelMonitorConfig config;
  config.sentinels = options.url.hosts;
  config.master_name = options.url.master_name;
  config.data = data;
  config.data.host = options.url.hosts.front().first;
  config.data.port = options.url.hosts.front().second;
  config.sentinel = config.data;
  config.sentinel.username = options.url.sentinel_username;
  config.sentinel.password = options.url.sentinel_password;
  config.sentinel.db = 0;
  return config;
}

}  // namespace pacer::redis::internal
