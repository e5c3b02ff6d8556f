// The event loop's own Redis I/O (Python: `io="loop"`, docs/DESIGN.md §10): the Redis store's
// io_context run by the asyncio loop's thread instead of an I/O thread of its own.
//
// Asio keeps every descriptor it waits for (the connections' sockets, its timers' timerfd and
// the wake-up of its queue) in one epoll instance. An epoll descriptor is itself readable when
// any of them is ready, so the loop watches that one descriptor (loop.add_reader) and polls the
// io_context when it is readable: replies are read and parsed, deadlines fire, and the
// completions queue their futures on the loop's Bridge, which is delivered right after the poll
// without an eventfd. A check submitted from Python is handed to the io_context's queue, and
// wake() makes the descriptor readable (Asio wakes its reactor only when a thread sleeps in it,
// and no thread ever does here): the write goes out in the driving loop's next iteration,
// together with every other check submitted in this one (one write per batch).
//
// Asio has no public accessor for that descriptor. descriptor() reads the reactor's member
// (checked when this file compiles: the build fails if Boost renames it) and then verifies
// that it is an epoll instance; if not, the engine stays on its I/O thread.
//
// One thread drives the io_context at a time, guarded by a mutex: the loop's poll() skips a
// turn while a blocking call (a sync endpoint's check, wait_connected) drives it; that call runs
// it itself while nobody else does, so blocking use needs no running loop.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <mutex>
#include <thread>

namespace boost::asio::detail {
class epoll_reactor;
}  // namespace boost::asio::detail

namespace pacer::python {

class LoopDriver {
 public:
  // Throws std::runtime_error when the reactor's descriptor cannot be found or is not epoll.
  LoopDriver();
  LoopDriver(const LoopDriver&) = delete;
  LoopDriver& operator=(const LoopDriver&) = delete;

  boost::asio::io_context& io() { return io_; }
  // The epoll descriptor the event loop watches.
  int descriptor() const { return fd_; }

  // Any thread, after handing work to io(): makes descriptor() readable, once until the next
  // poll.
  void wake();
  // Work was handed over more than kFlushAfter ago and no poll has run since: the loop is
  // busy with a long iteration (a burst of requests), and its submitter should poll now rather
  // than let the checks wait for the iteration to end (their deadlines run from submission).
  bool overdue() const {
    const auto since = woken_at_.load(std::memory_order_relaxed);
    return woken_.load(std::memory_order_relaxed) &&
           std::chrono::steady_clock::now().time_since_epoch().count() - since >
               std::chrono::nanoseconds(kFlushAfter).count();
  }
  static constexpr std::chrono::milliseconds kFlushAfter{2};

  // Runs what is ready without blocking, unless another thread drives the io_context now
  // (then returns false at once). After stop(), returns false.
  template <class F>
  bool poll(F&& around) {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock || io_.stopped()) return false;
    woken_.exchange(false, std::memory_order_acq_rel);  // sees what wake() saw handed over
    around([this] { io_.poll(); });
    return true;
  }

  // Blocks until `answer` is ready, driving the io_context in slices while no other thread
  // does (the calling thread must not hold the GIL: completions never need it).
  template <class T>
  T wait(std::future<T>& answer) {
    while (answer.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (!drive_slice()) answer.wait_for(kSlice);
    }
    return answer.get();
  }

  // Blocks until `done()` or `deadline`, driving as wait() does.
  template <class Done>
  bool wait_until(Done done, std::chrono::steady_clock::time_point deadline) {
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (!drive_slice()) std::this_thread::sleep_for(kSlice);
    }
    return true;
  }

  // Stops the io_context for good (the store then shuts down inline: redis_store.h), after the
  // thread driving it, if any, has finished its turn.
  void stop();
  bool stopped() const { return io_.stopped(); }

 private:
  static constexpr std::chrono::microseconds kSlice{200};

  // Runs one handler, waiting up to a millisecond for one, unless another thread drives the
  // io_context now or it is stopped: then returns false at once.
  bool drive_slice();

  boost::asio::io_context io_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::mutex mutex_;
  boost::asio::detail::epoll_reactor* reactor_ = nullptr;
  int fd_ = -1;
  std::atomic<bool> woken_{false};
  std::atomic<std::int64_t> woken_at_{0};  // steady_clock ticks of the wake() that set woken_
};

}  // namespace pacer::python
