// Redis Sentinel without I/O: the replies and messages a Sentinel client reads, and the order in
// which it asks the sentinels. The Asio shell is sentinel_monitor.h.
//
//   SENTINEL get-master-addr-by-name <name>  ->  ["10.0.0.5", "6379"], or nil (unknown name)
//   SUBSCRIBE +switch-master                 ->  ["message", "+switch-master",
//                                                 "<name> <old ip> <old port> <new ip> <new port>"]
//   ROLE                                     ->  ["master", ...] / ["slave", ...] / ["sentinel",
//   ...]
//
// Everything here reads server input: a malformed reply is an error value, never an exception
// or a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pacer/redis/reply.h"

namespace pacer::redis::internal {

inline constexpr std::string_view kSwitchMasterChannel = "+switch-master";

struct MasterAddress {
  std::string host;
  std::uint16_t port = 0;
  bool operator==(const MasterAddress&) const = default;
};

struct MasterAddressResult {
  std::optional<MasterAddress> address;  // the sentinel's answer
  bool unknown_master = false;           // nil: this sentinel monitors no master of that name
  std::string error;                     // an error reply, or a reply that is not an address
};

// The reply to `SENTINEL get-master-addr-by-name <name>`.
MasterAddressResult parse_master_address(const Reply& reply);

struct SwitchMaster {
  std::string master_name;
  MasterAddress from;
  MasterAddress to;
};

// The payload of a +switch-master message: `<name> <old ip> <old port> <new ip> <new port>`.
// nullopt when it is not one (wrong number of fields, bad port, empty or binary host).
std::optional<SwitchMaster> parse_switch_master(std::string_view payload);

// A reply read on a subscribed connection (RESP2: arrays in place of RESP3 pushes).
struct PubSubPush {
  enum class Kind : std::uint8_t { kSubscribe, kMessage, kPong };
  Kind kind = Kind::kMessage;
  std::string channel;  // kSubscribe, kMessage
  std::string payload;  // kMessage
};

// ["subscribe", channel, count], ["message", channel, payload] or ["pong", ""]; nullopt for
// anything else (which a subscriber treats as a broken stream).
std::optional<PubSubPush> parse_pubsub_push(const Reply& reply);

enum class Role : std::uint8_t { kMaster, kReplica, kSentinel, kUnknown };

// The first element of a ROLE reply; kUnknown for errors and anything malformed.
Role parse_role(const Reply& reply);
std::string_view role_name(Role role);

// Which sentinel to ask: the current one until it fails, then the next, round robin. The one
// that answered stays first (the Sentinel client guidelines' "move it to the head of the
// list"); a round is over when every sentinel has failed in a row.
class SentinelRotation {
 public:
  explicit SentinelRotation(std::size_t count) : count_(count == 0 ? 1 : count) {}

  std::size_t current() const { return current_; }
  // The current sentinel failed: the next one becomes current. True when that completes a round
  // (every sentinel failed since the last success): wait before asking again.
  bool fail() {
    current_ = (current_ + 1) % count_;
    return ++failures_ % count_ == 0;
  }
  void succeed() { failures_ = 0; }
  std::size_t failures() const { return failures_; }

 private:
  std::size_t count_;
  std::size_t current_ = 0;
  std::size_t failures_ = 0;
};

}  // namespace pacer::redis::internal
