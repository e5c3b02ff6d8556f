// ShouldRateLimit's rules (rls_decide.h; docs/API.md, "Envoy rate limit service").
#include "rls_decide.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <mutex>
#include <set>

#include "pacer/http/identity.h"
#include "pacer/http/rule.h"

namespace pacer::pacerd::rls {
namespace {

constexpr std::size_t kMaxDescriptors = 64;
constexpr std::size_t kMaxEntries = 16;
constexpr std::size_t kMaxText = 1024;

std::uint32_t clamp_u32(std::int64_t v) {
  if (v <= 0) return 0;
  return static_cast<std::uint32_t>(
      std::min<std::int64_t>(v, std::numeric_limits<std::uint32_t>::max()));
}

// One descriptor's plan: what to check, or the answer without a check.
struct Plan {
  std::optional<Policy> policy;  // checked when set
  std::string key;
  RlsStatus status;  // filled in before (no check) or after the check
};

// Everything one request's checks share until the last answers.
struct Gather {
  std::vector<Plan> plans;
  std::atomic<std::size_t> pending{0};
  std::shared_ptr<const void> keep;
  RlsHandler done;

  void finish() noexcept {
    RlsAnswer answer;
    answer.statuses.reserve(plans.size());
    for (auto& plan : plans) {
      if (plan.status.code == Code::kOverLimit) answer.overall = Code::kOverLimit;
      answer.unavailable = answer.unavailable || plan.status.unavailable;
      answer.statuses.push_back(std::move(plan.status));
    }
    try {
      done(std::move(answer));
    } catch (...) {
      // Nothing may escape a store's completion (pacer/store.h); the glue's handler answers
      // its own failures, so this only guards against a bug there.
    }
  }
};

void settle(RlsStatus& status, const Decision& d, bool shadow) {
  status.decision = d;
  status.limit_remaining = clamp_u32(d.remaining);
  status.duration_until_reset = d.reset_after;
  if (d.outcome == Outcome::kAllowed) return;
  status.unavailable = d.outcome == Outcome::kUnavailable;
  if (shadow && !status.unavailable) {
    status.shadowed = true;  // counted as over, answered OK
    return;
  }
  status.code = Code::kOverLimit;
  status.retry_after = d.retry_after;
}

}  // namespace

std::string descriptor_identity(const RlsDescriptor& descriptor) {
  std::string out;
  for (const auto& [key, value] : descriptor.entries) {
    if (!out.empty()) out += '.';
    out.append(key).append("_").append(value);
  }
  return out;
}

std::string bucket_identity(const RlsDescriptor& descriptor) {
  std::string out;
  for (const auto& [key, value] : descriptor.entries) {
    if (!out.empty()) out += '|';
    out += http::sanitize_identity(fmt::format("{}_{}", key, value));
  }
  return out;
}

std::string validate(const RlsRequest& request) {
  if (request.domain.empty()) return "domain: must not be empty";
  if (request.domain.size() > kMaxText) {
    return fmt::format("domain: at most {} bytes, got {}", kMaxText, request.domain.size());
  }
  if (request.descriptors.empty()) return "descriptors: at least one is required";
  if (request.descriptors.size() > kMaxDescriptors) {
    return fmt::format("descriptors: at most {}, got {}", kMaxDescriptors,
                       request.descriptors.size());
  }
  for (std::size_t i = 0; i < request.descriptors.size(); ++i) {
    const auto& d = request.descriptors[i];
    if (d.entries.empty() || d.entries.size() > kMaxEntries) {
      return fmt::format("descriptors[{}].entries: 1 to {} entries, got {}", i, kMaxEntries,
                         d.entries.size());
    }
    for (std::size_t j = 0; j < d.entries.size(); ++j) {
      const auto& [key, value] = d.entries[j];
      if (key.empty() || key.size() > kMaxText || value.size() > kMaxText) {
        return fmt::format(
            "descriptors[{}].entries[{}]: key of 1 to {} bytes and value of at "
            "most {} bytes, got {} and {}",
            i, j, kMaxText, kMaxText, key.size(), value.size());
      }
    }
    if (d.limit && d.limit->unit == Unit::kUnknown) {
      return fmt::format(
          "descriptors[{}].limit.unit: expected SECOND, MINUTE, HOUR, DAY, MONTH "
          "or YEAR, got UNKNOWN",
          i);
    }
  }
  return {};
}

void decide(const Limiter& limiter, const RlsConfig& config, std::string_view key_prefix,
            const RlsRequest& request, std::shared_ptr<const void> keep, RlsHandler done) {
  auto gather = std::make_shared<Gather>();
  gather->keep = std::move(keep);
  gather->done = std::move(done);
  gather->plans.resize(request.descriptors.size());
  const std::int64_t cost = request.hits_addend == 0 ? 1 : request.hits_addend;

  // Find every limit first, so `replaces` can drop the limits another one names.
  std::set<std::string, std::less<>> replaced;
  std::vector<const RlsLimit*> found(request.descriptors.size(), nullptr);
  std::vector<RlsConfig::Entry> entries;
  for (std::size_t i = 0; i < request.descriptors.size(); ++i) {
    const auto& d = request.descriptors[i];
    if (d.limit) continue;  // the override decides; configured replaces do not apply to it
    entries.clear();
    for (const auto& [k, v] : d.entries) entries.push_back({k, v});
    found[i] = config.find(request.domain, entries);
    if (found[i]) replaced.insert(found[i]->replaces.begin(), found[i]->replaces.end());
  }

  for (std::size_t i = 0; i < request.descriptors.size(); ++i) {
    const auto& d = request.descriptors[i];
    Plan& plan = gather->plans[i];
    const std::string identity = bucket_identity(d);
    if (d.limit) {
      plan.status.current_limit = RlsStatus::Limit{d.limit->requests_per_unit, d.limit->unit, ""};
      if (d.limit->requests_per_unit == 0) {
        plan.status.code = Code::kOverLimit;
        continue;
      }
      const Rate rate = window_rate(d.limit->requests_per_unit, d.limit->unit);
      // One bucket per descriptor path and override rate: an override never spends the
      // configured limit's bucket, and a changed override starts afresh.
      plan.policy.emplace(
          fmt::format("rls-override-{}-{}", d.limit->requests_per_unit, to_string(d.limit->unit)),
          std::vector<Rate>{rate});
      plan.key = http::storage_key(key_prefix, plan.policy->name(), request.domain, identity);
      continue;
    }
    const RlsLimit* limit = found[i];
    plan.status.limit = limit;
    if (limit == nullptr || (!limit->name.empty() && replaced.contains(limit->name))) {
      plan.status.limit = nullptr;
      continue;  // OK, no limit
    }
    if (limit->unlimited) {
      plan.status.unlimited = true;
      plan.status.limit_remaining = std::numeric_limits<std::uint32_t>::max();
      continue;
    }
    plan.status.current_limit =
        RlsStatus::Limit{limit->requests_per_unit, limit->unit, limit->name};
    if (!limit->policy) {  // 0 per unit: blocked
      if (limit->shadow) {
        plan.status.shadowed = true;
      } else {
        plan.status.code = Code::kOverLimit;
      }
      continue;
    }
    plan.policy = limit->policy;
    plan.key = http::storage_key(key_prefix, limit->policy->name(), request.domain, identity);
  }

  std::size_t checks = 0;
  for (const auto& plan : gather->plans) checks += plan.policy ? 1 : 0;
  if (checks == 0) {
    gather->finish();
    return;
  }
  // One count per check, plus one held here until every check is started: an inline store
  // answers during the loop and must not finish the request before the last check is asked.
  gather->pending.store(checks + 1);
  for (auto& plan : gather->plans) {
    if (!plan.policy) continue;
    const bool shadow = plan.status.limit != nullptr && plan.status.limit->shadow;
    plan.status.policy = plan.policy;
    try {
      limiter.check(*plan.policy, plan.key, cost, [gather, &plan, shadow](const Decision& d) {
        settle(plan.status, d, shadow);
        if (gather->pending.fetch_sub(1) == 1) gather->finish();
      });
    } catch (const std::exception&) {
      // A cost the policy can never admit is an answer (exceeds capacity), not an error: the
      // Limiter only throws for arguments validate() already refused.
      plan.status.code = Code::kOverLimit;
      if (gather->pending.fetch_sub(1) == 1) gather->finish();
    }
  }
  if (gather->pending.fetch_sub(1) == 1) gather->finish();
}

}  // namespace pacer::pacerd::rls
