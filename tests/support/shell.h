// Shell helpers for tests that start programs through /bin/sh.
#pragma once

#include <string>

namespace pacer::testing {

// `arg` as one single-quoted shell word.
inline std::string shell_quote(const std::string& arg) {
  std::string out = "'";
  for (const char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace pacer::testing
