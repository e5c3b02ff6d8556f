#include "service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <array>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api.h"
#include "core/text.h"
#include "pacer/beast/limit.h"
#include "pacer/http/http_limiter.h"
#include "pacer/http/identity.h"
#include "pacer/http/response.h"
#include "pacer/limiter.h"
#include "pacer/memory_store.h"
#include "pacer/metrics.h"
#include "pacer/redis/redis_store.h"

namespace pacer::pacerd {

namespace bhttp = boost::beast::http;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using Bounds = decltype(MetricsSnapshot::kBucketBounds);

// Per-policy counters; kept by name across reloads.
struct PolicyStats {
  std::atomic<std::uint64_t> allowed{0}, denied{0}, shadow_denied{0}, store_errors{0};
  std::array<std::atomic<std::uint64_t>, MetricsSnapshot::kBucketBounds.size() + 1> buckets{};
  std::atomic<std::int64_t> latency_sum_ns{0};
  // Shadow denials are logged at most once a second per policy.
  std::atomic<std::int64_t> next_shadow_log_ns{0};
  std::atomic<std::uint64_t> shadow_unlogged{0};

  void record(const Decision& d, bool shadow, Nanos latency, std::string_view policy,
              std::string_view key) {
    if (d.degraded) store_errors.fetch_add(1, std::memory_order_relaxed);
    if (d.allowed()) {
      allowed.fetch_add(1, std::memory_order_relaxed);
    } else if (shadow) {
      shadow_denied.fetch_add(1, std::memory_order_relaxed);
      const std::int64_t now = Clock::now().time_since_epoch().count();
      std::int64_t next = next_shadow_log_ns.load(std::memory_order_relaxed);
      if (now >= next && next_shadow_log_ns.compare_exchange_strong(next, now + 1'000'000'000)) {
        spdlog::info(
            "event=shadow_deny policy={} key={} outcome={} retry_after_ms={} "
            "unlogged_since_last={}",
            policy, internal::printable(key), to_string(d.outcome),
            http::ceil_milliseconds(d.retry_after), shadow_unlogged.exchange(0));
      } else {
        shadow_unlogged.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      denied.fetch_add(1, std::memory_order_relaxed);
    }
    const auto& bounds = MetricsSnapshot::kBucketBounds;
    std::size_t bucket = 0;
    while (bucket < bounds.size() && latency.count() > bounds[bucket]) ++bucket;
    buckets[bucket].fetch_add(1, std::memory_order_relaxed);
    latency_sum_ns.fetch_add(latency.count(), std::memory_order_relaxed);
  }
};

struct Service::RuntimePolicy {
  PolicyConfig config;
  std::string key_prefix;
  std::string key_scope;  // the rates digest: new rates, new keys
  http::Identity identity;
  std::shared_ptr<PolicyStats> stats;

  // `<prefix>:{<policy>:<rates digest>:<identity>}`; an identity unsafe in a key is hashed.
  std::string storage_key(std::string_view identity_text) const {
    return http::storage_key(key_prefix, config.policy.name(), key_scope, identity_text);
  }
};

struct Service::Runtime {
  Config config;
  std::uint64_t version = 0;
  std::chrono::system_clock::time_point loaded_at;
  Limiter limiter;
  std::map<std::string, RuntimePolicy, std::less<>> policies;
  ApiLimits limits;

  const RuntimePolicy* find(std::string_view name) const {
    const auto it = policies.find(name);
    return it == policies.end() ? nullptr : &it->second;
  }
};

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

std::string iso_time(std::chrono::system_clock::time_point t) {
  if (t == std::chrono::system_clock::time_point{}) return "";
  const std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text.data();
}

beast::Response respond(bhttp::status status, unsigned version, std::string body,
                        std::string_view type = "application/json") {
  beast::Response res{status, version};
  res.set(bhttp::field::content_type, boost::beast::string_view(type.data(), type.size()));
  res.body() = std::move(body);
  return res;
}

beast::Response error_response(bhttp::status status, unsigned version, std::string_view error,
                               std::string field, std::string message) {
  return respond(status, version,
                 error_body(error, ApiError{std::move(field), std::move(message)}));
}

// /v1/check spends, /v1/peek asks what a check would answer (docs/DESIGN.md §2).
void ask(const Limiter& limiter, bool peek, const Policy& policy, std::string_view key,
         std::int64_t cost, Limiter::DecisionHandler done) {
  if (peek) {
    limiter.peek(policy, key, cost, std::move(done));
  } else {
    limiter.check(policy, key, cost, std::move(done));
  }
}

// Answers 500 when what answers a request throws (it must never escape a store's completion).
template <typename Function>
void guarded(beast::Send& send, unsigned version, Function&& function) noexcept {
  try {
    function();
  } catch (const std::exception& e) {
    try {
      spdlog::error("event=internal_error error={}", e.what());
      if (send) {
        send(respond(bhttp::status::internal_server_error, version,
                     R"({"error":"internal_error","field":"","message":"see the server log"})"));
      }
    } catch (...) {
    }
  } catch (...) {
  }
}

http::Identity make_identity(const std::vector<std::string>& selectors, const Config& config) {
  std::vector<http::Identity> parts;
  for (const auto& s : selectors) {
    if (s == "client_ip") {
      parts.push_back(http::Identity::client_ip(
          {.trusted_proxies = http::TrustedProxies::parse(config.trusted_proxies),
           .ipv6_prefix = config.ipv6_prefix}));
    } else if (s == "api_key") {
      parts.push_back(http::Identity::api_key());
    } else {
      // Header values are often credentials: always hashed, never stored or logged in clear.
      parts.push_back(http::Identity::header(s.substr(7), /*hashed=*/true));
    }
  }
  return parts.size() == 1 ? parts.front() : http::Identity::first_of(std::move(parts));
}

json policy_json(const Service::RuntimePolicy& p) {
  json rates = json::array();
  for (const Rate& r : p.config.policy.rates()) {
    rates.push_back({{"limit", fmt::format("{}/{}", r.permits(), format_duration(r.period()))},
                     {"burst", r.burst()},
                     {"emission_interval_ns", r.emission_interval().count()}});
  }
  return {{"name", p.config.policy.name()},
          {"rates", rates},
          {"identity", p.config.identity},
          {"shadow", p.config.shadow},
          {"key_scope", rates_digest(p.config.policy)}};
}

}  // namespace

Service::Service(Config config, ConfigFile file, const std::vector<boost::asio::io_context*>& io)
    : batch_window_(std::make_shared<ItemWindow>(config.batch_in_flight)),
      config_text_(std::move(file.text)),
      file_watch_(file.stamp, config.watch_settle) {
  if (config.memory_store()) {
    store_ = std::make_unique<MemoryStore>(MemoryStoreOptions{.max_keys = config.max_keys});
  } else {
    const redis::RedisStoreOptions options{.url = config.store_url,
                                           .connect_timeout = config.connect_timeout,
                                           .command_timeout = config.timeout,
                                           .script = config.store_script};
    if (io.empty()) {
      store_ = std::make_unique<redis::RedisStore>(options);
    } else {
      store_ = std::make_unique<redis::RedisStore>(options, io);
    }
  }
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
  for (PolicyConfig p : config.policies) {
    const std::string& name = p.policy.name();
    p.shadow = p.shadow || config.shadow;  // server.shadow: nothing is enforced
    runtime->policies.emplace(name, RuntimePolicy{.config = p,
                                                  .key_prefix = config.key_prefix,
                                                  .key_scope = rates_digest(p.policy),
                                                  .identity = make_identity(p.identity, config),
                                                  .stats = stats_for(name)});
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

bool Service::reload(std::string_view why) {
  static std::mutex reloading;  // one reload at a time (SIGHUP and the file watch)
  std::lock_guard one(reloading);
  const auto current = runtime_.load();
  const std::string& path = current->config.file;
  {
    std::lock_guard lock(mutex_);
    last_reload_attempt_ = std::chrono::system_clock::now();
  }
  try {
    std::string text = read_config_file(path).text;
    {
      // The same text as last time gives the same answer: nothing to do (a SIGHUP and the
      // file watch often see one change both).
      std::lock_guard lock(mutex_);
      if (text == last_attempted_text_) return last_reload_error_.empty();
      last_attempted_text_ = text;
      if (text == config_text_) {
        last_reload_error_.clear();
        spdlog::info("event=config_unchanged trigger={} version={}", why, current->version);
        return true;
      }
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
      changes += fmt::format(" {}={}", p.policy.name(), what);
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
    spdlog::info("event=config_reloaded trigger={} version={} policies:{}", why, version, changes);
    return true;
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      last_reload_error_ = e.what();
      ++reloads_failed_;
    }
    spdlog::error("event=config_reload_failed trigger={} running_version={} error=\"{}\"", why,
                  current->version, e.what());
    return false;
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
      auto res = error_response(
          bhttp::status::method_not_allowed, version, "method_not_allowed", "",
          fmt::format("{} {} is not served; use {}",
                      internal::printable(std::string_view(request.method_string().data(),
                                                           request.method_string().size())),
                      internal::printable(path), std::string(bhttp::to_string(allowed))));
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
      if (!only(bhttp::verb::get)) return;
      json list = json::array();
      for (const auto& p : runtime->config.policies)
        list.push_back(policy_json(*runtime->find(p.policy.name())));
      send(respond(bhttp::status::ok, version,
                   json{{"version", runtime->version}, {"policies", list}}.dump()));
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
              ? "no such endpoint: " + internal::printable(path)
          : runtime->config.admin_listen
              ? "served on the admin listener only"
              : "not served on a non-loopback listener; add [admin] listen = \"127.0.0.1:<port>\" "
                "or admin.on_main = true"));
    }
  });
}

