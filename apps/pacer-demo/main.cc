// pacer-demo — serves the demo routes on the in-process store.
//
//   pacer-demo                          # 127.0.0.1:8000, settings from the environment
//   RATE_PERMITS=100 pacer-demo --port 9000 --use-middleware true
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <exception>

#include "command_line.h"
#include "demo_app.h"
#include "guarded_main.h"
#include "pacer/open_store.h"
#include "pacer/text.h"

namespace {

int run(int argc, char** argv) {
  using pacer::demo::DemoConfig;
  DemoConfig config;
  try {
    // Read before any thread starts, so getenv's lack of thread safety cannot matter.
    config = pacer::demo::config_from_env(
        [](const char* name) { return std::getenv(name); });  // NOLINT(concurrency-mt-unsafe)
  } catch (const std::exception& e) {
    spdlog::error("pacer-demo: {}", e.what());
    return 2;
  }

  CLI::App cli{"pacer-demo: the Pacer demo service (settings from the environment; flags win)"};
  std::string fail_mode(pacer::to_string(config.fail_mode));
  cli.add_option("--service-name", config.service_name, "SERVICE_NAME: key prefix and name");
  cli.add_option("--redis-url", config.redis_url, "REDIS_URL: unset = in-process store");
  cli.add_option("--rate-permits", config.rate.permits, "RATE_PERMITS for /limited")
      ->check(CLI::PositiveNumber);
  cli.add_option("--rate-period", config.rate.period, "RATE_PERIOD, e.g. 1m, 10s, 1.5s");
  cli.add_option("--rate-burst", config.rate.burst, "RATE_BURST")->check(CLI::NonNegativeNumber);
  cli.add_option("--fail-mode", fail_mode, "FAIL_MODE: open, closed or local");
  cli.add_option("--use-middleware", config.use_middleware, "USE_MIDDLEWARE: true or false");
  cli.add_option("--middleware-permits", config.middleware.permits, "MIDDLEWARE_PERMITS")
      ->check(CLI::PositiveNumber);
  cli.add_option("--middleware-period", config.middleware.period, "MIDDLEWARE_PERIOD");
  cli.add_option("--middleware-burst", config.middleware.burst, "MIDDLEWARE_BURST")
      ->check(CLI::NonNegativeNumber);
  cli.add_option("--host", config.host, "HOST to listen on");
  cli.add_option("--port", config.port, "PORT to listen on (0 = any free port)");
  cli.add_option("--trusted-proxies", config.trusted_proxies,
                 "TRUSTED_PROXIES: CIDRs whose forwarding headers are believed");
  cli.add_option("--threads", config.threads, "THREADS serving requests (0 = one per core)")
      ->check(CLI::Range(0, 256));
  cli.add_option("--max-connections", config.max_connections,
                 "MAX_CONNECTIONS open at once (0 = from the descriptor limit)")
      ->check(CLI::Range(0, 10'000'000));
  cli.add_option("--max-connections-per-client", config.max_connections_per_client,
                 "MAX_CONNECTIONS_PER_CLIENT from one address (0 = no cap)")
      ->check(CLI::Range(0, 10'000'000));
  int redis_timeout_ms = static_cast<int>(config.redis_timeout.count());
  cli.add_option("--redis-timeout-ms", redis_timeout_ms, "REDIS_TIMEOUT_MS per decision")
      ->check(CLI::Range(1, 60'000));
  if (auto status = pacer::apps::parse_command_line(cli, "pacer-demo", argc, argv)) return *status;

  try {
    config.fail_mode = pacer::parse_fail_mode(fail_mode);
    config.redis_timeout = std::chrono::milliseconds(redis_timeout_ms);
    pacer::demo::validate(config);
    std::unique_ptr<pacer::demo::DemoApp> app;
    auto server_or_error = [&] {
      try {
        return std::make_unique<pacer::beast::Server>(
            pacer::beast::ServerOptions{
                .host = config.host,
                .port = config.port,
                .threads = config.threads,
                .handle_signals = true,
                .max_connections = config.max_connections,
                .max_connections_per_client = config.max_connections_per_client},
            [&app](pacer::beast::Request&& req, const pacer::beast::ClientEndpoint& conn,
                   pacer::beast::Send send) {
              app->handle(std::move(req), conn, std::move(send));
            });
      } catch (const std::exception& e) {
        // Name the settings the operator can change, not only the socket call that failed.
        throw std::runtime_error("cannot listen on HOST '" + pacer::printable(config.host) +
                                 "' PORT " + std::to_string(config.port) + ": " + e.what());
      }
    };
    std::unique_ptr<pacer::beast::Server> server_owner = server_or_error();
    pacer::beast::Server& server = *server_owner;
    // Redis clients run on the server's worker threads: no hand-off between HTTP and Redis.
    std::vector<boost::asio::io_context*> workers;
    for (unsigned i = 0; i < server.threads(); ++i) workers.push_back(&server.io_context(i));
    app = std::make_unique<pacer::demo::DemoApp>(config, workers);
    app->set_server(&server);
    spdlog::info("pacer-demo '{}' listening on http://{}:{} ({} threads, {})", config.service_name,
                 config.host, server.port(), server.threads(),
                 config.redis_url.empty() || pacer::is_memory_url(config.redis_url)
                     ? std::string("in-process store")
                     : "Redis " + pacer::redis::parse_redis_url(config.redis_url).to_string());
    server.run();
    app.reset();  // after the workers stopped, before their io_contexts go
    spdlog::info("pacer-demo stopped");
  } catch (const std::exception& e) {
    spdlog::error("pacer-demo: {}", e.what());
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return pacer::apps::guarded_main("pacer-demo", run, argc, argv); }
