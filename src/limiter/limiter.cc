#include "pacer/limiter.h"

#include "pacer/detail/text.h"

#include <spdlog/spdlog.h>

#include "pacer/detail/rendezvous.h"

#include <stdexcept>
#include <string>

namespace pacer {
namespace {

class PacerCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pacer"; }
  std::string message(int code) const override {
    switch (static_cast<Errc>(code)) {
      case Errc::kStoreUnavailable:
        return "store unavailable";
      case Errc::kTimeout:
        return "store timed out";
      case Errc::kCircuitOpen:
        return "circuit open after repeated store failures";
      case Errc::kInvalidCost:
        return "invalid cost";
      case Errc::kInvalidKey:
        return "invalid key";
      case Errc::kProtocol:
        return "unexpected reply from the store";
      case Errc::kOverloaded:
        return "too many requests waiting for the store";
      case Errc::kRateTooFine:
        return "rate finer than the store's time resolution (1 us per permit in Redis)";
    }
    return "unknown pacer error " + std::to_string(code);
  }
};

void validate(std::string_view key, std::int64_t cost) {
  if (cost < 0)
    throw std::invalid_argument("invalid cost " + std::to_string(cost) + ": must be 0 or more");
  if (key.empty()) throw std::invalid_argument("invalid key '': must not be empty");
}

}  // namespace

const std::error_category& pacer_category() noexcept {
  static const PacerCategory category;
  return category;
}

FailMode parse_fail_mode(std::string_view text) {
  if (text == "open") return FailMode::kOpen;
  if (text == "closed") return FailMode::kClosed;
  if (text == "local") return FailMode::kLocal;
  throw std::invalid_argument("invalid fail mode '" + detail::printable(text) +
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

Limiter::Limiter(Store& store, LimiterOptions options)
    : store_(store), options_(std::move(options)) {
  if (options_.fail_mode == FailMode::kLocal)
    local_ = std::make_unique<MemoryStore>(options_.local_store);
}

Limiter::~Limiter() = default;

template <class Event, class Hook>
void Limiter::call_hook(const Hook& hook, const Event& event) noexcept {
  try {
    hook(event);
  } catch (const std::exception& e) {
    metrics_.count_hook_error();
    spdlog::warn("pacer: hook for policy '{}' threw: {}", event.policy.name(), e.what());
  } catch (...) {
    metrics_.count_hook_error();
    spdlog::warn("pacer: hook for policy '{}' threw a non-exception", event.policy.name());
  }
}

Decision Limiter::fallback(const Policy& policy, std::string_view key, std::int64_t cost) {
  Decision d;
  switch (options_.fail_mode) {
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
      d = local_->check_now(policy, key, cost).decision;
      break;
  }
  d.degraded = true;
  return d;
}

void Limiter::complete(const Policy& policy, std::string_view key, std::int64_t cost,
                       const CheckResult& result, std::chrono::steady_clock::time_point started,
                       DecisionHandler& done) {
  Decision decision = result.decision;
  if (result.error) {
    metrics_.count_error();
    if (options_.on_error) call_hook(options_.on_error, ErrorEvent{policy, key, result.error});
    decision = fallback(policy, key, cost);
  }
  const auto latency = started == std::chrono::steady_clock::time_point{}
                           ? std::chrono::nanoseconds{0}
                           : std::chrono::steady_clock::now() - started;
  metrics_.count_decision(decision.allowed(), decision.degraded, latency);
  if (options_.on_decision)
    call_hook(options_.on_decision, DecisionEvent{policy, key, cost, decision});
  done(decision);
}

void Limiter::check(const Policy& policy, std::string_view key, std::int64_t cost,
                    DecisionHandler done) {
  validate(key, cost);
  // Inline stores answer in well under a microsecond (docs/PERFORMANCE.md); two clock reads
  // would cost half as much as the decision, so they land in the lowest bucket untimed.
  const auto started = store_.completes_inline() ? std::chrono::steady_clock::time_point{}
                                                 : std::chrono::steady_clock::now();
  store_.check(policy, key, cost,
               [this, &policy, cost, started, done = std::move(done)](const CheckResult& r) mutable {
                 complete(policy, r.key, cost, r, started, done);
               });
}

Decision Limiter::check(const Policy& policy, std::string_view key, std::int64_t cost) {
  detail::Rendezvous<Decision> rendezvous;
  check(policy, key, cost, [&](const Decision& d) { rendezvous.deliver(d); });
  return rendezvous.wait();
}

void Limiter::reset(const Policy& policy, std::string_view key, ResetHandler done) {
  validate(key, 0);
  if (local_) local_->reset_now(policy, key);
  store_.reset(policy, key, std::move(done));
}

std::error_code Limiter::reset(const Policy& policy, std::string_view key) {
  detail::Rendezvous<std::error_code> rendezvous;
  reset(policy, key, [&](std::error_code ec) { rendezvous.deliver(ec); });
  return rendezvous.wait();
}

}  // namespace pacer
