// Building identities and storage keys in place (docs/DESIGN.md §4): the pieces identity.cc and
// http_limiter.cc share, each appending to a caller's string instead of returning a new one.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "pacer/http/ip.h"

namespace pacer::http::internal {

// Longer identities (and scopes) are replaced by their hash.
inline constexpr std::size_t kMaxIdentityBytes = 128;
// What every hashed value starts with, and no value kept as it is does.
inline constexpr std::string_view kHashMark = "h:";

// True when `value` may not appear in a key as it is: '{', '}', '|', control characters, a
// leading "h:", too long.
bool needs_hash(std::string_view value);

// Appends hash_identity(value).
void append_hash(std::string& out, std::string_view value);

// Appends sanitize_identity(value).
void append_sanitized(std::string& out, std::string_view value);

// Throws std::invalid_argument naming `prefix` unless valid_key_prefix(prefix) (identity.h):
// the one check behind HttpLimiter's and Rule's key prefixes.
void require_key_prefix(std::string_view prefix);

// Replaces what was appended after `mark` by its hash when it is not safe in a key, so
// out.substr(mark) ends up as sanitize_identity(out.substr(mark)).
void sanitize_tail(std::string& out, std::size_t mark);
// Replaces what was appended after `mark` by its hash.
void hash_tail(std::string& out, std::size_t mark);

// Appends the client-IP identity: "ip:" and the address, or "ip:unknown" (always safe in a key).
void append_client_ip(std::string& out, const std::optional<IpAddress>& ip);

}  // namespace pacer::http::internal
