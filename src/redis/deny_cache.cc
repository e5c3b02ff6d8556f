#include "deny_cache.h"

#include <algorithm>

namespace pacer::redis::internal {

DenyCache::DenyCache(std::size_t max_entries)
    : max_per_shard_(std::max<std::size_t>(max_entries / kShards, 1)) {}

DenyCache::Shard& DenyCache::shard_for(std::string_view key) {
  return shards_[Hash{}(key) % kShards];
}

void DenyCache::remember(std::string_view key, std::int64_t cost, std::int64_t now,
                         const Decision& decision) {
  if (decision.outcome != Outcome::kDenied || decision.retry_after.count() <= 0) return;
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  if (shard.entries.size() >= max_per_shard_ && shard.entries.find(key) == shard.entries.end()) {
    std::erase_if(shard.entries, [now](const auto& item) { return item.second.retry_at <= now; });
    if (shard.entries.size() >= max_per_shard_) shard.entries.erase(shard.entries.begin());
  }
  shard.entries.insert_or_assign(std::string(key), Entry{cost, now + decision.retry_after.count(),
                                                         now + decision.reset_after.count(),
                                                         decision.limit, decision.rate_index});
}

std::optional<Decision> DenyCache::lookup(std::string_view key, std::int64_t cost,
                                          std::int64_t now) {
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  const auto it = shard.entries.find(key);
  if (it == shard.entries.end()) return std::nullopt;
  const Entry& e = it->second;
  if (e.retry_at <= now) {
    shard.entries.erase(it);
    return std::nullopt;
  }
  if (e.cost != cost) return std::nullopt;
  Decision d;
  d.outcome = Outcome::kDenied;
  d.limit = e.limit;
  d.remaining = 0;
  d.retry_after = std::chrono::nanoseconds{e.retry_at - now};
  d.reset_after = std::chrono::nanoseconds{std::max<std::int64_t>(e.reset_at - now, 0)};
  d.rate_index = e.rate_index;
  return d;
}

void DenyCache::forget(std::string_view key) {
  Shard& shard = shard_for(key);
  std::lock_guard lock(shard.mutex);
  if (const auto it = shard.entries.find(key); it != shard.entries.end()) shard.entries.erase(it);
}

std::size_t DenyCache::size() const {
  std::size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    n += shard.entries.size();
  }
  return n;
}

}  // namespace pacer::redis::internal
