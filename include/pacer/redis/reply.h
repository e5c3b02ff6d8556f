// pacer/redis/reply.h — one owned RESP2 reply from Redis.
//
// The client builds a Reply directly from hiredis' reply reader (no intermediate redisReply), so
// a reply costs only its own strings and arrays. Redis error replies (`-NOSCRIPT ...`,
// `-WRONGTYPE ...`) are values of type kError, not failures of the request.
//
//   if (reply.is_error_prefix("NOSCRIPT")) reload_script();
//   else if (reply.type == Reply::Type::kArray) use(reply.elements[0].integer);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "pacer/detail/unique_function.h"

namespace pacer::redis {

struct Reply {
  enum class Type : std::uint8_t { kNil, kStatus, kError, kInteger, kString, kArray };

  Type type = Type::kNil;
  std::int64_t integer = 0;     // kInteger
  std::string str;              // kStatus, kError, kString
  std::vector<Reply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  // True for an error reply whose first word is `prefix`, e.g. "NOSCRIPT", "MOVED", "WRONGPASS".
  bool is_error_prefix(std::string_view prefix) const;
};

// Called exactly once per request: (error, {}) when the request failed, else ({}, reply).
using ReplyHandler = pacer::detail::UniqueFunction<void(std::error_code, Reply&&)>;

}  // namespace pacer::redis
