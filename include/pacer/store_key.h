// pacer/store_key.h — how a key names its policy (docs/DESIGN.md §4), written down once: the
// http layer writes keys this way and the Redis store reads them (store.h rule 5).
//
// A key that carries its policy's tag, `{<policy>:` ... `}` (the Redis Cluster hash tag), is that
// policy's key already: `shop:{api:/items/<id>:ip:203.0.113.7}`. A store namespaces any other key
// itself (RedisStore as `{<policy>:<key>}`), so two policies never share a key.
#pragma once

#include <string>
#include <string_view>

namespace pacer {

// Appends "{<policy>:", the opening of a key's policy tag.
inline void append_policy_tag(std::string& out, std::string_view policy) {
  out.append("{").append(policy).append(":");
}

// Whether `key` carries `policy`'s tag: its first '{' opens "<policy>:" and a '}' closes it
// after at least one more byte. Policy names hold no braces or ':' (rate.h), so this cannot
// mistake one policy's key for another's.
inline bool carries_policy_tag(std::string_view key, std::string_view policy) {
  const std::size_t open = key.find('{');
  if (open == std::string_view::npos) return false;
  const std::size_t close = key.find('}', open + 1);
  return close != std::string_view::npos && close > open + policy.size() + 1 &&
         key.substr(open + 1, policy.size()) == policy && key[open + 1 + policy.size()] == ':';
}

}  // namespace pacer
