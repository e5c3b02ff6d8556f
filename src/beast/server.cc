#include "pacer/beast/server.h"

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/logging.h"
#include "worker.h"

namespace pacer::beast {

namespace internal {

std::string describe(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

[[noreturn]] void fail(const char* what, const tcp::endpoint& endpoint, const std::string& host,
                       const error_code& ec) {
  throw std::runtime_error(std::string("pacer::beast: cannot ") + what + " " +
                           describe(host, endpoint.port()) + ": " + ec.message());
}

}  // namespace internal

namespace {

using namespace internal;  // NOLINT(google-build-using-namespace): this file's own parts

// Descriptors left for everything but client connections (listeners, io_context internals,
// Redis connections, log files) when the connection cap is derived from RLIMIT_NOFILE.
constexpr std::size_t kReservedDescriptors = 64;
// Never ask for more than this (Linux's default fs.nr_open), even when the hard limit is
// "unlimited": setrlimit would fail above nr_open.
constexpr rlim_t kMaxDescriptors = rlim_t{1} << 20;

// Raises the soft RLIMIT_NOFILE to the hard limit (when asked) and returns the soft limit in
// force, and a note for the log saying what happened.
std::size_t descriptor_limit(bool raise, std::string& note) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    note = "unknown (getrlimit failed), assuming 1024";
    return 1024;
  }
  const rlim_t hard = std::min(limit.rlim_max, kMaxDescriptors);
  note = "hard limit " + (limit.rlim_max == RLIM_INFINITY ? std::string("unlimited")
                                                          : std::to_string(limit.rlim_max));
  if (raise && limit.rlim_cur < hard) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = hard;
    if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
      note += ", raised from " + std::to_string(before);
    } else {
      limit.rlim_cur = before;
      note += std::string(", could not raise: ") + std::system_category().message(errno);
    }
  }
  return static_cast<std::size_t>(std::min(limit.rlim_cur, kMaxDescriptors));
}

tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
  error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) return {address, port};
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  const auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    throw std::runtime_error("pacer::beast: cannot resolve " + describe(host, port) + ": " +
                             (ec ? ec.message() : std::string("no address")));
  }
  return results.begin()->endpoint();
}

[[noreturn]] void fail(const char* what, const tcp::endpoint& endpoint, const std::string& host,
                       const error_code& ec) {
  throw std::runtime_error(std::string("pacer::beast: cannot ") + what + " " +
                           describe(host, endpoint.port()) + ": " + ec.message());
}

// SO_REUSEPORT lets any socket of the same user share the port, so a second server would silently
// take half the connections. A plain bind first fails when anything listens there already.
void ensure_port_free(const tcp::endpoint& endpoint, const std::string& host) {
  asio::io_context ioc;
  tcp::acceptor probe(ioc);
  error_code ec;
  probe.open(endpoint.protocol(), ec);
  if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) probe.bind(endpoint, ec);
  if (ec) fail("bind", endpoint, host, ec);
}

}  // namespace

Server::Impl::Impl(ServerOptions options_in, Handler handler_in)
    : options(std::move(options_in)), handler(std::move(handler_in)) {
  if (!handler) throw std::invalid_argument("pacer::beast::Server: the handler is empty");
  if (options.body_timeout <= std::chrono::seconds::zero() ||
      options.body_timeout > options.body_timeout_max) {
    throw std::invalid_argument("pacer::beast::Server: body_timeout " +
                                std::to_string(options.body_timeout.count()) +
                                " s must be above 0 and at most body_timeout_max (" +
                                std::to_string(options.body_timeout_max.count()) + " s)");
  }
  unsigned count = options.threads;
  if (count == 0) count = std::thread::hardware_concurrency();  // one per core
  if (count == 0) count = 1;                                    // the core count is unknown
  tcp::endpoint endpoint = resolve(options.host, options.port);
  const bool reuse_port = count > 1;
  if (reuse_port && endpoint.port() != 0) ensure_port_free(endpoint, options.host);
  workers.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Worker>(*this, i));
    workers.back()->listen(endpoint, reuse_port);
    // With port 0 the first bind picks the port; the others join it.
    if (i == 0) endpoint.port(workers.back()->acceptor.local_endpoint().port());
  }
  port = endpoint.port();

  std::string note;
  const std::size_t descriptors = descriptor_limit(options.raise_fd_limit, note);
  const std::size_t wanted = options.max_connections != 0
                                 ? options.max_connections
                                 : descriptors - std::min(kReservedDescriptors, descriptors / 2);
  const std::size_t per_worker = std::max<std::size_t>(1, wanted / count);
  for (auto& worker : workers) worker->max_connections = per_worker;
  max_connections = per_worker * count;
  pacer::internal::log_info(
      "pacer::beast: descriptor limit {} ({}); up to {} connections ({} per worker{})", descriptors,
      note, max_connections, per_worker,
      options.max_connections != 0 ? "" : ", derived from the descriptor limit");
  if (max_connections > descriptors) {
    pacer::internal::log_warn(
        "pacer::beast: the connection cap {} is above the descriptor limit {}: accept "
        "will fail before the cap is reached, and connections are shed then",
        max_connections, descriptors);
  }
}

