// Small text helpers shared by the parsers of configuration, requests and replies (src/ only:
// no public header needs them, so they are not installed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pacer/text.h"

namespace pacer::internal {

// printable() and parse_port() are public (pacer/text.h): the apps use them too.
using pacer::parse_port;
using pacer::printable;

// Without leading and trailing spaces and tabs (HTTP's optional white space).
std::string_view trim(std::string_view text);

// ASCII case-insensitive equality of `size` bytes at `a` and `b`.
bool iequals_bytes(const char* a, const char* b, std::size_t size);

// ASCII case-insensitive equality (header names, methods, URL schemes). Most comparisons, in a
// header lookup, fail on the length: that test is inline.
inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && iequals_bytes(a.data(), b.data(), a.size());
}

// Lower-case hexadecimal of `size` bytes.
std::string to_hex(const unsigned char* bytes, std::size_t size);

}  // namespace pacer::internal
