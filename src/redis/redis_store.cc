#include "pacer/redis/redis_store.h"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "core/handler_guard.h"
#include "core/logging.h"
#include "core/text.h"
#include "deny_cache.h"
#include "pacer/redis/url.h"
#include "pacer/store_key.h"
#include "script.h"

namespace pacer::redis {
namespace {

namespace asio = boost::asio;
using internal::gcra_script;
using internal::gcra_script_sha;
using internal::ScriptCall;

std::int64_t monotonic_now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The Redis key of (policy, key): each policy has its own key space (store.h rule 5). A key
// laid out as docs/DESIGN.md §4 says (the HTTP layer's `prefix:{policy:scope:identity}`) is scoped
// already: its hash tag starts with "<policy>:". Any other key becomes "{<policy>:<key>}".
// Policy names have no ':' or braces, so keys of two policies never meet (their hash tags
// start with different names), and the cluster slot still follows the key.
class RedisKey {
 public:
  RedisKey(const Policy& policy, std::string_view key) : caller_size_(key.size()) {
    const std::string& name = policy.name();
    if (carries_policy_tag(key, name)) {  // the http layer's keys (pacer/store_key.h)
      view_ = key;
      return;
    }
    owned_.reserve(name.size() + key.size() + 3);
    append_policy_tag(owned_, name);
    owned_.append(key).append("}");
    view_ = owned_;
    caller_offset_ = name.size() + 2;
  }
  RedisKey(const RedisKey&) = delete;
  RedisKey& operator=(const RedisKey&) = delete;

  std::string_view redis() const { return view_; }
  // Where the key as the caller gave it stands in redis().
  std::size_t caller_offset() const { return caller_offset_; }
  std::size_t caller_size() const { return caller_size_; }
  // The Redis key as a string of its own, without a second copy when it was built here.
  std::string release() && { return owned_.empty() ? std::string(view_) : std::move(owned_); }

 private:
  std::string owned_;
  std::string_view view_;
  std::size_t caller_offset_ = 0;
  std::size_t caller_size_;
};

// Redis TIME counts microseconds: a rate of more than one permit per microsecond cannot be
// kept there. The one rule behind RedisStore::validate(), resolution() and every check.
constexpr Nanos kRedisResolution = std::chrono::microseconds(1);

// The module's command (src/redis_module/module.cc).
constexpr std::string_view kModuleCommand = "PACER.GCRA";

bool fits_redis_time(const Policy& policy) { return policy.finest_interval() >= kRedisResolution; }

// The arguments of one check (script.h), formatted into a fixed buffer (no allocation per
// number):
//   EVALSHA <sha> 1 <key> <inc_1> <room_1> ...   or   EVAL <script> 1 <key> ...
// Not copyable: the views point into its own buffer.
class ScriptArgs {
 public:
  ScriptArgs(std::string_view key, const Policy& policy, std::int64_t cost, bool read_only)
      : call_(policy.rates(), cost, read_only) {
    args_[2] = "1";
    args_[3] = key;
    count_ = 4;
    for (const std::int64_t value : call_.arguments()) number(value);
  }
  ScriptArgs(const ScriptArgs&) = delete;
  ScriptArgs& operator=(const ScriptArgs&) = delete;

  std::span<const std::string_view> evalsha() { return with("EVALSHA", gcra_script_sha()); }
  std::span<const std::string_view> eval() { return with("EVAL", gcra_script()); }
  // PACER.GCRA <key> <inc_1> <room_1> ...: the same arguments after the key (module.cc).
  std::span<const std::string_view> module() {
    args_[2] = kModuleCommand;
    return {args_.data() + 2, count_ - 2};
  }
  const ScriptCall& call() const { return call_; }

 private:
  std::span<const std::string_view> with(std::string_view command, std::string_view script) {
    args_[0] = command;
    args_[1] = script;
    args_[2] = "1";
    return {args_.data(), count_};
  }
  void number(std::int64_t value) {
    char* begin = digits_.data() + used_;
    char* end = std::to_chars(begin, digits_.data() + digits_.size(), value).ptr;
    used_ = static_cast<std::size_t>(end - digits_.data());
    args_[count_++] = std::string_view(begin, static_cast<std::size_t>(end - begin));
  }

