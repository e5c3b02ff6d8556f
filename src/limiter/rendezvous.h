// Turns a completion handler into a blocking call (Limiter::check and reset).
//
// When the handler runs inline (in-process store) this costs two atomic exchanges and no
// lock; when it runs on another thread the caller sleeps on a condition variable. The
// handler never touches the rendezvous after the waiter may have returned.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <utility>

namespace pacer::internal {

template <class T>
class Rendezvous {
 public:
  void deliver(T value) {
    value_ = std::move(value);
    if (state_.exchange(kDone, std::memory_order_acq_rel) == kWaiting) {
      std::lock_guard lock(mutex_);
      woken_ = true;
      cv_.notify_one();
    }
  }

  // Call once, after starting the operation that will deliver.
  T wait() {
    if (state_.exchange(kWaiting, std::memory_order_acq_rel) != kDone) {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return woken_; });
    }
    return std::move(value_);
  }

 private:
  enum : int { kIdle, kWaiting, kDone };
  std::atomic<int> state_{kIdle};
  T value_{};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_ = false;
};

}  // namespace pacer::internal
