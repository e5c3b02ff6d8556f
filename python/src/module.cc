// pacer._pacer — the C++ engine behind the Python package `pacer`.
//
// Python holds glue only (ASGI middleware, FastAPI dependency, the seed's classes); everything
// that decides something is here or below: durations, client addresses through trusted
// proxies, key hashing, storage keys, GCRA in the store, fail modes, header values and bodies.
//
// The asyncio bridge. A Redis decision completes on one of the store's I/O threads, which
// never touch a Python object: the completion is queued on its event loop's Bridge, and the
// first one queued after a drain writes the Bridge's eventfd. The loop watches that descriptor
// (loop.add_reader) and drain() resolves every queued future at once, holding the GIL: one
// wake-up for many decisions. A Call owns one reference to its future; that reference is
// released under the GIL by whoever ends up owning the Call (the caller when the store answered
// inline, drain() otherwise). Calls whose bridge is gone (its loop was closed or collected)
// are parked in a process-wide list and released at the next call from Python or at exit.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "pacer/decision.h"
#include "pacer/http/http_limiter.h"
#include "pacer/http/identity.h"
#include "pacer/http/ip.h"
#include "pacer/http/response.h"
#include "pacer/limiter.h"
#include "pacer/memory_store.h"
#include "pacer/rate.h"
#include "pacer/redis/redis_store.h"
#include "pacer/redis/url.h"

namespace py = pybind11;

namespace pacer::python {
namespace {

// ---------------------------------------------------------------------------------------------
// Policies

// A policy name as the C++ library accepts it ([A-Za-z0-9_.-], 1..64 bytes). Python policies
// may be named anything; other names are replaced by a digest, so they still get a key space
// of their own.
std::string native_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 &&
                  name.find_first_not_of(
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                      "0123456789_.-") == std::string::npos;
  return ok ? name : "h-" + http::hash_identity(name).substr(2, 16);
}

struct NativePolicy {
  Policy policy;
  std::string description;  // the seed's describe(), the X-RateLimit-Policy value

  static NativePolicy make(
      const std::string& name,
      const std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>>& rates,
      std::string description) {
    std::vector<Rate> native;
    native.reserve(rates.size());
    for (const auto& [permits, period_ns, burst] : rates)
      native.emplace_back(permits, Nanos(period_ns), burst);
    return NativePolicy{Policy(native_name(name), std::move(native)), std::move(description)};
  }
};

// ---------------------------------------------------------------------------------------------
// Headers and bodies

struct HeaderFlags {
  bool expose = true;   // RateLimit-* and Retry-After at all
  bool legacy = false;  // X-RateLimit-Reset
  bool policy = false;  // X-RateLimit-Policy
};

http::HeaderList header_list(const NativePolicy& p, const Decision& d, HeaderFlags flags) {
  http::HeaderList out;
  if (!flags.expose || d.outcome == Outcome::kUnavailable) return out;
  http::append_headers(p.policy, d, {.ratelimit = true, .x_ratelimit_reset = flags.legacy}, out);
  if (flags.policy) out.add("X-RateLimit-Policy", p.description);
  return out;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// ASGI form: [(b"ratelimit-limit", b"10"), ...]
py::list asgi_headers(const NativePolicy& p, const Decision& d, HeaderFlags flags) {
  py::list out;
  for (const auto& [name, value] : header_list(p, d, flags))
    out.append(py::make_tuple(py::bytes(lower(name)), py::bytes(value)));
  return out;
}

// Mapping form, the seed's spelling: [("RateLimit-Limit", "10"), ...]
std::vector<std::pair<std::string, std::string>> named_headers(const NativePolicy& p,
                                                               const Decision& d,
                                                               HeaderFlags flags) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : header_list(p, d, flags)) out.emplace_back(name, value);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Verdicts

struct Verdict {
  Decision decision;
  std::string error;  // the store's error when the fail mode answered
  // ASGI headers, rendered under the GIL when the check asked for them (else None).
  py::object headers;

