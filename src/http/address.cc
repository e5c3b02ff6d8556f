// IpAddress, Cidr and TrustedProxies (pacer/http/ip.h): strict parsing and printing of the
// values a trust decision is made of. The proxy-header walk is in client_ip.cc.
#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/text.h"
#include "key_text.h"
#include "pacer/http/ip.h"

namespace pacer::http {
namespace {

// "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" is 54 bytes; anything longer cannot
// be an address, and rejecting it early bounds the work per hop of a huge header.
constexpr std::size_t kMaxAddressText = 64;
// INET6_ADDRSTRLEN without the terminator.
constexpr std::size_t kMaxV6Text = 45;

using Bytes = std::array<std::uint8_t, 16>;

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Strict dotted quad: four decimal parts 0..255, no leading zeros, nothing else.
std::optional<std::array<std::uint8_t, 4>> parse_v4(std::string_view s) {
  std::array<std::uint8_t, 4> out{};
  const char* p = s.data();
  const char* const end = p + s.size();
  for (std::size_t part = 0; part < 4; ++part) {
    if (part > 0) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
    if (p == end || !is_digit(*p)) return std::nullopt;
    unsigned value = static_cast<unsigned>(*p++ - '0');
    // At most two more digits, and none after a leading zero.
    for (int more = value == 0 ? 0 : 2; more > 0 && p != end && is_digit(*p); --more)
      value = value * 10 + static_cast<unsigned>(*p++ - '0');
    if (value > 255 || (p != end && is_digit(*p))) return std::nullopt;
    out[part] = static_cast<std::uint8_t>(value);
  }
  if (p != end) return std::nullopt;
  return out;
}

// Full 16 bytes, no brackets, no zone id; mapped addresses are left as they are.
std::optional<Bytes> parse_v6(std::string_view s) {
  if (s.size() < 2 || s.size() > kMaxV6Text) return std::nullopt;
  // inet_pton needs a terminated string, and the character check keeps libc quirks (e.g. a
  // zone id or whitespace) out of what we accept.
  char text[kMaxV6Text + 1];
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.') return std::nullopt;
    text[i] = s[i];
  }
  text[s.size()] = '\0';
  Bytes out{};
  if (inet_pton(AF_INET6, text, out.data()) != 1) return std::nullopt;
  return out;
}

bool is_v4_mapped(const Bytes& b) {
  for (std::size_t i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

// "host:0" is a peer address like any other: the port is checked for form only.
bool valid_port(std::string_view s) {
  return pacer::internal::parse_port(s, /*allow_zero=*/true).has_value();
}

[[noreturn]] void fail_cidr(std::string_view text, std::string_view why) {
  throw std::invalid_argument("invalid CIDR '" + pacer::internal::printable(text) +
                              "': " + std::string(why));
}

// "0." to "255.", with the number of digits.
struct DecimalOctet {
  char text[4];
  std::size_t length;
};

constexpr std::array<DecimalOctet, 256> make_decimal_octets() {
  std::array<DecimalOctet, 256> table{};
  for (unsigned v = 0; v < 256; ++v) {
    DecimalOctet& octet = table[v];
    std::size_t n = 0;
    if (v >= 100) octet.text[n++] = static_cast<char>('0' + v / 100);
    if (v >= 10) octet.text[n++] = static_cast<char>('0' + v / 10 % 10);
    octet.text[n++] = static_cast<char>('0' + v % 10);
    octet.length = n;
    if (n < 4) octet.text[n] = '.';
  }
  return table;
}

constexpr std::array<DecimalOctet, 256> kDecimalOctets = make_decimal_octets();

// "255.255.255.255" and room for the last octet's 4-byte copy.
constexpr std::size_t kV4TextRoom = 16;

// Writes the dotted quad of `bytes` at `out` (kV4TextRoom bytes of room); returns its length.
// Each octet is copied from the table as four bytes, its digits and a '.', of which the digits
// and (but after the last) the dot are kept: client-IP keys are built per request.
std::size_t write_v4(const std::array<std::uint8_t, 16>& bytes, char* out) {
  std::size_t length = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    const DecimalOctet& octet = kDecimalOctets[bytes[i]];
    std::memcpy(out + length, octet.text, 4);
    length += octet.length + 1;
  }
  return length - 1;
}

void append_hex(std::string& out, unsigned value) {
  char buffer[8];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, 16);
  out.append(buffer, result.ptr);
}

}  // namespace

