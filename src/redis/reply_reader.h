// A RESP2 reply parser: hiredis' redisReader building pacer::redis::Reply values directly.
#pragma once

#include <cstddef>
#include <string_view>

#include "pacer/redis/reply.h"

struct redisReader;
struct redisReadTask;
struct redisReplyObjectFunctions;

namespace pacer::redis::internal {

class ReplyReader {
 public:
  ReplyReader();
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  enum class Status { kReply, kNeedMore, kError };

  // Appends raw bytes from the server (hiredis copies them into its own buffer).
  bool feed(std::string_view data);
  // Moves the next complete reply into `out`.
  Status next(Reply& out);
  // After kError: what was wrong with the stream.
  std::string_view error() const;
  // Forgets buffered bytes and any error, for a new connection.
  void reset();

 private:
  static void* create_string(const redisReadTask* task, char* data, std::size_t size);
  static void* create_array(const redisReadTask* task, int elements);
  static void* create_integer(const redisReadTask* task, long long value);
  static void* create_nil(const redisReadTask* task);
  static void free_object(void* object);
  static Reply* slot(const redisReadTask* task);

  // hiredis takes a non-const pointer but never writes through it.
  static redisReplyObjectFunctions functions_;

  redisReader* reader_ = nullptr;
  // The top-level reply under construction; nested replies live in its `elements`. Reusing
  // one root means hiredis' object callbacks allocate nothing beyond the reply's own contents.
  Reply root_;
};

}  // namespace pacer::redis::internal