  std::string_view outcome() const { return to_string(decision.outcome); }
  py::bytes body(bool nested) const {
    if (decision.outcome == Outcome::kUnavailable) return py::bytes(http::unavailable_body());
    return py::bytes(http::too_many_requests_body(
        decision, nested ? http::BodyStyle::kNested : http::BodyStyle::kFlat));
  }
};

// A Decision rebuilt from the seed's RateLimitResult fields, for add_headers on results the
// caller made itself.
Decision decision_from_fields(const NativePolicy& p, bool allowed, std::int64_t retry_after_ms,
                              std::int64_t reset_ms, std::int64_t remaining, std::size_t index) {
  const auto rates = p.policy.rates();
  if (index >= rates.size())
    throw py::index_error("matched_rate_index " + std::to_string(index) + " is out of range for " +
                          std::to_string(rates.size()) + " rate(s)");
  Decision d;
  d.outcome = allowed ? Outcome::kAllowed : Outcome::kDenied;
  d.limit = rates[index].permits();
  d.remaining = remaining < 0 ? 0 : remaining;
  d.retry_after = std::chrono::milliseconds(retry_after_ms < 0 ? 0 : retry_after_ms);
  d.reset_after = std::chrono::milliseconds(reset_ms < 0 ? 0 : reset_ms);
  d.rate_index = static_cast<std::uint8_t>(index);
  return d;
}

// ---------------------------------------------------------------------------------------------
// The asyncio bridge

struct BridgeCore;

struct Call {
  // 0: the caller is still inside Limiter::check; 1: answered inline (the caller owns the Call);
  // 2: the caller returned first (the completion owns the Call and queues it).
  std::atomic<int> state{0};
  Verdict verdict;
  PyObject* future = nullptr;  // one strong reference, released under the GIL
  std::shared_ptr<BridgeCore> bridge;
  // What to render the ASGI headers with, when asked (the policy is shared data: a copy keeps
  // it alive however long the call takes).
  std::optional<std::pair<NativePolicy, HeaderFlags>> render;

  // Under the GIL, once the decision is known.
  void finish() {
    if (render) verdict.headers = asgi_headers(render->first, verdict.decision, render->second);
  }
};

// Calls whose bridge went away; released under the GIL by release_orphans().
std::mutex orphans_mutex;
std::vector<Call*> orphans;
std::atomic<bool> have_orphans{false};

void release_orphans() {  // GIL held
  if (!have_orphans.load(std::memory_order_acquire)) return;
  std::vector<Call*> calls;
  {
    std::lock_guard lock(orphans_mutex);
    calls.swap(orphans);
    have_orphans.store(false, std::memory_order_release);
  }
  for (Call* call : calls) {
    Py_XDECREF(call->future);
    delete call;
  }
}

struct BridgeCore {
  int fd = -1;
  std::mutex mutex;
  std::vector<Call*> ready;

  BridgeCore() : fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  // May run on any thread, without the GIL: what is still queued is parked for Python.
  ~BridgeCore() {
    if (!ready.empty()) {
      std::lock_guard lock(orphans_mutex);
      orphans.insert(orphans.end(), ready.begin(), ready.end());
      have_orphans.store(true, std::memory_order_release);
    }
    ::close(fd);
  }

