// pacer/memory_store.h — the in-process store: the embedded default, no server needed.
//
// State is sharded by a keyed 64-bit hash (SipHash-1-3 with a per-process random key, mixed
// with the policy's name digest, so each policy has its own key space) into
// open-addressing tables of fixed-size slots: the key's fingerprint plus one TAT per rate,
// 16 bytes per slot for a one-rate policy. Keys are never stored in clear.
//
// Memory is bounded:
//  - entries whose TATs are all <= now carry no information; their slots are reused by new
//    keys and dropped whenever a table is rebuilt;
//  - `max_keys` caps the slots in use. When a shard is full, a new key evicts, among the
//    entries next to its home slot, the one that expires first (an expired one if any). The
//    evicted key behaves as a fresh key on its next request: a flood of distinct keys can
//    make limits more lenient for keys near full capacity, but never stricter, and keys
//    that are far over their limit (far-future TAT) are the last to go.
//
// Completes every call inline. Thread-safe; each shard has its own spin lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "pacer/store.h"

namespace pacer {
namespace detail {
class TscClock;
}

struct MemoryStoreOptions {
  // Upper bound on slots in use over all shards; at least 1024.
  std::size_t max_keys = 1'000'000;
  // Number of lock shards; rounded up to a power of two, at least 1.
  std::size_t shards = 64;
  // Monotonic time in nanoseconds. Empty: std::chrono::steady_clock's time, read through the
  // CPU's time-stamp counter where the kernel keeps time with it (docs/PERFORMANCE.md).
  std::function<std::int64_t()> clock;
};

struct MemoryStoreStats {
  std::size_t keys = 0;         // slots in use (live or expired but not yet reused)
  std::size_t capacity = 0;     // slots allocated
  std::size_t bytes = 0;        // bytes allocated for slots
  std::uint64_t evictions = 0;  // live entries evicted because a shard was full
};

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(MemoryStoreOptions options = {});
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             CheckHandler done) override;
  void reset(const Policy& policy, std::string_view key, ResetHandler done) override;
  bool completes_inline() const override { return true; }

  // Synchronous forms; the async ones call these.
  CheckResult check_now(const Policy& policy, std::string_view key, std::int64_t cost);
  void reset_now(const Policy& policy, std::string_view key);

  // Drops every entry that carries no information any more. Tables also do this on their
  // own when they grow; call it to return memory after a burst of keys.
  void purge_expired();

  MemoryStoreStats stats() const;

 private:
  struct Shard;
  std::int64_t now() const;
  std::uint64_t hash_of(const Policy& policy, std::string_view key) const;
  Shard& shard_of(std::uint64_t hash) const;

  MemoryStoreOptions options_;
  std::uint64_t hash_key_[2];
  std::size_t shard_mask_;
  std::size_t shard_bits_;
  std::unique_ptr<Shard[]> shards_;
  std::unique_ptr<detail::TscClock> tsc_clock_;  // null: steady_clock (or options_.clock)
};

}  // namespace pacer
