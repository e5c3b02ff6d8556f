// pacerd — Pacer as a service: policies from a TOML file, decisions over HTTP (JSON API and
// nginx auth_request), on the in-process store or Redis.
//
//   pacerd --config /etc/pacerd/pacerd.toml
//   pacerd --check-config pacerd.toml        # validate, print a summary; exit 0 or 2
//
// SIGHUP (or a change of the file, polled every second) reloads the configuration; SIGTERM and
// SIGINT drain and exit 0. See docs/API.md and docs/OPERATIONS.md.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <ctime>
#include <exception>
#include <thread>

#include "command_line.h"
#include "config.h"
#include "guarded_main.h"
#include "log.h"
#include "pacer/text.h"
#include "service.h"

namespace {

using pacer::pacerd::Config;
namespace log = pacer::pacerd::log;

// Loads the file for --config; a file that cannot be used is explained on stderr as
// --check-config does (every problem on its own line, file:line:column first), then rethrown
// for the start_failed log line, which carries the same text escaped (docs/OPERATIONS.md).
pacer::pacerd::LoadedConfig load_or_explain(const std::string& path) {
  try {
    return pacer::pacerd::load_config(path);
  } catch (const pacer::pacerd::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    throw;
  }
}

std::unique_ptr<pacer::beast::Server> listen(const pacer::pacerd::ListenAddress& address,
                                             const Config& config, unsigned threads,
                                             const char* key, pacer::beast::Handler handler) {
  try {
    return std::make_unique<pacer::beast::Server>(
        pacer::beast::ServerOptions{
            .host = address.host,
            .port = address.port,
            .threads = threads,
            .body_limit = config.max_body_bytes,
            .idle_timeout = config.idle_timeout,
            .body_timeout = config.body_timeout,
            .min_body_rate = config.min_body_rate,
            .shutdown_grace = config.shutdown_grace,
            .handle_signals = false,
            .server_header = "pacerd",
            .max_connections = config.max_connections,
            .max_connections_per_client = config.max_connections_per_client},
        std::move(handler));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot listen on ") + key + " = \"" +
                             address.to_string() + "\": " + e.what());
  }
}

