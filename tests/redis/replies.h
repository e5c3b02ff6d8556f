// Replies for tests without a server: built by hand, or read from the RESP bytes a server
// sends (recorded), through the same reader a connection uses.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/redis/reply.h"
#include "reply_reader.h"

namespace pacer::redis::test_replies {

inline Reply integer(std::int64_t value) {
  Reply r;
  r.type = Reply::Type::kInteger;
  r.integer = value;
  return r;
}

inline Reply string(std::string value) {
  Reply r;
  r.type = Reply::Type::kString;
  r.str = std::move(value);
  return r;
}

inline Reply nil() { return Reply{}; }

inline Reply array(std::vector<Reply> elements) {
  Reply r;
  r.type = Reply::Type::kArray;
  r.elements = std::move(elements);
  return r;
}

inline Reply error(std::string text) {
  Reply r;
  r.type = Reply::Type::kError;
  r.str = std::move(text);
  return r;
}

// Exactly one reply from raw RESP bytes (a test failure otherwise).
inline Reply read_one(std::string_view bytes) {
  internal::ReplyReader reader;
  EXPECT_TRUE(reader.feed(bytes)) << reader.error();
  Reply reply;
  EXPECT_EQ(reader.next(reply), internal::ReplyReader::Status::kReply) << reader.error();
  Reply extra;
  EXPECT_EQ(reader.next(extra), internal::ReplyReader::Status::kNeedMore) << "more than one reply";
  return reply;
}

}  // namespace pacer::redis::test_replies
