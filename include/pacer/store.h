// pacer/store.h — where GCRA state lives. MemoryStore (in-process) and RedisStore implement it.
//
// The interface is asynchronous: `check` calls `done` exactly once, inline (MemoryStore) or
// later from the store's I/O thread (RedisStore). Failures arrive as an error_code in the
// result, never as exceptions. A store never sees HTTP.
#pragma once

#include <cstdint>
#include <string_view>
#include <system_error>

#include "pacer/decision.h"
#include "pacer/detail/unique_function.h"
#include "pacer/error.h"
#include "pacer/rate.h"

namespace pacer {

struct CheckResult {
  std::error_code error;  // set: `decision` is meaningless
  Decision decision;
  std::string_view key;   // the key checked; valid while the handler runs
};

using CheckHandler = detail::UniqueFunction<void(const CheckResult&)>;
using ResetHandler = detail::UniqueFunction<void(std::error_code)>;

class Store {
 public:
  virtual ~Store() = default;

  // Applies `cost` (0 = peek) to the state of `key` under every rate of `policy`, atomically.
  // `key` and `policy` need only live until this call returns.
  virtual void check(const Policy& policy, std::string_view key, std::int64_t cost,
                     CheckHandler done) = 0;

  // Forgets the state of `key` (all rates of `policy`).
  virtual void reset(const Policy& policy, std::string_view key, ResetHandler done) = 0;

  // True while the store is believed reachable (always for the in-process store).
  virtual bool connected() const { return true; }

  // True when `check` always calls `done` before returning (the in-process store); the
  // Limiter then does not time each call.
  virtual bool completes_inline() const { return false; }
};

}  // namespace pacer
