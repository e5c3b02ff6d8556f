#include "pacer/memory_store.h"

#include <algorithm>
#include <array>
#include <bit>
#include <mutex>
#include <random>

#include "pacer/gcra.h"
#include "siphash.h"
#include "spin_lock.h"
#include "tsc_clock.h"

namespace pacer {
namespace {

// Small: with one shard per 256 keys at the bound, most shards hold a handful of keys.
constexpr std::size_t kMinCapacity = 4;
// The automatic shard count (one per 256 keys of max_keys) stops here.
constexpr std::size_t kMaxAutoShards = std::size_t{1} << 16;

// Copied into each result: a default-constructed std::error_code calls system_category()
// through the PLT, which is measurable on the hot path.
const std::error_code kNoError{};

// Copies a handful of TATs. std::copy_n becomes a memcpy call, which costs more than the
// copy for the usual one or two words.
inline void copy_tats(const std::int64_t* from, std::size_t n, std::int64_t* to) {
  to[0] = from[0];
  for (std::size_t i = 1; i < n; ++i) to[i] = from[i];
}
// How many occupied slots next to a new key's home are considered for eviction.
constexpr std::size_t kEvictionWindow = 32;

// Open addressing with linear probing and backward-shift deletion. A slot is `stride` words:
// the 64-bit keyed hash of the key (0 = empty), then one TAT per rate.
struct Table {
  std::unique_ptr<std::int64_t[]> words;
  std::size_t capacity = 0;  // slots, a power of two (0 until first use)
  std::size_t used = 0;      // occupied slots, expired ones included
  std::size_t stride = 0;

  std::int64_t* slot(std::size_t i) const { return words.get() + i * stride; }
  std::size_t mask() const { return capacity - 1; }
  static std::uint64_t hash_of(const std::int64_t* s) { return static_cast<std::uint64_t>(s[0]); }
  std::int64_t expiry(const std::int64_t* s) const { return gcra_expiry({s + 1, stride - 1}); }

  void allocate(std::size_t slots) {
    words = std::make_unique<std::int64_t[]>(slots * stride);  // zeroed: all empty
    capacity = slots;
    used = 0;
  }

  // Places an entry known to be absent into the first empty slot of its probe chain.
  std::int64_t* insert_new(std::uint64_t hash) {
    std::size_t i = hash & mask();
    while (slot(i)[0] != 0) i = (i + 1) & mask();
    ++used;
    std::int64_t* s = slot(i);
    s[0] = static_cast<std::int64_t>(hash);
    return s;
  }

  void erase_at(std::size_t i) {
    for (std::size_t j = (i + 1) & mask();; j = (j + 1) & mask()) {
      std::int64_t* next = slot(j);
      if (next[0] == 0) break;
      const std::size_t home = hash_of(next) & mask();
      // Move the entry at j back to the hole at i unless its home lies cyclically in (i, j].
      if (((j - home) & mask()) >= ((j - i) & mask())) {
        std::copy_n(next, stride, slot(i));
        i = j;
      }
    }
    std::fill_n(slot(i), stride, 0);
    --used;
  }

  // Rebuilds with only the live entries, sized so that live + 1 <= capacity / 2.
  void rebuild(std::int64_t now) {
    std::size_t live = 0;
    for (std::size_t i = 0; i < capacity; ++i)
      if (slot(i)[0] != 0 && expiry(slot(i)) > now) ++live;
    const std::size_t target = std::max(kMinCapacity, std::bit_ceil(2 * (live + 1)));
    Table next;
    next.stride = stride;
    next.allocate(target);
    for (std::size_t i = 0; i < capacity; ++i) {
      const std::int64_t* s = slot(i);
      if (s[0] != 0 && expiry(s) > now) std::copy_n(s, stride, next.insert_new(hash_of(s)));
    }
    *this = std::move(next);
  }
};

}  // namespace

// The keys of one policy size (number of rates) whose hashes share their top bits: one table
// and the lock that guards it, on one cache line. A decision writes this line and its key's
// slot, nothing else; with many small shards, two threads working on unrelated keys rarely
// write the same lines.
struct alignas(64) MemoryStore::Shard {
  internal::SpinLock lock;
  Table table;
  std::uint64_t evictions = 0;  // live entries evicted, or not stored, because the store was full

  Table& ready_table() {
    if (table.capacity == 0) table.allocate(kMinCapacity);
    return table;
  }

