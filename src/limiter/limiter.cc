#include "pacer/limiter.h"

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/handler_guard.h"
#include "core/logging.h"
#include "core/text.h"
#include "limiter/rendezvous.h"

namespace pacer {
namespace {

void validate_arguments(std::string_view key, std::int64_t cost) {
  if (cost < 0)
    throw std::invalid_argument("invalid cost " + std::to_string(cost) + ": must be 0 or more");
  if (key.empty()) throw std::invalid_argument("invalid key '': must not be empty");
}

}  // namespace

FailMode parse_fail_mode(std::string_view text) {
  if (text == "open") return FailMode::kOpen;
  if (text == "closed") return FailMode::kClosed;
  if (text == "local") return FailMode::kLocal;
  throw std::invalid_argument("invalid fail mode '" + internal::printable(text) +
                              "': expected open, closed or local");
}

std::string_view to_string(FailMode mode) {
  switch (mode) {
    case FailMode::kOpen:
      return "open";
    case FailMode::kClosed:
      return "closed";
    case FailMode::kLocal:
      return "local";
  }
  return "unknown";
}

struct Limiter::State {
  explicit State(LimiterOptions o)
      : options(std::move(o)),
        local(options.fail_mode == FailMode::kLocal
                  ? std::make_unique<MemoryStore>(options.local_store)
                  : nullptr) {}

  // Counts the decision, calls the hooks and returns what the caller is told. A peek is no
  // decision: only its store failure is counted (and reported to on_error).
  Decision decide(Op op, const Policy& policy, std::string_view key, std::int64_t cost,
                  const CheckResult& result, std::chrono::steady_clock::time_point started);
  Decision fallback(Op op, const Policy& policy, std::string_view key, std::int64_t cost);
  template <class Event, class Hook>
  void call_hook(const Hook& hook, const Event& event) noexcept;

  // Counts a completion handler that threw on an I/O thread; logs at most once a second (one
  // that throws on every request must not flood the log).
  void handler_threw(const Policy& policy, std::string_view what) noexcept {
    metrics.count_hook_error();
    try {
      std::lock_guard lock(handler_log_mutex);
      std::uint64_t skipped = 0;
      if (!handler_log.allow(skipped)) return;
      pacer::internal::log_error(
          "pacer: a completion handler for policy '{}' threw ({}); handlers must not "
          "throw ({} more since the last report)",
          policy.name(), what, skipped);
    } catch (...) {
    }
  }