void Server::Impl::stop() {
  std::lock_guard lock(mutex);
  if (stop_requested) return;
  stop_requested = true;
  if (started) {
    // Inline on the caller's own worker (stop() from a handler), so the answer it is about to
    // send already says "Connection: close".
    for (auto& worker : workers)
      asio::dispatch(worker->ioc, [worker = worker.get()] { worker->begin_shutdown(); });
  } else {
    // No thread runs the io_contexts: release the port now.
    error_code ignored;
    for (auto& worker : workers) worker->acceptor.close(ignored);
  }
  cv.notify_all();
}

Server::Server(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Server::~Server() {
  stop();
  wait();
}

void Server::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->started || impl_->stop_requested) return;
  impl_->started = true;
  if (impl_->options.handle_signals) {
    Impl* impl = impl_.get();
    impl->signals.emplace(impl->workers.front()->ioc, SIGINT, SIGTERM);
    impl->signals->async_wait([impl](error_code ec, int signal) {
      if (ec) return;
      pacer::internal::log_info("pacer::beast: signal {} received, stopping", signal);
      impl->stop();
    });
  }
  for (auto& worker : impl_->workers) worker->accept();
  impl_->threads.reserve(impl_->workers.size());
  for (auto& worker : impl_->workers)
    impl_->threads.emplace_back([worker = worker.get()] { worker->run(); });
}

void Server::wait() {
  std::unique_lock lock(impl_->mutex);
  impl_->cv.wait(lock, [&] { return impl_->stop_requested; });
  if (impl_->joining) {
    impl_->cv.wait(lock, [&] { return impl_->joined; });
    return;
  }
  impl_->joining = true;
  std::vector<std::thread> threads = std::move(impl_->threads);
  lock.unlock();
  for (auto& thread : threads) thread.join();
  lock.lock();
  impl_->joined = true;
  impl_->cv.notify_all();
}

void Server::stop() { impl_->stop(); }

std::uint16_t Server::port() const { return impl_->port; }

unsigned Server::threads() const { return static_cast<unsigned>(impl_->workers.size()); }

std::size_t Server::max_connections() const { return impl_->max_connections; }

ServerStats Server::stats() const {
  ServerStats stats;
  for (const auto& worker : impl_->workers) {
    stats.open_connections += worker->open_count.load(std::memory_order_relaxed);
    stats.shed += worker->shed.load(std::memory_order_relaxed);
    stats.refused += worker->refused.load(std::memory_order_relaxed);
    stats.accept_failures += worker->accept_failures.load(std::memory_order_relaxed);
    stats.escaped_exceptions += worker->escaped_exceptions.load(std::memory_order_relaxed);
    stats.refused_per_client += worker->refused_per_client.load(std::memory_order_relaxed);
    stats.body_timeouts += worker->body_timeouts.load(std::memory_order_relaxed);
  }
  return stats;
}

boost::asio::io_context& Server::io_context(unsigned worker) {
  return impl_->workers.at(worker)->ioc;
}

}  // namespace pacer::beast