void Service::check(std::shared_ptr<const Runtime> runtime, const beast::Request& request,
                    beast::Send send, bool peek) {
  const unsigned version = request.version();
  auto parsed =
      parse_api_request(request.body(), peek ? ApiCall::kPeek : ApiCall::kCheck, runtime->limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    send(respond(bhttp::status::bad_request, version, error_body("invalid_request", *error)));
    return;
  }
  ApiRequest& api = std::get<ApiRequest>(parsed);
  const std::size_t n = api.items.size();
  std::vector<const RuntimePolicy*> policies(n);
  for (std::size_t i = 0; i < n; ++i) {
    policies[i] = runtime->find(api.items[i].policy);
    if (policies[i] == nullptr) {
      std::string names;
      for (const auto& [name, p] : runtime->policies)
        names.append(names.empty() ? "" : ", ").append(name);
      send(error_response(bhttp::status::bad_request, version, "invalid_request",
                          item_field(api, i, "policy"),
                          "unknown policy '" + internal::printable(api.items[i].policy) +
                              "'; configured: " + names));
      return;
    }
  }
  // Only real decisions count in the metrics: a peek, or a cost of 0, takes nothing.
  auto decides = [peek](std::int64_t cost) { return !peek && cost > 0; };

  if (!api.batch) {
    const RuntimePolicy* p = policies[0];
    const std::string key = p->storage_key(api.items[0].key);
    const auto start = Clock::now();
    std::string log_key = p->config.shadow ? key : std::string();
    const bool record = decides(api.items[0].cost);
    // `runtime` rides along: the policy it owns must outlive the completion.
    ask(runtime->limiter, peek, p->config.policy, key, api.items[0].cost,
        [runtime, p, record, start, version, log_key = std::move(log_key),
         send = std::move(send)](const Decision& d) mutable {
          guarded(send, version, [&] {
            const bool shadow = p->config.shadow;
            if (record) {
              p->stats->record(d, shadow, Clock::now() - start, p->config.policy.name(), log_key);
            }
            std::string body;
            append_decision_json(body, p->config.policy.name(), d, shadow);
            auto res = respond(bhttp::status::ok, version, std::move(body));
            // A shadow policy is not enforced: no RateLimit-* that could
            // run to 0 reaches a client (docs/DESIGN.md §8).
            if (d.outcome != Outcome::kUnavailable && !shadow) {
              http::HeaderList headers;
              http::append_headers(p->config.policy, d, runtime->config.headers, headers);
              beast::add_headers(headers, res);
            }
            send(std::move(res));
          });
        });
    return;
  }

  // A batch: items go to the store through the process's window (item_window.h), at most
  // batch_in_flight_per_request of them at a time; answered when the last one completes.
  struct Batch : std::enable_shared_from_this<Batch> {
    std::shared_ptr<const Runtime> runtime;
    std::shared_ptr<ItemWindow> window;
    std::vector<const RuntimePolicy*> policies;
    std::vector<ApiItem> items;
    std::vector<Decision> decisions;
    std::vector<std::string> keys;  // for the log of shadow denials
    std::vector<bool> record;       // a real decision (cost > 0), counted in the metrics
    std::atomic<std::size_t> pending{0};
    std::atomic<std::size_t> next{0};  // the next item to put in the window
    beast::Send send;
    unsigned version = 11;
    bool peek = false;
    Clock::time_point start;

    void submit_next() {
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= items.size()) return;
      window->submit([self = shared_from_this(), i] { self->run(i); });
    }

    void run(std::size_t i) {
      const RuntimePolicy* p = policies[i];
      try {
        const std::string key = p->storage_key(items[i].key);
        if (p->config.shadow) keys[i] = key;
        ask(runtime->limiter, peek, p->config.policy, key, items[i].cost,
            [self = shared_from_this(), i](const Decision& d) {
              self->window->release();
              self->complete(i, d);
            });
      } catch (const std::exception& e) {
        // Validated before; should it happen anyway, the item is answered as unavailable.
        spdlog::error("event=check_failed policy={} error={}", p->config.policy.name(), e.what());
        Decision d;
        d.outcome = Outcome::kUnavailable;
        d.degraded = true;
        window->release();
        complete(i, d);
      }
    }

    void complete(std::size_t i, const Decision& d) {
      decisions[i] = d;
      const RuntimePolicy* policy = policies[i];
      if (record[i]) {
        policy->stats->record(d, policy->config.shadow, Clock::now() - start,
                              policy->config.policy.name(), keys[i]);
      }
      submit_next();
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) finish();
    }

    void finish() {
      guarded(send, version, [&] {
        std::string body = "[";
        body.reserve(decisions.size() * 180);
        for (std::size_t i = 0; i < decisions.size(); ++i) {
          if (i != 0) body += ',';
          append_decision_json(body, policies[i]->config.policy.name(), decisions[i],
                               policies[i]->config.shadow);
        }
        body += ']';
        send(respond(bhttp::status::ok, version, std::move(body)));
      });
    }
  };
  auto batch = std::make_shared<Batch>();
  batch->runtime = runtime;
  batch->window = batch_window_;
  batch->policies = std::move(policies);
  batch->items = std::move(api.items);
  batch->decisions.resize(n);
  batch->keys.resize(n);
  batch->record.resize(n);
  for (std::size_t i = 0; i < n; ++i) batch->record[i] = decides(batch->items[i].cost);
  batch->pending = n;
  batch->send = std::move(send);
  batch->version = version;
  batch->peek = peek;
  batch->start = Clock::now();
  const std::size_t first = std::min(n, runtime->config.batch_in_flight_per_request);
  for (std::size_t i = 0; i < first; ++i) batch->submit_next();
}

