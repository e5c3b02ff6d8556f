// pacer/limiter.h — the entry point: policy + key + cost -> Decision.
//
// A Limiter asks a Store, answers store failures with the fail mode, counts everything in
// Metrics and calls the hooks. It never throws on the hot path for store trouble; invalid
// arguments (negative cost, empty key) throw std::invalid_argument naming the value.
//
//   pacer::MemoryStore store;
//   pacer::Limiter limiter(store);
//   pacer::Policy api("api", {pacer::Rate::parse("100/1m", 10)});
//   if (!limiter.check(api, "user:42").allowed()) { /* 429 */ }
//
//   limiter.check(api, "user:42", 1, [](const pacer::Decision& d) { ... });  // async
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <system_error>

#include "pacer/decision.h"
#include "pacer/memory_store.h"
#include "pacer/metrics.h"
#include "pacer/rate.h"
#include "pacer/store.h"

namespace pacer {

enum class FailMode {
  kOpen,    // allow, mark the decision degraded
  kClosed,  // deny with Outcome::kUnavailable (HTTP 503)
  kLocal,   // decide on a per-process MemoryStore with the same policies
};

// "open", "closed" or "local"; throws std::invalid_argument naming anything else.
FailMode parse_fail_mode(std::string_view text);
std::string_view to_string(FailMode mode);

struct DecisionEvent {
  const Policy& policy;
  std::string_view key;
  std::int64_t cost;
  const Decision& decision;
};

struct ErrorEvent {
  const Policy& policy;
  std::string_view key;
  std::error_code error;
};

struct LimiterOptions {
  FailMode fail_mode = FailMode::kOpen;
  // Called for every decision / store failure. A hook that throws is logged and counted;
  // the request goes on.
  std::function<void(const DecisionEvent&)> on_decision;
  std::function<void(const ErrorEvent&)> on_error;
  // The fallback store for FailMode::kLocal.
  MemoryStoreOptions local_store;
};

class Limiter {
 public:
  using DecisionHandler = detail::UniqueFunction<void(const Decision&)>;

  // `store` must outlive the Limiter.
  explicit Limiter(Store& store, LimiterOptions options = {});
  ~Limiter();

  // Async: `done` runs exactly once, inline for the in-process store.
  void check(const Policy& policy, std::string_view key, std::int64_t cost, DecisionHandler done);
  // Blocking convenience for synchronous frameworks.
  Decision check(const Policy& policy, std::string_view key, std::int64_t cost = 1);

  // Reports the state without consuming anything (cost 0).
  Decision peek(const Policy& policy, std::string_view key) { return check(policy, key, 0); }

  // Forgets the key's state; returns the store's error, if any.
  void reset(const Policy& policy, std::string_view key, ResetHandler done);
  std::error_code reset(const Policy& policy, std::string_view key);

  const Metrics& metrics() const { return metrics_; }
  Store& store() const { return store_; }
  FailMode fail_mode() const { return options_.fail_mode; }

 private:
  void complete(const Policy& policy, std::string_view key, std::int64_t cost,
                const CheckResult& result, std::chrono::steady_clock::time_point started,
                DecisionHandler& done);
  Decision fallback(const Policy& policy, std::string_view key, std::int64_t cost);
  template <class Event, class Hook>
  void call_hook(const Hook& hook, const Event& event) noexcept;

  Store& store_;
  LimiterOptions options_;
  Metrics metrics_;
  std::unique_ptr<MemoryStore> local_;  // FailMode::kLocal only
};

}  // namespace pacer
