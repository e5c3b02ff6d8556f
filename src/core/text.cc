#include "core/text.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace pacer::internal {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

namespace {

constexpr std::uint64_t kEveryByte = 0x0101010101010101;

// Eight bytes with their ASCII capitals lowered, all at once: a byte below 0x80 is a capital
// when adding 0x80 - 'A' to it sets its top bit and adding 0x80 - ('Z' + 1) does not. The top
// bit of each byte is masked off first, so no sum carries into the next byte; bytes of 0x80 and
// above (not ASCII) are left as they are.
std::uint64_t lower_ascii(std::uint64_t x) {
  const std::uint64_t low7 = x & (0x7f * kEveryByte);
  const std::uint64_t at_least_a = low7 + (0x80 - 'A') * kEveryByte;
  const std::uint64_t above_z = low7 + (0x80 - 'Z' - 1) * kEveryByte;
  const std::uint64_t capital = (at_least_a ^ above_z) & ~x & (0x80 * kEveryByte);
  return x | (capital >> 2);  // 0x80 >> 2 is the 0x20 between 'A' and 'a'
}

std::uint64_t load8(const char* p) {
  std::uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

}  // namespace

bool iequals_bytes(const char* a, const char* b, std::size_t n) {
  if (n < 8) {
    auto lower = [](char c) {
      const unsigned u = static_cast<unsigned char>(c);
      return u - 'A' < 26u ? u + ('a' - 'A') : u;
    };
    for (std::size_t i = 0; i < n; ++i)
      if (lower(a[i]) != lower(b[i])) return false;
    return true;
  }
  // Header names are mostly 8 to 24 bytes: whole words, then the last eight bytes (which may
  // overlap the words already compared). Words that match as they are (the same spelling, the
  // usual case) are not lowered.
  auto same = [](std::uint64_t x, std::uint64_t y) {
    return x == y || lower_ascii(x) == lower_ascii(y);
  };
  for (std::size_t i = 0; i + 8 <= n; i += 8)
    if (!same(load8(a + i), load8(b + i))) return false;
  return same(load8(a + n - 8), load8(b + n - 8));
}

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * size);
  for (std::size_t i = 0; i < size; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace pacer::internal

namespace pacer {

std::string printable(std::string_view text) {
  constexpr std::size_t kMaxShown = 80;
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (text.size() > kMaxShown) out += "...";
  return out;
}

std::optional<std::uint16_t> parse_port(std::string_view text, bool allow_zero) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  for (const char c : text)
    if (c < '0' || c > '9') return std::nullopt;
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);  // <= 5 digits: no overflow
  if (value > 65535 || (value == 0 && !allow_zero)) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace pacer
