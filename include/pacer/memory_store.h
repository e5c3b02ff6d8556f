// pacer/memory_store.h — the in-process store: the embedded default, no server needed.
//
// State is sharded by a keyed 64-bit hash (SipHash-1-3 with a per-process random key, mixed
// with the policy's name digest, so each policy has its own key space) into
// open-addressing tables of fixed-size slots: the key's fingerprint plus one TAT per rate,
// 16 bytes per slot for a one-rate policy. Keys are never stored in clear. Each policy size
// (number of rates) has its own shards; a shard is one table and its spin lock.
//
// Memory is bounded:
//  - entries whose TATs are all <= now carry no information; their slots are reused by new
//    keys and dropped whenever a table is rebuilt;
//  - `max_keys` is exact: the slots in use over all shards never exceed it. Up to the bound
//    every new key is stored. At the bound a new key evicts, among the entries next to its
//    home slot in its shard, the one that expires first (an expired one if any); in the rare
//    shard that holds no entry at all, the new key is admitted but not stored, as if evicted
//    at once. An evicted key behaves as a fresh key on its next request: a flood of distinct
//    keys can make limits more lenient for keys near full capacity, but never stricter, and
//    keys that are far over their limit (far-future TAT) are the last to go.
//
// Completes every call inline. Thread-safe; each shard has its own spin lock.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "pacer/rate.h"
#include "pacer/store.h"

namespace pacer {
namespace internal {
class TscClock;  // src/store/tsc_clock.h
}

struct MemoryStoreOptions {
  // Upper bound on slots in use over all shards (exact); at least 1024.
  std::size_t max_keys = 1'000'000;
  // Shards per policy size, rounded up to a power of two. 0: one per 256 keys of max_keys
  // (4096 for the default), at most 65536: small shards keep threads working on unrelated
  // keys off each other's cache lines (docs/PERFORMANCE.md).
  std::size_t shards = 0;
  // Monotonic time in nanoseconds. Empty: std::chrono::steady_clock's time, read through the
  // CPU's time-stamp counter where the kernel keeps time with it (docs/PERFORMANCE.md).
  std::function<std::int64_t()> clock;
};

struct MemoryStoreStats {
  std::size_t keys = 0;         // slots in use (live or expired but not yet reused)
  std::size_t capacity = 0;     // slots allocated
  std::size_t bytes = 0;        // bytes allocated for slots and shards
  std::uint64_t evictions = 0;  // live entries evicted (or new keys not stored): store full
};

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(MemoryStoreOptions options = {});
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             CheckHandler done) override;
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            CheckHandler done) override;
  void reset(const Policy& policy, std::string_view key, ResetHandler done) override;
  bool completes_inline() const override { return true; }
  std::vector<StoreStat> counters() const override;  // stats(), for metrics

  // Synchronous forms; the async ones call these.
  CheckResult check_now(const Policy& policy, std::string_view key, std::int64_t cost);
  CheckResult peek_now(const Policy& policy, std::string_view key, std::int64_t cost);
  void reset_now(const Policy& policy, std::string_view key);

  // Drops every entry that carries no information any more. Tables also do this on their
  // own when they grow; call it to return memory after a burst of keys.
  void purge_expired();

  MemoryStoreStats stats() const;

 private:
  struct Shard;
  // check_now (kSpend) and peek_now: one lookup, the step, and a write only when spending.
  template <bool kSpend>
  CheckResult step_now(const Policy& policy, std::string_view key, std::int64_t cost);
  std::int64_t now() const;
  std::uint64_t hash_of(const Policy& policy, std::string_view key) const;
  Shard& shard_of(std::size_t rates, std::uint64_t hash);
  Shard* create_shards(std::size_t rates);
  bool take_slot();
  void release_slots(std::size_t n);
  void rebuild(Shard& shard, std::int64_t now);
  std::int64_t* insert(Shard& shard, std::uint64_t hash, std::int64_t now);

  MemoryStoreOptions options_;
  std::uint64_t hash_key_[2];
  std::size_t shard_bits_;
  // options_.shards shards per policy size (number of rates), allocated on first use.
  std::array<std::atomic<Shard*>, Policy::kMaxRates> shards_{};
  std::unique_ptr<internal::TscClock> tsc_clock_;  // null: steady_clock (or options_.clock)
  // Slots in use over all shards; written only when a key is stored or dropped.
  alignas(64) std::atomic<std::size_t> used_{0};
};

}  // namespace pacer
