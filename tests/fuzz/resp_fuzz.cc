// libFuzzer target for the RESP reader (src/redis/reply_reader.h over hiredis 0.14): the bytes a
// hostile or broken server could send. The first input byte chooses how the rest is cut into
// feeds (one piece, single bytes, or pseudo-random sizes derived from it); the rest is the stream.
//
// Beyond "no crash, no leak, no UB, no huge allocation" it checks:
//  - every reply is exactly the bytes it was parsed from: re-encoding the replies reproduces
//    the consumed stream (hiredis 0.14 accepts only canonical numbers, so this is exact but
//    for the 2 bytes after a bulk string, which hiredis skips unchecked);
//  - the result does not depend on how the stream was cut: the same replies, then the same
//    end (waiting for more, or an error with the same text), as when it is fed in one piece;
//  - replies respect the reader's limits (nesting, values per reply);
//  - an error is sticky (feed fails, next says kError) and has a description;
//  - reset() restores a working reader: a known good reply parses after it.
//
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc/redis \
//     tests/fuzz/resp_fuzz.cc src/redis/reply_reader.cc -lhiredis -o resp_fuzz
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "reply_reader.h"

namespace {

using pacer::redis::Reply;
using pacer::redis::internal::ReplyReader;
using Status = ReplyReader::Status;

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "resp_fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

// Small enough that fuzzed inputs reach it; the item-bytes limit stays at its default because
// reaching it depends on how the stream is cut (checked in the unit tests instead).
ReplyReader::Limits fuzz_limits() {
  ReplyReader::Limits limits;
  limits.max_values = 300;
  return limits;
}

struct Outcome {
  std::vector<Reply> replies;
  Status end = Status::kNeedMore;
  std::string error;
};

Outcome read_all(ReplyReader& reader, std::string_view stream,
                 const std::vector<std::size_t>& cuts) {
  Outcome outcome;
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    const std::string_view chunk = stream.substr(pos, cut);
    pos += chunk.size();
    if (!reader.feed(chunk)) {
      outcome.end = Status::kError;
      break;
    }
    for (;;) {
      Reply reply;
      const Status status = reader.next(reply);
      if (status == Status::kReply) {
        outcome.replies.push_back(std::move(reply));
        continue;
      }
      outcome.end = status;
      break;
    }
    if (outcome.end == Status::kError) break;
  }
  if (outcome.end == Status::kError) {
    outcome.error = std::string(reader.error());
    check(!outcome.error.empty(), "an error has a description");
    Reply ignored;
    check(reader.next(ignored) == Status::kError, "an error is sticky for next()");
    check(!reader.feed("+OK\r\n"), "an error is sticky for feed()");
  } else {
    check(reader.error().empty(), "no error text without an error");
  }
  return outcome;
}

bool same(const Reply& a, const Reply& b) {
  if (a.type != b.type || a.integer != b.integer || a.str != b.str ||
      a.elements.size() != b.elements.size())
    return false;
  for (std::size_t i = 0; i < a.elements.size(); ++i)
    if (!same(a.elements[i], b.elements[i])) return false;
  return true;
}

// Matches `reply` against the stream at `pos`, advancing it; nil may have been "$-1" or "*-1".
bool matches(const Reply& reply, std::string_view stream, std::size_t& pos, int depth,
             std::size_t& values) {
  ++values;
  auto take = [&](std::string_view expected) {
    if (stream.substr(pos, expected.size()) != expected) return false;
    pos += expected.size();
    return true;
  };
  switch (reply.type) {
    case Reply::Type::kNil:
      return take("$-1\r\n") || take("*-1\r\n");
    case Reply::Type::kStatus:
      return take("+") && take(reply.str) && take("\r\n");
    case Reply::Type::kError:
      return take("-") && take(reply.str) && take("\r\n");
    case Reply::Type::kInteger:
      return take(":" + std::to_string(reply.integer) + "\r\n");
    case Reply::Type::kString:
      // hiredis 0.14 skips the two bytes after a bulk string's data without checking that
      // they are "\r\n" (lenient, harmless: the length alone frames the item).
      if (!take("$" + std::to_string(reply.str.size()) + "\r\n") || !take(reply.str) ||
          stream.size() - pos < 2)
        return false;
      pos += 2;
      return true;
    case Reply::Type::kArray:
      if (depth >= 8) return false;  // hiredis 0.14 nests at most 8 arrays
      if (!take("*" + std::to_string(reply.elements.size()) + "\r\n")) return false;
      for (const Reply& element : reply.elements)
        if (!matches(element, stream, pos, depth + 1, values)) return false;
      return true;
  }
  return false;
}

std::vector<std::size_t> cuts_for(std::uint8_t mode, std::size_t size) {
  std::vector<std::size_t> cuts;
  if (mode == 0) {
    cuts.push_back(size);
    return cuts;
  }
  if (mode == 1) {
    cuts.assign(size, 1);
    return cuts;
  }
  // Pseudo-random sizes up to 1, 3, 15 or 255 bytes, from the mode byte (a 32-bit LCG).
  static constexpr std::size_t kMaxChunk[] = {1, 3, 15, 255};
  const std::size_t max_chunk = kMaxChunk[mode & 3];
  std::uint32_t state = mode * 2654435761u;
  for (std::size_t done = 0; done < size;) {
    state = state * 1664525u + 1013904223u;
    const std::size_t cut = 1 + (state >> 8) % max_chunk;
    cuts.push_back(cut);
    done += cut;
  }
  cuts.push_back(0);  // an empty feed is legal too
  return cuts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  static ReplyReader whole(fuzz_limits());
  static ReplyReader chunked(fuzz_limits());
  whole.reset();
  chunked.reset();
  const Outcome reference = read_all(whole, stream, {stream.size()});
  const Outcome outcome = read_all(chunked, stream, cuts_for(mode, stream.size()));

  check(outcome.end == reference.end, "the same end however the stream is cut");
  check(outcome.error == reference.error, "the same error however the stream is cut");
  check(outcome.replies.size() == reference.replies.size(), "the same number of replies");
  std::size_t pos = 0;
  for (std::size_t i = 0; i < outcome.replies.size(); ++i) {
    check(same(outcome.replies[i], reference.replies[i]), "the same replies");
    std::size_t values = 0;
    check(matches(outcome.replies[i], stream, pos, 0, values),
          "a reply re-encodes to the bytes it came from");
    check(values <= fuzz_limits().max_values, "a reply holds at most max_values values");
  }

  // Whatever happened, reset() gives a reader that parses a good reply (and only that).
  chunked.reset();
  check(chunked.error().empty(), "reset() clears the error");
  check(chunked.feed("*3\r\n$3\r\nfoo\r\n:-42\r\n*1\r\n$-1\r\n"), "feed after reset");
  Reply reply;
  check(chunked.next(reply) == Status::kReply, "a good reply after reset");
  check(reply.type == Reply::Type::kArray && reply.elements.size() == 3 &&
            reply.elements[0].str == "foo" && reply.elements[1].integer == -42 &&
            reply.elements[2].elements.size() == 1 &&
            reply.elements[2].elements[0].type == Reply::Type::kNil,
        "the good reply parses correctly after reset");
  check(chunked.next(reply) == Status::kNeedMore, "nothing else after the good reply");
  return 0;
}
