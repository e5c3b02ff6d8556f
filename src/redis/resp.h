// RESP2 request encoding: a command is an array of bulk strings.
#pragma once

#include <charconv>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace pacer::redis::internal {

// Appends `*<n>\r\n` then `$<len>\r\n<arg>\r\n` per argument to `out`. Written by hand rather
// than with redisFormatCommandArgv, which allocates a buffer per command: here the bytes go
// straight into the connection's write buffer, whose capacity is reused.
inline void append_command(std::string& out, std::span<const std::string_view> args) {
  std::size_t size = 16;
  for (const std::string_view arg : args) size += arg.size() + 16;
  const std::size_t start = out.size();
  out.resize(start + size);  // worst case; trimmed below
  char* p = out.data() + start;
  auto put_header = [&p](char kind, std::size_t n) {
    *p++ = kind;
    p = std::to_chars(p, p + 20, n).ptr;
    *p++ = '\r';
    *p++ = '\n';
  };
  put_header('*', args.size());
  for (const std::string_view arg : args) {
    put_header('$', arg.size());
    if (!arg.empty()) p = std::copy(arg.begin(), arg.end(), p);
    *p++ = '\r';
    *p++ = '\n';
  }
  out.resize(static_cast<std::size_t>(p - out.data()));
}

}  // namespace pacer::redis::internal
