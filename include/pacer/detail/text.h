// pacer/detail/text.h — small text helpers shared by the parsers of configuration and
// requests.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pacer::detail {

// Configuration text made safe to quote in an error message (which ends up in logs): at most
// 80 bytes, printable ASCII, anything else as \xNN.
std::string printable(std::string_view text);

// Without leading and trailing spaces and tabs (HTTP's optional white space).
std::string_view trim(std::string_view text);

// ASCII case-insensitive equality (header names, methods, URL schemes).
bool iequals(std::string_view a, std::string_view b);

// Lower-case hexadecimal of `size` bytes.
std::string to_hex(const unsigned char* bytes, std::size_t size);

}  // namespace pacer::detail