void Service::reset(std::shared_ptr<const Runtime> runtime, const beast::Request& request,
                    beast::Send send) {
  const unsigned version = request.version();
  auto parsed = parse_api_request(request.body(), ApiCall::kReset, runtime->limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) {
    send(respond(bhttp::status::bad_request, version, error_body("invalid_request", *error)));
    return;
  }
  ApiRequest& api = std::get<ApiRequest>(parsed);
  const std::size_t n = api.items.size();
  struct Resets {
    std::shared_ptr<const Runtime> runtime;
    std::vector<std::string> policies;
    std::vector<std::error_code> errors;
    std::atomic<std::size_t> pending{0};
    beast::Send send;
    unsigned version = 11;
    bool batch = false;
  };
  auto resets = std::make_shared<Resets>();
  resets->runtime = std::move(runtime);
  const Runtime& rt = *resets->runtime;  // alive while `resets` is, to the end of this call
  resets->errors.resize(n);
  resets->pending = n;
  resets->send = std::move(send);
  resets->version = version;
  resets->batch = api.batch;
  std::vector<const RuntimePolicy*> policies(n);
  for (std::size_t i = 0; i < n; ++i) {
    policies[i] = rt.find(api.items[i].policy);
    if (policies[i] == nullptr) {
      resets->send(error_response(
          bhttp::status::bad_request, version, "invalid_request", item_field(api, i, "policy"),
          "unknown policy '" + internal::printable(api.items[i].policy) + "'"));
      return;
    }
    resets->policies.push_back(api.items[i].policy);
  }
  auto finish = [](Resets& r) {
    guarded(r.send, r.version, [&] {
      json out = json::array();
      bool failed = false;
      for (std::size_t i = 0; i < r.errors.size(); ++i) {
        json item = {{"reset", !r.errors[i]}, {"policy", r.policies[i]}};
        if (r.errors[i]) {
          item["error"] = r.errors[i].message();
          failed = true;
        }
        out.push_back(std::move(item));
      }
      const auto status =
          failed && !r.batch ? bhttp::status::service_unavailable : bhttp::status::ok;
      r.send(respond(status, r.version, (r.batch ? out : out[0]).dump()));
    });
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::string key = policies[i]->storage_key(api.items[i].key);
    rt.limiter.reset(policies[i]->config.policy, key, [resets, i, finish](std::error_code ec) {
      resets->errors[i] = ec;
      if (resets->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) finish(*resets);
    });
  }
}

