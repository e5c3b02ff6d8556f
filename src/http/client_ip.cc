// client_ip (pacer/http/ip.h): which address a request comes from, walking the proxy headers
// of a trusted peer from the right (docs/SECURITY.md). tests/fuzz/ip_fuzz.cc feeds it hostile
// headers; the address values it parses are in address.cc.
#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

#include "core/text.h"
#include "pacer/http/ip.h"

namespace pacer::http {
namespace {

bool ends_with_ci(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

// Hops of a list header in order, keeping only the right-most kMaxForwardedHops (all the walk
// may examine) in fixed storage, so a huge header costs one pass and no allocation per hop.
// An empty view marks a hop that is present but not an address.
class HopRing {
 public:
  void push(std::string_view hop) {
    hops_[count_ % hops_.size()] = {hop.data(), hop.size()};
    ++count_;
  }
  std::size_t count() const { return count_; }
  // k = 0 is the right-most hop; k < min(count(), kMaxForwardedHops).
  std::string_view from_right(std::size_t k) const {
    const Hop& hop = hops_[(count_ - 1 - k) % hops_.size()];
    return {hop.data, hop.size};
  }

 private:
  // Trivial, so that the ring is not zeroed: only the hops pushed are read, and zeroing 1 KiB
  // (an array of std::string_view) cost more than the rest of a one-hop walk.
  struct Hop {
    const char* data;
    std::size_t size;
  };
  std::array<Hop, kMaxForwardedHops> hops_;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  std::size_t count_ = 0;
};

// The client chosen by walking `hops` from the right, or nullopt when the peer must be used.
std::optional<IpAddress> walk_hops(const HopRing& hops, const TrustedProxies& trusted) {
  const std::size_t examined = std::min<std::size_t>(hops.count(), kMaxForwardedHops);
  std::optional<IpAddress> leftmost;
  for (std::size_t k = 0; k < examined; ++k) {
    const auto ip = IpAddress::parse(hops.from_right(k));
    // Trusted proxies write well-formed addresses, so garbage means the walk has reached
    // client-controlled text: nothing from here on can be believed.
    if (!ip) return std::nullopt;
    if (!trusted.contains(*ip)) return ip;
    leftmost = ip;
  }
  if (hops.count() > examined) return std::nullopt;
  return leftmost;
}

void split_list(std::string_view value, HopRing& hops) {
  std::size_t pos = 0;
  while (pos <= value.size()) {
    std::size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    // RFC 9110 list syntax: empty elements ("a,,b", a blank header line) are not hops.
    const std::string_view hop = pacer::internal::trim(value.substr(pos, comma - pos));
    if (!hop.empty()) hops.push(hop);
    pos = comma + 1;
  }
}

// Index of the first `delim` at or after `pos` that is outside a quoted-string, or
// text.size(). Sets `unbalanced` when a quoted-string runs to the end of `text`.
std::size_t find_unquoted(std::string_view text, std::size_t pos, char delim, bool& unbalanced) {
  bool quoted = false;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // quoted-pair; may step past the end, which the loop condition handles
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == delim) {
      return i;
    }
  }
  if (quoted) unbalanced = true;
  return text.size();
}

bool is_tchar(char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 7239 allows an obfuscated port ("_abc") next to a real address; the address is still
// usable, so drop the port rather than the hop.
std::string_view strip_obfuscated_port(std::string_view node) {
  std::size_t colon = std::string_view::npos;
  if (!node.empty() && node.front() == '[') {
    const std::size_t close = node.find(']');
    if (close != std::string_view::npos && close + 1 < node.size()) colon = close + 1;
  } else if (std::count(node.begin(), node.end(), ':') == 1) {
    colon = node.find(':');
  }
  if (colon != std::string_view::npos && node[colon] == ':' && colon + 1 < node.size() &&
      node[colon + 1] == '_')
    return node.substr(0, colon);
  return node;
}

// The node named by the for= parameter of one Forwarded element, or an empty view when the
// element is malformed, has no (or a repeated) for=, or the value needs unescaping (which no
// address does).
std::string_view forwarded_for(std::string_view element) {
  bool unbalanced = false;
  std::string_view node;
  bool seen_for = false;
  std::size_t pos = 0;
  while (pos <= element.size()) {
    const std::size_t semi = find_unquoted(element, pos, ';', unbalanced);
    const std::string_view pair = pacer::internal::trim(element.substr(pos, semi - pos));
    pos = semi + 1;
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) return {};
    const std::string_view name = pair.substr(0, eq);
    if (!std::all_of(name.begin(), name.end(), is_tchar)) return {};
    if (!iequals(name, "for")) continue;
    if (seen_for) return {};
    seen_for = true;
    std::string_view value = pair.substr(eq + 1);
    if (!value.empty() && value.front() == '"') {
      if (value.size() < 2 || value.back() != '"') return {};
      value = value.substr(1, value.size() - 2);
      if (value.find_first_of("\"\\") != std::string_view::npos) return {};
    } else if (value.find_first_of("\" \t") != std::string_view::npos) {
      return {};
    }
    node = strip_obfuscated_port(value);
  }
  if (unbalanced) return {};
  return node;
}

void split_forwarded(std::string_view value, HopRing& hops) {
  std::size_t pos = 0;
  while (pos <= value.size()) {
    bool unbalanced = false;
    const std::size_t comma = find_unquoted(value, pos, ',', unbalanced);
    const std::string_view element = pacer::internal::trim(value.substr(pos, comma - pos));
    pos = comma + 1;
    if (element.empty()) continue;
    // "unknown" and "_hidden" identifiers come back as themselves and fail to parse in the
    // walk, which is the treatment they need: the proxy could not say who the client is.
    hops.push(unbalanced ? std::string_view() : forwarded_for(element));
  }
}

// The client named by the first of `options.headers` present on a request from a trusted peer.
// That header decides: nullopt when it yields nothing usable (the peer is then the client), or
// when none is present. Out of line: most requests come from untrusted peers and never need its
// stack of hops.
[[gnu::noinline]] std::optional<IpAddress> forwarded_client(const RequestView& request,
                                                            const ClientIpOptions& options) {
  for (const std::string& name : options.headers) {
    const std::size_t lines = request.header_count(name);
    if (lines == 0) continue;
    // One line is read in place. Repeated lines are joined (header_list), so a second copy of
    // a single-value header shows up as a list and is rejected below rather than silently
    // picking one of them.
    const std::string joined = lines > 1 ? request.header_list(name) : std::string();
    const std::string_view value = lines > 1 ? joined : request.header(name).value_or("");
    const bool forwarded = iequals(name, "Forwarded");
    if (forwarded || ends_with_ci(name, "Forwarded-For")) {
      HopRing hops;
      if (forwarded) {
        split_forwarded(value, hops);
      } else {
        split_list(value, hops);
      }
      return walk_hops(hops, options.trusted_proxies);
    }
    return IpAddress::parse(pacer::internal::trim(value));
  }
  return std::nullopt;
}

}  // namespace

void ClientIpOptions::validate() const {
  if (ipv6_prefix < 0 || ipv6_prefix > 128) {
    throw std::invalid_argument("invalid IPv6 prefix '" + std::to_string(ipv6_prefix) +
                                "': must be 0..128");
  }
}

std::optional<IpAddress> client_ip(const RequestView& request, const ClientIpOptions& options) {
  options.validate();
  std::optional<IpAddress> parsed;
  const IpAddress* peer = request.peer_ip();
  if (peer == nullptr) {
    parsed = IpAddress::parse(request.peer_address());
    if (!parsed) return std::nullopt;
    peer = &*parsed;
  }
  std::optional<IpAddress> forwarded;
  if (options.trusted_proxies.contains(*peer)) forwarded = forwarded_client(request, options);
  IpAddress result = forwarded.value_or(*peer);
  if (!result.is_v4() && options.ipv6_prefix < 128) result = result.masked(options.ipv6_prefix);
  return result;
}

}  // namespace pacer::http
