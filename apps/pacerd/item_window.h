// A bound on the batch items a pacerd process has at the store at once.
//
// A batch of /v1/check (up to [api] max_batch items) used to send every item to the store at
// once. Eight clients with batches of 1,000 put 8,000 commands in one Redis pipeline: the last
// ones waited past the store timeout, were answered by the fail mode, and single checks of
// other clients queued behind them met the same fate (issue 20, measured: 27-46% of items).
// Items now pass through a window: at most `limit` are at the store, process-wide; the rest
// wait here, in order of arrival, where no store deadline runs. A batch puts at most
// `per_batch` of its items in the window at a time, so one big batch cannot keep the others
// waiting behind all of its items. See docs/DESIGN.md §8, "Batches".
//
//   auto window = std::make_shared<ItemWindow>(1024);
//   window->submit([&] { store.check(..., [window](...) { ...; window->release(); }); });
//
// Thread-safe. `submit` may run the item at once on the calling thread; `release` may run
// queued items on its thread. A store that completes inline (the in-process one) releases from
// inside the item; that nests one level, never deeper: the outer loop takes the next item.
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>

#include "pacer/detail/unique_function.h"

namespace pacer::pacerd {

class ItemWindow {
 public:
  using Item = detail::UniqueFunction<void()>;

  // `limit` >= 1: the most items at the store at once.
  explicit ItemWindow(std::size_t limit);

  // Runs `item` now when fewer than `limit` are at the store, else queues it. Each item that
  // runs must lead to exactly one release(), once its store call has completed. An item must
  // not throw (it is the caller's to catch inside).
  void submit(Item item);
  // One item's store call completed: the next queued item, if any, runs.
  void release();

  std::size_t limit() const { return limit_; }
  std::size_t in_flight() const;
  std::size_t queued() const;

 private:
  // Runs queued items while there is room; the lock is released around each item.
  void pump(std::unique_lock<std::mutex>& lock);

  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::deque<Item> queue_;
  std::size_t in_flight_ = 0;
  bool pumping_ = false;  // a thread is in pump(): others leave the queue to it
};

}  // namespace pacer::pacerd
