// The engine of the Python extension (pacer._pacer): a store (in process, or Redis), a Limiter
// on it and the key prefix, with the calls the package makes.
//
// Keys are http::storage_key's `<prefix>:{<policy>:<scope>:<identity>}` (docs/DESIGN.md §4);
// decisions, fail modes and metrics are the Limiter's. A check answers a Verdict at once when
// the store completes inline; otherwise it answers None and the future it was given gets the
// Verdict through the event loop's Bridge (bridge.h). The blocking calls and shutdown() wait
// without the GIL; no store thread ever touches a Python object.
//
// Redis I/O runs on a thread of the store's own (`io = "thread"`), or on the event loop's thread
// (`io = "loop"`, loop_driver.h): the first loop that makes an asynchronous call watches the
// store's descriptor and drives it from then on. A call from another loop is answered through
// the driving loop while that one runs; when it has stopped or closed, the calling loop takes
// over. Blocking calls drive the I/O themselves while no loop is polling it.
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bridge.h"
#include "loop_driver.h"
#include "pacer/limiter.h"
#include "pacer/redis/redis_store.h"
#include "pacer/store.h"
#include "policy.h"
#include "rule.h"

namespace pacer::python {

namespace py = pybind11;

struct EngineOptions {
  std::optional<std::string> url;  // nullopt or "memory://": in-process
  std::string fail_mode = "open";
  std::string prefix = "fastapi";
  std::int64_t connect_timeout_ms = 1000;
  std::int64_t command_timeout_ms = 100;
  redis::TlsOptions tls;      // for rediss:// URLs
  std::string io = "thread";  // Redis I/O: "thread" or "loop"
};

// app_name becomes the first part of every storage key: std::invalid_argument naming one that
// http::valid_key_prefix refuses.
void check_key_prefix(const std::string& prefix);

class Engine {
 public:
  // Throws std::invalid_argument for a bad prefix, fail mode or Redis URL.
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  bool completes_inline() const { return inline_; }
  // "inline" (the in-process store), "thread" or "loop": where the store's I/O runs.
  std::string io_mode() const;

  // Async form. Returns the Verdict when the store answered inline; otherwise None, and
  // `future` gets the Verdict through `bridge`. The key is `rule`'s for `request` (an ASGI
  // scope or a request object; rule.h) with `route` as its path part: IdentityMissingError
  // when the request has no identity and the rule refuses it. `headers`: the ASGI headers to
  // render with the verdict (none when not given).
  py::object check(const CompiledRule& rule, const py::object& request, std::string_view route,
                   Bridge* bridge, py::object future, std::optional<HeaderFlag> headers);

  // check() answering an admission (policy.h, admission()): a Verdict when the request is
  // refused; when admitted, `send` wrapped to add the headers, or the header list when `send`
  // is None. The middleware and the dependency make this one call per request.
  py::object admit(const CompiledRule& rule, const py::object& request, std::string_view route,
                   HeaderFlag headers, Bridge* bridge, py::object future, py::object send);

  // The same for a storage key built by the caller (the seed's storage API).
  // With `send` given (even None), the answer is an admission, not the Verdict.
  py::object submit(const NativePolicy& p, const std::string& key, std::int64_t cost,
                    Bridge* bridge, py::object future, std::optional<HeaderChoice> headers,
                    std::optional<py::object> send = std::nullopt);

  // Blocking form for synchronous code; releases the GIL while it waits. Decides (or, with
  // `peek`, answers what a check would, spending nothing) and waits. Scope and identity are
  // given as text.
  Verdict check_blocking(const CompiledRule& rule, std::string_view scope,
                         std::string_view identity, std::int64_t cost, bool peek);

  // Forgets the identity's state; the store's error, or "" (blocking, without the GIL).
  std::string reset(const CompiledRule& rule, std::string_view scope, std::string_view identity);

  const std::string& prefix() const { return prefix_; }
  void validate(const NativePolicy& p) const { limiter_->validate(p.policy); }
  bool connected() const { return store_ && store_->connected(); }
  bool wait_connected(std::int64_t timeout_ms) const;
  std::string last_error() const;
  py::dict metrics() const;
  std::string prometheus(const std::string& prefix) const;

  // Answers everything in flight (store rule 3); idempotent. No Python object is touched by
  // the store's threads, so waiting for them without the GIL cannot deadlock.
  void shutdown();

 private:
  // `rule`, when it was compiled for this engine's prefix; else std::invalid_argument.
  const CompiledRule& ours(const CompiledRule& rule) const;
  // io = "loop", on the loop thread of `bridge`: makes its loop drive the store's I/O unless
  // another loop that is still running does. Returns whether `bridge`'s loop drives it.
  bool drive_from(const Bridge& bridge);
  // A call from a loop that does not drive the I/O: that loop also polls once when the call's
  // deadline has passed, so the call is answered even if the driving loop stopped meanwhile.
  void poll_after_deadline(const Bridge& bridge) const;

  std::string prefix_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Limiter> limiter_;
  bool inline_ = true;
  bool shut_ = false;
  std::chrono::milliseconds command_timeout_;
  // io = "loop": the store's io_context, and the Bridge and (weak) loop that drive it.
  std::shared_ptr<LoopDriver> driver_;
  std::shared_ptr<BridgeCore> driver_bridge_;
  py::object driver_loop_;
};

}  // namespace pacer::python
