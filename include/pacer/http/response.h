// pacer/http/response.h — how a Decision is told to HTTP clients (docs/DESIGN.md §7).
//
// Every limited response carries RateLimit-Limit / -Remaining / -Reset; a 429 adds
// Retry-After (whole seconds, rounded up, so a client never retries too early). Optional:
// X-RateLimit-Reset (Unix time), X-RateLimit-Policy, and the IETF draft-10 structured fields
// RateLimit-Policy / RateLimit.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pacer/decision.h"
#include "pacer/rate.h"

namespace pacer::http {

struct HeaderOptions {
  bool ratelimit = true;            // RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset
  bool x_ratelimit_reset = false;   // X-RateLimit-Reset: <unix seconds>
  bool x_ratelimit_policy = false;  // X-RateLimit-Policy: Policy(api): 100/1m (burst=10)
  bool ietf_draft = false;  // RateLimit-Policy: "api";q=100;w=60 and RateLimit: "api";r=5;t=30
};

// Whether a 429 body stands alone or is nested in "detail" (per-route limits of the demo,
// compatible with the original FastAPI service).
enum class BodyStyle { kFlat, kNested };

// The headers of one response, `name: value` in the order added. A value is copied into the list;
// a name is not (it must outlive the list: the names Pacer adds are string literals). The usual
// handful of short values is stored inline, so a verdict's headers cost no allocation; more,
// or longer, ones go to the heap.
//
//   for (const auto& [name, value] : verdict.headers) response.insert(name, value);
class HeaderList {
 public:
  using value_type = std::pair<std::string_view, std::string_view>;
  class const_iterator;

  // User-provided, so that value-initialisation (`HeaderList{}`) leaves the buffers unwritten.
  HeaderList() noexcept {}  // NOLINT(modernize-use-equals-default)
  HeaderList(std::initializer_list<value_type> headers) {
    for (const auto& [name, value] : headers) add(name, value);
  }
  HeaderList(const HeaderList& other) { *this = other; }
  HeaderList(HeaderList&& other) noexcept { *this = std::move(other); }
  HeaderList& operator=(const HeaderList& other);
  HeaderList& operator=(HeaderList&& other) noexcept;
  ~HeaderList() = default;

  void add(std::string_view name, std::string_view value);
  // `name: value` with the number in decimal.
  void add_number(std::string_view name, std::int64_t value);
  void clear() noexcept;

  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  value_type operator[](std::size_t i) const noexcept;
  const_iterator begin() const noexcept;
  const_iterator end() const noexcept;
  // The value of the first header called `name` (compared case-insensitively).
  std::optional<std::string_view> find(std::string_view name) const noexcept;

  friend bool operator==(const HeaderList& a, const HeaderList& b) noexcept;

 private:
  // Enough for every header HttpLimiter adds (8 at most) and their values under the default
  // and usual header options.
  static constexpr std::size_t kInlineHeaders = 8;
  static constexpr std::size_t kInlineText = 160;

  struct Entry {
    std::string_view name;
    // Where the value is: at inline_text_ + offset below kInlineText, else at
    // more_text_ + (offset - kInlineText).
    std::uint32_t offset;
    std::uint32_t size;
  };

  const Entry& entry(std::size_t i) const noexcept {
    return i < kInlineHeaders ? inline_headers_[i] : more_headers_[i - kInlineHeaders];
  }
  // The entry of a value of `size` bytes just written at inline_text_ + inline_used_, when
  // count_ < kInlineHeaders.
  void add_inline_entry(std::string_view name, std::size_t size) noexcept {
    inline_headers_[count_++] = {name, static_cast<std::uint32_t>(inline_used_),
                                 static_cast<std::uint32_t>(size)};
    inline_used_ += size;
  }
  void add_slow(std::string_view name, std::string_view value);
  // count_, inline_used_ and the written part of the inline buffers from `other`.
  void copy_inline(const HeaderList& other) noexcept;
  const char* text(const Entry& e) const noexcept;