  ScriptCall call_;
  std::array<std::string_view, 4 + 2 * Policy::kMaxRates> args_;
  std::array<char, std::size_t{20} * 2 * Policy::kMaxRates> digits_;
  std::size_t count_ = 0;
  std::size_t used_ = 0;
};

// The script's reply -> the decision of the GCRA step (script.h).
std::optional<Decision> parse_decision(const Reply& reply, const ScriptArgs& args) {
  return args.call().decode(reply);
}

}  // namespace

struct RedisStore::Impl {
  struct Lane {
    asio::io_context* io;
    std::unique_ptr<Client> client;
    // Set by the first task the lane posts: until then no thread has run its io_context.
    std::shared_ptr<std::atomic<bool>> ran;
    // The store's own thread runs it from construction on (it may not have got to `ran` yet).
    bool own_thread = false;
  };

  RedisStoreOptions options;
  std::vector<std::unique_ptr<asio::io_context>> owned;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
  std::vector<Lane> lanes;
  std::atomic<std::size_t> next_lane{0};
  std::unique_ptr<internal::DenyCache> deny_cache;
  std::atomic<std::uint64_t> round_trips{0}, deny_cache_hits{0}, script_reloads{0}, errors{0};
  std::atomic<std::uint64_t> module_decisions{0}, module_fallbacks{0};
  // PACER.GCRA for new checks (RedisScript): set by the probe on connect (kAuto) or at start
  // (kModule).
  std::atomic<bool> use_module{false};
  std::mutex module_log_mutex;  // module_missing() runs on any lane's thread (rarely)
  pacer::internal::LogThrottle module_log;
  std::atomic<bool> shut_down{false};

  // A node answered PACER.GCRA with "unknown command".
  void module_missing() {
    module_fallbacks.fetch_add(1, std::memory_order_relaxed);
    if (options.script == RedisScript::kAuto) use_module.store(false, std::memory_order_relaxed);
    std::uint64_t skipped = 0;
    std::unique_lock lock(module_log_mutex);
    if (module_log.allow(skipped)) {
      lock.unlock();
      pacer::internal::log_warn(
          "pacer: a Redis node does not know PACER.GCRA (pacer-redis-module.so not loaded); "
          "decided by the Lua script{}{}",
          options.script == RedisScript::kAuto ? " until the module is found on every node again"
                                               : "",
          skipped == 0 ? "" : fmt::format(" ({} more since the last such line)", skipped));
    }
  }

  // On every (re)connect: does every node have the module? (kAuto)
  void probe_module(Client& client) {
    static constexpr std::array<std::string_view, 3> kInfo{"COMMAND", "INFO", kModuleCommand};
    client.execute_on_all(kInfo, [this](std::error_code ec, std::vector<Reply>&& replies) {
      bool everywhere = !ec && !replies.empty();
      for (const Reply& r : replies) {
        everywhere = everywhere && r.type == Reply::Type::kArray && r.elements.size() == 1 &&
                     r.elements[0].type == Reply::Type::kArray;
      }
      if (!ec) use_module.store(everywhere, std::memory_order_relaxed);
    });
  }

  explicit Impl(RedisStoreOptions o)
      : options(std::move(o)),
        deny_cache(options.deny_cache_entries > 0
                       ? std::make_unique<internal::DenyCache>(options.deny_cache_entries)
                       : nullptr),
        use_module(options.script == RedisScript::kModule) {}

  void start(const std::vector<asio::io_context*>& contexts) {
    const RedisUrl url = parse_redis_url(options.url);
    for (asio::io_context* io : contexts) {
      ClientOptions client_options{.url = url,
                                   .tls = options.tls,
                                   .connect_timeout = options.connect_timeout,
                                   .command_timeout = options.command_timeout,
                                   .max_in_flight = options.max_in_flight,
                                   .reconnect_max = options.reconnect_max,
                                   .breaker_failures = options.breaker_failures,
                                   .breaker_open_for = options.breaker_open_for};
      auto client = std::make_unique<Client>(*io, std::move(client_options));
      Client* raw = client.get();
      // Loading the script on every (re)connected node saves the first NOSCRIPT round trip.
      // `raw` is safe: callbacks never run after stop(), and shutdown() stops every client
      // before it is destroyed.
      raw->on_connect([this, raw] {
        const std::array<std::string_view, 3> load{"SCRIPT", "LOAD", gcra_script()};
        raw->execute_on_all(load, [](std::error_code, std::vector<Reply>&&) {});
        if (options.script == RedisScript::kAuto) probe_module(*raw);
      });
      auto ran = std::make_shared<std::atomic<bool>>(false);
      asio::post(*io, [ran] { ran->store(true, std::memory_order_release); });
      lanes.push_back({io, std::move(client), std::move(ran)});
    }
  }

  ~Impl() {
    shutdown();
    guards.clear();
    for (auto& io : owned) io->stop();
    for (std::thread& t : threads) t.join();
    lanes.clear();
  }

