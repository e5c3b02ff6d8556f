// pacerd's Service: the store, the configuration in force and its reloads, and the routes
// (docs/DESIGN.md §8). The handlers live in api_handlers.cc (/v1/check, /v1/peek, /v1/reset),
// auth.cc (/v1/auth) and reporting.cc (/metrics, /v1/config, /v1/policies).
#include "service.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "log.h"
#include "pacer/open_store.h"
#include "pacer/text.h"
#include "runtime.h"

namespace pacer::pacerd {

using nlohmann::json;

namespace {

// One request in flight: counted while it lives, until released (or destroyed unanswered).
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<std::atomic<std::int64_t>> count) : count_(std::move(count)) {
    count_->fetch_add(1, std::memory_order_relaxed);
  }
  InFlight(InFlight&&) noexcept = default;
  InFlight& operator=(InFlight&&) = delete;
  ~InFlight() { release(); }
  void release() {
    if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
    count_.reset();
  }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> count_;
};

}  // namespace

Service::Service(Config config, ConfigFile file, const std::vector<boost::asio::io_context*>& io)
    : batch_window_(std::make_shared<ItemWindow>(config.batch_in_flight)),
      config_text_(std::move(file.text)),
      file_watch_(file.stamp, config.watch_settle) {
  store_ = open_store(config.store_url, {.memory = {.max_keys = config.max_keys},
                                         .redis = {.tls = config.tls,
                                                   .connect_timeout = config.connect_timeout,
                                                   .command_timeout = config.timeout,
                                                   .script = config.store_script},
                                         .io = io});
  runtime_.store(build(std::move(config), nullptr));
}

Service::~Service() {
  // Pending checks are answered now, while what their completions use still exists.
  store_->shutdown();
}

std::shared_ptr<PolicyStats> Service::stats_for(const std::string& name) {
  auto& slot = stats_[name];
  if (!slot) slot = std::make_shared<PolicyStats>();
  return slot;
}

std::shared_ptr<const Service::Runtime> Service::build(Config config, const Runtime* previous) {
  const FailMode mode = config.fail_mode;
  Limiter limiter =
      previous != nullptr && previous->config.fail_mode == mode
          ? previous->limiter
          : Limiter(*store_, {.fail_mode = mode, .local_store = {.max_keys = config.max_keys}});
  auto runtime = std::make_shared<Runtime>(
      Runtime{.config = {},
              .version = previous ? previous->version + 1 : 1,
              .loaded_at = std::chrono::system_clock::now(),
              .limiter = limiter,
              .policies = {},
              .limits = {.max_batch = config.max_batch, .max_key_bytes = config.max_key_bytes}});
  std::lock_guard lock(mutex_);
  for (const PolicyConfig& p : config.policies) {
    const std::string& name = p.policy.name();
    runtime->policies.emplace(name, compile_policy(p, config, stats_for(name)));
  }
  runtime->config = std::move(config);
  return runtime;
}

bool Service::file_settled(std::chrono::steady_clock::time_point now) {
  const FileStamp stamp = stamp_file(runtime_.load()->config.file);
  std::lock_guard lock(mutex_);
  return file_watch_.observe(stamp, now);
}

void Service::file_seen() {
  const FileStamp stamp = stamp_file(runtime_.load()->config.file);
  std::lock_guard lock(mutex_);
  file_watch_.loaded(stamp);
}

// Every call writes one log line, whatever the outcome (docs/OPERATIONS.md, "pacerd", Reload):
// an operator who sends SIGHUP always learns what it did.
bool Service::reload(std::string_view why) {
  static std::mutex reloading;  // one reload at a time (SIGHUP and the file watch)
  std::lock_guard one(reloading);
  const auto current = runtime_.load();
  const std::string& path = current->config.file;
  {
    std::lock_guard lock(mutex_);
    last_reload_attempt_ = std::chrono::system_clock::now();
  }
  auto failed = [&](const std::string& error, bool again) {
    log::error("config_reload_failed", {{"trigger", why},
                                        {"result", again ? "rejected_again" : "rejected"},
                                        {"running_version", current->version},
                                        {"error", error}});
    return false;
  };
  try {
    std::string text = read_config_file(path).text;
    {
      std::lock_guard lock(mutex_);
      if (text == config_text_) {
        // The file says what is running (also after a refused file was put back).
        last_attempted_text_ = text;
        last_reload_error_.clear();
        log::info("config_unchanged",
                  {{"trigger", why}, {"result", "unchanged"}, {"version", current->version}});
        return true;
      }
      // Text already refused gives the same answer: it is not parsed again, but said again.
      if (text == last_attempted_text_) return failed(last_reload_error_, true);
      last_attempted_text_ = text;
    }
    Config next = parse_config(text, path);
    const auto restart = current->config.restart_needed(next);
    if (!restart.empty()) {
      std::string list;
      for (const auto& r : restart)
        list.append(list.empty() ? "" : "\n").append(r).append(": only changes on a restart");
      throw ConfigError(list);
    }
    // Say what happens to each policy's counts.
    std::string changes;
    for (const auto& p : next.policies) {
      const RuntimePolicy* old = current->find(p.policy.name());
      const char* what = old == nullptr ? "added"
                         : current->config.key_prefix != next.key_prefix
                             ? "key_prefix_changed_counts_reset"
                         : rates_digest(old->config.policy) == rates_digest(p.policy)
                             ? "kept"
                             : "rates_changed_counts_reset";
      changes += fmt::format("{}{}={}", changes.empty() ? "" : " ", p.policy.name(), what);
    }
    for (const auto& [name, p] : current->policies) {
      bool still = false;
      for (const auto& q : next.policies) still = still || q.policy.name() == name;
      if (!still) changes += fmt::format(" {}=removed", name);
    }
    auto runtime = build(std::move(next), current.get());
    const auto version = runtime->version;
    runtime_.store(std::move(runtime));
    {
      std::lock_guard lock(mutex_);
      config_text_ = std::move(text);
      last_reload_error_.clear();
      ++reloads_ok_;
    }
    log::info(
        "config_reloaded",
        {{"trigger", why}, {"result", "applied"}, {"version", version}, {"policies", changes}});
    return true;
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      last_reload_error_ = e.what();
      ++reloads_failed_;
    }
    return failed(e.what(), false);
  }
}