  // Any thread, no GIL.
  void push(Call* call) {
    bool wake;
    {
      std::lock_guard lock(mutex);
      wake = ready.empty();
      ready.push_back(call);
    }
    if (wake) {
      const std::uint64_t one = 1;
      // EAGAIN means the counter is already non-zero: the loop will wake anyway.
      [[maybe_unused]] const auto n = ::write(fd, &one, sizeof one);
    }
  }
};

// Ownership of a completed Call moves here from a store thread. Never touches Python.
void complete_call(Call* call, const Decision& decision, std::string error) noexcept {
  call->verdict.decision = decision;
  call->verdict.error = std::move(error);
  int expected = 0;
  if (call->state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return;
  std::shared_ptr<BridgeCore> bridge = std::move(call->bridge);
  bridge->push(call);
}

// Answers a future whose decision could not be delivered (out of memory while rendering it),
// so its task does not wait forever.
void fail_future(const py::object& future, const char* what) noexcept {
  try {
    if (!future.attr("done")().cast<bool>())
      future.attr("set_exception")(
          py::module_::import("builtins")
              .attr("RuntimeError")(std::string("pacer: cannot deliver a decision: ") + what));
  } catch (py::error_already_set& e) {
    e.discard_as_unraisable("pacer: failing a future");
  } catch (...) {
  }
}

class Bridge {
 public:
  Bridge() : core_(std::make_shared<BridgeCore>()) {}
  int fd() const { return core_->fd; }
  const std::shared_ptr<BridgeCore>& core() const { return core_; }

  // Called by the event loop when fd() is readable: resolves every queued future. Returns how
  // many completions it delivered.
  std::size_t drain() {
    std::uint64_t counter;
    [[maybe_unused]] const auto n = ::read(core_->fd, &counter, sizeof counter);
    std::vector<Call*> calls;
    {
      std::lock_guard lock(core_->mutex);
      calls.swap(core_->ready);
    }
    for (Call* call : calls) {
      std::unique_ptr<Call> owned(call);
      py::object future = py::reinterpret_steal<py::object>(call->future);
      call->future = nullptr;
      // Every queued call is delivered or released, whatever happens to one of them.
      try {
        // A cancelled task's future is done already: its answer goes nowhere.
        if (!future.attr("done")().cast<bool>()) {
          call->finish();
          future.attr("set_result")(py::cast(std::move(call->verdict)));
        }
      } catch (py::error_already_set& e) {
        // set_result on a future whose loop is closed, or out of memory: that one future.
        e.discard_as_unraisable("pacer: delivering a decision to its future");
      } catch (const std::exception& e) {
        fail_future(future, e.what());
      }
    }
    release_orphans();
    return calls.size();
  }

 private:
  std::shared_ptr<BridgeCore> core_;
};

// ---------------------------------------------------------------------------------------------
// Client addresses

// A RequestView over header pairs handed over by Python (a selector reading a duck-typed
// request) or over an ASGI scope's raw headers.
class PairsView final : public http::RequestView {
 public:
  PairsView(std::string_view peer, const std::vector<std::pair<std::string, std::string>>& headers)
      : peer_(peer), headers_(headers) {}
  std::string_view method() const override { return "GET"; }
  std::string_view path() const override { return "/"; }
  std::string_view query() const override { return {}; }
  std::string_view peer_address() const override { return peer_; }
  std::optional<std::string_view> header(std::string_view name) const override {
    for (const auto& [n, v] : headers_)
      if (http::iequals(n, name)) return std::string_view(v);
    return std::nullopt;
  }
  std::string header_list(std::string_view name) const override {
    std::string out;
    for (const auto& [n, v] : headers_)
      if (http::iequals(n, name)) out.append(out.empty() ? "" : ", ").append(v);
    return out;
  }
  std::size_t header_count(std::string_view name) const override {
    return static_cast<std::size_t>(
        std::count_if(headers_.begin(), headers_.end(),
                      [&](const auto& h) { return http::iequals(h.first, name); }));
  }
  std::optional<std::string_view> attribute(std::string_view) const override {
    return std::nullopt;
  }

 private:
  std::string_view peer_;
  const std::vector<std::pair<std::string, std::string>>& headers_;
};

class ClientIp {
 public:
  ClientIp(const std::string& trusted, std::vector<std::string> headers, int ipv6_prefix) {
    options_.trusted_proxies = http::TrustedProxies::parse(trusted);
    options_.headers = std::move(headers);
    options_.ipv6_prefix = ipv6_prefix;
    options_.validate();
  }

  // The client address; a peer that is not an IP address is returned as it is, no peer at all
  // gives `missing`.
  std::string resolve(const std::optional<std::string>& peer,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      const std::string& missing) const {
    if (!peer) return missing;
    const auto ip = http::client_ip(PairsView(*peer, headers), options_);
    return ip ? ip->to_string() : *peer;
  }

  // The same over an ASGI scope: scope["client"] (tuple or None) and scope["headers"].
  // The same over an ASGI scope: scope["client"] ((host, port) or None) and scope["headers"]
  // (an iterable of [name, value] byte strings). Only the configured headers are copied.
  std::string resolve_scope(const py::object& client, const py::iterable& raw_headers,
                            const std::string& missing) const {
    if (client.is_none()) return missing;
    const std::string peer = py::cast<std::string>(client[py::int_(0)]);
    std::vector<std::pair<std::string, std::string>> wanted;
    for (const py::handle item : raw_headers) {
      const auto pair = py::reinterpret_borrow<py::sequence>(item);
      const py::object name_object = pair[0];
      const std::string_view name = text_of(name_object);
      // Proxy headers are rare: most requests compare a few names and copy nothing.
      for (const auto& h : options_.headers)
        if (http::iequals(name, h)) {
          const py::object value = pair[1];
          wanted.emplace_back(std::string(name), std::string(text_of(value)));
          break;
        }
    }
    return resolve(peer, wanted, missing);
  }

 private:
  // The bytes of a bytes object (ASGI's form) or the UTF-8 of a str; `object` must outlive
  // the view.
  static std::string_view text_of(const py::object& object) {
    if (PyBytes_Check(object.ptr()))
      return {PyBytes_AS_STRING(object.ptr()),
              static_cast<std::size_t>(PyBytes_GET_SIZE(object.ptr()))};
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(object.ptr(), &size);
    if (data == nullptr) throw py::error_already_set();
    return {data, static_cast<std::size_t>(size)};
  }

 public:
  std::string trusted() const { return options_.trusted_proxies.to_string(); }

 private:
  http::ClientIpOptions options_;
};

// ---------------------------------------------------------------------------------------------
// The engine: a store, a Limiter on it, and the key prefix

// The Limiter reports a store failure to on_error right before it answers with the fail mode,
// on the same thread; the completion picks the message up from here.
thread_local std::string last_store_error;

struct EngineOptions {
  std::optional<std::string> url;  // nullopt or "memory://": in-process
  std::string fail_mode = "open";
  std::string prefix = "fastapi";
  std::int64_t connect_timeout_ms = 1000;
  std::int64_t command_timeout_ms = 100;
  redis::TlsOptions tls;  // for rediss:// URLs
};

// app_name becomes the first part of every storage key.
void check_key_prefix(const std::string& prefix) {
  if (!http::valid_key_prefix(prefix))
    throw std::invalid_argument("invalid app_name '" + prefix +
                                "': 1..64 bytes without braces or control characters");
}

bool is_memory_url(const std::optional<std::string>& url) {
  return !url || *url == "memory" || *url == "memory://";
}

class Engine {
 public:
  explicit Engine(EngineOptions options) : prefix_(std::move(options.prefix)) {
    check_key_prefix(prefix_);
    LimiterOptions limiter_options{.fail_mode = parse_fail_mode(options.fail_mode)};
    limiter_options.on_error = [](const ErrorEvent& event) {
      last_store_error = event.error.message();
    };
    if (is_memory_url(options.url)) {
      store_ = std::make_unique<MemoryStore>();
    } else {
      redis::RedisStoreOptions redis_options{.url = *options.url};
      redis_options.connect_timeout = std::chrono::milliseconds(options.connect_timeout_ms);
      redis_options.command_timeout = std::chrono::milliseconds(options.command_timeout_ms);
      redis_options.tls = std::move(options.tls);
      // The I/O thread never preempts the event loop's thread when woken: on a machine (or a
      // CPU set) with fewer cores than busy threads, the loop goes on submitting and delivering
      // whole batches instead of switching to the I/O thread for every decision (measured:
      // ten times fewer context switches, a fifth less CPU per decision on one core). On idle
      // cores it changes nothing.
      redis_options.on_io_thread_start = [](unsigned) {
        const sched_param param{};
        ::sched_setscheduler(0, SCHED_BATCH, &param);
      };
      store_ = std::make_unique<redis::RedisStore>(std::move(redis_options));
    }
    inline_ = store_->completes_inline();
    limiter_ = std::make_unique<Limiter>(*store_, std::move(limiter_options));
  }

  ~Engine() { shutdown(); }

  bool completes_inline() const { return inline_; }

  // Async form. Returns the Verdict when the store answered inline; otherwise None, and
  // `future` gets the Verdict through `bridge`. `flags` as for check_scope; -1: no headers.
  py::object check(const NativePolicy& p, std::string_view scope, std::string_view identity,
                   std::int64_t cost, Bridge* bridge, py::object future, int flags) {
    return submit(p, http::storage_key(prefix_, p.policy.name(), scope, identity), cost, bridge,
                  std::move(future), render_with(p, flags));
  }

  // The middleware's path in one call: the identity from the ASGI scope's client and headers
  // (`ip`), the scope value (0: path, 1: "METHOD:path", 2: "global"), the decision, and the
  // ASGI headers rendered with `flags` (bit 0: expose, 1: X-RateLimit-Reset, 2: -Policy).
  py::object check_scope(const NativePolicy& p, const ClientIp& ip, const py::dict& scope,
                         const std::string& path, int scope_kind, int flags, Bridge* bridge,
                         py::object future) {
    const py::object client = scope.contains("client") ? py::object(scope["client"]) : py::none();
    const std::string identity =
        ip.resolve_scope(client, scope["headers"].cast<py::iterable>(), "unknown");
    std::string value;
    if (scope_kind == 0) {
      value = path;
    } else if (scope_kind == 1) {
      value = scope["method"].cast<std::string>() + ":" + path;
    } else {
      value = "global";
    }
    return submit(p, http::storage_key(prefix_, p.policy.name(), value, identity), 1, bridge,
                  std::move(future), render_with(p, flags));
  }

  static std::optional<std::pair<NativePolicy, HeaderFlags>> render_with(const NativePolicy& p,
                                                                         int flags) {
    if (flags < 0) return std::nullopt;
    return std::make_pair(p, HeaderFlags{(flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0});
  }

  // The same for a storage key built by the caller.
  py::object submit(const NativePolicy& p, const std::string& key, std::int64_t cost,
                    Bridge* bridge, py::object future,
                    std::optional<std::pair<NativePolicy, HeaderFlags>> render) {
    release_orphans();
    if (inline_ || !bridge) {
      std::optional<Verdict> verdict;
      limiter_->check(p.policy, key, cost, [&verdict](const Decision& d) {
        verdict.emplace(Verdict{d, d.degraded ? std::move(last_store_error) : std::string(), {}});
      });
      if (!verdict)
        throw std::logic_error("pacer: the store did not answer inline and no bridge was given");
      if (render) verdict->headers = asgi_headers(render->first, verdict->decision, render->second);
      return py::cast(std::move(*verdict));
    }
    auto* call = new Call;
    call->future = future.release().ptr();
    call->bridge = bridge->core();
    call->render = std::move(render);
    try {
      limiter_->check(p.policy, key, cost, [call](const Decision& d) {
        complete_call(call, d, d.degraded ? std::move(last_store_error) : std::string());
      });
    } catch (...) {
      // Refused before reaching the store (a rate the store cannot represent).
      Py_XDECREF(call->future);
      delete call;
      throw;
    }
    int expected = 0;
    if (call->state.compare_exchange_strong(expected, 2, std::memory_order_acq_rel))
      return py::none();                // the completion owns the Call now
    std::unique_ptr<Call> owned(call);  // answered before Limiter::check returned
    Py_XDECREF(call->future);
    call->finish();
    return py::cast(std::move(call->verdict));
  }

  // Blocking form for synchronous code; releases the GIL while it waits.
  // Decides (or, with `peek`, answers what a check would, spending nothing) and waits.
  Verdict check_blocking(const NativePolicy& p, std::string_view scope, std::string_view identity,
                         std::int64_t cost, bool peek) {
    const std::string key = http::storage_key(prefix_, p.policy.name(), scope, identity);
    auto ask = [&] {
      return peek ? limiter_->peek(p.policy, key, cost) : limiter_->check(p.policy, key, cost);
    };
    if (inline_) return verdict_of(ask());
    py::gil_scoped_release unlocked;
    return verdict_of(ask());
  }

  std::string reset(const NativePolicy& p, std::string_view scope, std::string_view identity) {
    const std::string key = http::storage_key(prefix_, p.policy.name(), scope, identity);
    std::error_code error;
    if (inline_) {
      error = limiter_->reset(p.policy, key);
    } else {
      py::gil_scoped_release unlocked;
      error = limiter_->reset(p.policy, key);
    }
    return error ? error.message() : std::string();
  }

  std::string key(const NativePolicy& p, std::string_view scope, std::string_view identity) const {
    return http::storage_key(prefix_, p.policy.name(), scope, identity);
  }

  void validate(const NativePolicy& p) const { limiter_->validate(p.policy); }

  bool connected() const { return store_ && store_->connected(); }

  bool wait_connected(std::int64_t timeout_ms) const {
    auto* redis = dynamic_cast<redis::RedisStore*>(store_.get());
    if (!redis) return true;
    py::gil_scoped_release unlocked;
    return redis->wait_connected(std::chrono::milliseconds(timeout_ms));
  }

  std::string last_error() const {
    auto* redis = dynamic_cast<redis::RedisStore*>(store_.get());
    return redis ? redis->last_error() : std::string();
  }

  py::dict metrics() const {
    const MetricsSnapshot m = limiter_->metrics().snapshot();
    py::dict out;
    out["allowed"] = m.allowed;
    out["denied"] = m.denied;
    out["errors"] = m.errors;
    out["degraded"] = m.degraded;
    out["hook_errors"] = m.hook_errors;
    out["latency_count"] = m.latency_count;
    out["latency_sum_ns"] = m.latency_sum_ns;
    return out;
  }

  std::string prometheus(const std::string& prefix) const {
    return limiter_->metrics().snapshot().prometheus(prefix);
  }

  // Answers everything in flight (store rule 3); idempotent. No Python object is touched by
  // the store's threads, so waiting for them without the GIL cannot deadlock.
  void shutdown() {
    if (!store_ || shut_) return;
    shut_ = true;
    py::gil_scoped_release unlocked;
    store_->shutdown();
  }

 private:
  static Verdict verdict_of(const Decision& d) {
    return Verdict{d, d.degraded ? std::move(last_store_error) : std::string(), {}};
  }

  std::string prefix_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Limiter> limiter_;
  bool inline_ = true;
  bool shut_ = false;
};

}  // namespace
}  // namespace pacer::python

PYBIND11_MODULE(_pacer, m) {
  using namespace pacer::python;
  namespace http = pacer::http;
  m.doc() = "Pacer's C++ engine; use the `pacer` package, not this module.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def(
      "parse_duration_ns",
      [](std::string_view text) { return pacer::parse_duration(text).count(); },
      "Nanoseconds of '500ms', '1s', '1.5m', ...; ValueError naming anything else.");
  m.def(
      "hash_identity", [](std::string_view value) { return http::hash_identity(value).substr(2); },
      "The first 128 bits of SHA-256(value) in hex (32 characters).");
  m.def("storage_key", &http::storage_key, py::arg("prefix"), py::arg("policy"), py::arg("scope"),
        py::arg("identity"));
  m.def(
      "check_redis_url", [](std::string_view url) { pacer::redis::parse_redis_url(url); },
      "ValueError naming a Redis URL the store would refuse (password masked).");
  m.def("check_key_prefix", &check_key_prefix);
  m.attr("UNAVAILABLE_BODY") = py::bytes(http::unavailable_body());
  m.attr("UNAVAILABLE_RETRY_AFTER_S") = http::kUnavailableRetryAfter.count();

