// pacer/open_store.h — a store from a URL: the one place that reads store URLs, for every front
// end (pacer-demo's REDIS_URL, pacerd's store.url, the Python package's redis_url, pacer-bench).
//
//   auto store = pacer::open_store("memory://");                        // the in-process store
//   auto store = pacer::open_store("redis://cache:6379/0", {.redis = {.command_timeout = 20ms}});
//
// "memory://" is the in-process store ("memory", pacerd's historical spelling, means the same);
// every other URL is a Redis one (redis://, rediss://, redis+cluster://, redis+sentinel://, ...:
// pacer/redis/url.h).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "pacer/memory_store.h"
#include "pacer/redis/redis_store.h"
#include "pacer/store.h"

namespace pacer {

struct OpenStoreOptions {
  MemoryStoreOptions memory;       // for the in-process store
  redis::RedisStoreOptions redis;  // for Redis; its `url` is the one given to open_store
  // Run the Redis clients on these io_contexts (not running yet: a server's workers) instead of
  // threads of their own (pacer/redis/redis_store.h).
  std::vector<boost::asio::io_context*> io;
};

// The canonical spelling of the in-process store.
inline constexpr std::string_view kMemoryStoreUrl = "memory://";

// Whether `url` names the in-process store: "memory://" or "memory".
bool is_memory_url(std::string_view url);

// The store `url` names. Throws std::invalid_argument naming the URL (password masked) and what
// is accepted.
std::unique_ptr<Store> open_store(std::string_view url, OpenStoreOptions options = {});

}  // namespace pacer