namespace {

// /v1/auth/{a},{b}: the request passes when every listed policy allows it. The policies are
// checked one after another in the order given, and the first denial answers: a request refused
// by a later policy has spent its token of the earlier ones, as with two auth_request checks in
// a row (docs/API.md). That is what a per-client limit in front of a per-key one wants: every
// attempt counts against the client, whichever key it brings.
constexpr std::size_t kMaxAuthPolicies = 8;

struct AuthChain : std::enable_shared_from_this<AuthChain> {
  std::shared_ptr<const Service::Runtime> runtime;
  std::vector<const Service::RuntimePolicy*> policies;
  std::vector<std::string> keys;  // empty: a shadow policy that cannot count this request
  std::size_t next = 0;
  beast::Send send;
  unsigned version = 11;
  // Of the policies that allowed so far, the one closest to denying: its headers go out.
  const Service::RuntimePolicy* reporter = nullptr;  // never a shadow policy
  Decision reported;
  bool counted_shadow = false;

  void step();
  void decided(const Decision& d, Clock::time_point start);
  void answer_allowed();
  void answer_denied(const Service::RuntimePolicy& p, const Decision& d);
};

void AuthChain::step() {
  while (next < policies.size() && keys[next].empty()) ++next;
  if (next == policies.size()) return answer_allowed();
  const Service::RuntimePolicy* p = policies[next];
  const auto start = Clock::now();
  // The completion owns the chain: the next policy is asked from there (inline on the
  // in-process store, at most kMaxAuthPolicies deep).
  runtime->limiter.check(p->config.policy, keys[next], 1,
                         [self = shared_from_this(), start](const Decision& d) {
                           guarded(self->send, self->version, [&] { self->decided(d, start); });
                         });
}

void AuthChain::decided(const Decision& d, Clock::time_point start) {
  const Service::RuntimePolicy* p = policies[next];
  const bool shadow = p->config.shadow;
  p->stats->record(d, shadow, Clock::now() - start, p->config.policy.name(),
                   shadow ? keys[next] : std::string());
  const Decision told = as_told(d, shadow);
  if (!told.allowed()) return answer_denied(*p, d);
  // A shadow policy is not enforced, so the client hears nothing of it: no RateLimit-* that
  // could run to 0 and no "denied" outcome on an allowed answer (it is counted and logged).
  if (shadow) {
    counted_shadow = true;
  } else if (reporter == nullptr || told.remaining <= reported.remaining) {
    reporter = p;
    reported = told;
  }
  ++next;
  step();
}

void AuthChain::answer_allowed() {
  beast::Response res{bhttp::status::no_content, version};
  http::HeaderList headers;
  if (reporter != nullptr) {
    http::append_headers(reporter->config.policy, reported, runtime->config.headers, headers);
    headers.add("X-Pacer-Outcome", to_string(reported.outcome));
  } else {
    // Only shadow policies: allowed, or none of them could count the request.
    headers.add("X-Pacer-Outcome", counted_shadow ? "allowed" : "identity_missing");
  }
  beast::add_headers(headers, res);
  send(std::move(res));
}

void AuthChain::answer_denied(const Service::RuntimePolicy& p, const Decision& d) {
  // 403: auth_request denies with it (docs/API.md; examples/nginx turns it into 429).
  beast::Response res = respond(bhttp::status::forbidden, version,
                                d.outcome == Outcome::kUnavailable
                                    ? http::unavailable_body()
                                    : http::too_many_requests_body(d, http::BodyStyle::kFlat));
  http::HeaderList headers;
  if (d.outcome == Outcome::kUnavailable) {
    headers.add_number("Retry-After", http::kUnavailableRetryAfter.count());
  } else {
    http::append_headers(p.config.policy, d, runtime->config.headers, headers);
    // The body's retry_after_ms for a proxy that writes its own 429 (examples/nginx).
    if (d.outcome == Outcome::kDenied)
      headers.add_number("X-Pacer-Retry-After-Ms", http::ceil_milliseconds(d.retry_after));
  }
  headers.add("X-Pacer-Outcome", to_string(d.outcome));
  if (policies.size() > 1) headers.add("X-Pacer-Policy", p.config.policy.name());
  beast::add_headers(headers, res);
  send(std::move(res));
}

}  // namespace

