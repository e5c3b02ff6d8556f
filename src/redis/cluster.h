// Redis Cluster routing without I/O: key hash slots, CLUSTER SLOTS replies, MOVED/ASK errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/redis/reply.h"

namespace pacer::redis::internal {

inline constexpr std::size_t kSlotCount = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as in the Redis Cluster spec.
std::uint16_t crc16(std::string_view data);

// The slot of `key`: CRC16 of the hash tag (the text between the first '{' and the next '}',
// when non-empty) or of the whole key, modulo 16384.
std::uint16_t hash_slot(std::string_view key);

struct SlotRange {
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
  std::string host;        // the master's
  std::uint16_t port = 0;
};

struct SlotMapResult {
  std::vector<SlotRange> ranges;
  std::string error;  // non-empty: the reply was not a usable slot map
};

// Parses a CLUSTER SLOTS reply into the masters' slot ranges. A master without a known endpoint
// (empty, nil or "?" host) is at `default_host`, the node that was asked.
SlotMapResult parse_cluster_slots(const Reply& reply, std::string_view default_host);

struct Redirect {
  enum class Kind : std::uint8_t { kMoved, kAsk };
  Kind kind = Kind::kMoved;
  std::uint16_t slot = 0;
  std::string host;
  std::uint16_t port = 0;
};

// Recognises `-MOVED <slot> <host>:<port>` and `-ASK <slot> <host>:<port>` (an empty host means
// `default_host`, the node that answered). Anything else: nullopt.
std::optional<Redirect> parse_redirect(const Reply& reply, std::string_view default_host);

// "host:port", with brackets around an IPv6 address.
std::string endpoint_name(std::string_view host, std::uint16_t port);

}  // namespace pacer::redis::internal
