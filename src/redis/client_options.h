// What a Client's options mean for its parts: the checks the constructor makes, and the settings
// of its connections, its RequestFlow and its Sentinel monitor.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "connection.h"
#include "pacer/redis/client.h"
#include "request_flow.h"
#include "sentinel_monitor.h"

namespace pacer::redis::internal {

// Throws std::invalid_argument naming the first unusable option (no host, several hosts without
// cluster mode, max_in_flight 0, a timeout <= 0, max_redirects < 0).
void check_client_options(const ClientOptions& options);

// The settings of every connection to a data node (the host and port are set per node).
ConnectionConfig connection_config(const ClientOptions& options,
                                   std::shared_ptr<boost::asio::ssl::context> tls);

RequestFlow::Options flow_options(const ClientOptions& options);

// The monitor of `options.url` (Sentinel mode), from the data nodes' connection settings.
SentinelMonitorConfig sentinel_config(const ClientOptions& options, const ConnectionConfig& data);

}  // namespace pacer::redis::internal