  py::class_<NativePolicy>(m, "Policy")
      .def(py::init(&NativePolicy::make), py::arg("name"), py::arg("rates"), py::arg("description"))
      .def_property_readonly("name", [](const NativePolicy& p) { return p.policy.name(); })
      .def("emission_interval_ns",
           [](const NativePolicy& p, std::size_t i) {
             return p.policy.rates()[i].emission_interval().count();
           })
      .def(
          "headers",
          [](const NativePolicy& p, bool allowed, std::int64_t retry_after_ms,
             std::int64_t reset_ms, std::int64_t remaining, std::size_t index, bool expose,
             bool legacy, bool policy_header) {
            return named_headers(
                p, decision_from_fields(p, allowed, retry_after_ms, reset_ms, remaining, index),
                {expose, legacy, policy_header});
          },
          "The seed's add_headers for a RateLimitResult's fields, as (name, value) pairs.");

  py::class_<Verdict>(m, "Verdict")
      .def_property_readonly("outcome", &Verdict::outcome)
      .def_property_readonly("allowed", [](const Verdict& v) { return v.decision.allowed(); })
      .def_property_readonly("limit", [](const Verdict& v) { return v.decision.limit; })
      .def_property_readonly("remaining", [](const Verdict& v) { return v.decision.remaining; })
      .def_property_readonly(
          "retry_after_ms",
          [](const Verdict& v) { return http::ceil_milliseconds(v.decision.retry_after); })
      .def_property_readonly(
          "reset_ms",
          [](const Verdict& v) { return http::ceil_milliseconds(v.decision.reset_after); })
      .def_property_readonly("rate_index", [](const Verdict& v) { return v.decision.rate_index; })
      .def_property_readonly("headers",
                             [](const Verdict& v) { return v.headers ? v.headers : py::none(); })
      .def_property_readonly("degraded", [](const Verdict& v) { return v.decision.degraded; })
      .def_property_readonly("error",
                             [](const Verdict& v) -> std::optional<std::string> {
                               if (!v.decision.degraded) return std::nullopt;
                               return v.error.empty() ? "store unavailable" : v.error;
                             })
      .def("asgi_headers",
           [](const Verdict& v, const NativePolicy& p, bool expose, bool legacy,
              bool policy_header) {
             return asgi_headers(p, v.decision, {expose, legacy, policy_header});
           })
      .def("body", &Verdict::body, py::arg("nested") = false);