  std::size_t count_ = 0;
  std::size_t inline_used_ = 0;  // bytes of inline_text_ in use
  // Only the first min(count_, kInlineHeaders) entries and inline_used_ bytes are written.
  std::array<Entry, kInlineHeaders> inline_headers_;
  std::array<char, kInlineText> inline_text_;
  std::vector<Entry> more_headers_;  // beyond kInlineHeaders
  std::string more_text_;            // values that did not fit in inline_text_
};

class HeaderList::const_iterator {
 public:
  // Random access as a C++20 iterator; only an input iterator to older algorithms, as its
  // elements are values made on the fly (a pair of views), not references.
  using iterator_concept = std::random_access_iterator_tag;
  using iterator_category = std::input_iterator_tag;
  using value_type = HeaderList::value_type;
  using difference_type = std::ptrdiff_t;
  using reference = value_type;
  using pointer = void;

  const_iterator() = default;
  value_type operator*() const noexcept { return (*list_)[i_]; }
  value_type operator[](difference_type n) const noexcept {
    return (*list_)[i_ + static_cast<std::size_t>(n)];
  }
  const_iterator& operator++() noexcept { return ++i_, *this; }
  const_iterator operator++(int) noexcept { return {list_, i_++}; }
  const_iterator& operator--() noexcept { return --i_, *this; }
  const_iterator operator--(int) noexcept { return {list_, i_--}; }
  const_iterator& operator+=(difference_type n) noexcept {
    return i_ += static_cast<std::size_t>(n), *this;
  }
  const_iterator& operator-=(difference_type n) noexcept {
    return i_ -= static_cast<std::size_t>(n), *this;
  }
  friend const_iterator operator+(const_iterator it, difference_type n) noexcept { return it += n; }
  friend const_iterator operator+(difference_type n, const_iterator it) noexcept { return it += n; }
  friend const_iterator operator-(const_iterator it, difference_type n) noexcept { return it -= n; }
  friend difference_type operator-(const const_iterator& a, const const_iterator& b) noexcept {
    return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
  }
  friend bool operator==(const const_iterator& a, const const_iterator& b) noexcept {
    return a.i_ == b.i_;
  }
  friend auto operator<=>(const const_iterator& a, const const_iterator& b) noexcept {
    return a.i_ <=> b.i_;
  }

 private:
  friend class HeaderList;
  const_iterator(const HeaderList* list, std::size_t i) : list_(list), i_(i) {}
  const HeaderList* list_ = nullptr;
  std::size_t i_ = 0;
};

inline void HeaderList::add(std::string_view name, std::string_view value) {
  if (count_ < kInlineHeaders && value.size() <= kInlineText - inline_used_) [[likely]] {
    std::copy_n(value.data(), value.size(), inline_text_.data() + inline_used_);
    return add_inline_entry(name, value.size());
  }
  add_slow(name, value);
}

inline HeaderList::const_iterator HeaderList::begin() const noexcept { return {this, 0}; }
inline HeaderList::const_iterator HeaderList::end() const noexcept { return {this, count_}; }
inline HeaderList::value_type HeaderList::operator[](std::size_t i) const noexcept {
  const Entry& e = entry(i);
  return {e.name, {text(e), e.size}};
}
inline const char* HeaderList::text(const Entry& e) const noexcept {
  return e.offset < kInlineText ? inline_text_.data() + e.offset
                                : more_text_.data() + (e.offset - kInlineText);
}

// Whole seconds, rounded up, at least 1.
std::int64_t ceil_seconds(std::chrono::nanoseconds duration);
// Milliseconds, rounded up (a client never retries early); 0 for a duration <= 0.
std::int64_t ceil_milliseconds(std::chrono::nanoseconds duration);

// Retry-After of a 503 (the store is unreachable and the fail mode is "closed"): nothing says
// when it is back, so clients are asked to wait this long.
inline constexpr std::chrono::seconds kUnavailableRetryAfter{5};

// Appends the headers for `decision` under `policy`. The wall clock is read only for
// X-RateLimit-Reset.
void append_headers(const Policy& policy, const Decision& decision, const HeaderOptions& options,
                    HeaderList& out);

// {"detail": "rate_limited", "retry_after_ms": N}, nested as {"detail": {...}} when asked;
// for a cost that can never pass: {"detail": "cost_exceeds_capacity", "retry_after_ms": null}.
std::string too_many_requests_body(const Decision& decision, BodyStyle style);

// {"detail": "Service temporarily unavailable"}
std::string unavailable_body();
// The 401 body of a request whose identity is missing (MissingIdentity::kRefuse, rule.h):
// {"detail":"identity_missing"}.
std::string identity_missing_body();

}  // namespace pacer::http