  // Stops every client on its own io thread (or here, when nothing runs that io_context), so
  // each pending handler runs exactly once before this returns.
  // No lock is held while the clients stop: their handlers may call into the store (a check
  // is then answered at once), even shutdown() again (which returns at once).
  void shutdown() {
    if (shut_down.exchange(true)) return;
    for (Lane& lane : lanes) run_on(lane, [&lane] { lane.client->stop(); });
  }

  // Runs `fn` where it may touch the lane's client: inline on its io thread, when its
  // io_context is stopped or has never run; otherwise posted there while this thread waits.
  template <class F>
  static void run_on(Lane& lane, F fn) {
    asio::io_context& io = *lane.io;
    if (io.get_executor().running_in_this_thread() || io.stopped() ||
        (!lane.own_thread && !lane.ran->load(std::memory_order_acquire))) {
      fn();
      return;
    }
    struct Done {
      std::mutex mutex;
      std::condition_variable cv;
      bool claimed = false;
      bool finished = false;
    };
    auto done = std::make_shared<Done>();
    asio::post(io, [done, &fn] {
      {
        std::lock_guard lock(done->mutex);
        if (std::exchange(done->claimed, true)) return;
      }
      fn();
      std::lock_guard lock(done->mutex);
      done->finished = true;
      done->cv.notify_all();
    });
    std::unique_lock lock(done->mutex);
    while (
        !done->cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return done->finished; })) {
      // Stopped while we waited (its owner shut down first): nobody will run the task.
      if (io.stopped() && !done->claimed) {
        done->claimed = true;
        lock.unlock();
        fn();
        return;
      }
    }
  }

  // The lane whose io_context runs on this thread keeps the check on it; else round robin.
  Lane& lane() {
    for (Lane& l : lanes)
      if (l.io->get_executor().running_in_this_thread()) return l;
    return lanes[next_lane.fetch_add(1, std::memory_order_relaxed) % lanes.size()];
  }
};

RedisStore::RedisStore(RedisStoreOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  const unsigned n = std::max(impl_->options.io_threads, 1u);
  std::vector<asio::io_context*> contexts;
  for (unsigned i = 0; i < n; ++i) {
    impl_->owned.push_back(std::make_unique<asio::io_context>(1));
    impl_->guards.push_back(asio::make_work_guard(*impl_->owned.back()));
    contexts.push_back(impl_->owned.back().get());
  }
  impl_->start(contexts);
  for (std::size_t i = 0; i < impl_->owned.size(); ++i) {
    impl_->threads.emplace_back([ctx = impl_->owned[i].get(),
                                 start = impl_->options.on_io_thread_start,
                                 index = static_cast<unsigned>(i)] {
      if (start) {
        try {
          start(index);
        } catch (const std::exception& e) {
          pacer::internal::log_error("pacer: on_io_thread_start threw ({}); the thread goes on",
                                     e.what());
        } catch (...) {
          pacer::internal::log_error("pacer: on_io_thread_start threw; the thread goes on");
        }
      }
      // Handlers are guarded where they are called; should anything still escape, the thread
      // logs it and goes on rather than ending the process.
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {
          pacer::internal::log_error(
              "pacer: an exception escaped into a Redis I/O thread ({}); it goes on", e.what());
        } catch (...) {
          pacer::internal::log_error(
              "pacer: an exception escaped into a Redis I/O thread; it goes on");
        }
      }
    });
    impl_->lanes[i].own_thread = true;
  }
}

RedisStore::RedisStore(RedisStoreOptions options, const std::vector<asio::io_context*>& contexts)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  if (contexts.empty()) throw std::invalid_argument("RedisStore: no io_context given");
  impl_->start(contexts);
}

RedisStore::~RedisStore() = default;

std::string_view RedisStore::script() { return gcra_script(); }
std::string_view RedisStore::script_sha() { return gcra_script_sha(); }
std::vector<std::string> RedisStore::script_arguments(const Policy& policy, std::int64_t cost) {
  std::vector<std::string> out;
  for (const std::int64_t value : ScriptCall(policy.rates(), cost).arguments())
    out.push_back(std::to_string(value));
  return out;
}

RedisScript parse_redis_script(std::string_view text) {
  if (text == "auto") return RedisScript::kAuto;
  if (text == "lua") return RedisScript::kLua;
  if (text == "module") return RedisScript::kModule;
  throw std::invalid_argument("invalid Redis script '" + pacer::internal::printable(text) +
                              "': expected auto, lua or module");
}

