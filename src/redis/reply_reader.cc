#include "reply_reader.h"

#include <hiredis/read.h>

#include <new>
#include <utility>

namespace pacer::redis {

bool Reply::is_error_prefix(std::string_view prefix) const {
  if (type != Type::kError || str.size() < prefix.size()) return false;
  if (std::string_view(str).substr(0, prefix.size()) != prefix) return false;
  return str.size() == prefix.size() || str[prefix.size()] == ' ';
}

namespace internal {

redisReplyObjectFunctions ReplyReader::functions_{
    &ReplyReader::create_string, &ReplyReader::create_array, &ReplyReader::create_integer,
    &ReplyReader::create_nil, &ReplyReader::free_object};

ReplyReader::ReplyReader() { reset(); }

ReplyReader::~ReplyReader() {
  if (reader_ != nullptr) redisReaderFree(reader_);
}

void ReplyReader::reset() {
  if (reader_ != nullptr) redisReaderFree(reader_);
  reader_ = redisReaderCreateWithFunctions(&functions_);
  if (reader_ == nullptr) throw std::bad_alloc();
  reader_->privdata = this;
  // Keep the input buffer however large it grew: freeing it when idle (the 16 KiB default)
  // would reallocate it on every burst of pipelined replies.
  reader_->maxbuf = 0;
  root_ = Reply{};
}

bool ReplyReader::feed(std::string_view data) {
  return redisReaderFeed(reader_, data.data(), data.size()) == REDIS_OK;
}

ReplyReader::Status ReplyReader::next(Reply& out) {
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK) return Status::kError;
  if (reply == nullptr) return Status::kNeedMore;
  out = std::move(root_);
  root_ = Reply{};
  return Status::kReply;
}

std::string_view ReplyReader::error() const { return reader_->errstr; }

Reply* ReplyReader::slot(const redisReadTask* task) {
  if (task->parent == nullptr) return &static_cast<ReplyReader*>(task->privdata)->root_;
  // The parent array was sized when it was created, so element addresses are stable.
  return &static_cast<Reply*>(task->parent->obj)->elements[static_cast<std::size_t>(task->idx)];
}

void* ReplyReader::create_string(const redisReadTask* task, char* data, std::size_t size) {
  Reply* r = slot(task);
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
}

void* ReplyReader::create_array(const redisReadTask* task, int elements) {
  Reply* r = slot(task);
  r->type = Reply::Type::kArray;
  r->elements.resize(static_cast<std::size_t>(elements));
  return r;
}

void* ReplyReader::create_integer(const redisReadTask* task, long long value) {
  Reply* r = slot(task);
  r->type = Reply::Type::kInteger;
  r->integer = value;
  return r;
}

void* ReplyReader::create_nil(const redisReadTask* task) {
  Reply* r = slot(task);
  r->type = Reply::Type::kNil;
  return r;
}

// hiredis frees only the top-level object (on a protocol error or when the reader is freed);
// nested replies belong to it.
void ReplyReader::free_object(void* object) { *static_cast<Reply*>(object) = Reply{}; }

}  // namespace internal
}  // namespace pacer::redis