int run(int argc, char** argv) {
  // SIGHUP, SIGTERM and SIGINT are for the control thread alone (sigtimedwait): blocked before
  // any thread starts, so every thread created later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App cli{"pacerd: the Pacer rate-limit service"};
  std::string config_path, check_path, log_level = "info", log_format;
  auto* config_option = cli.add_option("--config", config_path, "TOML configuration file");
  auto* check_option =
      cli.add_option("--check-config", check_path, "validate FILE, print a summary, exit 0 or 2");
  config_option->excludes(check_option);
  cli.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  cli.add_option("--log-format", log_format,
                 "logfmt or json (default: log.format in the file, else logfmt)")
      ->check(CLI::IsMember({"logfmt", "json"}));
  if (auto status = pacer::apps::parse_command_line(cli, "pacerd", argc, argv)) return *status;

  // One event per line, every value escaped (log.h): ts=... level=... event=... key=value ...
  const auto level = spdlog::level::from_str(log_level);
  const auto format_flag = log::parse_format(log_format);
  log::install(format_flag.value_or(log::Format::kLogfmt), level);

  if (!check_path.empty()) {
    try {
      const Config config = pacer::pacerd::load_config(check_path).config;
      std::fputs(config.summary().c_str(), stdout);
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "pacerd: --config FILE is required (or --check-config FILE)\n");
    return 2;
  }

  try {
    auto [config, file] = load_or_explain(config_path);
    // The file's log.format, unless --log-format said otherwise; before any thread starts.
    if (!format_flag && config.log_format != log::Format::kLogfmt)
      log::install(config.log_format, level);
    std::unique_ptr<pacer::pacerd::Service> service;
    auto handler = [&service](pacer::pacerd::Listener listener) {
      return [&service, listener](pacer::beast::Request&& request,
                                  const pacer::beast::ClientEndpoint& connection,
                                  pacer::beast::Send send) {
        service->handle(std::move(request), connection, std::move(send), listener);
      };
    };
    // Signals are the control thread's (below): both servers stop together.
    auto server = listen(config.listen, config, config.threads, "server.listen",
                         handler(pacer::pacerd::Listener::kMain));
    std::unique_ptr<pacer::beast::Server> admin;
    if (config.admin_listen) {
      admin = listen(*config.admin_listen, config, 1, "admin.listen",
                     handler(pacer::pacerd::Listener::kAdmin));
    }
    // Redis clients run on the servers' worker threads, the admin listener's too: no hand-off
    // between HTTP and Redis, and a listener that drains keeps the clients its requests wait on
    // (a worker ends its io_context once its last connection is done).
    std::vector<boost::asio::io_context*> workers;
    for (unsigned i = 0; i < server->threads(); ++i) workers.push_back(&server->io_context(i));
    if (admin) workers.push_back(&admin->io_context(0));
    const std::string store = pacer::pacerd::display_store_url(config.store_url);
    const std::string main_address =
        pacer::pacerd::ListenAddress{config.listen.host, server->port()}.to_string();
    const std::string admin_address =
        admin ? pacer::pacerd::ListenAddress{config.admin_listen->host, admin->port()}.to_string()
              : std::string();
    const auto fail_mode = config.fail_mode;
    const std::size_t policies = config.policies.size();
    const bool admin_on_main = config.admin_endpoints_on_main();
    const bool admin_anywhere = admin_on_main || config.admin_listen.has_value();
    const bool explicit_on_main = config.admin_on_main;
    service = std::make_unique<pacer::pacerd::Service>(std::move(config), std::move(file), workers);
    service->set_servers(server.get(), admin.get());
    // The "listening on http://<address> " text is what scripts and tests wait for.
    log::info("started", {{"msg", fmt::format("pacerd listening on http://{} ({} threads)",
                                              main_address, server->threads())},
                          {"listen", main_address},
                          {"threads", server->threads()},
                          {"store", store},
                          {"fail_mode", pacer::to_string(fail_mode)},
                          {"policies", policies},
                          {"config", config_path}});
    if (admin) {
      log::info("admin_started",
                {{"msg", fmt::format("pacerd admin on http://{} (/metrics, /v1/config, /v1/reset)",
                                     admin_address)},
                 {"listen", admin_address}});
    }
    if (admin_on_main) {
      log::warn("admin_on_main",
                {{"listen", main_address},
                 {"because", explicit_on_main ? "admin.on_main = true" : "a loopback address"},
                 {"msg",
                  "/metrics, /v1/config and /v1/reset are served on the main listener; any "
                  "client of it can reset limits; [admin] listen = \"127.0.0.1:<port>\" moves "
                  "them"}});
    } else if (!admin_anywhere) {
      log::warn("admin_disabled",
                {{"listen", main_address},
                 {"msg",
                  "/metrics, /v1/config and /v1/reset are not served: server.listen is not a "
                  "loopback address; add [admin] listen = \"127.0.0.1:<port>\" (or "
                  "admin.on_main = true)"}});
    }

    // Reloads: SIGHUP at once, and a change of the file within a second. SIGTERM / SIGINT:
    // both listeners stop accepting, and in-flight requests finish (up to shutdown_grace).
    std::atomic<bool> stopping{false};
    auto stop_servers = [&] {
      if (admin) admin->stop();
      server->stop();
    };
    std::thread control([&] {
      auto next_poll = std::chrono::steady_clock::now();
      while (!stopping.load()) {
        const timespec wait{.tv_sec = 0, .tv_nsec = 200'000'000};
        siginfo_t info;
        const int signal = ::sigtimedwait(&signals, &info, &wait);
        if (signal == SIGTERM || signal == SIGINT) {
          log::info("stopping", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"},
                                 {"msg", "draining in-flight requests"}});
          stop_servers();
          return;
        }
        try {
          if (signal == SIGHUP) {
            service->file_seen();
            service->reload("SIGHUP");
          }
          if (std::chrono::steady_clock::now() >= next_poll) {
            next_poll = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            if (service->file_settled()) service->reload("file_changed");
          }
        } catch (const std::exception& e) {
          log::error("reload_error", {{"error", e.what()}});
        }
      }
    });
    // Stops and joins everything, in order, on every way out (an exception included).
    auto shut_down = [&] {
      stop_servers();
      stopping = true;
      if (control.joinable()) control.join();
      if (admin) admin->wait();
      server->wait();
      service.reset();  // after the workers stopped, before their io_contexts go
    };
    struct ShutDown {
      decltype(shut_down)& run;
      ~ShutDown() {
        try {
          run();
        } catch (...) {
        }
      }
    } on_exit{shut_down};
    if (admin) admin->start();
    server->start();
    // Until the control thread stops both (SIGTERM / SIGINT).
    if (admin) admin->wait();
    server->wait();
    shut_down();
    log::info("stopped");
  } catch (const std::exception& e) {
    log::error("start_failed", {{"error", e.what()}});
    return 2;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return pacer::apps::guarded_main("pacerd", run, argc, argv); }
