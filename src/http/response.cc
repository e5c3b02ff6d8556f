#include "pacer/http/response.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <tuple>

#include "header_text.h"
#include "pacer/http/request_view.h"

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

namespace {

// "00" "01" ... "99": two digits per division.
constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

// Writes `value` in decimal so that it ends just before `end`; returns where it starts. Four
// digits per 64-bit division, split into two table pairs in 32-bit arithmetic (one multiply).
char* format_decimal(char* end, std::int64_t value) {
  std::uint64_t rest = value < 0 ? std::uint64_t{0} - static_cast<std::uint64_t>(value)
                                 : static_cast<std::uint64_t>(value);
  auto put_pair = [&end](std::uint32_t pair) {  // 0..99
    end -= 2;
    std::memcpy(end, kDigitPairs + std::size_t{pair} * 2, 2);
  };
  while (rest >= 10'000) {
    const auto four = static_cast<std::uint32_t>(rest % 10'000);
    rest /= 10'000;
    put_pair(four % 100);
    put_pair(four / 100);
  }
  auto small = static_cast<std::uint32_t>(rest);  // < 10'000
  if (small >= 100) {
    put_pair(small % 100);
    small /= 100;
  }
  if (small >= 10) {
    put_pair(small);
  } else {
    *--end = static_cast<char>('0' + small);
  }
  if (value < 0) *--end = '-';
  return end;
}

}  // namespace

void HeaderList::copy_inline(const HeaderList& other) noexcept {
  count_ = other.count_;
  inline_used_ = other.inline_used_;
  std::copy_n(other.inline_headers_.begin(), std::min(count_, kInlineHeaders),
              inline_headers_.begin());
  std::copy_n(other.inline_text_.begin(), inline_used_, inline_text_.begin());
}

HeaderList& HeaderList::operator=(const HeaderList& other) {
  if (this == &other) return *this;
  // What may throw comes first: a failed copy leaves this list as it was.
  if (!other.more_headers_.empty() || !other.more_text_.empty()) {
    std::vector<Entry> headers = other.more_headers_;
    std::string text = other.more_text_;
    more_headers_ = std::move(headers);
    more_text_ = std::move(text);
  } else {
    more_headers_.clear();
    more_text_.clear();
  }
  copy_inline(other);
  return *this;
}

HeaderList& HeaderList::operator=(HeaderList&& other) noexcept {
  if (this == &other) return *this;
  more_headers_ = std::move(other.more_headers_);
  more_text_ = std::move(other.more_text_);
  copy_inline(other);
  other.clear();
  return *this;
}

void HeaderList::clear() noexcept {
  count_ = 0;
  inline_used_ = 0;
  more_headers_.clear();
  more_text_.clear();
}

void HeaderList::add_slow(std::string_view name, std::string_view value) {
  // The value's bytes first, then its entry: if either throws, the list is as it was (a grown
  // buffer aside).
  std::size_t offset = inline_used_;
  if (value.size() <= kInlineText - inline_used_) {
    std::copy_n(value.data(), value.size(), inline_text_.data() + offset);
  } else {
    if (more_text_.size() + value.size() > UINT32_MAX - kInlineText)
      throw std::length_error("header values longer than 4 GiB in all");
    offset = kInlineText + more_text_.size();
    more_text_.append(value);  // safe if `value` is one of this list's own values
  }
  const Entry e{name, static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(value.size())};
  if (count_ < kInlineHeaders) {
    inline_headers_[count_] = e;
  } else {
    more_headers_.push_back(e);
  }
  if (offset < kInlineText) inline_used_ += value.size();
  ++count_;
}

void HeaderList::add_number(std::string_view name, std::int64_t value) {
  // Formatted on the stack from the right by format_decimal (std::to_chars takes about half as
  // many instructions again, counting the digits first). The digits end half-way through the
  // buffer, so that the usual case can copy a fixed kMaxDigits bytes (a few moves, where a
  // memcpy call costs more than the number); what follows the digits is never read back.
  constexpr std::size_t kMaxDigits = 20;  // "-9223372036854775808"
  char buffer[2 * kMaxDigits] = {};
  char* const end = buffer + kMaxDigits;
  const char* const begin = format_decimal(end, value);
  const auto size = static_cast<std::size_t>(end - begin);
  if (count_ < kInlineHeaders && kMaxDigits <= kInlineText - inline_used_) [[likely]] {
    std::memcpy(inline_text_.data() + inline_used_, begin, kMaxDigits);
    return add_inline_entry(name, size);
  }
  add_slow(name, {begin, size});
}

std::optional<std::string_view> HeaderList::find(std::string_view name) const noexcept {
  for (const auto& [n, value] : *this)
    if (iequals(n, name)) return value;
  return std::nullopt;
}

bool operator==(const HeaderList& a, const HeaderList& b) noexcept {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

namespace internal {

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
      out.add("RateLimit-Limit", text.limits[i].second);
    } else {
      out.add_number("RateLimit-Limit", decision.limit);
    }
    out.add_number("RateLimit-Remaining", decision.remaining);
    out.add_number("RateLimit-Reset", reset);
  }
  if (decision.outcome == Outcome::kDenied)
    out.add_number("Retry-After", ceil_seconds(decision.retry_after));
  if (options.x_ratelimit_reset) {
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    out.add_number("X-RateLimit-Reset", unix_now + reset);
  }
  if (options.x_ratelimit_policy) out.add("X-RateLimit-Policy", text.x_ratelimit_policy);
  if (options.ietf_draft) {
    out.add("RateLimit-Policy", text.ratelimit_policy);
    const std::size_t i = decision.rate_index;
    fmt::memory_buffer value;  // on the stack
    if (i < text.quota_names.size()) {
      fmt::format_to(std::back_inserter(value), "\"{}\"", text.quota_names[i]);
    } else {
      fmt::format_to(std::back_inserter(value), "\"{}.{}\"", text.quota_names[0], i);
    }
    fmt::format_to(std::back_inserter(value), ";r={};t={}", decision.remaining, reset);
    out.add("RateLimit", {value.data(), value.size()});
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
std::string identity_missing_body() { return R"({"detail":"identity_missing"})"; }

}  // namespace pacer::http