std::string_view to_string(RedisScript script) {
  switch (script) {
    case RedisScript::kAuto:
      return "auto";
    case RedisScript::kLua:
      return "lua";
    case RedisScript::kModule:
      return "module";
  }
  return "auto";
}

Nanos RedisStore::resolution() const { return kRedisResolution; }

void RedisStore::validate(const Policy& policy) {
  if (fits_redis_time(policy)) return;
  for (const Rate& rate : policy.rates()) {
    if (rate.emission_interval() < kRedisResolution) {
      throw std::invalid_argument("invalid rate '" + rate.to_string() + "' in policy '" +
                                  policy.name() +
                                  "' for Redis: more than one permit per microsecond");
    }
  }
}

namespace {

// How a check is being decided: the module first (when in use), then EVALSHA, then EVAL after a
// NOSCRIPT.
enum class Attempt : std::uint8_t { kModule, kEvalsha, kEval };

// Everything a check needs once the call that started it has returned.
struct Pending {
  Pending(RedisKey&& k, const Policy& policy, std::int64_t c, bool read_only, Client::Deadline by,
          CheckHandler d)
      : deadline(by),
        caller_offset(k.caller_offset()),
        caller_size(k.caller_size()),
        key(std::move(k).release()),
        cost(c),
        args(key, policy, c, read_only),
        done(std::move(d)) {}
  std::string_view caller_key() const {
    return std::string_view(key).substr(caller_offset, caller_size);
  }
  Client::Deadline deadline;  // of the whole decision, a NOSCRIPT reload included
  std::size_t caller_offset;
  std::size_t caller_size;
  std::string key;  // in Redis
  std::int64_t cost;
  ScriptArgs args;  // refers to `key`
  CheckHandler done;
};

}  // namespace

// The reply handler of one check: decodes the decision; a node without the module is asked
// through the script, and a script Redis has forgotten is sent again, once each.
struct RedisStore::Finish {
  Impl* impl;
  Client* client;
  std::unique_ptr<Pending> pending;
  Attempt attempt;

  void operator()(std::error_code ec, Reply&& reply) {
    Pending& p = *pending;
    if (!ec && attempt == Attempt::kModule && reply.is_error_prefix("ERR unknown command")) {
      // Restarted without the module (or a node that never had it): no failed decision.
      impl->module_missing();
      return retry(p.args.evalsha(), Attempt::kEvalsha);
    }
    if (!ec && attempt == Attempt::kEvalsha && reply.is_error_prefix("NOSCRIPT")) {
      // Restarted, failed over or SCRIPT FLUSHed: EVAL runs the script and caches it again.
      impl->script_reloads.fetch_add(1, std::memory_order_relaxed);
      return retry(p.args.eval(), Attempt::kEval);
    }
    CheckResult result{ec, {}, p.caller_key()};
    if (!ec) {
      if (auto decision = parse_decision(reply, p.args)) {
        result.decision = *decision;
      } else {
        pacer::internal::log_warn(
            "pacer: unexpected reply from Redis for key '{}': {}",
            pacer::internal::printable(p.key),
            pacer::internal::printable(reply.is_error() ? reply.str : "not a decision"));
        result.error = make_error_code(Errc::kProtocol);
      }
    }
    if (result.error) {
      // Refused by the node's open breaker: counted there (fast_failures), not as an error.
      if (result.error != Errc::kCircuitOpen) impl->errors.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (impl->deny_cache && result.decision.outcome == Outcome::kDenied)
        impl->deny_cache->remember(p.key, p.cost, monotonic_now(), result.decision);
    }
    p.done(result);
  }

  void retry(std::span<const std::string_view> args, Attempt next) {
    impl->round_trips.fetch_add(1, std::memory_order_relaxed);
    const std::string_view key = pending->key;
    const Client::Deadline deadline = pending->deadline;
    client->execute(args, key, Finish{impl, client, std::move(pending), next}, deadline);
  }
};

void RedisStore::check(const Policy& policy, std::string_view key, std::int64_t cost,
                       CheckHandler done) {
  submit(policy, key, cost, /*read_only=*/false, std::move(done));
}

void RedisStore::peek(const Policy& policy, std::string_view key, std::int64_t cost,
                      CheckHandler done) {
  submit(policy, key, cost, /*read_only=*/true, std::move(done));
}

