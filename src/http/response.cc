#include "pacer/http/response.h"

#include <fmt/format.h>

#include <cstring>
#include <tuple>

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

namespace {

// "00" "01" ... "99": two digits per division.
constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// Writes `value` in decimal so that it ends just before `end`; returns where it starts.
char* format_decimal(char* end, std::int64_t value) {
  std::uint64_t rest = value < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(value)
                                 : static_cast<std::uint64_t>(value);
  while (rest >= 100) {
    end -= 2;
    std::memcpy(end, kDigitPairs + rest % 100 * 2, 2);
    rest /= 100;
  }
  if (rest >= 10) {
    end -= 2;
    std::memcpy(end, kDigitPairs + rest * 2, 2);
  } else {
    *--end = static_cast<char>('0' + rest);
  }
  if (value < 0) *--end = '-';
  return end;
}

}  // namespace

void append_number(HeaderList& out, std::string_view name, std::int64_t value) {
  // Formatted on the stack from the right, two digits at a time, and copied once into the
  // string (inline for up to 15 characters: every count up to 10^15). std::to_chars takes about
  // half as many instructions again, counting the digits first.
  char buffer[20];  // "-9223372036854775808"
  char* const end = buffer + sizeof buffer;
  char* const begin = format_decimal(end, value);
  out.emplace_back(std::piecewise_construct, std::forward_as_tuple(name),
                   std::forward_as_tuple(begin, end));
}

PolicyHeaderText render_policy_headers(const Policy& policy, const HeaderOptions& options) {
  PolicyHeaderText text;
  const auto rates = policy.rates();
  if (options.ratelimit) {
    for (const Rate& rate : rates)
      text.limits.emplace_back(rate.permits(), std::to_string(rate.permits()));
  }
  if (options.x_ratelimit_policy) {
    text.x_ratelimit_policy = fmt::format("Policy({}):", policy.name());
    for (std::size_t i = 0; i < rates.size(); ++i) {
      fmt::format_to(std::back_inserter(text.x_ratelimit_policy), "{} {}", i == 0 ? "" : ",",
                     rates[i].to_string());
    }
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
    // The deciding rate's permits, rendered with the rule (unless a store said otherwise).
    const std::size_t i = decision.rate_index;
    if (i < text.limits.size() && text.limits[i].first == decision.limit) {
      out.emplace_back("RateLimit-Limit", text.limits[i].second);
    } else {
      append_number(out, "RateLimit-Limit", decision.limit);
    }
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