void Service::auth(std::shared_ptr<const Runtime> runtime, std::string_view names,
                   const beast::Request& request, const beast::ClientEndpoint& connection,
                   beast::Send send) {
  const unsigned version = request.version();
  auto chain = std::make_shared<AuthChain>();
  for (std::string_view rest = names;;) {
    const auto comma = rest.find(',');
    const std::string_view name = rest.substr(0, comma);
    const RuntimePolicy* p = runtime->find(name);
    if (p == nullptr) {
      spdlog::warn("event=auth_unknown_policy policy={}", internal::printable(name));
      send(error_response(bhttp::status::not_found, version, "unknown_policy", "policy",
                          "no policy '" + internal::printable(name) + "'"));
      return;
    }
    if (std::find(chain->policies.begin(), chain->policies.end(), p) != chain->policies.end() ||
        chain->policies.size() == kMaxAuthPolicies) {
      send(error_response(bhttp::status::bad_request, version, "invalid_request", "policy",
                          "'" + internal::printable(names) + "': at most " +
                              std::to_string(kMaxAuthPolicies) +
                              " policies, each named once, separated by ','"));
      return;
    }
    chain->policies.push_back(p);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  // Every identity before any token is spent: a request that cannot be counted by an enforced
  // policy is refused whole.
  const beast::BeastRequestView view(request, connection);
  for (const RuntimePolicy* p : chain->policies) {
    const std::optional<std::string> identity = p->identity(view);
    if (!identity && !p->config.shadow) {
      // No API key (or whatever the policy counts by): 401, which auth_request passes on.
      auto res = error_response(bhttp::status::unauthorized, version, "identity_missing",
                                "identity", "the request carries no " + p->config.identity.front());
      res.set("X-Pacer-Outcome", "identity_missing");
      send(std::move(res));
      return;
    }
    // A shadow policy never stops a request, also not one it cannot count: it is skipped.
    chain->keys.push_back(identity ? p->storage_key(*identity) : std::string());
  }
  chain->runtime = std::move(runtime);
  chain->send = std::move(send);
  chain->version = version;
  chain->step();
}

beast::Response Service::metrics(const Runtime& runtime, unsigned version) const {
  std::string text;
  auto out = std::back_inserter(text);
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(out, "# HELP pacerd_{0} {2}\n# TYPE pacerd_{0} {1}\n", name, type, help);
  };
  family("decisions_total", "counter",
         "Decisions by policy and result (shadow_denied: denied by a shadow policy, answered "
         "allowed).");
  for (const auto& [name, p] : runtime.policies) {
    const PolicyStats& s = *p.stats;
    fmt::format_to(out, "pacerd_decisions_total{{policy=\"{}\",result=\"allowed\"}} {}\n", name,
                   s.allowed.load());
    fmt::format_to(out, "pacerd_decisions_total{{policy=\"{}\",result=\"denied\"}} {}\n", name,
                   s.denied.load());
    fmt::format_to(out, "pacerd_decisions_total{{policy=\"{}\",result=\"shadow_denied\"}} {}\n",
                   name, s.shadow_denied.load());
  }
  family("store_errors_total", "counter",
         "Decisions the store could not make (answered by the fail mode).");
  for (const auto& [name, p] : runtime.policies) {
    fmt::format_to(out, "pacerd_store_errors_total{{policy=\"{}\"}} {}\n", name,
                   p.stats->store_errors.load());
  }
  family("decision_duration_seconds", "histogram",
         "Time from asking the limiter to its answer, per policy.");
  for (const auto& [name, p] : runtime.policies) {
    std::uint64_t cumulative = 0;
    const auto& bounds = MetricsSnapshot::kBucketBounds;
    for (std::size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += p.stats->buckets[i].load();
      if (i < bounds.size()) {
        fmt::format_to(out,
                       "pacerd_decision_duration_seconds_bucket{{policy=\"{}\",le=\"{}\"}} {}\n",
                       name, static_cast<double>(bounds[i]) / 1e9, cumulative);
      } else {
        fmt::format_to(out,
                       "pacerd_decision_duration_seconds_bucket{{policy=\"{}\",le=\"+Inf\"}} {}\n",
                       name, cumulative);
      }
    }
    fmt::format_to(out, "pacerd_decision_duration_seconds_sum{{policy=\"{}\"}} {}\n", name,
                   static_cast<double>(p.stats->latency_sum_ns.load()) / 1e9);
    fmt::format_to(out, "pacerd_decision_duration_seconds_count{{policy=\"{}\"}} {}\n", name,
                   cumulative);
  }
  std::uint64_t ok = 0, failed = 0;
  bool last_ok = true;
  {
    std::lock_guard lock(mutex_);
    ok = reloads_ok_;
    failed = reloads_failed_;
    last_ok = last_reload_error_.empty();
  }
  family("config_version", "gauge", "Version of the configuration in force (1 at start).");
  fmt::format_to(out, "pacerd_config_version {}\n", runtime.version);
  family("config_reloads_total", "counter", "Reloads by result.");
  fmt::format_to(out, "pacerd_config_reloads_total{{result=\"ok\"}} {}\n", ok);
  fmt::format_to(out, "pacerd_config_reloads_total{{result=\"error\"}} {}\n", failed);
  family("config_last_reload_ok", "gauge", "0 when the last reload was refused.");
  fmt::format_to(out, "pacerd_config_last_reload_ok {}\n", last_ok ? 1 : 0);
  family("store_connected", "gauge", "Whether the store is reachable.");
  fmt::format_to(out, "pacerd_store_connected {}\n", store_->connected() ? 1 : 0);
  if (const auto* redis = dynamic_cast<const redis::RedisStore*>(store_.get())) {
    const redis::RedisStoreStats st = redis->stats();
    family("redis_round_trips_total", "counter", "Scripts and commands sent to Redis.");
    fmt::format_to(out, "pacerd_redis_round_trips_total {}\n", st.round_trips);
    family("redis_errors_total", "counter", "Failed Redis round trips.");
    fmt::format_to(out, "pacerd_redis_errors_total {}\n", st.errors);
    family("redis_fast_failures_total", "counter", "Checks refused while the circuit was open.");
    fmt::format_to(out, "pacerd_redis_fast_failures_total {}\n", st.fast_failures);
    family("redis_deny_cache_hits_total", "counter", "Denials answered without a round trip.");
    fmt::format_to(out, "pacerd_redis_deny_cache_hits_total {}\n", st.deny_cache_hits);
    family("redis_module_decisions_total", "counter",
           "Checks sent as PACER.GCRA (pacer-redis-module.so); the rest ran the Lua script.");
    fmt::format_to(out, "pacerd_redis_module_decisions_total {}\n", st.module_decisions);
    family("redis_module_fallbacks_total", "counter",
           "PACER.GCRA answered unknown command: decided by the Lua script instead.");
    fmt::format_to(out, "pacerd_redis_module_fallbacks_total {}\n", st.module_fallbacks);
    family("redis_module_in_use", "gauge", "1 while new checks go to PACER.GCRA.");
    fmt::format_to(out, "pacerd_redis_module_in_use {}\n", st.module_in_use ? 1 : 0);
  }
  family("http_requests_in_flight", "gauge",
         "Requests received and not yet answered, both listeners (this one included).");
  fmt::format_to(out, "pacerd_http_requests_in_flight {}\n",
                 requests_in_flight_->load(std::memory_order_relaxed));
  if (main_server_ != nullptr) {
    const beast::ServerStats st = main_server_->stats();
    family("http_connections_open", "gauge", "Connections open now on the main listener.");
    fmt::format_to(out, "pacerd_http_connections_open {}\n", st.open_connections);
    family("http_connections_shed_total", "counter", "Connections closed at the cap.");
    fmt::format_to(out, "pacerd_http_connections_shed_total {}\n", st.shed);
    family("http_connections_refused_total", "counter", "Connections refused at the cap.");
    fmt::format_to(out, "pacerd_http_connections_refused_total {}\n", st.refused);
  }
  return respond(bhttp::status::ok, version, std::move(text),
                 "text/plain; version=0.0.4; charset=utf-8");
}

