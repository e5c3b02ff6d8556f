// The RESP reader on hostile and awkward input: counts a server should never send, deep
// nesting, replies split at every byte, and recovery by reset() after a protocol error.
#include "reply_reader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace pacer::redis::internal {
namespace {

using Status = ReplyReader::Status;

// Feeds `bytes` in one piece and collects every complete reply; returns the final status.
Status feed_all(ReplyReader& reader, std::string_view bytes, std::vector<Reply>* replies) {
  if (!reader.feed(bytes)) return Status::kError;
  for (;;) {
    Reply reply;
    const Status status = reader.next(reply);
    if (status != Status::kReply) return status;
    if (replies != nullptr) replies->push_back(std::move(reply));
  }
}

Reply parse_one(std::string_view bytes) {
  ReplyReader reader;
  std::vector<Reply> replies;
  EXPECT_EQ(feed_all(reader, bytes, &replies), Status::kNeedMore) << reader.error();
  EXPECT_EQ(replies.size(), 1u);
  return replies.empty() ? Reply{} : std::move(replies.front());
}

// Fails `bytes` and returns the reader's error text.
std::string parse_error(std::string_view bytes) {
  ReplyReader reader;
  EXPECT_EQ(feed_all(reader, bytes, nullptr), Status::kError) << "accepted: " << bytes;
  return std::string(reader.error());
}

std::string nested(int depth) {
  std::string bytes;
  for (int i = 0; i < depth; ++i) bytes += "*1\r\n";
  return bytes + ":7\r\n";
}

TEST(ReplyReaderTest, ParsesEachType) {
  EXPECT_EQ(parse_one("+OK\r\n").type, Reply::Type::kStatus);
  EXPECT_EQ(parse_one("+OK\r\n").str, "OK");
  EXPECT_EQ(parse_one(":-42\r\n").integer, -42);
  EXPECT_EQ(parse_one(std::string_view("$5\r\nhe\0lo\r\n", 11)).str, std::string_view("he\0lo", 5));
  EXPECT_EQ(parse_one("$0\r\n\r\n").str, "");
  EXPECT_EQ(parse_one("*0\r\n").type, Reply::Type::kArray);
  EXPECT_TRUE(parse_one("*0\r\n").elements.empty());
}

TEST(ReplyReaderTest, NilBulkAndNilArray) {
  EXPECT_EQ(parse_one("$-1\r\n").type, Reply::Type::kNil);
  EXPECT_EQ(parse_one("*-1\r\n").type, Reply::Type::kNil);
  const Reply r = parse_one("*3\r\n$-1\r\n*-1\r\n:1\r\n");
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].type, Reply::Type::kNil);
  EXPECT_EQ(r.elements[1].type, Reply::Type::kNil);
  EXPECT_EQ(r.elements[2].integer, 1);
}

TEST(ReplyReaderTest, ErrorRepliesAreValuesNotFailures) {
  const Reply r = parse_one("-NOSCRIPT No matching script\r\n");
  EXPECT_TRUE(r.is_error());
  EXPECT_TRUE(r.is_error_prefix("NOSCRIPT"));
  const Reply in_array = parse_one("*2\r\n-MOVED 3999 127.0.0.1:6381\r\n+OK\r\n");
  ASSERT_EQ(in_array.elements.size(), 2u);
  EXPECT_TRUE(in_array.elements[0].is_error_prefix("MOVED"));
}

TEST(ReplyReaderTest, NestedArrays) {
  const Reply r = parse_one("*3\r\n*2\r\n:1\r\n*1\r\n$3\r\nabc\r\n*0\r\n:9\r\n");
  ASSERT_EQ(r.elements.size(), 3u);
  ASSERT_EQ(r.elements[0].elements.size(), 2u);
  EXPECT_EQ(r.elements[0].elements[0].integer, 1);
  EXPECT_EQ(r.elements[0].elements[1].elements[0].str, "abc");
  EXPECT_TRUE(r.elements[1].elements.empty());
  EXPECT_EQ(r.elements[2].integer, 9);
}

// hiredis 0.14 keeps a fixed stack of 9 read tasks: 8 nested arrays parse, a 9th is an error.
TEST(ReplyReaderTest, NestingDeeperThanHiredisSupportsFailsCleanly) {
  Reply r = parse_one(nested(8));
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(r.elements.size(), 1u) << "level " << i;
    Reply inner = std::move(r.elements[0]);
    r = std::move(inner);
  }
  EXPECT_EQ(r.integer, 7);
  EXPECT_NE(parse_error(nested(9)).find("nested"), std::string::npos);
}

