#include "pacer/http/response.h"

#include <fmt/format.h>

#include <charconv>

#include "header_text.h"

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

namespace internal {

void append_number(HeaderList& out, std::string_view name, std::int64_t value) {
  // Written straight into the string's inline buffer (15 characters: every count up to
  // 10^15), not formatted elsewhere and copied.
  std::string& text = out.emplace_back(name, std::string(15, '\0')).second;
  auto [end, ec] = std::to_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc()) {
    text.resize(24);  // -9223372036854775808 is 20
    end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
  }
  text.resize(static_cast<std::size_t>(end - text.data()));
}

PolicyHeaderText render_policy_headers(const Policy& policy, const HeaderOptions& options) {
  PolicyHeaderText text;
  const auto rates = policy.rates();
  if (options.x_ratelimit_policy) {
    text.x_ratelimit_policy = fmt::format("Policy({}):", policy.name());
    for (std::size_t i = 0; i < rates.size(); ++i)
      fmt::format_to(std::back_inserter(text.x_ratelimit_policy), "{} {}", i == 0 ? "" : ",",
                     rates[i].to_string());
  }
  if (options.ietf_draft) {
    // One named quota policy per rate; the first keeps the policy's name.
    for (std::size_t i = 0; i < rates.size(); ++i) {
      text.quota_names.push_back(i == 0 ? policy.name() : fmt::format("{}.{}", policy.name(), i));
      fmt::format_to(std::back_inserter(text.ratelimit_policy), "{}\"{}\";q={};w={}",
                     i == 0 ? "" : ", ", text.quota_names.back(), rates[i].permits(),
                     ceil_seconds(rates[i].period()));
    }
  }
  return text;
}

void append_headers(const PolicyHeaderText& text, const Decision& decision,
                    const HeaderOptions& options, HeaderList& out) {
  const std::int64_t reset = ceil_seconds(decision.reset_after);
  if (options.ratelimit) {
    append_number(out, "RateLimit-Limit", decision.limit);
    append_number(out, "RateLimit-Remaining", decision.remaining);
    append_number(out, "RateLimit-Reset", reset);
  }
  if (decision.outcome == Outcome::kDenied)
    append_number(out, "Retry-After", ceil_seconds(decision.retry_after));
  if (options.x_ratelimit_reset) {
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    append_number(out, "X-RateLimit-Reset", unix_now + reset);
  }
  if (options.x_ratelimit_policy) out.emplace_back("X-RateLimit-Policy", text.x_ratelimit_policy);
  if (options.ietf_draft) {
    out.emplace_back("RateLimit-Policy", text.ratelimit_policy);
    const std::size_t i = decision.rate_index;
    const std::string name = i < text.quota_names.size()
                                 ? text.quota_names[i]
                                 : fmt::format("{}.{}", text.quota_names[0], i);
    out.emplace_back("RateLimit", fmt::format("\"{}\";r={};t={}", name, decision.remaining, reset));
  }
}

}  // namespace internal

void append_headers(const Policy& policy, const Decision& decision, const HeaderOptions& options,
                    HeaderList& out) {
  internal::append_headers(internal::render_policy_headers(policy, options), decision, options,
                           out);
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