  // Removes, among the occupied slots next to `hash`'s home, the one that expires first.
  // False when the table is empty.
  bool evict_near(std::uint64_t hash, std::int64_t now) {
    Table& t = table;
    std::size_t victim = t.capacity;
    std::int64_t victim_expiry = INT64_MAX;
    std::size_t seen = 0;
    for (std::size_t i = hash & t.mask(), n = 0; n < t.capacity && seen < kEvictionWindow;
         ++n, i = (i + 1) & t.mask()) {
      if (t.slot(i)[0] == 0) continue;
      ++seen;
      if (const std::int64_t e = t.expiry(t.slot(i)); e < victim_expiry) {
        victim_expiry = e;
        victim = i;
      }
    }
    if (victim == t.capacity) return false;
    if (victim_expiry > now) ++evictions;
    t.erase_at(victim);
    return true;
  }
};

MemoryStore::MemoryStore(MemoryStoreOptions options) : options_(std::move(options)) {
  options_.max_keys = std::max<std::size_t>(options_.max_keys, 1024);
  if (options_.shards == 0) options_.shards = std::min(options_.max_keys / 256, kMaxAutoShards);
  options_.shards = std::bit_ceil(std::max<std::size_t>(options_.shards, 1));
  shard_bits_ = static_cast<std::size_t>(std::countr_zero(options_.shards));
  std::random_device random;
  for (auto& word : hash_key_) word = (std::uint64_t{random()} << 32) | random();
  if (!options_.clock) tsc_clock_ = internal::TscClock::create();
}

MemoryStore::~MemoryStore() {
  for (auto& shards : shards_) delete[] shards.load(std::memory_order_relaxed);
}

inline std::int64_t MemoryStore::now() const {
  if (tsc_clock_) return tsc_clock_->now();
  if (options_.clock) return options_.clock();
  return internal::steady_ns();
}

// Inlined into both forms of step_now (check and peek): as a call of its own it cost ~1 ns.
[[gnu::always_inline]] inline std::uint64_t MemoryStore::hash_of(const Policy& policy,
                                                                 std::string_view key) const {
  // A different SipHash key per policy: (policy, key) pairs collide only by chance (2^-64).
  const std::uint64_t hash =
      internal::siphash<1, 3>(hash_key_[0] ^ policy.name_digest(), hash_key_[1], key);
  return hash == 0 ? 1 : hash;  // 0 marks an empty slot
}

// Low bits of the hash pick the slot, high bits the shard.
inline MemoryStore::Shard& MemoryStore::shard_of(std::size_t rates, std::uint64_t hash) {
  Shard* shards = shards_[rates - 1].load(std::memory_order_acquire);
  if (shards == nullptr) [[unlikely]]
    shards = create_shards(rates);
  return shards[shard_bits_ == 0 ? 0 : hash >> (64 - shard_bits_)];
}

// Once per policy size: kept out of line so that the hot path saves no registers for it.
[[gnu::noinline, gnu::cold]] MemoryStore::Shard* MemoryStore::create_shards(std::size_t rates) {
  std::unique_ptr<Shard[]> fresh(new Shard[options_.shards]);
  for (std::size_t i = 0; i < options_.shards; ++i) fresh[i].table.stride = rates + 1;
  Shard* expected = nullptr;
  if (shards_[rates - 1].compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel,
                                                 std::memory_order_acquire))
    return fresh.release();
  return expected;  // another thread was first
}