void Service::set_servers(const beast::Server* main, const beast::Server* admin) {
  main_server_ = main;
  admin_server_ = admin;
}

std::uint64_t Service::config_version() const { return runtime_.load()->version; }

std::string Service::last_reload_error() const {
  std::lock_guard lock(mutex_);
  return last_reload_error_;
}

void Service::handle(beast::Request&& request, const beast::ClientEndpoint& connection,
                     beast::Send send, Listener listener) {
  const unsigned version = request.version();
  // Counted from here until the answer is handed to the server (pacerd_http_requests_in_flight).
  send = [in_flight = InFlight(requests_in_flight_),
          inner = std::move(send)](beast::Response&& res) mutable {
    inner(std::move(res));
    in_flight.release();
  };
  guarded(send, version, [&] {
    std::shared_ptr<const Runtime> runtime = runtime_.load();
    const std::string_view target(request.target().data(), request.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const auto method = request.method();
    const bool admin_elsewhere =
        listener == Listener::kMain && !runtime->config.admin_endpoints_on_main();
    auto only = [&](bhttp::verb allowed) {
      if (method == allowed) return true;
      auto res =
          error_response(bhttp::status::method_not_allowed, version, "method_not_allowed", "",
                         fmt::format("{} {} is not served; use {}",
                                     printable(std::string_view(request.method_string().data(),
                                                                request.method_string().size())),
                                     printable(path), std::string(bhttp::to_string(allowed))));
      res.set(bhttp::field::allow, bhttp::to_string(allowed));
      send(std::move(res));
      return false;
    };

    if (path == "/v1/check") {
      if (only(bhttp::verb::post)) check(std::move(runtime), request, std::move(send), false);
    } else if (path.substr(0, 9) == "/v1/auth/") {
      auth(std::move(runtime), path.substr(9), request, connection, std::move(send));
    } else if (path == "/v1/peek") {
      if (only(bhttp::verb::post)) check(std::move(runtime), request, std::move(send), true);
    } else if (path == "/v1/reset" && !admin_elsewhere) {
      if (only(bhttp::verb::post)) reset(std::move(runtime), request, std::move(send));
    } else if (path == "/v1/policies") {
      if (only(bhttp::verb::get)) send(policies_json(*runtime, version));
    } else if (path == "/v1/config" && !admin_elsewhere) {
      if (only(bhttp::verb::get)) send(config_json(*runtime, version));
    } else if (path == "/metrics" && !admin_elsewhere) {
      if (only(bhttp::verb::get)) send(metrics(*runtime, version));
    } else if (path == "/health") {
      if (only(bhttp::verb::get)) send(respond(bhttp::status::ok, version, R"({"status":"ok"})"));
    } else if (path == "/ready") {
      if (!only(bhttp::verb::get)) return;
      const bool connected = store_->connected();
      const bool ready = connected || runtime->config.fail_mode != FailMode::kClosed;
      send(respond(ready ? bhttp::status::ok : bhttp::status::service_unavailable, version,
                   json{{"status", ready ? "ready" : "unavailable"},
                        {"config_version", runtime->version},
                        {"store", connected ? "connected" : "disconnected"},
                        {"fail_mode", to_string(runtime->config.fail_mode)}}
                       .dump()));
    } else {
      send(error_response(
          bhttp::status::not_found, version, "not_found", "",
          !admin_elsewhere || (path != "/v1/reset" && path != "/v1/config" && path != "/metrics")
              ? "no such endpoint: " + printable(path)
          : runtime->config.admin_listen
              ? "served on the admin listener only"
              : "not served on a non-loopback listener; add [admin] listen = \"127.0.0.1:<port>\" "
                "or admin.on_main = true"));
    }
  });
}

}  // namespace pacer::pacerd