// ---- IpAddress --------------------------------------------------------------------------------

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText) return std::nullopt;
  // The common case, a socket peer: a bare dotted quad. Anything else falls through.
  if (text.size() <= 15) {
    if (const auto v4 = parse_v4(text)) {
      IpAddress ip;
      std::copy(v4->begin(), v4->end(), ip.bytes_.begin());
      ip.v4_ = true;
      return ip;
    }
  }
  std::string_view host = text;
  bool v6_only = false;
  if (text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !valid_port(rest.substr(1)))) return std::nullopt;
    host = text.substr(1, close - 1);
    v6_only = true;
  } else {
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 1) {  // IPv4 with a port; bare IPv6 has at least two colons
      const std::size_t colon = text.find(':');
      if (!valid_port(text.substr(colon + 1))) return std::nullopt;
      host = text.substr(0, colon);
    } else if (colons > 1) {
      v6_only = true;
    }
  }

  IpAddress ip;
  if (!v6_only) {
    const auto v4 = parse_v4(host);
    if (!v4) return std::nullopt;
    std::copy(v4->begin(), v4->end(), ip.bytes_.begin());
    ip.v4_ = true;
    return ip;
  }
  const auto v6 = parse_v6(host);
  if (!v6) return std::nullopt;
  if (is_v4_mapped(*v6)) {
    std::copy(v6->begin() + 12, v6->end(), ip.bytes_.begin());
    ip.v4_ = true;
  } else {
    ip.bytes_ = *v6;
  }
  return ip;
}

std::string IpAddress::to_string() const {
  std::string out;
  append_to(out);
  return out;
}

void IpAddress::append_to(std::string& out) const {
  if (v4_) {
    char text[kV4TextRoom];
    out.append(text, write_v4(bytes_, text));
    return;
  }
  const std::size_t start = out.size();
  std::array<unsigned, 8> words{};
  for (std::size_t i = 0; i < 8; ++i) words[i] = (unsigned{bytes_[2 * i]} << 8) | bytes_[2 * i + 1];
  // RFC 5952 4.2: compress the longest run of two or more zero words, the first if tied.
  std::size_t best = 8, best_length = 0;
  for (std::size_t i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i > best_length && j - i >= 2) {
      best = i;
      best_length = j - i;
    }
    i = j;
  }
  for (std::size_t i = 0; i < 8;) {
    if (i == best) {
      out += "::";
      i += best_length;
      continue;
    }
    if (out.size() > start && out.back() != ':') out += ':';
    append_hex(out, words[i]);
    ++i;
  }
}

IpAddress IpAddress::masked(int prefix_bits) const {
  const int width = v4_ ? 32 : 128;
  if (prefix_bits < 0 || prefix_bits > width) {
    throw std::invalid_argument("invalid prefix length " + std::to_string(prefix_bits) +
                                (v4_ ? ": must be 0..32 for IPv4" : ": must be 0..128 for IPv6"));
  }
  IpAddress out = *this;
  const auto bits = static_cast<std::size_t>(prefix_bits);
  const std::size_t full = bits / 8;
  const std::size_t rest = bits % 8;
  std::size_t i = full;
  if (rest != 0) {
    out.bytes_[i] = static_cast<std::uint8_t>(out.bytes_[i] & (0xff << (8 - rest)));
    ++i;
  }
  for (; i < out.bytes_.size(); ++i) out.bytes_[i] = 0;
  return out;
}

// ---- Cidr -------------------------------------------------------------------------------------

Cidr::Cidr(const IpAddress& address, int prefix_bits)
    : network_(address.masked(prefix_bits)), prefix_bits_(prefix_bits) {}

