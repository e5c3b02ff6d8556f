// Work from other threads on its way to a client's io thread: a bounded queue that shutdown
// closes for good (docs/DESIGN.md §10, rule 4). The io thread takes a whole batch per wake-up,
// so a burst of hand-overs costs one post.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "pacer/error.h"

namespace pacer::redis::internal {

template <class Item>
class Handover {
 public:
  // `wake` tells the io thread to take() (posts a task there); called outside the lock.
  Handover(std::size_t capacity, std::function<void()> wake)
      : capacity_(capacity), wake_(std::move(wake)) {}

  // Any thread. kStoreUnavailable once closed, kOverloaded when full: `item` is left untouched,
  // for the caller to answer at once. Otherwise `item` is moved in, and the first item since the
  // io thread last took a batch wakes it.
  std::error_code push(Item& item) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return Errc::kStoreUnavailable;
      if (items_.size() >= capacity_) return Errc::kOverloaded;
      items_.push_back(std::move(item));
      wake = !std::exchange(woken_, true);
    }
    if (wake) wake_();
    return {};
  }

  // The io thread: everything handed over so far.
  std::vector<Item> take() {
    std::vector<Item> batch;
    std::lock_guard lock(mutex_);
    batch.swap(items_);
    woken_ = false;
    return batch;
  }

  // Refuses every later push (what is queued stays, for take()).
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }

 private:
  const std::size_t capacity_;
  const std::function<void()> wake_;
  std::mutex mutex_;
  std::vector<Item> items_;  // guarded by mutex_
  bool woken_ = false;       // guarded by mutex_: a take() is on its way
  bool closed_ = false;      // guarded by mutex_
};

}  // namespace pacer::redis::internal