// The server's count must not size an allocation: a few bytes asking for 2^31 elements fail at
// once, with the count in the error, instead of allocating tens of GB or throwing through C.
TEST(ReplyReaderTest, HugeArrayCountFailsFastWithoutAllocating) {
  for (const char* bytes :
       {"*2147483647\r\n", "*2147483648\r\n", "*4294967295\r\n", "*9223372036854775807\r\n",
        "*1\r\n*2147483647\r\n", "*2\r\n:1\r\n*1048577\r\n"}) {
    const auto start = std::chrono::steady_clock::now();
    const std::string error = parse_error(bytes);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1)) << bytes;
    // Counts above INT_MAX are hiredis' own "Multi-bulk length out of range".
    EXPECT_TRUE(error.find("elements") != std::string::npos ||
                error.find("length out of range") != std::string::npos)
        << bytes << " -> " << error;
  }
  EXPECT_NE(parse_error("*2147483647\r\n").find("2147483647"), std::string::npos);
}

// hiredis passes the count to the callback as an int: 2^32 arrives as 0 while hiredis itself
// still expects elements. That must be an error, not writes past an empty array.
TEST(ReplyReaderTest, CountThatWrapsToZeroIsAnError) {
  parse_error("*4294967296\r\n:1\r\n:2\r\n");
  parse_error("*1\r\n*4294967296\r\n:1\r\n");
}

// A count within the limit costs memory only as elements actually arrive.
TEST(ReplyReaderTest, LargeCountWithinLimitWaitsForElements) {
  ReplyReader reader;
  EXPECT_EQ(feed_all(reader, "*1000000\r\n:1\r\n:2\r\n", nullptr), Status::kNeedMore);
  reader.reset();
  std::vector<Reply> replies;
  std::string bytes = "*20000\r\n";
  for (int i = 0; i < 20000; ++i) bytes += ":" + std::to_string(i) + "\r\n";
  EXPECT_EQ(feed_all(reader, bytes, &replies), Status::kNeedMore);
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_EQ(replies[0].elements.size(), 20000u);
  EXPECT_EQ(replies[0].elements[19999].integer, 19999);
}

TEST(ReplyReaderTest, ValuesPerReplyAreCountedAtEveryLevel) {
  ReplyReader::Limits limits;
  limits.max_values = 10;
  ReplyReader reader(limits);
  // 1 + 3 + 3 * 3 = 13 values: fails at the third inner array.
  EXPECT_EQ(
      feed_all(reader, "*3\r\n*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n", nullptr),
      Status::kError);
  EXPECT_NE(reader.error().find("10"), std::string::npos) << reader.error();
  // The count starts again with every reply: two replies of 7 values each pass.
  reader.reset();
  std::vector<Reply> replies;
  EXPECT_EQ(
      feed_all(
          reader,
          "*6\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n*6\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n",
          &replies),
      Status::kNeedMore);
  EXPECT_EQ(replies.size(), 2u);
}

TEST(ReplyReaderTest, NegativeCounts) {
  EXPECT_NE(parse_error("*-2\r\n").find("out of range"), std::string::npos);
  parse_error("*-2147483649\r\n");
  EXPECT_NE(parse_error("$-2\r\n").find("out of range"), std::string::npos);
  parse_error("*1\r\n*-5\r\n");
}

TEST(ReplyReaderTest, MalformedLinesFail) {
  EXPECT_NE(parse_error("@foo\r\n").find("Protocol error"), std::string::npos);
  parse_error(":12a\r\n");
  parse_error("*1x\r\n");
  parse_error("$abc\r\n");
}

// A bulk string header announcing more than the limit fails as soon as more than that many
// bytes are buffered, rather than buffering whatever the server sends.
TEST(ReplyReaderTest, OversizedItemFailsOnceTheLimitIsPassed) {
  ReplyReader::Limits limits;
  limits.max_item_bytes = 1024;
  ReplyReader reader(limits);
  EXPECT_EQ(feed_all(reader, "$9223372036854775807\r\n", nullptr), Status::kNeedMore);
  EXPECT_EQ(feed_all(reader, std::string(600, 'x'), nullptr), Status::kNeedMore);
  EXPECT_EQ(feed_all(reader, std::string(600, 'x'), nullptr), Status::kError);
  EXPECT_NE(reader.error().find("1024"), std::string::npos) << reader.error();
  // Items up to the limit parse, however they are split.
  reader.reset();
  std::vector<Reply> replies;
  const std::string body(1000, 'y');
  EXPECT_EQ(feed_all(reader, "$1000\r\n" + body.substr(0, 500), &replies), Status::kNeedMore);
  EXPECT_EQ(feed_all(reader, body.substr(500) + "\r\n", &replies), Status::kNeedMore);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].str, body);
}

