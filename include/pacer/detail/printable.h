// pacer/detail/printable.h — configuration text made safe to quote in an error message
// (which ends up in logs): at most 80 bytes, printable ASCII, anything else as \xNN.
#pragma once

#include <string>
#include <string_view>

namespace pacer::detail {

std::string printable(std::string_view text);

}  // namespace pacer::detail
