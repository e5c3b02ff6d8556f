// pacer/store.h — where GCRA state lives. MemoryStore (in-process) and RedisStore implement it.
//
// The interface is asynchronous: `check` calls `done` exactly once, inline (MemoryStore) or
// later from the store's I/O thread (RedisStore). Failures arrive as an error_code in the
// result, never as exceptions. A store never sees HTTP.
//
// The rules every store keeps, and every caller relies on:
//
// 1. Exactly once. Every `check` and `reset` calls its handler exactly once: with the answer,
//    with an error (timeout, disconnected, overloaded, ...), or at the latest inside
//    `shutdown()` with Errc::kStoreUnavailable. No handler is ever dropped uncalled, so a
//    caller blocked on an answer always wakes.
// 2. Handlers must not throw. A handler that throws anyway is caught where the store called it,
//    logged (at a bounded rate) and counted; the connection and every other request go on.
//    (A store that answers inline lets the exception reach the caller of `check`, which is the
//    code that supplied the handler.)
// 3. Lifetimes. `policy` and `key` need only live until `check` returns. The store must outlive
//    every call on it, and whatever a pending handler points at must outlive that handler:
//    call `shutdown()` (which runs every pending handler) before destroying objects that
//    pending handlers refer to. Limiter and HttpLimiter need nothing of the kind: their own
//    completions own what they touch, so they may be destroyed with calls in flight.
// 4. Threads. A store with its own I/O threads answers on them; a blocking wait for an answer
//    must never run on such a thread (it would wait for itself): `on_io_thread()` tells, and
//    the Limiter's blocking calls refuse to run there (std::logic_error). Calls from other
//    threads are handed over through a bounded queue; when it is full the call is answered
//    at once with Errc::kOverloaded.
// 5. Keys are per policy. A store keeps one state per (policy name, key): two policies that
//    meet on one key never share or clobber each other's state.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pacer/decision.h"
#include "pacer/detail/unique_function.h"
#include "pacer/error.h"
#include "pacer/rate.h"

namespace pacer {

struct CheckResult {
  std::error_code error;  // set: `decision` is meaningless
  Decision decision;
  std::string_view key;  // the key checked; valid while the handler runs
};

using CheckHandler = detail::UniqueFunction<void(const CheckResult&)>;

// One number a store reports about itself, for metrics: Prometheus shows it as
// `<prefix>_<name>` (pacer/prometheus.h). Names are lower_snake_case; counters end in _total.
struct StoreStat {
  std::string_view name;  // "redis_round_trips_total", "memory_keys"
  std::string_view help;
  double value = 0;
  bool gauge = false;  // else a counter
};
using ResetHandler = detail::UniqueFunction<void(std::error_code)>;

class Store {
 public:
  virtual ~Store() = default;

  // Applies `cost` (0 = peek) to the state of `key` under every rate of `policy`, atomically.
  // `key` and `policy` need only live until this call returns.
  virtual void check(const Policy& policy, std::string_view key, std::int64_t cost,
                     CheckHandler done) = 0;
  // Answers what `check` with the same arguments would answer now (allowed or not, remaining,
  // retry_after, reset_after) and changes nothing (docs/DESIGN.md §2). Cost 0 reports the
  // state as it is and never denies.
  virtual void peek(const Policy& policy, std::string_view key, std::int64_t cost,
                    CheckHandler done) = 0;

  // Forgets the state of `key` (all rates of `policy`).
  virtual void reset(const Policy& policy, std::string_view key, ResetHandler done) = 0;

  // True while the store is believed reachable (always for the in-process store).
  virtual bool connected() const { return true; }
  // Blocks until the store is reachable or `timeout` passes; returns connected().
  virtual bool wait_connected(std::chrono::milliseconds timeout) const {
    (void)timeout;
    return connected();
  }
  // Why the store is not reachable (the last connection error), if it is not.
  virtual std::string last_error() const { return {}; }

  // True when `check` always calls `done` before returning (the in-process store); the
  // Limiter then does not time each call.
  virtual bool completes_inline() const { return false; }

  // The finest emission interval the store's clock can represent: 1 ns in process, 1 us in
  // Redis (TIME). A policy with a finer rate is refused when it is first checked.
  virtual Nanos resolution() const { return Nanos{1}; }

  // True when the calling thread runs this store's I/O (rule 4).
  virtual bool on_io_thread() const { return false; }
  // The store's own numbers (keys held, round trips, errors, ...), whatever the store is: what
  // front ends export without knowing which store they run on. None by default.
  virtual std::vector<StoreStat> counters() const { return {}; }

  // Ends the store's work: every pending handler runs now, exactly once (Errc::kStoreUnavailable
  // for those without an answer), and later calls are answered inline with that error.
  // Idempotent (a second call, also from a handler running inside the first, returns at
  // once); the destructor calls it. Call it from a thread that does not run the store's I/O,
  // or from one of them, or after they stopped.
  virtual void shutdown() {}
};

}  // namespace pacer