TEST(ReplyReaderTest, ReplySplitAcrossFeedsByteByByte) {
  const std::string bytes =
      "*4\r\n$3\r\nfoo\r\n*2\r\n:-1\r\n$-1\r\n-ERR x y\r\n*1\r\n*1\r\n+OK\r\n:5\r\n";
  ReplyReader reader;
  std::vector<Reply> replies;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const Status status = feed_all(reader, bytes.substr(i, 1), &replies);
    ASSERT_EQ(status, Status::kNeedMore) << "at byte " << i << ": " << reader.error();
    const std::size_t expected = i + 1 == bytes.size() ? 2 : i + 1 >= bytes.size() - 4 ? 1 : 0;
    ASSERT_EQ(replies.size(), expected) << "at byte " << i;
  }
  const Reply& r = replies[0];
  ASSERT_EQ(r.elements.size(), 4u);
  EXPECT_EQ(r.elements[0].str, "foo");
  EXPECT_EQ(r.elements[1].elements[0].integer, -1);
  EXPECT_EQ(r.elements[1].elements[1].type, Reply::Type::kNil);
  EXPECT_TRUE(r.elements[2].is_error_prefix("ERR"));
  EXPECT_EQ(r.elements[3].elements[0].elements[0].str, "OK");
  EXPECT_EQ(replies[1].integer, 5);
}

TEST(ReplyReaderTest, PipelinedRepliesComeOutInOrder) {
  ReplyReader reader;
  std::vector<Reply> replies;
  EXPECT_EQ(feed_all(reader, "+A\r\n:2\r\n*1\r\n$1\r\nC\r\n$-1\r\n", &replies), Status::kNeedMore);
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0].str, "A");
  EXPECT_EQ(replies[1].integer, 2);
  EXPECT_EQ(replies[2].elements[0].str, "C");
  EXPECT_EQ(replies[3].type, Reply::Type::kNil);
}

TEST(ReplyReaderTest, ErrorIsStickyUntilReset) {
  ReplyReader reader;
  std::vector<Reply> replies;
  EXPECT_EQ(feed_all(reader, "*2\r\n:1\r\n*2147483647\r\n", &replies), Status::kError);
  EXPECT_FALSE(reader.error().empty());
  EXPECT_EQ(feed_all(reader, "+OK\r\n", &replies), Status::kError);
  EXPECT_TRUE(replies.empty());
  reader.reset();
  EXPECT_TRUE(reader.error().empty());
  EXPECT_EQ(feed_all(reader, "*2\r\n+OK\r\n:3\r\n", &replies), Status::kNeedMore);
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_EQ(replies[0].elements.size(), 2u);
  EXPECT_EQ(replies[0].elements[1].integer, 3);
}

TEST(ReplyReaderTest, ResetAfterEveryKindOfErrorRestoresAWorkingReader) {
  for (const char* bad : {"@\r\n", "*-2\r\n", "*4294967296\r\n:1\r\n", "*2147483648\r\n",
                          "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n"}) {
    ReplyReader reader;
    EXPECT_EQ(feed_all(reader, bad, nullptr), Status::kError) << bad;
    reader.reset();
    std::vector<Reply> replies;
    EXPECT_EQ(feed_all(reader, "*1\r\n:4\r\n", &replies), Status::kNeedMore) << bad;
    ASSERT_EQ(replies.size(), 1u) << bad;
    EXPECT_EQ(replies[0].elements.at(0).integer, 4);
  }
}

// A partial reply dropped by reset() (the connection closed mid-reply) leaves nothing behind.
TEST(ReplyReaderTest, ResetMidReplyStartsClean) {
  ReplyReader reader;
  EXPECT_EQ(feed_all(reader, "*3\r\n:1\r\n$10\r\nabc", nullptr), Status::kNeedMore);
  reader.reset();
  std::vector<Reply> replies;
  EXPECT_EQ(feed_all(reader, ":8\r\n", &replies), Status::kNeedMore);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, Reply::Type::kInteger);
  EXPECT_TRUE(replies[0].elements.empty());
}

}  // namespace
}  // namespace pacer::redis::internal
