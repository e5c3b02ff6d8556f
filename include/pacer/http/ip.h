// pacer/http/ip.h — IP addresses, CIDR ranges, trusted proxies and client-IP resolution.
//
// The client IP is the socket peer unless the peer is a configured trusted proxy; only then are
// proxy headers (Forwarded, X-Forwarded-For, X-Real-IP, CF-Connecting-IP) consulted, and list
// headers are walked from the right past trusted hops, so a client can never choose its own
// identity by sending those headers directly. Anything malformed on the way falls back to the
// peer address. Parsing never throws and never reads outside its input; configuration parsing
// (Cidr, TrustedProxies) throws std::invalid_argument naming the bad value.
//
//   ClientIpOptions options{.trusted_proxies = TrustedProxies::parse("loopback, 10.0.0.0/8"),
//                           .ipv6_prefix = 64};
//   std::optional<IpAddress> ip = client_ip(request, options);  // e.g. "203.0.113.7"
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pacer/http/request_view.h"

namespace pacer::http {

class IpAddress {
 public:
  // Parses "1.2.3.4", "::1", "2001:db8::1", "[2001:db8::1]", and with a port "1.2.3.4:8080" or
  // "[::1]:443". IPv4-mapped IPv6 (::ffff:1.2.3.4) is normalised to IPv4, so one client has one
  // identity whichever socket family it arrived on. IPv4 parts must be plain decimal without
  // leading zeros ("010.0.0.1" is rejected, as other software may read it as octal). Zone ids
  // ("fe80::1%eth0") are rejected. Returns nullopt on anything else; never throws.
  static std::optional<IpAddress> parse(std::string_view text);

  bool is_v4() const { return v4_; }
  // IPv4 in the first 4 bytes (the rest zero), IPv6 in all 16.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
  // Dotted quad, or RFC 5952 IPv6 ("2001:db8::1", lower case, longest zero run compressed).
  std::string to_string() const;
  // Appends to_string() to `out`, without a temporary.
  void append_to(std::string& out) const;
  // Keeps the first `prefix_bits` bits and zeroes the rest. Throws std::invalid_argument unless
  // prefix_bits is 0..32 (IPv4) or 0..128 (IPv6).
  IpAddress masked(int prefix_bits) const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  IpAddress() = default;

  std::array<std::uint8_t, 16> bytes_{};
  bool v4_ = false;
};

class Cidr {
 public:
  // Throws std::invalid_argument unless prefix_bits fits the address family. Host bits are
  // cleared ("10.1.2.3/8" is 10.0.0.0/8).
  Cidr(const IpAddress& address, int prefix_bits);

  // "10.0.0.0/8", "::1/128", "2001:db8::/32", or a bare address (= /32 or /128). An
  // IPv4-mapped range ("::ffff:10.0.0.0/104") becomes the IPv4 range (10.0.0.0/8). Host bits
  // are cleared. Throws std::invalid_argument whose message contains the bad text, e.g.
  //   invalid CIDR '10.0.0.0/33': prefix length must be 0..32 for IPv4
  static Cidr parse(std::string_view text);

  // An IPv4 range never contains an IPv6 address and vice versa.
  bool contains(const IpAddress& ip) const;
  const IpAddress& network() const { return network_; }
  int prefix_bits() const { return prefix_bits_; }
  // "10.0.0.0/8", "2001:db8::/32"; always with the prefix length.
  std::string to_string() const;

  friend bool operator==(const Cidr&, const Cidr&) = default;

 private:
  IpAddress network_;
  int prefix_bits_;
};

class TrustedProxies {
 public:
  TrustedProxies() = default;  // trusts nobody

  // Comma and/or whitespace separated CIDRs or addresses. The words "loopback" (127.0.0.0/8,
  // ::1/128) and "private" (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) are accepted
  // in any case. An empty or blank list trusts nobody. Throws like Cidr::parse.
  static TrustedProxies parse(std::string_view list);
  static TrustedProxies loopback();

  void add(const Cidr& cidr);
  bool contains(const IpAddress& ip) const;
  bool empty() const { return ranges_.empty(); }
  const std::vector<Cidr>& ranges() const { return ranges_; }
  // "127.0.0.0/8, ::1/128"; parse() reads it back.
  std::string to_string() const;

 private:
  std::vector<Cidr> ranges_;
};

struct ClientIpOptions {
  TrustedProxies trusted_proxies = TrustedProxies::loopback();
  // Proxy headers consulted, in this order; the first one present on the request is used.
  // "Forwarded" is read as RFC 7239, any "...Forwarded-For" as a comma-separated hop list, and
  // every other header as a single address.
  std::vector<std::string> headers{"Forwarded", "X-Forwarded-For", "X-Real-IP", "CF-Connecting-IP"};
  // Aggregate IPv6 clients to this prefix (64 treats a typical customer network as one client);
  // 128 = no aggregation. client_ip throws std::invalid_argument unless 0..128.
  int ipv6_prefix = 128;

  // Throws std::invalid_argument naming the value when ipv6_prefix is not 0..128.
  void validate() const;
};

// At most this many hops of a list header are examined; a longer chain of trusted hops is
// not something a real deployment produces, so the peer address is used instead.
inline constexpr std::size_t kMaxForwardedHops = 64;

// The client address of `request`:
//  - The peer address unless the peer is a trusted proxy; proxy headers from untrusted peers
//    are ignored entirely.
//  - From a trusted peer, the first configured header that is present decides:
//    list headers (X-Forwarded-For, possibly over several lines; the for= parameters of
//    Forwarded) are walked from the right, skipping trusted hops; the first untrusted hop is the
//    client, and if every hop is trusted the left-most one is. A hop that must be examined but is
//    not a valid address ("unknown", "_hidden", garbage, a Forwarded element without for=), or
//    more than kMaxForwardedHops hops, yields the peer address. A single-value header
//    (X-Real-IP, CF-Connecting-IP) is used when it holds exactly one valid address, else the
//    peer. A present but empty header also yields the peer.
//  - IPv6 results are then aggregated to options.ipv6_prefix.
// The peer is request.peer_ip() when the adapter gives it, else peer_address() parsed.
// Returns nullopt only if the peer address itself cannot be parsed.
std::optional<IpAddress> client_ip(const RequestView& request, const ClientIpOptions& options);

}  // namespace pacer::http
