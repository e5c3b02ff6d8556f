// The engine of the Python extension (see engine.h).
#include "engine.h"

#include <sched.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <system_error>
#include <utility>

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

std::optional<HeaderRendering> render_with(const NativePolicy& p,
                                           std::optional<HeaderFlag> headers) {
  if (!headers) return std::nullopt;
  return HeaderRendering{p, HeaderChoice::of(*headers)};
}

struct Answer {
  Decision decision;
  std::error_code store_error;
};

// A check or peek, waited for (the caller releases the GIL when the store is not inline).
Answer ask(const Limiter& limiter, bool inline_store, const Policy& policy, std::string_view key,
           std::int64_t cost, bool peek) {
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
  return answer.get();
}

}  // namespace

void check_key_prefix(const std::string& prefix) {
  if (!http::valid_key_prefix(prefix)) {
    throw std::invalid_argument("invalid app_name '" + prefix +
                                "': 1..64 bytes without braces or control characters");
  }
}

Engine::Engine(EngineOptions options) : prefix_(std::move(options.prefix)) {
  check_key_prefix(prefix_);
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
  store_ = open_store(url, {.redis = std::move(redis_options)});
  inline_ = store_->completes_inline();
  limiter_ = std::make_unique<Limiter>(*store_, limiter_options);
}

Engine::~Engine() { shutdown(); }

py::object Engine::check(const NativePolicy& p, std::string_view scope, std::string_view identity,
                         std::int64_t cost, Bridge* bridge, py::object future,
                         std::optional<HeaderFlag> headers) {
  return submit(p, http::storage_key(prefix_, p.policy.name(), scope, identity), cost, bridge,
                std::move(future), render_with(p, headers));
}

std::string Engine::scope_key(const NativePolicy& p, const ClientIp& ip, const py::dict& scope,
                              const std::string& path, ScopeKind scope_kind) const {
  const py::object client = scope.contains("client") ? py::object(scope["client"]) : py::none();
  const std::string identity =
      ip.resolve_scope(client, scope["headers"].cast<py::iterable>(), "unknown");
  std::string value;
  switch (scope_kind) {
    case ScopeKind::kPath:
      value = path;
      break;
    case ScopeKind::kMethodPath:
      value = scope["method"].cast<std::string>() + ":" + path;
      break;
    case ScopeKind::kGlobal:
      value = "global";
      break;
  }
  return http::storage_key(prefix_, p.policy.name(), value, identity);
}

py::object Engine::check_scope(const NativePolicy& p, const ClientIp& ip, const py::dict& scope,
                               const std::string& path, ScopeKind scope_kind, HeaderFlag headers,
                               Bridge* bridge, py::object future) {
  return submit(p, scope_key(p, ip, scope, path, scope_kind), 1, bridge, std::move(future),
                render_with(p, headers));
}

py::object Engine::admit_scope(const NativePolicy& p, const ClientIp& ip, const py::dict& scope,
                               const std::string& path, ScopeKind scope_kind, HeaderFlag headers,
                               Bridge* bridge, py::object future, py::object send) {
  return submit(p, scope_key(p, ip, scope, path, scope_kind), 1, bridge, std::move(future),
                render_with(p, headers), std::move(send));
}

py::object Engine::submit(const NativePolicy& p, const std::string& key, std::int64_t cost,
                          Bridge* bridge, py::object future, std::optional<HeaderRendering> render,
                          std::optional<py::object> send) {
  release_orphans();
  if (inline_ || !bridge) {
    std::optional<Verdict> verdict;
    limiter_->check(p.policy, key, cost,
                    Limiter::ReportingHandler([&verdict](const Decision& d, std::error_code error) {
                      verdict.emplace(Verdict{d, error_text(error), {}});
                    }));
    if (!verdict)
      throw std::logic_error("pacer: the store did not answer inline and no bridge was given");
    if (render) verdict->headers = asgi_headers(render->policy, verdict->decision, render->choice);
    if (send) return admission(std::move(*verdict), *send);
    return py::cast(std::move(*verdict));
  }
  auto* call = new Call;
  call->future = future.release().ptr();
  if (send) {
    call->admission = true;
    call->send = send->is_none() ? nullptr : send->release().ptr();
  }
  call->bridge = bridge->core();
  call->render = std::move(render);
  try {
    limiter_->check(p.policy, key, cost,
                    Limiter::ReportingHandler([call](const Decision& d, std::error_code error) {
                      complete_call(call, d, error_text(error));
                    }));
  } catch (...) {
    // Refused before reaching the store (a rate the store cannot represent).
    call->release_python();
    delete call;
    throw;
  }
  auto expected = Call::State::kInCheck;
  if (call->state.compare_exchange_strong(expected, Call::State::kQueued,
                                          std::memory_order_acq_rel))
    return py::none();                // the completion owns the Call now
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

Verdict Engine::check_blocking(const NativePolicy& p, std::string_view scope,
                               std::string_view identity, std::int64_t cost, bool peek) {
  const std::string key = http::storage_key(prefix_, p.policy.name(), scope, identity);
  Answer answer;
  if (inline_) {
    answer = ask(*limiter_, true, p.policy, key, cost, peek);
  } else {
    py::gil_scoped_release unlocked;
    answer = ask(*limiter_, false, p.policy, key, cost, peek);
  }
  return Verdict{answer.decision, error_text(answer.store_error), {}};
}

std::string Engine::reset(const NativePolicy& p, std::string_view scope,
                          std::string_view identity) {
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

std::string Engine::key(const NativePolicy& p, std::string_view scope,
                        std::string_view identity) const {
  return http::storage_key(prefix_, p.policy.name(), scope, identity);
}

bool Engine::wait_connected(std::int64_t timeout_ms) const {
  if (inline_) return store_->connected();
  py::gil_scoped_release unlocked;
  return store_->wait_connected(std::chrono::milliseconds(timeout_ms));
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
  py::gil_scoped_release unlocked;
  store_->shutdown();
}

}  // namespace pacer::python
