// A store that holds every call until the test answers it: asynchronous completion on demand,
// for tests of what happens while a check is in flight (lifetimes, rule changes, shutdown).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "pacer/memory_store.h"
#include "pacer/store.h"

namespace pacer::testing {

class HeldStore final : public Store {
 public:
  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             CheckHandler done) override {
    // The answer is decided now (the policy need not outlive this call), delivered later.
    hold(key, backing_.check_now(policy, key, cost), std::move(done));
  }
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            CheckHandler done) override {
    hold(key, backing_.peek_now(policy, key, cost), std::move(done));
  }
  void reset(const Policy& policy, std::string_view key, ResetHandler done) override {
    backing_.reset_now(policy, key);
    done(std::error_code{});
  }
  Nanos resolution() const override { return resolution_; }
  bool on_io_thread() const override { return io_thread_; }

  // Answers every held call (with `error`, if set); returns how many.
  std::size_t answer_all(std::error_code error = {}) {
    std::vector<Held> calls;
    {
      std::lock_guard lock(mutex_);
      calls.swap(held_);
    }
    for (Held& h : calls) {
      CheckResult r = h.result;
      r.key = h.key;
      if (error) r.error = error;
      h.done(r);
    }
    return calls.size();
  }
  std::size_t held() const {
    std::lock_guard lock(mutex_);
    return held_.size();
  }

  Nanos resolution_{1};
  bool io_thread_ = false;

 private:
  struct Held {
    std::string key;
    CheckResult result;
    CheckHandler done;
  };
  void hold(std::string_view key, const CheckResult& result, CheckHandler done) {
    std::lock_guard lock(mutex_);
    held_.push_back({std::string(key), result, std::move(done)});
  }

  MemoryStore backing_;
  mutable std::mutex mutex_;
  std::vector<Held> held_;
};

}  // namespace pacer::testing