bool MemoryStore::take_slot() {
  std::size_t used = used_.load(std::memory_order_relaxed);
  do {
    if (used >= options_.max_keys) return false;
  } while (!used_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
  return true;
}

void MemoryStore::release_slots(std::size_t n) {
  if (n != 0) used_.fetch_sub(n, std::memory_order_relaxed);
}

// Rebuilds the shard's table without its expired entries (growing it if needed).
void MemoryStore::rebuild(Shard& shard, std::int64_t now) {
  const std::size_t before = shard.table.used;
  shard.table.rebuild(now);
  release_slots(before - shard.table.used);
}

std::int64_t* MemoryStore::insert(Shard& shard, std::uint64_t hash, std::int64_t now) {
  // The global count makes max_keys exact. At the bound a new key takes the place of the
  // entry near its home that expires first; in a shard with no entry at all it is not
  // stored (as if evicted at once).
  if (!take_slot() && !shard.evict_near(hash, now)) {
    ++shard.evictions;
    return nullptr;
  }
  Table& t = shard.table;
  if (4 * (t.used + 1) > 3 * t.capacity) rebuild(shard, now);
  return t.insert_new(hash);
}

CheckResult MemoryStore::check_now(const Policy& policy, std::string_view key, std::int64_t cost) {
  return step_now<true>(policy, key, cost);
}

CheckResult MemoryStore::peek_now(const Policy& policy, std::string_view key, std::int64_t cost) {
  return step_now<false>(policy, key, cost);
}

template <bool kSpend>
CheckResult MemoryStore::step_now(const Policy& policy, std::string_view key, std::int64_t cost) {
  // One named result on every path: it is built in the caller's frame and gcra_step writes
  // the decision there directly (a copy of it cost 2-3 ns on the hot path).
  CheckResult result{kNoError, {}, key};
  if (cost < 0) {
    result.error = make_error_code(Errc::kInvalidCost);
    return result;
  }
  const auto rates = policy.rates();
  const std::size_t n = rates.size();
  const std::uint64_t hash = hash_of(policy, key);
  Shard& shard = shard_of(n, hash);
  const std::int64_t t_now = now();

  std::lock_guard guard(shard.lock);
  Table& table = shard.ready_table();
  std::size_t i = hash & table.mask();
  std::size_t reusable = table.capacity;  // first expired slot on the chain, if any
  for (;; i = (i + 1) & table.mask()) {
    std::int64_t* s = table.slot(i);
    if (s[0] == static_cast<std::int64_t>(hash)) {
      if constexpr (kSpend) {
        // The step updates the slot's TATs in place, and only when it admits with cost > 0.
        gcra_step(rates, {s + 1, n}, t_now, cost, result.decision);
      } else {
        std::array<std::int64_t, Policy::kMaxRates> tats;
        copy_tats(s + 1, n, tats.data());
        gcra_step(rates, {tats.data(), n}, t_now, cost, result.decision);
      }
      return result;
    }
    if (s[0] == 0) break;
    if (reusable == table.capacity && table.expiry(s) <= t_now) reusable = i;
  }

  std::array<std::int64_t, Policy::kMaxRates> tats;
  tats.fill(t_now);
  gcra_step(rates, {tats.data(), n}, t_now, cost, result.decision);
  if (!kSpend || !result.decision.allowed() || cost == 0) return result;
  std::int64_t* s;
  if (reusable != table.capacity) {
    s = table.slot(reusable);
    s[0] = static_cast<std::int64_t>(hash);
  } else {
    s = insert(shard, hash, t_now);
    if (s == nullptr) return result;
  }
  copy_tats(tats.data(), n, s + 1);
  return result;
}

void MemoryStore::check(const Policy& policy, std::string_view key, std::int64_t cost,
                        CheckHandler done) {
  done(check_now(policy, key, cost));
}

void MemoryStore::peek(const Policy& policy, std::string_view key, std::int64_t cost,
                       CheckHandler done) {
  done(peek_now(policy, key, cost));
}

void MemoryStore::reset_now(const Policy& policy, std::string_view key) {
  const std::size_t n = policy.rates().size();
  const std::uint64_t hash = hash_of(policy, key);
  Shard& shard = shard_of(n, hash);
  std::lock_guard guard(shard.lock);
  Table& table = shard.ready_table();
  for (std::size_t i = hash & table.mask();; i = (i + 1) & table.mask()) {
    const std::int64_t word = table.slot(i)[0];
    if (word == 0) return;
    if (word == static_cast<std::int64_t>(hash)) {
      table.erase_at(i);
      release_slots(1);
      return;
    }
  }
}

void MemoryStore::reset(const Policy& policy, std::string_view key, ResetHandler done) {
  reset_now(policy, key);
  done(std::error_code{});
}

void MemoryStore::purge_expired() {
  const std::int64_t t_now = now();
  for (auto& by_rates : shards_) {
    Shard* shards = by_rates.load(std::memory_order_acquire);
    if (shards == nullptr) continue;
    for (std::size_t i = 0; i < options_.shards; ++i) {
      std::lock_guard guard(shards[i].lock);
      if (shards[i].table.capacity != 0) rebuild(shards[i], t_now);
    }
  }
}

MemoryStoreStats MemoryStore::stats() const {
  MemoryStoreStats stats;
  for (auto& by_rates : shards_) {
    Shard* shards = by_rates.load(std::memory_order_acquire);
    if (shards == nullptr) continue;
    for (std::size_t i = 0; i < options_.shards; ++i) {
      std::lock_guard guard(shards[i].lock);
      const Table& table = shards[i].table;
      stats.keys += table.used;
      stats.evictions += shards[i].evictions;
      stats.capacity += table.capacity;
      stats.bytes += table.capacity * table.stride * sizeof(std::int64_t);
    }
    stats.bytes += options_.shards * sizeof(Shard);
  }
  return stats;
}

std::vector<StoreStat> MemoryStore::counters() const {
  const MemoryStoreStats s = stats();
  return {
      {"memory_keys", "Keys held by the in-process store (expired ones not yet reused included).",
       static_cast<double>(s.keys), true},
      {"memory_bytes", "Bytes the in-process store allocated.", static_cast<double>(s.bytes), true},
      {"memory_evictions_total", "Live keys evicted (or not stored) because the store was full.",
       static_cast<double>(s.evictions)},
  };
}

}  // namespace pacer
