// Internal helpers for the rule "handlers must not throw" (pacer/store.h): a guarded call that
// stops an exception where it happens, and a throttle so that reporting a handler that throws
// on every request cannot flood the log.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <string_view>
#include <utility>

namespace pacer::internal {

// Calls `handler(args...)`; what it throws goes to `on_throw(what)` and no further.
template <class Handler, class OnThrow, class... Args>
void call_guarded(Handler& handler, OnThrow&& on_throw, Args&&... args) noexcept {
  try {
    handler(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    on_throw(std::string_view(e.what()));
  } catch (...) {
    on_throw(std::string_view("an exception of unknown type"));
  }
}

// At most one log line a second. Not thread-safe: one per thread, or used under a lock.
class LogThrottle {
 public:
  // True when a line may be written now; `skipped` then holds how many were not since the last.
  bool allow(std::uint64_t& skipped) {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_) {
      ++suppressed_;
      return false;
    }
    next_ = now + std::chrono::seconds(1);
    skipped = std::exchange(suppressed_, 0);
    return true;
  }

 private:
  std::chrono::steady_clock::time_point next_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace pacer::internal
