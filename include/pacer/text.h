// pacer/text.h — text helpers for messages about user input, as the library writes its own
// (error messages that name a bad value, log lines that quote one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pacer {

// `text` made safe to quote in an error message or a log line: at most 80 bytes, printable
// ASCII, anything else as \xNN.
std::string printable(std::string_view text);

// A TCP port written in decimal digits only ("6379"): 1..65535, or 0..65535 with `allow_zero`
// (a listener's "any free port"). Signs, spaces, a leading '+' and empty text: nullopt.
std::optional<std::uint16_t> parse_port(std::string_view text, bool allow_zero = false);

}  // namespace pacer
