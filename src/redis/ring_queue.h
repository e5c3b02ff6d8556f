// A FIFO queue over one power-of-two array that grows and never shrinks: unlike std::deque it
// allocates nothing once it has reached its working size.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace pacer::redis::internal {

template <class T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }

  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }
  T& operator[](std::size_t i) { return slots_[(head_ + i) & mask_]; }
  const T& operator[](std::size_t i) const { return slots_[(head_ + i) & mask_]; }

  template <class... Args>
  T& emplace_back(Args&&... args) {
    if (size_ == capacity_) grow();
    T& slot = slots_[(head_ + size_) & mask_];
    slot = T{std::forward<Args>(args)...};
    ++size_;
    return slot;
  }

  // The slot is reset to T{} so that it releases what it holds now, not when it is reused.
  void pop_front() {
    slots_[head_] = T{};
    head_ = (head_ + 1) & mask_;
    --size_;
  }

 private:
  void grow() {
    const std::size_t capacity = capacity_ == 0 ? 64 : capacity_ * 2;
    auto slots = std::make_unique<T[]>(capacity);
    for (std::size_t i = 0; i < size_; ++i) slots[i] = std::move((*this)[i]);
    slots_ = std::move(slots);
    capacity_ = capacity;
    mask_ = capacity - 1;
    head_ = 0;
  }

  std::unique_ptr<T[]> slots_;
  std::size_t capacity_ = 0;
  std::size_t mask_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace pacer::redis::internal
