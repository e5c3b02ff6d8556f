// The engine of the Python extension (see engine.h).
#include "engine.h"

#include <sched.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "fast_path.h"
#include "pacer/decision.h"
#include "pacer/http/identity.h"
#include "pacer/http/rule.h"
#include "pacer/metrics.h"
#include "pacer/open_store.h"
#include "pacer/prometheus.h"

namespace pacer::python {
namespace {

// Verdict::error: the store's failure that the fail mode answered, else empty.
std::string error_text(std::error_code store_error) {
  return store_error ? store_error.message() : std::string();
}

std::optional<HeaderChoice> choice_of(std::optional<HeaderFlag> headers) {
  if (!headers) return std::nullopt;
  return HeaderChoice::of(*headers);
}

struct Answer {
  Decision decision;
  std::error_code store_error;
};

// A check or peek, waited for without the GIL when the store is not inline, driving the loop's
// I/O when `driver` is given and nobody else drives it.
Answer ask(const Limiter& limiter, bool inline_store, LoopDriver* driver, const Policy& policy,
           std::string_view key, std::int64_t cost, bool peek) {
  auto call = [&](Limiter::ReportingHandler done) {
    if (peek) {
      limiter.peek(policy, key, cost, std::move(done));
    } else {
      limiter.check(policy, key, cost, std::move(done));
    }
  };
  if (inline_store) {
    // Limiter answers an inline store before check() returns.
    std::optional<Answer> answer;
    call([&answer](const Decision& d, std::error_code error) { answer = Answer{d, error}; });
    if (!answer) throw std::logic_error("pacer: the in-process store did not answer inline");
    return *answer;
  }
  // The completion owns the promise: it may still be running when get() returns.
  std::promise<Answer> promise;
  std::future<Answer> answer = promise.get_future();
  call([promise = std::move(promise)](const Decision& d, std::error_code error) mutable {
    promise.set_value(Answer{d, error});
  });
  if (driver) driver->wake();  // for the loop that drives it, if one does
  const py::gil_scoped_release unlocked;
  return driver ? driver->wait(answer) : answer.get();
}

// On `core`'s loop thread: polls the loop's I/O, then delivers what it answered for this loop.
// False when another thread drives it now, or it is stopped.
bool poll_and_deliver(LoopDriver& driver, BridgeCore& core) {
  const bool polled = driver.poll([&core](auto run) {
    core.hold();
    try {
      run();
    } catch (...) {
      deliver(core);
      throw;
    }
  });
  if (polled) deliver(core);
  return polled;
}

// The event loop's reader on the store's descriptor (loop_driver.h), on `bridge`'s loop.
// Removes itself once the engine has shut down.
py::object loop_reader(const std::shared_ptr<LoopDriver>& driver, const Bridge& bridge) {
  return native_callable([driver, core = bridge.core(), loop_ref = bridge.loop_ref()] {
    if (!poll_and_deliver(*driver, *core) && driver->stopped()) {
      const py::object loop = loop_ref();
      if (!loop.is_none()) loop.attr("remove_reader")(driver->descriptor());
    }
  });
}

}  // namespace

void check_key_prefix(const std::string& prefix) {
  if (!http::valid_key_prefix(prefix)) {
    throw std::invalid_argument("invalid app_name '" + prefix +
                                "': 1..64 bytes without braces or control characters");
  }
}

Engine::Engine(EngineOptions options)
    : prefix_(std::move(options.prefix)),
      command_timeout_(std::chrono::milliseconds(options.command_timeout_ms)) {
  check_key_prefix(prefix_);
  if (options.io != "thread" && options.io != "loop") {
    throw std::invalid_argument("invalid io '" + options.io +
                                "': expected \"loop\" (Redis I/O on the event loop's thread) or "
                                "\"thread\" (on a thread of its own)");
  }
  const LimiterOptions limiter_options{.fail_mode = parse_fail_mode(options.fail_mode)};
  // None is the in-process store, as is memory:// (open_store reads every other URL).
  const std::string url = options.url ? *options.url : std::string(kMemoryStoreUrl);
  redis::RedisStoreOptions redis_options;
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
  std::vector<boost::asio::io_context*> contexts;
  if (options.io == "loop" && !is_memory_url(url)) {
    try {
      driver_ = std::make_shared<LoopDriver>();
      contexts.push_back(&driver_->io());
    } catch (const std::runtime_error&) {
      // No usable reactor descriptor: the I/O thread (io_mode() tells the package).
    }
  }
  store_ = open_store(url, {.redis = std::move(redis_options), .io = std::move(contexts)});
  inline_ = store_->completes_inline();
  limiter_ = std::make_unique<Limiter>(*store_, limiter_options);
}

Engine::~Engine() {
  try {
    shutdown();
  } catch (...) {
    // Only a failing mutex can throw here; the store is destroyed below either way.
  }
  // The clients' timers and sockets belong to the driver's io_context, which the loop's reader
  // may keep: the store goes first.
  limiter_.reset();
  store_.reset();
}

std::string Engine::io_mode() const {
  if (inline_) return "inline";
  return driver_ ? "loop" : "thread";
}

bool Engine::drive_from(const Bridge& bridge) {
  if (bridge.core() == driver_bridge_) return true;
  if (driver_->stopped()) return false;
  if (driver_bridge_) {
    const py::object driving = driver_loop_();
    if (!driving.is_none() && !driving.attr("is_closed")().cast<bool>()) {
      if (driving.attr("is_running")().cast<bool>()) return false;
      driving.attr("remove_reader")(driver_->descriptor());
    }
    driver_bridge_.reset();
  }
  const py::object loop = bridge.loop();
  if (loop.is_none()) return false;
  loop.attr("add_reader")(driver_->descriptor(), loop_reader(driver_, bridge));
  driver_bridge_ = bridge.core();
  driver_loop_ = bridge.loop_ref();
  return true;
}

void Engine::poll_after_deadline(const Bridge& bridge) const {
  const py::object loop = bridge.loop();
  if (loop.is_none()) return;
  const auto after = command_timeout_ + std::chrono::milliseconds(20);
  loop.attr("call_later")(std::chrono::duration<double>(after).count(),
                          loop_reader(driver_, bridge));
}

const CompiledRule& Engine::ours(const CompiledRule& rule) const {
  if (rule.rule().context().key_prefix != prefix_) {
    throw std::invalid_argument("pacer: a rule compiled for app_name '" +
                                rule.rule().context().key_prefix + "' given to the engine of '" +
                                prefix_ + "'");
  }
  return rule;
}

py::object Engine::check(const CompiledRule& rule, const py::object& request,
                         std::string_view route, Bridge* bridge, py::object future,
                         std::optional<HeaderFlag> headers) {
  const std::optional<std::string> key = ours(rule).key(request, route);
  if (!key) return py::cast(Verdict{});  // a shadow policy skips it: allowed, no headers
  return submit(rule.policy(), *key, 1, bridge, std::move(future), choice_of(headers));
}

py::object Engine::admit(const CompiledRule& rule, const py::object& request,
                         std::string_view route, HeaderFlag headers, Bridge* bridge,
                         py::object future, py::object send) {
  const std::optional<std::string> key = ours(rule).key(request, route);
  if (!key) return admission(Verdict{}, send);  // a shadow policy skips it: no headers
  return submit(rule.policy(), *key, 1, bridge, std::move(future), HeaderChoice::of(headers),
                std::move(send));
}

py::object Engine::submit(const NativePolicy& p, const std::string& key, std::int64_t cost,
                          Bridge* bridge, py::object future, std::optional<HeaderChoice> headers,
                          std::optional<py::object> send) {
  release_orphans();
  if (inline_ || !bridge) {
    std::optional<Verdict> verdict;
    limiter_->check(
        p.policy, key, cost,
        Limiter::ReportingHandler([&verdict, &p](const Decision& d, std::error_code error) {
          verdict.emplace(Verdict{p.told(d), error_text(error), {}});
        }));
    if (!verdict)
      throw std::logic_error("pacer: the store did not answer inline and no bridge was given");
    if (headers) verdict->headers = asgi_headers(p, verdict->decision, *headers);
    if (send) return admission(std::move(*verdict), *send);
    return py::cast(std::move(*verdict));
  }
  const bool answered_elsewhere = driver_ && !drive_from(*bridge);
  auto* call = new Call;
  call->future = future.release().ptr();
  if (send) {
    call->admission = true;
    call->send = send->is_none() ? nullptr : send->release().ptr();
  }
  call->bridge = bridge->core();
  // A copy of the policy: the rule may be gone by the time the store answers.
  if (headers) call->render = HeaderRendering{p, *headers};
  try {
    limiter_->check(p.policy, key, cost,
                    Limiter::ReportingHandler(
                        [call, shadow = p.shadow](const Decision& d, std::error_code error) {
                          complete_call(call, shadow ? http::shadow_told(d) : d, error_text(error));
                        }));
  } catch (...) {
    // Refused before reaching the store (a rate the store cannot represent).
    call->release_python();
    delete call;
    throw;
  }
  if (driver_) driver_->wake();
  auto expected = Call::State::kInCheck;
  if (call->state.compare_exchange_strong(expected, Call::State::kQueued,
                                          std::memory_order_acq_rel)) {
    // The completion owns the Call now.
    if (answered_elsewhere) {
      poll_after_deadline(*bridge);
    } else if (driver_ && driver_->overdue()) {
      poll_and_deliver(*driver_, *bridge->core());
    }
    return py::none();
  }
  std::unique_ptr<Call> owned(call);  // answered before Limiter::check returned
  py::object answer;
  try {
    call->finish();
    answer = call->result();
  } catch (...) {
    call->release_python();
    throw;
  }
  call->release_python();
  return answer;
}

Verdict Engine::check_blocking(const CompiledRule& rule, std::string_view scope,
                               std::string_view identity, std::int64_t cost, bool peek) {
  const NativePolicy& p = ours(rule).policy();
  const std::string key = rule.key(scope, identity);
  const Answer answer = ask(*limiter_, inline_, driver_.get(), p.policy, key, cost, peek);
  return Verdict{p.told(answer.decision), error_text(answer.store_error), {}};
}

std::string Engine::reset(const CompiledRule& rule, std::string_view scope,
                          std::string_view identity) {
  const NativePolicy& p = ours(rule).policy();
  const std::string key = rule.key(scope, identity);
  std::error_code error;
  if (inline_) {
    error = limiter_->reset(p.policy, key);
  } else if (driver_) {
    std::promise<std::error_code> promise;
    std::future<std::error_code> answer = promise.get_future();
    limiter_->reset(p.policy, key, [promise = std::move(promise)](std::error_code e) mutable {
      promise.set_value(e);
    });
    driver_->wake();
    const py::gil_scoped_release unlocked;
    error = driver_->wait(answer);
  } else {
    const py::gil_scoped_release unlocked;
    error = limiter_->reset(p.policy, key);
  }
  return error ? error.message() : std::string();
}

bool Engine::wait_connected(std::int64_t timeout_ms) const {
  if (inline_) return store_->connected();
  const py::gil_scoped_release unlocked;
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  if (driver_) {
    return driver_->wait_until([this] { return store_->connected(); },
                               std::chrono::steady_clock::now() + timeout);
  }
  return store_->wait_connected(timeout);
}

std::string Engine::last_error() const { return store_->last_error(); }

py::dict Engine::metrics() const {
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

std::string Engine::prometheus(const std::string& prefix) const {
  PrometheusText out(prefix);
  out.add(limiter_->metrics().snapshot());
  out.add(*store_);  // store_connected and the store's own numbers
  return out.take();
}

void Engine::shutdown() {
  if (!store_ || shut_) return;
  shut_ = true;
  const py::gil_scoped_release unlocked;
  // The loop's reader removes itself when it next runs (loop_reader).
  if (driver_) driver_->stop();
  store_->shutdown();
}

}  // namespace pacer::python