  py::class_<Bridge>(m, "Bridge")
      .def(py::init<>())
      .def_property_readonly("fd", &Bridge::fd)
      .def("drain", &Bridge::drain);

  py::class_<Engine>(m, "Engine")
      .def(py::init([](std::optional<std::string> url, std::string fail_mode, std::string prefix,
                       std::int64_t connect_timeout_ms, std::int64_t command_timeout_ms,
                       std::string tls_ca_file, std::string tls_cert_file, std::string tls_key_file,
                       bool tls_verify, std::string tls_server_name) {
             return std::make_unique<Engine>(
                 EngineOptions{std::move(url),
                               std::move(fail_mode),
                               std::move(prefix),
                               connect_timeout_ms,
                               command_timeout_ms,
                               {std::move(tls_ca_file), std::move(tls_cert_file),
                                std::move(tls_key_file), tls_verify, std::move(tls_server_name)}});
           }),
           py::arg("url"), py::arg("fail_mode"), py::arg("prefix"), py::arg("connect_timeout_ms"),
           py::arg("command_timeout_ms"), py::arg("tls_ca_file") = "",
           py::arg("tls_cert_file") = "", py::arg("tls_key_file") = "",
           py::arg("tls_verify") = true, py::arg("tls_server_name") = "")
      .def_property_readonly("completes_inline", &Engine::completes_inline)
      .def("check", &Engine::check, py::arg("policy"), py::arg("scope"), py::arg("identity"),
           py::arg("cost"), py::arg("bridge"), py::arg("future"), py::arg("flags") = -1)
      .def(
          "submit",
          [](Engine& e, const NativePolicy& p, const std::string& key, std::int64_t cost,
             Bridge* bridge, py::object future) {
            return e.submit(p, key, cost, bridge, std::move(future), std::nullopt);
          },
          py::arg("policy"), py::arg("key"), py::arg("cost"), py::arg("bridge"), py::arg("future"))
      .def("check_scope", &Engine::check_scope)
      .def("check_blocking", &Engine::check_blocking, py::arg("policy"), py::arg("scope"),
           py::arg("identity"), py::arg("cost"), py::arg("peek") = false)
      .def("reset", &Engine::reset)
      .def("key", &Engine::key)
      .def("validate", &Engine::validate)
      .def("connected", &Engine::connected)
      .def("wait_connected", &Engine::wait_connected)
      .def("last_error", &Engine::last_error)
      .def("metrics", &Engine::metrics)
      .def("prometheus", &Engine::prometheus, py::arg("prefix") = "pacer")
      .def("shutdown", &Engine::shutdown);

  py::class_<ClientIp>(m, "ClientIp")
      .def(py::init<const std::string&, std::vector<std::string>, int>(), py::arg("trusted"),
           py::arg("headers"), py::arg("ipv6_prefix") = 128)
      .def("resolve", &ClientIp::resolve)
      .def("resolve_scope", &ClientIp::resolve_scope)
      .def_property_readonly("trusted", &ClientIp::trusted);

  m.def("_release_orphans", &release_orphans);
}