beast::Response Service::config_json(const Runtime& runtime, unsigned version) const {
  const Config& c = runtime.config;
  json policies = json::array();
  for (const auto& p : c.policies) policies.push_back(policy_json(*runtime.find(p.policy.name())));
  json body = {{"version", runtime.version},
               {"file", c.file},
               {"loaded_at", iso_time(runtime.loaded_at)},
               {"server",
                {{"listen", c.listen.to_string()},
                 {"admin_listen", c.admin_listen ? json(c.admin_listen->to_string()) : json()},
                 {"threads", c.threads},
                 {"trusted_proxies", http::TrustedProxies::parse(c.trusted_proxies).to_string()},
                 {"ipv6_prefix", c.ipv6_prefix}}},
               {"store",
                {{"url", display_store_url(c.store_url)},
                 {"fail_mode", to_string(c.fail_mode)},
                 {"timeout_ms", c.timeout.count()},
                 {"key_prefix", c.key_prefix},
                 {"connected", store_->connected()}}},
               {"api",
                {{"max_batch", c.max_batch},
                 {"max_key_bytes", c.max_key_bytes},
                 {"batch_in_flight", c.batch_in_flight},
                 {"batch_in_flight_per_request", c.batch_in_flight_per_request}}},
               {"policies", policies}};
  {
    std::lock_guard lock(mutex_);
    body["last_reload_error"] = last_reload_error_.empty() ? json() : json(last_reload_error_);
    body["last_reload_attempt"] = last_reload_attempt_ == std::chrono::system_clock::time_point{}
                                      ? json()
                                      : json(iso_time(last_reload_attempt_));
    body["reloads"] = {{"ok", reloads_ok_}, {"error", reloads_failed_}};
  }
  return respond(bhttp::status::ok, version,
                 body.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace pacer::pacerd
