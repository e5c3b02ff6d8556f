// A RESP2 reply parser: hiredis' redisReader building pacer::redis::Reply values directly.
//
// The bytes come from a server, so nothing in them may size an allocation on its own: an array's
// element count only reserves a little, elements are added as they arrive, and one reply is held
// to `Limits` (values and bytes of one incomplete item). Anything beyond them, and every protocol
// error hiredis finds, fails the reader with a description in error() until reset(). No call
// throws past hiredis' C code: the object callbacks catch everything and report it as an error.
//
// hiredis 0.14 itself rejects array and bulk lengths below -1 or above INT_MAX, and arrays nested
// more than 8 deep (a fixed stack of 9 read tasks: "No support for nested multi bulk replies
// with depth > 7"); a bulk string is buffered whole before it is handed over.
//
//   ReplyReader reader;
//   if (!reader.feed(bytes)) fail(reader.error());
//   Reply reply;
//   while (reader.next(reply) == ReplyReader::Status::kReply) deliver(std::move(reply));
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
  struct Limits {
    // Values in one reply: the reply itself plus the elements of its arrays at every level.
    // The largest reply Pacer asks for is CLUSTER SLOTS; at worst every one of the 16,384 slots
    // is its own range of about 30 values (start, end, and for a master and two replicas an
    // array of address, port, id and Redis 7 metadata): ~490,000. Beyond the limit a reply
    // costs up to limit * sizeof(Reply) (~75 MB) plus its strings, then fails.
    std::size_t max_values = std::size_t{1} << 20;
    // Bytes of one incomplete item (a bulk string or a line) held while waiting for its end.
    // Redis' own proto-max-bulk-len default: no server sends a longer string.
    std::size_t max_item_bytes = std::size_t{512} << 20;
  };

  ReplyReader() : ReplyReader(Limits{}) {}
  // Throws std::bad_alloc when hiredis cannot allocate its reader.
  explicit ReplyReader(Limits limits);
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  enum class Status { kReply, kNeedMore, kError };

  // Appends raw bytes from the server (hiredis copies them into its own buffer). False after an
  // error (this one or an earlier one): see error().
  bool feed(std::string_view data) noexcept;
  // Moves the next complete reply into `out`. kError is sticky until reset().
  Status next(Reply& out) noexcept;
  // After kError or a failed feed: what was wrong with the stream. Empty otherwise.
  std::string_view error() const noexcept { return error_; }
  // Forgets buffered bytes, any partial reply and any error, for a new connection.
  void reset() noexcept;

 private:
  static void* create_string(const redisReadTask* task, char* data, std::size_t size) noexcept;
  static void* create_array(const redisReadTask* task, int elements) noexcept;
  static void* create_integer(const redisReadTask* task, long long value) noexcept;
  static void* create_nil(const redisReadTask* task) noexcept;
  static void free_object(void* object) noexcept;
  static ReplyReader& self(const redisReadTask* task) noexcept;
  // The Reply that `task` fills: the root, or the next element of its parent array. Null (with
  // error() set) when hiredis asks for an element the array was not declared to have.
  Reply* slot(const redisReadTask* task);
  // Records the first error; returns null for a create callback to hand back to hiredis.
  void* fail(const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));
  bool failed() const noexcept { return reader_ == nullptr || error_[0] != '\0'; }
  // Drops the partial reply; hiredis' own state is separate.
  void clear_reply() noexcept;

  // hiredis takes a non-const pointer but never writes through it.
  static redisReplyObjectFunctions functions_;

  Limits limits_;
  redisReader* reader_ = nullptr;
  // The top-level reply under construction; nested replies live in its `elements`. Reusing
  // one root means hiredis' object callbacks allocate nothing beyond the reply's own contents.
  Reply root_;
  // Values declared so far in the reply under construction (its root and array counts).
  std::size_t values_ = 0;
  // A fixed buffer, so that recording an error never allocates (or throws) on the error path.
  char error_[160] = {};
};

}  // namespace pacer::redis::internal
