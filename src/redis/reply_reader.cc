#include "reply_reader.h"

#include <hiredis/read.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <exception>
#include <new>
#include <utility>

namespace pacer::redis {

bool Reply::is_error_prefix(std::string_view prefix) const {
  if (type != Type::kError || str.size() < prefix.size()) return false;
  if (std::string_view(str).substr(0, prefix.size()) != prefix) return false;
  return str.size() == prefix.size() || str[prefix.size()] == ' ';
}

namespace internal {

namespace {
// Up to this many elements are reserved when an array is announced (the small replies of the
// hot path get one exact allocation); a larger array grows as its elements actually arrive, so
// its memory follows the bytes received, not the count the server claims.
constexpr int kReserveAtOnce = 16;
}  // namespace

redisReplyObjectFunctions ReplyReader::functions_{
    &ReplyReader::create_string, &ReplyReader::create_array, &ReplyReader::create_integer,
    &ReplyReader::create_nil, &ReplyReader::free_object};

ReplyReader::ReplyReader(Limits limits) : limits_(limits) {
  reset();
  if (reader_ == nullptr) throw std::bad_alloc();
}

ReplyReader::~ReplyReader() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void ReplyReader::reset() noexcept {
  if (reader_ != nullptr) redisReaderFree(reader_);
  clear_reply();
  error_[0] = '\0';
  reader_ = redisReaderCreateWithFunctions(&functions_);
  if (reader_ == nullptr) {
    fail("out of memory creating a reply reader");
    return;
  }
  reader_->privdata = this;
  // Keep the input buffer however large it grew: freeing it when idle (the 16 KiB default)
  // would reallocate it on every burst of pipelined replies.
  reader_->maxbuf = 0;
}

void ReplyReader::clear_reply() noexcept {
  root_ = Reply{};
  values_ = 0;
}

bool ReplyReader::feed(std::string_view data) noexcept {
  if (failed()) return false;
  if (redisReaderFeed(reader_, data.data(), data.size()) != REDIS_OK) {
    fail("%s", reader_->errstr);
    return false;
  }
  return true;
}

ReplyReader::Status ReplyReader::next(Reply& out) noexcept {
  if (failed()) return Status::kError;
  void* reply = nullptr;
  const int result = redisReaderGetReply(reader_, &reply);
  // A callback's error counts even if hiredis went on as if nothing happened.
  if (result != REDIS_OK || failed()) {
    if (!failed()) fail("%s", reader_->errstr);
    clear_reply();
    return Status::kError;
  }
  if (reply == nullptr) {
    // Every complete item has been consumed: what is left is the start of one item.
    const std::size_t pending = reader_->len - reader_->pos;
    if (pending > limits_.max_item_bytes) {
      fail("reply too large: %zu bytes of one item buffered, more than the limit of %zu", pending,
           limits_.max_item_bytes);
      clear_reply();
      return Status::kError;
    }
    return Status::kNeedMore;
  }
  out = std::move(root_);
  clear_reply();
  return Status::kReply;
}

void* ReplyReader::fail(const char* format, ...) noexcept {
  if (error_[0] != '\0') return nullptr;  // the first error is the cause; keep it
  va_list args;
  va_start(args, format);
  std::vsnprintf(error_, sizeof(error_), format, args);
  va_end(args);
  if (error_[0] == '\0') std::snprintf(error_, sizeof(error_), "unknown reply reader error");
  return nullptr;
}

ReplyReader& ReplyReader::self(const redisReadTask* task) noexcept {
  return *static_cast<ReplyReader*>(task->privdata);
}

Reply* ReplyReader::slot(const redisReadTask* task) {
  if (task->parent == nullptr) {
    values_ = 1;
    return &root_;
  }
  // hiredis fills an array's elements in order, each exactly once, and only the last element
  // can still be under construction; so appending keeps the address of every open reply
  // (hiredis holds them in its task stack) valid.
  std::vector<Reply>& elements = static_cast<Reply*>(task->parent->obj)->elements;
  if (task->idx < 0 || task->idx >= task->parent->elements ||
      static_cast<std::size_t>(task->idx) != elements.size()) {
    // A count hiredis truncated to int disagrees with its own; never write past the array.
    fail("array element %d does not fit an array of %d elements (built %zu)", task->idx,
         task->parent->elements, elements.size());
    return nullptr;
  }
  return &elements.emplace_back();
}

void* ReplyReader::create_string(const redisReadTask* task, char* data, std::size_t size) noexcept {
  ReplyReader& reader = self(task);
  try {
    Reply* r = reader.slot(task);
    if (r == nullptr) return nullptr;
    switch (task->type) {
      case REDIS_REPLY_STATUS:
        r->type = Reply::Type::kStatus;
        break;
      case REDIS_REPLY_ERROR:
        r->type = Reply::Type::kError;
        break;
      default:
        r->type = Reply::Type::kString;
        break;
    }
    r->str.assign(data, size);
    return r;
  } catch (const std::exception& e) {
    return reader.fail("cannot hold a string of %zu bytes from the server: %s", size, e.what());
  } catch (...) {
    return reader.fail("cannot hold a string of %zu bytes from the server", size);
  }
}

void* ReplyReader::create_array(const redisReadTask* task, int elements) noexcept {
  ReplyReader& reader = self(task);
  if (elements < 0) return reader.fail("array length %d out of range", elements);
  try {
    Reply* r = reader.slot(task);
    if (r == nullptr) return nullptr;
    // Checked before any allocation: `elements` is the server's word, not data we hold.
    const auto count = static_cast<std::size_t>(elements);
    if (count > reader.limits_.max_values - std::min(reader.values_, reader.limits_.max_values)) {
      return reader.fail("reply too large: an array of %d elements takes it past %zu values",
                         elements, reader.limits_.max_values);
    }
    reader.values_ += count;
    r->type = Reply::Type::kArray;
    r->elements.reserve(std::min(elements, kReserveAtOnce));
    return r;
  } catch (const std::exception& e) {
    return reader.fail("cannot hold an array of %d elements from the server: %s", elements,
                       e.what());
  } catch (...) {
    return reader.fail("cannot hold an array of %d elements from the server", elements);
  }
}

void* ReplyReader::create_integer(const redisReadTask* task, long long value) noexcept {
  ReplyReader& reader = self(task);
  try {
    Reply* r = reader.slot(task);
    if (r == nullptr) return nullptr;
    r->type = Reply::Type::kInteger;
    r->integer = value;
    return r;
  } catch (...) {
    return reader.fail("out of memory for an integer reply");
  }
}

void* ReplyReader::create_nil(const redisReadTask* task) noexcept {
  ReplyReader& reader = self(task);
  try {
    Reply* r = reader.slot(task);
    if (r == nullptr) return nullptr;
    r->type = Reply::Type::kNil;
    return r;
  } catch (...) {
    return reader.fail("out of memory for a nil reply");
  }
}

// hiredis frees only the top-level object (on a protocol error or when the reader is freed);
// nested replies belong to it.
void ReplyReader::free_object(void* object) noexcept { *static_cast<Reply*>(object) = Reply{}; }

}  // namespace internal
}  // namespace pacer::redis