  const LimiterOptions options;
  Metrics metrics;
  std::mutex handler_log_mutex;  // error path only
  internal::LogThrottle handler_log;
  const std::unique_ptr<MemoryStore> local;  // FailMode::kLocal only
};

Limiter::Limiter(Store& store, LimiterOptions options)
    : store_(&store),
      memory_store_(dynamic_cast<MemoryStore*>(&store)),
      inline_store_(store.completes_inline()),
      resolution_(store.resolution()),
      state_(std::make_shared<State>(std::move(options))) {}

Limiter::~Limiter() = default;

const Metrics& Limiter::metrics() const { return state_->metrics; }
FailMode Limiter::fail_mode() const { return state_->options.fail_mode; }

template <class Event, class Hook>
void Limiter::State::call_hook(const Hook& hook, const Event& event) noexcept {
  try {
    hook(event);
  } catch (const std::exception& e) {
    metrics.count_hook_error();
    pacer::internal::log_warn("pacer: hook for policy '{}' threw: {}", event.policy.name(),
                              e.what());
  } catch (...) {
    metrics.count_hook_error();
    pacer::internal::log_warn("pacer: hook for policy '{}' threw a non-exception",
                              event.policy.name());
  }
}

Decision Limiter::State::fallback(Op op, const Policy& policy, std::string_view key,
                                  std::int64_t cost) {
  Decision d;
  switch (options.fail_mode) {
    case FailMode::kOpen:
      d.outcome = Outcome::kAllowed;
      d.limit = policy.rates()[0].permits();
      d.remaining = policy.rates()[0].burst() + 1;
      break;
    case FailMode::kClosed:
      d.outcome = Outcome::kUnavailable;
      d.limit = policy.rates()[0].permits();
      break;
    case FailMode::kLocal:
      d = (op == Op::kCheck ? local->check_now(policy, key, cost)
                            : local->peek_now(policy, key, cost))
              .decision;
      break;
  }
  d.degraded = true;
  return d;
}

Decision Limiter::State::decide(Op op, const Policy& policy, std::string_view key,
                                std::int64_t cost, const CheckResult& result,
                                std::chrono::steady_clock::time_point started) {
  Decision decision = result.decision;
  if (result.error) {
    metrics.count_error();
    if (options.on_error) call_hook(options.on_error, ErrorEvent{policy, key, result.error});
    decision = fallback(op, policy, key, cost);
  }
  if (op == Op::kPeek) return decision;
  std::optional<std::chrono::nanoseconds> latency;
  if (started != std::chrono::steady_clock::time_point{})
    latency = std::chrono::steady_clock::now() - started;
  metrics.count_decision(decision.allowed(), decision.degraded, latency);
  if (options.on_decision)
    call_hook(options.on_decision, DecisionEvent{policy, key, cost, decision});
  return decision;
}

void Limiter::validate(const Policy& policy) const {
  if (policy.finest_interval() >= resolution_) return;
  for (const Rate& rate : policy.rates()) {
    if (rate.emission_interval() < resolution_) {
      throw std::invalid_argument("invalid rate '" + rate.to_string() + "' in policy '" +
                                  policy.name() + "': one permit every " +
                                  std::to_string(rate.emission_interval().count()) +
                                  " ns is finer than the store's resolution of " +
                                  std::to_string(resolution_.count()) + " ns");
    }
  }
}

void Limiter::require_blocking_allowed(const char* call) const {
  if (!inline_store_ && store_->on_io_thread()) {
    throw std::logic_error(std::string("pacer: blocking Limiter::") + call +
                           " called on a thread that runs the store's I/O; it would wait for "
                           "itself. Use the asynchronous form on that thread");
  }
}

Decision Limiter::check_inline(Op op, const Policy& policy, std::string_view key, std::int64_t cost,
                               std::error_code* store_error) const {
  validate_arguments(key, cost);
  validate(policy);
  State* state = state_.get();
  // Inline stores answer in well under a microsecond (docs/PERFORMANCE.md); two clock reads
  // would cost a third of that, so one decision in kInlineTimingSample per thread is timed.
  thread_local std::uint32_t decisions = 0;
  const auto started = ++decisions % MetricsSnapshot::kInlineTimingSample == 0
                           ? std::chrono::steady_clock::now()
                           : std::chrono::steady_clock::time_point{};
  // The in-process store (final) answers check() with check_now(): asked directly, without a
  // handler object and two indirect calls per decision.
  if (memory_store_ != nullptr) {
    const CheckResult result = op == Op::kCheck ? memory_store_->check_now(policy, key, cost)
                                                : memory_store_->peek_now(policy, key, cost);
    if (store_error != nullptr) *store_error = result.error;
    return state->decide(op, policy, result.key, cost, result, started);
  }
  std::optional<Decision> decision;
  auto answer = [&](const CheckResult& r) {
    if (store_error != nullptr) *store_error = r.error;
    decision = state->decide(op, policy, r.key, cost, r, started);
  };
  if (op == Op::kCheck) {
    store_->check(policy, key, cost, answer);
  } else {
    store_->peek(policy, key, cost, answer);
  }
  if (decision) return *decision;
  // A store that broke its completes_inline() promise: the fail mode answers, never a silent
  // admission.
  const CheckResult broken{.error = make_error_code(Errc::kStoreUnavailable)};
  if (store_error != nullptr) *store_error = broken.error;
  return state->decide(op, policy, key, cost, broken, started);
}

namespace {

void deliver(Limiter::DecisionHandler& done, const Decision& decision, std::error_code) {
  done(decision);
}
void deliver(Limiter::ReportingHandler& done, const Decision& decision, std::error_code error) {
  done(decision, error);
}

}  // namespace

template <class Done>
void Limiter::ask(Op op, const Policy& policy, std::string_view key, std::int64_t cost,
                  Done done) const {
  // Answered before the store returns: nothing needs to outlive this frame.
  if (inline_store_) {
    std::error_code store_error;
    const Decision decision = check_inline(op, policy, key, cost, &store_error);
    return deliver(done, decision, store_error);
  }
  validate_arguments(key, cost);
  validate(policy);
  // The answer comes later, perhaps after this Limiter (and the caller's policy) are gone:
  // the completion holds the shared state and its own reference to the policy.
  const auto started = std::chrono::steady_clock::now();
  CheckHandler complete = [op, state = state_, policy, cost, started,
                           done = std::move(done)](const CheckResult& r) mutable {
    auto decide = [&] {
      deliver(done, state->decide(op, policy, r.key, cost, r, started), r.error);
    };
    internal::call_guarded(decide,
                           [&](std::string_view what) { state->handler_threw(policy, what); });
  };
  if (op == Op::kCheck) {
    store_->check(policy, key, cost, std::move(complete));
  } else {
    store_->peek(policy, key, cost, std::move(complete));
  }
}

Decision Limiter::ask(Op op, const Policy& policy, std::string_view key, std::int64_t cost) const {
  if (inline_store_) return check_inline(op, policy, key, cost);
  require_blocking_allowed(op == Op::kCheck ? "check" : "peek");
  internal::Rendezvous<Decision> rendezvous;
  ask(op, policy, key, cost, DecisionHandler([&](const Decision& d) { rendezvous.deliver(d); }));
  return rendezvous.wait();
}

void Limiter::check(const Policy& policy, std::string_view key, std::int64_t cost,
                    DecisionHandler done) const {
  ask(Op::kCheck, policy, key, cost, std::move(done));
}

Decision Limiter::check(const Policy& policy, std::string_view key, std::int64_t cost) const {
  return ask(Op::kCheck, policy, key, cost);
}

void Limiter::peek(const Policy& policy, std::string_view key, std::int64_t cost,
                   DecisionHandler done) const {
  ask(Op::kPeek, policy, key, cost, std::move(done));
}

Decision Limiter::peek(const Policy& policy, std::string_view key, std::int64_t cost) const {
  return ask(Op::kPeek, policy, key, cost);
}

void Limiter::check(const Policy& policy, std::string_view key, std::int64_t cost,
                    ReportingHandler done) const {
  ask(Op::kCheck, policy, key, cost, std::move(done));
}

void Limiter::peek(const Policy& policy, std::string_view key, std::int64_t cost,
                   ReportingHandler done) const {
  ask(Op::kPeek, policy, key, cost, std::move(done));
}

void Limiter::reset(const Policy& policy, std::string_view key, ResetHandler done) const {
  validate_arguments(key, 0);
  if (state_->local) state_->local->reset_now(policy, key);
  store_->reset(policy, key, std::move(done));
}

std::error_code Limiter::reset(const Policy& policy, std::string_view key) const {
  require_blocking_allowed("reset");
  internal::Rendezvous<std::error_code> rendezvous;
  reset(policy, key, [&](std::error_code ec) { rendezvous.deliver(ec); });
  return rendezvous.wait();
}

}  // namespace pacer
