// pacer/redis/redis_store.h — GCRA state in Redis (standalone, TLS, Cluster, Sentinel), shared
// by every process that points at the same server.
//
// One EVALSHA round trip per decision (the GCRA step as a Lua script over one hash-tagged
// key, Redis TIME as the clock, integer microseconds), automatic pipelining, transparent
// script reload on NOSCRIPT, a circuit breaker that fails fast while Redis is away, and a
// deny cache that answers keys Redis has just denied without a round trip (docs/DESIGN.md §5, §6).
//
//   pacer::redis::RedisStore store({.url = "redis://127.0.0.1:6379"});
//   pacer::Limiter limiter(store, {.fail_mode = pacer::FailMode::kLocal});
//
// Completion handlers run on the store's I/O threads, or, with the second constructor, on the
// caller's own io_contexts (a check made on one of their threads never leaves it). The rules
// of pacer/store.h hold: every handler runs exactly once (at the latest in shutdown()), a
// handler that throws is caught and counted, calls from other threads wait in a bounded queue.
//
// Keys: each policy has its own key space. A key in docs/DESIGN.md §4's layout, whose hash tag
// starts with the policy's name (`prefix:{policy:scope:identity}`, as the HTTP layer builds them),
// is used as it is; any other key is stored as `{<policy>:<key>}`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/redis/client.h"
#include "pacer/store.h"

namespace pacer::redis {

// Which command decides on Redis (docs/OPERATIONS.md, "The Redis module").
enum class RedisScript {
  // PACER.GCRA when every node has pacer-redis-module.so loaded (asked on every connect), else
  // the Lua script. A node that loses the module (restarted without it) answers "unknown
  // command": that decision is made by the script at once and the script is used until the
  // next connect finds the module everywhere again.
  kAuto,
  kLua,     // the Lua script only; nothing is asked
  kModule,  // PACER.GCRA first, always; a node without it is answered by the script (logged)
};

// "auto", "lua", "module"; std::invalid_argument naming the value and those accepted.
RedisScript parse_redis_script(std::string_view text);
std::string_view to_string(RedisScript script);

struct RedisStoreOptions {
  // redis://[user:password@]host:port[/db], rediss://... (TLS),
  // redis+cluster://host:port[,host:port...] (Cluster; rediss+cluster:// with TLS),
  // redis+sentinel://[user:password@]sentinel:port[,...]/master_name[/db] (Sentinel; the
  // master is discovered and followed through failovers; rediss+sentinel:// with TLS;
  // `?sentinel_password=` when the sentinels require AUTH). See pacer/redis/url.h.
  std::string url = "redis://127.0.0.1:6379";
  TlsOptions tls;
  std::chrono::milliseconds connect_timeout{1000};
  // Per decision, end to end: queueing, cluster redirects and retries, a NOSCRIPT reload. A
  // decision that takes longer fails with Errc::kTimeout (then the fail mode).
  std::chrono::milliseconds command_timeout{50};
  std::size_t max_in_flight = 16384;
  std::chrono::milliseconds reconnect_max{500};
  // I/O threads of the store's own (first constructor).
  unsigned io_threads = 1;
  // Runs first on each of those threads, with its index: name it, pin it, set its scheduling.
  // An exception it throws is logged and the thread goes on.
  std::function<void(unsigned index)> on_io_thread_start;
  // Per Redis node (a cluster master, or the one server): consecutive timeouts that open its
  // circuit, and how long it stays open before one request probes the node again. Checks for
  // keys on other nodes go on. 0 turns the breakers off.
  int breaker_failures = 5;
  std::chrono::milliseconds breaker_open_for{200};
  // Keys remembered as denied (0 turns the deny cache off).
  std::size_t deny_cache_entries = 65536;
  RedisScript script = RedisScript::kAuto;
};

struct RedisStoreStats {
  std::uint64_t round_trips = 0;       // EVALSHA/EVAL/DEL issued (fast failures included)
  std::uint64_t deny_cache_hits = 0;   // decisions answered locally
  std::uint64_t script_reloads = 0;    // NOSCRIPT answered by EVAL
  std::uint64_t fast_failures = 0;     // refused while a node's circuit was open
  std::uint64_t errors = 0;            // failed round trips (timeouts, disconnects, ...)
  std::uint64_t handler_errors = 0;    // completion handlers that threw (caught, logged)
  std::uint64_t module_decisions = 0;  // checks sent as PACER.GCRA (the rest: the Lua script)
  std::uint64_t module_fallbacks = 0;  // PACER.GCRA answered "unknown command": the script decided
  bool module_in_use = false;          // new checks go to PACER.GCRA now
};

class RedisStore final : public Store {
 public:
  // Parses the URL (std::invalid_argument naming it, password masked) and starts connecting
  // on `options.io_threads` threads of its own.
  explicit RedisStore(RedisStoreOptions options);
  // Runs one client on each of `contexts`, which the caller runs and keeps alive until this
  // store is destroyed. Shut down or destroy the store from a thread that does not run them
  // (it hands the work to them and waits), from one of them, or after they stopped or before
  // they first ran; not while one of them is being started.
  RedisStore(RedisStoreOptions options, const std::vector<boost::asio::io_context*>& contexts);
  // shutdown(), then stops the store's own threads.
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             CheckHandler done) override;
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            CheckHandler done) override;
  void reset(const Policy& policy, std::string_view key, ResetHandler done) override;
  bool connected() const override;
  Nanos resolution() const override;  // 1 us: Redis TIME
  bool on_io_thread() const override;
  std::vector<StoreStat> counters() const override;  // stats(), for metrics
  void shutdown() override;

  // Blocks until every client is connected or `timeout` passes; returns connected().
  bool wait_connected(std::chrono::milliseconds timeout) const override;
  // The last connection error (wrong password, TLS verification, refused, ...), if any.
  std::string last_error() const override;
  RedisStoreStats stats() const;

  // Throws std::invalid_argument naming a rate whose emission interval is below 1 us, the
  // resolution of Redis TIME. Such a policy fails every check with Errc::kRateTooFine.
  static void validate(const Policy& policy);

  // The Lua script and its SHA-1, e.g. to run redis-benchmark against the same script.
  static std::string_view script();
  static std::string_view script_sha();
  // The script's arguments after the key for a check of `cost` against `policy` (e.g. for
  // redis-benchmark): EVALSHA <sha> 1 <key> <arguments...>.
  static std::vector<std::string> script_arguments(const Policy& policy, std::int64_t cost);

 private:
  struct Impl;
  struct Finish;
  void submit(const Policy& policy, std::string_view key, std::int64_t cost, bool read_only,
              CheckHandler done);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pacer::redis
