#include "pacer/http/response.h"

#include <fmt/format.h>

namespace pacer::http {

std::int64_t ceil_seconds(std::chrono::nanoseconds duration) {
  constexpr std::int64_t kSecond = 1'000'000'000;
  const std::int64_t seconds = (duration.count() + kSecond - 1) / kSecond;
  return seconds < 1 ? 1 : seconds;
}

std::int64_t ceil_milliseconds(std::chrono::nanoseconds duration) {
  constexpr std::int64_t kMilli = 1'000'000;
  return duration.count() <= 0 ? 0 : (duration.count() + kMilli - 1) / kMilli;
}

void append_headers(const Policy& policy, const Decision& decision, const HeaderOptions& options,
                    HeaderList& out) {
  const auto rates = policy.rates();
  const std::int64_t reset = ceil_seconds(decision.reset_after);
  if (options.ratelimit) {
    out.emplace_back("RateLimit-Limit", std::to_string(decision.limit));
    out.emplace_back("RateLimit-Remaining", std::to_string(decision.remaining));
    out.emplace_back("RateLimit-Reset", std::to_string(reset));
  }
  if (decision.outcome == Outcome::kDenied)
    out.emplace_back("Retry-After", std::to_string(ceil_seconds(decision.retry_after)));
  if (options.x_ratelimit_reset) {
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    out.emplace_back("X-RateLimit-Reset", std::to_string(unix_now + reset));
  }
  if (options.x_ratelimit_policy) {
    std::string value = fmt::format("Policy({}):", policy.name());
    for (std::size_t i = 0; i < rates.size(); ++i)
      fmt::format_to(std::back_inserter(value), "{} {}", i == 0 ? "" : ",", rates[i].to_string());
    out.emplace_back("X-RateLimit-Policy", std::move(value));
  }
  if (options.ietf_draft) {
    // One named quota policy per rate; the first keeps the policy's name.
    auto quota_name = [&](std::size_t i) {
      return i == 0 ? policy.name() : fmt::format("{}.{}", policy.name(), i);
    };
    std::string value;
    for (std::size_t i = 0; i < rates.size(); ++i)
      fmt::format_to(std::back_inserter(value), "{}\"{}\";q={};w={}", i == 0 ? "" : ", ",
                     quota_name(i), rates[i].permits(), ceil_seconds(rates[i].period()));
    out.emplace_back("RateLimit-Policy", std::move(value));
    out.emplace_back("RateLimit", fmt::format("\"{}\";r={};t={}", quota_name(decision.rate_index),
                                              decision.remaining, reset));
  }
}

std::string too_many_requests_body(const Decision& decision, BodyStyle style) {
  std::string inner;
  if (decision.outcome == Outcome::kExceedsCapacity) {
    inner = R"({"detail":"cost_exceeds_capacity","retry_after_ms":null})";
  } else {
    inner = fmt::format(R"({{"detail":"rate_limited","retry_after_ms":{}}})",
                        ceil_milliseconds(decision.retry_after));
  }
  return style == BodyStyle::kNested ? fmt::format(R"({{"detail":{}}})", inner) : inner;
}

std::string unavailable_body() { return R"({"detail":"Service temporarily unavailable"})"; }

}  // namespace pacer::http
