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

// A Limiter is a handle: copies share one state (options, metrics, the local fallback store),
// and an asynchronous check keeps that state and its policy alive until its handler has run,
// so a Limiter may be destroyed with checks in flight (see the rules in pacer/store.h).
class Limiter {
 public:
  using DecisionHandler = detail::UniqueFunction<void(const Decision&)>;

  // `store` must outlive the Limiter, its copies and every check in flight.
  explicit Limiter(Store& store, LimiterOptions options = {});
  ~Limiter();
  Limiter(const Limiter&) = default;
  Limiter& operator=(const Limiter&) = default;

  // Async: `done` runs exactly once, inline for the in-process store, else on the store's I/O
  // thread. `done` must not throw; if it does on an I/O thread, the exception is logged and
  // counted as a hook error and goes no further. Throws std::invalid_argument for a negative
  // cost, an empty key, or a rate finer than the store's resolution (naming the rate).
  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             DecisionHandler done) const;
  // Blocking convenience for synchronous frameworks. Throws std::logic_error when called on a
  // thread that runs the store's I/O (it would wait for itself): use the async form there.
  Decision check(const Policy& policy, std::string_view key, std::int64_t cost = 1) const;

  // What check(policy, key, cost) would answer now (allowed or not, remaining, retry_after),
  // spending nothing (docs/DESIGN.md §2). Store failures are answered by the fail mode as for
  // a check. A peek is no decision: it is not counted in metrics() (its store failures are)
  // and calls no on_decision hook. Cost 0 reports the state as it is and never denies.
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            DecisionHandler done) const;
  Decision peek(const Policy& policy, std::string_view key, std::int64_t cost = 1) const;

  // check() and peek() for a front end that reports the store's failure with the answer (the
  // Python package's StoreError): `done` also gets the error the fail mode answered, set exactly
  // when the decision is degraded (on_error sees the same error first).
  using ReportingHandler =
      detail::UniqueFunction<void(const Decision&, std::error_code store_error)>;
  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             ReportingHandler done) const;
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            ReportingHandler done) const;

  // Forgets the key's state; returns the store's error, if any.
  void reset(const Policy& policy, std::string_view key, ResetHandler done) const;
  std::error_code reset(const Policy& policy, std::string_view key) const;

  // Throws std::invalid_argument naming the first rate of `policy` that the store cannot
  // represent (finer than Store::resolution()). check() does the same on every call.
  void validate(const Policy& policy) const;

  const Metrics& metrics() const;
  Store& store() const { return *store_; }
  // store().completes_inline(), asked once.
  bool completes_inline() const { return inline_store_; }
  FailMode fail_mode() const;

 private:
  struct State;  // what a completion touches; defined in limiter.cc
  enum class Op : bool { kCheck, kPeek };
  void require_blocking_allowed(const char* call) const;
  // check() and peek(), asynchronous (`Done`: DecisionHandler or ReportingHandler; defined
  // and instantiated in limiter.cc) and blocking.
  template <class Done>
  void ask(Op op, const Policy& policy, std::string_view key, std::int64_t cost, Done done) const;
  Decision ask(Op op, const Policy& policy, std::string_view key, std::int64_t cost) const;
  // Both forms of ask() for a store that completes inline; `store_error` (if given) gets the
  // failure the fail mode answered.
  Decision check_inline(Op op, const Policy& policy, std::string_view key, std::int64_t cost,
                        std::error_code* store_error = nullptr) const;

  Store* store_;
  MemoryStore* memory_store_;  // store_, when it is the in-process store
  bool inline_store_;
  Nanos resolution_;
  std::shared_ptr<State> state_;
};

}  // namespace pacer