void RedisStore::submit(const Policy& policy, std::string_view key, std::int64_t cost,
                        bool read_only, CheckHandler done) {
  Impl& impl = *impl_;
  if (cost < 0) return done({make_error_code(Errc::kInvalidCost), {}, key});
  if (!fits_redis_time(policy)) return done({make_error_code(Errc::kRateTooFine), {}, key});

  RedisKey redis_key(policy, key);
  const std::int64_t now = monotonic_now();
  // A remembered denial is what a check, and so a peek, of this cost answers until it ends.
  if (impl.deny_cache) {
    if (auto denied = impl.deny_cache->lookup(redis_key.redis(), cost, now)) {
      impl.deny_cache_hits.fetch_add(1, std::memory_order_relaxed);
      return done({{}, *denied, key});
    }
  }

  const Client::Deadline deadline =
      Client::Deadline(std::chrono::nanoseconds(now)) + impl.options.command_timeout;
  auto pending = std::make_unique<Pending>(std::move(redis_key), policy, cost, read_only, deadline,
                                           std::move(done));
  Client* client = impl.lane().client.get();
  impl.round_trips.fetch_add(1, std::memory_order_relaxed);
  const bool module = impl.use_module.load(std::memory_order_relaxed);
  if (module) impl.module_decisions.fetch_add(1, std::memory_order_relaxed);
  const auto args = module ? pending->args.module() : pending->args.evalsha();
  const std::string_view routed_key = pending->key;
  client->execute(
      args, routed_key,
      Finish{&impl, client, std::move(pending), module ? Attempt::kModule : Attempt::kEvalsha},
      deadline);
}

void RedisStore::reset(const Policy& policy, std::string_view key, ResetHandler done) {
  Impl& impl = *impl_;
  const RedisKey redis_key(policy, key);
  if (impl.deny_cache) impl.deny_cache->forget(redis_key.redis());
  impl.round_trips.fetch_add(1, std::memory_order_relaxed);
  const std::array<std::string_view, 2> del{"DEL", redis_key.redis()};
  impl.lane().client->execute(del, redis_key.redis(),
                              [done = std::move(done)](std::error_code ec, Reply&& reply) mutable {
                                if (!ec && reply.is_error()) ec = make_error_code(Errc::kProtocol);
                                done(ec);
                              });
}

void RedisStore::shutdown() { impl_->shutdown(); }

bool RedisStore::on_io_thread() const {
  for (const Impl::Lane& lane : impl_->lanes)
    if (lane.io->get_executor().running_in_this_thread()) return true;
  return false;
}

bool RedisStore::connected() const {
  for (const Impl::Lane& lane : impl_->lanes)
    if (!lane.client->connected()) return false;
  return !impl_->lanes.empty();
}

bool RedisStore::wait_connected(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!connected() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return connected();
}

std::string RedisStore::last_error() const {
  for (const Impl::Lane& lane : impl_->lanes)
    if (auto e = lane.client->last_error(); !e.empty()) return e;
  return {};
}

RedisStoreStats RedisStore::stats() const {
  const Impl& i = *impl_;
  RedisStoreStats stats{i.round_trips.load(), i.deny_cache_hits.load(), i.script_reloads.load(), 0,
                        i.errors.load()};
  stats.module_decisions = i.module_decisions.load();
  stats.module_fallbacks = i.module_fallbacks.load();
  stats.module_in_use = i.use_module.load();
  for (const Impl::Lane& lane : i.lanes) {
    stats.fast_failures += lane.client->fast_failures();
    stats.handler_errors += lane.client->handler_errors();
  }
  return stats;
}

std::vector<StoreStat> RedisStore::counters() const {
  const RedisStoreStats s = stats();
  auto n = [](std::uint64_t v) { return static_cast<double>(v); };
  return {
      {"redis_round_trips_total", "Scripts and commands sent to Redis.", n(s.round_trips)},
      {"redis_errors_total", "Failed Redis round trips.", n(s.errors)},
      {"redis_fast_failures_total", "Checks refused while the circuit was open.",
       n(s.fast_failures)},
      {"redis_deny_cache_hits_total", "Denials answered without a round trip.",
       n(s.deny_cache_hits)},
      {"redis_script_reloads_total", "NOSCRIPT answered by EVAL.", n(s.script_reloads)},
      {"redis_handler_errors_total", "Completion handlers that threw (caught).",
       n(s.handler_errors)},
      {"redis_module_decisions_total",
       "Checks sent as PACER.GCRA (pacer-redis-module.so); the rest ran the Lua script.",
       n(s.module_decisions)},
      {"redis_module_fallbacks_total",
       "PACER.GCRA answered unknown command: decided by the Lua script instead.",
       n(s.module_fallbacks)},
      {"redis_module_in_use", "1 while new checks go to PACER.GCRA.", s.module_in_use ? 1.0 : 0.0,
       true},
  };
}

}  // namespace pacer::redis
