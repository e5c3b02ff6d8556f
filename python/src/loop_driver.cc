// The event loop's own Redis I/O (see loop_driver.h).
#include "loop_driver.h"

#include <unistd.h>

#include <array>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/execution_context.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace pacer::python {
namespace {

using Reactor = boost::asio::detail::epoll_reactor;

// An explicit instantiation may name a private member ([temp.spec.general]/6): the one way to
// read the reactor's epoll descriptor, which Asio keeps private. If Boost renames the member,
// this stops compiling instead of reading something else.
int reactor_descriptor(const Reactor& reactor);
template <int Reactor::*Member>
struct ReactorDescriptor {
  friend int reactor_descriptor(const Reactor& reactor) { return reactor.*Member; }
};
template struct ReactorDescriptor<&Reactor::epoll_fd_>;

bool is_epoll(int fd) {
  std::array<char, 64> target{};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const auto n = ::readlink(link.c_str(), target.data(), target.size() - 1);
  return n > 0 &&
         std::string_view(target.data(), static_cast<std::size_t>(n)) == "anon_inode:[eventpoll]";
}

}  // namespace

LoopDriver::LoopDriver() : work_(boost::asio::make_work_guard(io_)) {
  reactor_ = &boost::asio::use_service<Reactor>(io_);
  reactor_->init_task();  // the io_context's poll() runs the reactor from now on
  fd_ = reactor_descriptor(*reactor_);
  if (fd_ < 0 || !is_epoll(fd_)) {
    throw std::runtime_error("pacer: cannot watch Asio's reactor from the event loop (descriptor " +
                             std::to_string(fd_) + " is not an epoll instance)");
  }
}

void LoopDriver::wake() {
  // The reactor's own wake-up: its eventfd is re-armed in the epoll set (one epoll_ctl).
  if (woken_.exchange(true, std::memory_order_acq_rel)) return;
  woken_at_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                  std::memory_order_relaxed);
  reactor_->interrupt();
}

bool LoopDriver::drive_slice() {
  const std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock || io_.stopped()) return false;
  woken_.exchange(false, std::memory_order_acq_rel);  // sees what wake() saw handed over
  io_.run_one_for(std::chrono::milliseconds(1));
  return true;
}

void LoopDriver::stop() {
  const std::lock_guard lock(mutex_);
  work_.reset();
  io_.stop();
}

}  // namespace pacer::python
