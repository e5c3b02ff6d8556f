#include "item_window.h"

#include <stdexcept>
#include <string>
#include <utility>

namespace pacer::pacerd {

ItemWindow::ItemWindow(std::size_t limit) : limit_(limit) {
  if (limit == 0) throw std::invalid_argument("ItemWindow: the limit must be at least 1, got 0");
}

void ItemWindow::submit(Item item) {
  if (!item) throw std::invalid_argument("ItemWindow::submit: the item is empty");
  std::unique_lock lock(mutex_);
  queue_.push_back(std::move(item));
  pump(lock);
}

void ItemWindow::release() {
  std::unique_lock lock(mutex_);
  if (in_flight_ > 0) --in_flight_;
  pump(lock);
}

void ItemWindow::pump(std::unique_lock<std::mutex>& lock) {
  // Whoever pumps already will see the room this call made or the item it queued: it checks
  // both under the same lock before it stops.
  if (pumping_) return;
  pumping_ = true;
  while (in_flight_ < limit_ && !queue_.empty()) {
    Item item = std::move(queue_.front());
    queue_.pop_front();
    if (!item) continue;  // submit() refuses empty items; never taken, never released
    ++in_flight_;
    lock.unlock();
    item();
    lock.lock();
  }
  pumping_ = false;
}

std::size_t ItemWindow::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

std::size_t ItemWindow::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace pacer::pacerd
