// apps/common/json_depth.h — refusing deeply nested JSON before parsing it, for the apps that
// read JSON bodies from clients (pacer-demo, pacerd).
//
// nlohmann::json parses and serialises recursively: a body of a million "[" would exhaust the
// stack. One linear pass counts nesting (skipping strings and their escapes) first.
#pragma once

#include <cstddef>
#include <string_view>

namespace pacer::apps {

// True when arrays and objects in `text` nest deeper than `limit`.
inline bool json_nested_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace pacer::apps
