#include "pacer/open_store.h"

#include <stdexcept>
#include <string>

namespace pacer {

bool is_memory_url(std::string_view url) { return url == kMemoryStoreUrl || url == "memory"; }

std::unique_ptr<Store> open_store(std::string_view url, OpenStoreOptions options) {
  if (is_memory_url(url)) return std::make_unique<MemoryStore>(options.memory);
  options.redis.url = std::string(url);
  try {
    if (options.io.empty()) return std::make_unique<redis::RedisStore>(std::move(options.redis));
    return std::make_unique<redis::RedisStore>(std::move(options.redis), options.io);
  } catch (const std::invalid_argument& e) {
    // The URL parser names the URL and the Redis schemes; the in-process store is one more.
    const std::string what = e.what();
    if (what.find("expected redis://") == std::string::npos) throw;
    throw std::invalid_argument(what + ", or memory:// for the in-process store");
  }
}

}  // namespace pacer