Cidr Cidr::parse(std::string_view text) {
  const std::string_view s = pacer::internal::trim(text);
  const std::size_t slash = s.find('/');
  const std::string_view address = s.substr(0, slash);
  if (address.empty() || address.size() > kMaxV6Text) fail_cidr(text, "not an IP address");

  std::optional<IpAddress> ip;
  bool mapped = false;
  if (address.find(':') == std::string_view::npos) {
    ip = IpAddress::parse(address);  // no colon: no port, no brackets, plain IPv4 or nothing
  } else if (const auto v6 = parse_v6(address)) {
    ip = IpAddress::parse(address);
    mapped = is_v4_mapped(*v6);
  }
  if (!ip) fail_cidr(text, "not an IP address");

  const int width = ip->is_v4() ? 32 : 128;
  int prefix = mapped ? 128 : width;
  if (slash != std::string_view::npos) {
    const std::string_view digits = s.substr(slash + 1);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit))
      fail_cidr(text, "prefix length is not a number");
    // More than three digits is out of range anyway, and must not overflow.
    prefix = digits.size() > 3 ? 1000 : std::stoi(std::string(digits));
  }
  if (mapped) {
    if (prefix < 96 || prefix > 128)
      fail_cidr(text, "prefix length must be 96..128 for an IPv4-mapped IPv6 address");
    prefix -= 96;
  } else if (prefix > width) {
    fail_cidr(text, ip->is_v4() ? "prefix length must be 0..32 for IPv4"
                                : "prefix length must be 0..128 for IPv6");
  }
  return Cidr(*ip, prefix);
}

bool Cidr::contains(const IpAddress& ip) const {
  if (ip.is_v4() != network_.is_v4()) return false;
  // ip.masked(prefix_bits_) == network_, without building the masked copy (host bits of
  // network_ are zero): the whole bytes of the prefix, then the bits of a partial byte.
  const auto full = static_cast<std::size_t>(prefix_bits_ / 8);
  const int rest = prefix_bits_ % 8;
  const auto& a = ip.bytes();
  const auto& n = network_.bytes();
  for (std::size_t i = 0; i < full; ++i)
    if (a[i] != n[i]) return false;
  return rest == 0 || ((a[full] ^ n[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

std::string Cidr::to_string() const {
  return network_.to_string() + "/" + std::to_string(prefix_bits_);
}

// ---- TrustedProxies ---------------------------------------------------------------------------

TrustedProxies TrustedProxies::parse(std::string_view list) {
  TrustedProxies out;
  const auto is_separator = [](char c) {
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
  };
  std::size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && is_separator(list[i])) ++i;
    const std::size_t start = i;
    while (i < list.size() && !is_separator(list[i])) ++i;
    const std::string_view token = list.substr(start, i - start);
    if (token.empty()) continue;
    if (iequals(token, "loopback")) {
      for (const Cidr& cidr : loopback().ranges_) out.add(cidr);
    } else if (iequals(token, "private")) {
      for (std::string_view range : {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"})
        out.add(Cidr::parse(range));
    } else {
      out.add(Cidr::parse(token));
    }
  }
  return out;
}

TrustedProxies TrustedProxies::loopback() {
  TrustedProxies out;
  out.add(Cidr::parse("127.0.0.0/8"));
  out.add(Cidr::parse("::1/128"));
  return out;
}

void TrustedProxies::add(const Cidr& cidr) {
  // Duplicates ("loopback, 127.0.0.1") would only slow every lookup down.
  if (std::find(ranges_.begin(), ranges_.end(), cidr) == ranges_.end()) ranges_.push_back(cidr);
}

bool TrustedProxies::contains(const IpAddress& ip) const {
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [&](const Cidr& cidr) { return cidr.contains(ip); });
}

std::string TrustedProxies::to_string() const {
  std::string out;
  for (const Cidr& cidr : ranges_) {
    if (!out.empty()) out += ", ";
    out += cidr.to_string();
  }
  return out;
}

namespace internal {

void append_client_ip(std::string& out, const std::optional<IpAddress>& ip) {
  constexpr std::string_view kTag = "ip:";
  if (ip && ip->is_v4()) {
    // One append for the tag and the address: the usual client-IP key.
    char text[kTag.size() + kV4TextRoom];
    std::memcpy(text, kTag.data(), kTag.size());
    out.append(text, kTag.size() + write_v4(ip->bytes(), text + kTag.size()));
  } else if (ip) {
    out.append(kTag);
    ip->append_to(out);
  } else {
    out.append("ip:unknown");
  }
}

}  // namespace internal

}  // namespace pacer::http
