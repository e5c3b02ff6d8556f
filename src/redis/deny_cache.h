// A local memory of keys a remote store has denied, so that an abusive client's requests are
// answered without a round trip until its retry time (docs/DESIGN.md §6).
//
// Exact: nothing but time or an explicit reset lowers a TAT, so a key denied for cost `c` at
// `now` with `retry_after = r` is denied for cost `c` until `now + r`. Only the same cost is
// answered locally (a smaller cost may pass sooner). Bounded: at most `max_entries` keys;
// when full, expired entries go first, then arbitrary ones (forgetting only costs a round trip).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pacer/decision.h"

namespace pacer::redis::internal {

class DenyCache {
 public:
  explicit DenyCache(std::size_t max_entries);

  // Remembers a denial that `decision` (Outcome::kDenied) reported at monotonic time `now`.
  void remember(std::string_view key, std::int64_t cost, std::int64_t now,
                const Decision& decision);
  // The local denial of `key` for `cost` at `now`, if one is known.
  std::optional<Decision> lookup(std::string_view key, std::int64_t cost, std::int64_t now);
  void forget(std::string_view key);
  std::size_t size() const;

 private:
  struct Entry {
    std::int64_t cost;
    std::int64_t retry_at;
    std::int64_t reset_at;
    std::int64_t limit;
    std::uint8_t rate_index;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries;
  };
  static constexpr std::size_t kShards = 16;
  Shard& shard_for(std::string_view key);

  std::size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace pacer::redis::internal
