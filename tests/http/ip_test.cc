#include "pacer/http/ip.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pacer::http {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string parsed(std::string_view text) {
  const auto ip = IpAddress::parse(text);
  return ip ? ip->to_string() : "<invalid>";
}

IpAddress ip(std::string_view text) {
  const auto parsed_ip = IpAddress::parse(text);
  if (!parsed_ip) throw std::logic_error("test address does not parse: " + std::string(text));
  return *parsed_ip;
}

SimpleRequest request(std::string peer, Headers headers = {}) {
  SimpleRequest r;
  r.peer_ = std::move(peer);
  r.headers_ = std::move(headers);
  return r;
}

std::string client(const SimpleRequest& r, const ClientIpOptions& options = {}) {
  const auto result = client_ip(r, options);
  return result ? result->to_string() : "<none>";
}

ClientIpOptions trusting(std::string_view list) {
  ClientIpOptions options;
  options.trusted_proxies = TrustedProxies::parse(list);
  return options;
}

std::string error_of(std::string_view cidr) {
  try {
    Cidr::parse(cidr);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no error>";
}

// ---- IpAddress::parse ---------------------------------------------------------------------------

TEST(IpAddressParse, Ipv4) {
  EXPECT_EQ(parsed("1.2.3.4"), "1.2.3.4");
  EXPECT_EQ(parsed("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(parsed("255.255.255.255"), "255.255.255.255");
  EXPECT_EQ(parsed("10.0.0.1"), "10.0.0.1");
  EXPECT_TRUE(ip("1.2.3.4").is_v4());
}

TEST(IpAddressParse, Ipv4Invalid) {
  for (std::string_view bad : {"", "1", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.256.1.1", "1.2.3.256",
                               "1.2.3.1000", "1.2.3.999999999999", "1..2.3"})
    EXPECT_EQ(parsed(bad), "<invalid>") << bad;
  // Forms other software reads as octal, hex or shorthand.
  for (std::string_view bad :
       {"01.2.3.4", "1.2.3.04", "00.0.0.0", "0x7f.0.0.1", "127.1", "2130706433"})
    EXPECT_EQ(parsed(bad), "<invalid>") << bad;
  // Stray characters, including a fullwidth digit one (U+FF11).
  for (std::string_view bad :
       {".1.2.3.4", "1.2.3.4.", "1.2.3.-4", "+1.2.3.4", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4\n",
        "1.2.3.4/8", "a.b.c.d", "\xef\xbc\x91.2.3.4"})
    EXPECT_EQ(parsed(bad), "<invalid>") << bad;
}

// The one-pass dotted-quad parser agrees with the C library's strict inet_pton (no leading
// zeros, 0..255, four parts) on every text without a colon: near-misses built from four numbers,
// and short random strings over the characters that matter.
std::optional<std::string> libc_v4(const std::string& text) {
  // inet_pton reads a C string, which ends at a NUL; a NUL anywhere is no address to us.
  if (text.find('\0') != std::string::npos) return std::nullopt;
  unsigned char bytes[4];
  if (inet_pton(AF_INET, text.c_str(), bytes) != 1) return std::nullopt;
  return std::to_string(bytes[0]) + "." + std::to_string(bytes[1]) + "." +
         std::to_string(bytes[2]) + "." + std::to_string(bytes[3]);
}

void expect_same_as_libc(const std::string& text) {
  const auto ours = IpAddress::parse(text);
  const auto theirs = libc_v4(text);
  RC_ASSERT(ours.has_value() == theirs.has_value());
  if (ours) RC_ASSERT(ours->to_string() == *theirs);
}

RC_GTEST_PROP(IpAddressParse, DottedQuadsAgreeWithInetPton, ()) {
  // Mostly four parts in range, so that valid addresses and one-off mistakes are both common.
  const auto count = *rc::gen::weightedElement<std::size_t>({{8, 4}, {1, 3}, {1, 5}});
  const auto parts = *rc::gen::container<std::vector<int>>(
      count, rc::gen::weightedOneOf<int>(
                 {{9, rc::gen::inRange(0, 256)}, {1, rc::gen::inRange(256, 1100)}}));
  const auto zeros = *rc::gen::container<std::vector<bool>>(
      count, rc::gen::weightedElement<bool>({{9, false}, {1, true}}));
  std::string text;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) text += '.';
    if (zeros[i]) text += '0';
    text += std::to_string(parts[i]);
  }
  expect_same_as_libc(text);
}

RC_GTEST_PROP(IpAddressParse, ShortStringsAgreeWithInetPton, ()) {
  const auto text = *rc::gen::container<std::string>(
      *rc::gen::inRange<std::size_t>(0, 18),
      rc::gen::element('0', '1', '2', '5', '9', '.', 'a', ' ', '-', '\0'));
  expect_same_as_libc(text);
}

TEST(IpAddressParse, Ipv4WithPort) {
  EXPECT_EQ(parsed("1.2.3.4:8080"), "1.2.3.4");
  EXPECT_EQ(parsed("1.2.3.4:0"), "1.2.3.4");
  EXPECT_EQ(parsed("1.2.3.4:65535"), "1.2.3.4");
  for (std::string_view bad : {"1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:123456", "1.2.3.4:-1",
                               "1.2.3.4:http", "1.2.3.4: 80", ":80", "1.2.3.4:80:80"})
    EXPECT_EQ(parsed(bad), "<invalid>") << bad;
}

TEST(IpAddressParse, Ipv6) {
  EXPECT_EQ(parsed("::1"), "::1");
  EXPECT_EQ(parsed("::"), "::");
  EXPECT_EQ(parsed("2001:db8::1"), "2001:db8::1");
  EXPECT_EQ(parsed("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  EXPECT_EQ(parsed("2001:0db8:0000:0000:0000:ff00:0042:8329"), "2001:db8::ff00:42:8329");
  EXPECT_EQ(parsed("fe80::1"), "fe80::1");
  EXPECT_FALSE(ip("::1").is_v4());
}

TEST(IpAddressParse, Ipv6CanonicalFormIsRfc5952) {
  // A single zero word is not compressed; the longest run wins; the first run wins a tie.
  EXPECT_EQ(parsed("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(parsed("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1");
  EXPECT_EQ(parsed("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(parsed("1::"), "1::");
  EXPECT_EQ(parsed("0:0:0:0:0:0:0:1"), "::1");
  EXPECT_EQ(parsed("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
  // IPv4-compatible (not mapped) addresses stay IPv6 and print in hex.
  EXPECT_EQ(parsed("::1.2.3.4"), "::102:304");
  EXPECT_EQ(parsed("64:ff9b::1.2.3.4"), "64:ff9b::102:304");
}

// append_to writes to_string() after what the string holds, even text ending in ':'.
TEST(IpAddress, AppendToWritesTheTextForm) {
  for (std::string_view text : {"0.0.0.0", "9.10.99.100", "203.0.113.255", "::", "::1",
                                "1::", "2001:db8::1", "1:2:3:4:5:6:7:8", "2001:0:0:1::1"}) {
    std::string out = "ip:";
    ip(text).append_to(out);
    EXPECT_EQ(out, "ip:" + ip(text).to_string());
    EXPECT_EQ(ip(text).to_string(), text);
  }
}

// Every octet value and every spelling of one: plain decimal up to 255 parses and prints back
// the same; leading zeros, four digits and larger values do not parse.
TEST(IpAddressParse, EveryIpv4Octet) {
  for (int v = 0; v < 1000; ++v) {
    for (const std::string& octet :
         {std::to_string(v), "0" + std::to_string(v), "00" + std::to_string(v)}) {
      for (const std::string& text : {"1.2.3." + octet, octet + ".2.3.4", "1." + octet + ".3.4"}) {
        const bool canonical = octet == std::to_string(v) && v <= 255;
        EXPECT_EQ(parsed(text), canonical ? text : "<invalid>") << text;
      }
    }
  }
  EXPECT_EQ(parsed("1.2.3.1000"), "<invalid>");
  EXPECT_EQ(parsed("1.2.3.4:"), "<invalid>");
}

TEST(IpAddressParse, Ipv6Brackets) {
  EXPECT_EQ(parsed("[2001:db8::1]"), "2001:db8::1");
  EXPECT_EQ(parsed("[::1]:443"), "::1");
  EXPECT_EQ(parsed("[2001:db8:cafe::17]:4711"), "2001:db8:cafe::17");
  for (std::string_view bad :
       {"[::1", "::1]", "[::1]:", "[::1]:99999", "[::1]80", "[::1]]", "[[::1]]", "[]", "[1.2.3.4]",
        "[1.2.3.4]:80", "[::1]:80:80", "[::1] ", "[ ::1]"})
    EXPECT_EQ(parsed(bad), "<invalid>") << bad;
}

TEST(IpAddressParse, Ipv6Invalid) {
  for (std::string_view bad :
       {":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::1", "g::1", "fe80::1%eth0", "fe80::1%1",
        "[fe80::1%eth0]:80", "::1 ", " ::1", "2001:db8::1/64", "::ffff:256.1.1.1",
        "::ffff:01.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", ":1::", "1:2:3:4:5:6:7:"})
    EXPECT_EQ(parsed(bad), "<invalid>") << bad;
}

TEST(IpAddressParse, MappedIpv6IsNormalisedToIpv4) {
  EXPECT_EQ(parsed("::ffff:1.2.3.4"), "1.2.3.4");
  EXPECT_EQ(parsed("::FFFF:1.2.3.4"), "1.2.3.4");
  EXPECT_EQ(parsed("::ffff:102:304"), "1.2.3.4");
  EXPECT_EQ(parsed("[::ffff:10.0.0.1]:80"), "10.0.0.1");
  EXPECT_TRUE(ip("::ffff:1.2.3.4").is_v4());
  EXPECT_EQ(ip("::ffff:1.2.3.4"), ip("1.2.3.4"));
}

TEST(IpAddressParse, GarbageNeverParses) {
  const std::string nul("1.2.3.4\0", 8);
  const std::string embedded_nul("::1\0:1", 6);
  for (std::string_view bad :
       {std::string_view(nul), std::string_view(embedded_nul), std::string_view("unknown"),
        std::string_view("_hidden"), std::string_view("localhost"), std::string_view("\xff\xfe"),
        std::string_view("1.2.3.4\r\nX-Evil: 1"), std::string_view("\"1.2.3.4\""),
        std::string_view("for=1.2.3.4"), std::string_view("1.2.3.4,5.6.7.8")})
    EXPECT_EQ(parsed(bad), "<invalid>");
  // Every single byte value, on its own and around a valid address.
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    EXPECT_FALSE(IpAddress::parse(std::string(1, c))) << b;
    if (c >= '0' && c <= '9') continue;  // would just make another valid address
    EXPECT_FALSE(IpAddress::parse(std::string("1.2.3.4") + c)) << b;
    EXPECT_FALSE(IpAddress::parse(std::string(1, c) + "::1.2.3.4" + c)) << b;
  }
}

TEST(IpAddressParse, VeryLongInputs) {
  EXPECT_FALSE(IpAddress::parse(std::string(100'000, '1')));
  EXPECT_FALSE(IpAddress::parse(std::string(100'000, ':')));
  EXPECT_FALSE(IpAddress::parse("[" + std::string(100'000, 'a') + "]"));
  EXPECT_FALSE(IpAddress::parse("1.2.3.4:" + std::string(1000, '0')));
  EXPECT_FALSE(IpAddress::parse("0000:0000:0000:0000:0000:0000:0000:00001"));
  // The longest real spellings still parse.
  EXPECT_EQ(parsed("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535"),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_EQ(parsed("0000:0000:0000:0000:0000:ffff:255.255.255.255"), "255.255.255.255");
}

TEST(IpAddress, Masked) {
  EXPECT_EQ(ip("192.168.77.200").masked(24).to_string(), "192.168.77.0");
  EXPECT_EQ(ip("192.168.77.200").masked(20).to_string(), "192.168.64.0");
  EXPECT_EQ(ip("192.168.77.200").masked(0).to_string(), "0.0.0.0");
  EXPECT_EQ(ip("192.168.77.200").masked(32).to_string(), "192.168.77.200");
  EXPECT_EQ(ip("192.168.77.201").masked(31).to_string(), "192.168.77.200");
  EXPECT_EQ(ip("2001:db8:1:2:3:4:5:6").masked(64).to_string(), "2001:db8:1:2::");
  EXPECT_EQ(ip("2001:db8:1:2:3:4:5:6").masked(56).to_string(), "2001:db8:1::");
  EXPECT_EQ(ip("2001:db8:1:2:3:4:5:6").masked(0).to_string(), "::");
  EXPECT_EQ(ip("2001:db8:1:2:3:4:5:6").masked(128).to_string(), "2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(ip("ffff::ffff").masked(1).to_string(), "8000::");
  EXPECT_EQ(ip("ffff::ffff").masked(127).to_string(), "ffff::fffe");
  EXPECT_THROW(ip("1.2.3.4").masked(33), std::invalid_argument);
  EXPECT_THROW(ip("1.2.3.4").masked(-1), std::invalid_argument);
  EXPECT_THROW(ip("::1").masked(129), std::invalid_argument);
  EXPECT_NO_THROW(ip("::1").masked(33));
}

TEST(IpAddress, Equality) {
  EXPECT_EQ(ip("1.2.3.4"), ip("1.2.3.4:99"));
  EXPECT_NE(ip("1.2.3.4"), ip("1.2.3.5"));
  EXPECT_EQ(ip("2001:db8::1"), ip("[2001:DB8:0::1]:1"));
  // The IPv4-compatible ::1.2.3.4 is a different address from 1.2.3.4.
  EXPECT_NE(ip("::1.2.3.4"), ip("1.2.3.4"));
  EXPECT_NE(ip("0.0.0.0"), ip("::"));
}

// ---- Cidr -------------------------------------------------------------------------------------

TEST(Cidr, ParseAndFormat) {
  EXPECT_EQ(Cidr::parse("10.0.0.0/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::parse("::1/128").to_string(), "::1/128");
  EXPECT_EQ(Cidr::parse("2001:db8::/32").to_string(), "2001:db8::/32");
  EXPECT_EQ(Cidr::parse("1.2.3.4").to_string(), "1.2.3.4/32");
  EXPECT_EQ(Cidr::parse("2001:db8::1").to_string(), "2001:db8::1/128");
  EXPECT_EQ(Cidr::parse("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(Cidr::parse("::/0").to_string(), "::/0");
  EXPECT_EQ(Cidr::parse(" 10.0.0.0/8 ").to_string(), "10.0.0.0/8");
  // Host bits are cleared.
  EXPECT_EQ(Cidr::parse("10.1.2.3/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::parse("2001:db8::1/32").to_string(), "2001:db8::/32");
  // IPv4-mapped ranges become IPv4 ranges.
  EXPECT_EQ(Cidr::parse("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::parse("::ffff:1.2.3.4").to_string(), "1.2.3.4/32");
  EXPECT_EQ(Cidr::parse("10.0.0.0/008").prefix_bits(), 8);
}

TEST(Cidr, ErrorsNameTheBadText) {
  EXPECT_EQ(error_of("10.0.0.0/33"),
            "invalid CIDR '10.0.0.0/33': prefix length must be 0..32 for IPv4");
  EXPECT_EQ(error_of("::/129"), "invalid CIDR '::/129': prefix length must be 0..128 for IPv6");
  EXPECT_EQ(error_of("10.0.0.0/99999999999999999999"),
            "invalid CIDR '10.0.0.0/99999999999999999999': prefix length must be 0..32 for IPv4");
  EXPECT_EQ(error_of("10.0.0.0/"), "invalid CIDR '10.0.0.0/': prefix length is not a number");
  EXPECT_EQ(error_of("10.0.0.0/-1"), "invalid CIDR '10.0.0.0/-1': prefix length is not a number");
  EXPECT_EQ(error_of("10.0.0.0/+8"), "invalid CIDR '10.0.0.0/+8': prefix length is not a number");
  EXPECT_EQ(error_of("10.0.0.0/8/8"), "invalid CIDR '10.0.0.0/8/8': prefix length is not a number");
  EXPECT_EQ(error_of("10.0.0/8"), "invalid CIDR '10.0.0/8': not an IP address");
  EXPECT_EQ(error_of(""), "invalid CIDR '': not an IP address");
  EXPECT_EQ(error_of("/8"), "invalid CIDR '/8': not an IP address");
  EXPECT_EQ(error_of("localhost"), "invalid CIDR 'localhost': not an IP address");
  EXPECT_EQ(error_of("::ffff:10.0.0.0/8"),
            "invalid CIDR '::ffff:10.0.0.0/8': prefix length must be 96..128 for an IPv4-mapped "
            "IPv6 address");
  // Ports, brackets and zone ids belong to addresses on the wire, not to ranges.
  for (std::string_view bad : {"1.2.3.4:80", "[::1]", "[::1]/128", "fe80::1%eth0/64"})
    EXPECT_NE(error_of(bad).find("not an IP address"), std::string::npos) << bad;
}

TEST(Cidr, ErrorMessagesAreSafeToLog) {
  EXPECT_EQ(error_of("1.2.3.4\n/8"), "invalid CIDR '1.2.3.4\\x0a/8': not an IP address");
  const std::string message = error_of(std::string(10'000, '9'));
  EXPECT_LT(message.size(), 200u);
  EXPECT_NE(message.find("'9999"), std::string::npos);
  EXPECT_NE(message.find("...'"), std::string::npos);
}

TEST(Cidr, ContainsEdges) {
  const Cidr ten = Cidr::parse("10.0.0.0/8");
  EXPECT_TRUE(ten.contains(ip("10.0.0.0")));
  EXPECT_TRUE(ten.contains(ip("10.255.255.255")));
  EXPECT_FALSE(ten.contains(ip("11.0.0.0")));
  EXPECT_FALSE(ten.contains(ip("9.255.255.255")));
  EXPECT_TRUE(ten.contains(ip("::ffff:10.1.1.1")));  // mapped = IPv4

  const Cidr odd = Cidr::parse("172.16.0.0/12");
  EXPECT_TRUE(odd.contains(ip("172.31.255.255")));
  EXPECT_FALSE(odd.contains(ip("172.32.0.0")));
  EXPECT_FALSE(odd.contains(ip("172.15.255.255")));

  const Cidr all_v4 = Cidr::parse("0.0.0.0/0");
  EXPECT_TRUE(all_v4.contains(ip("0.0.0.0")));
  EXPECT_TRUE(all_v4.contains(ip("255.255.255.255")));
  EXPECT_FALSE(all_v4.contains(ip("::")));
  EXPECT_FALSE(all_v4.contains(ip("::1")));

  const Cidr all_v6 = Cidr::parse("::/0");
  EXPECT_TRUE(all_v6.contains(ip("::")));
  EXPECT_TRUE(all_v6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(all_v6.contains(ip("0.0.0.0")));
  EXPECT_FALSE(all_v6.contains(ip("::ffff:1.2.3.4")));  // normalised to IPv4

  const Cidr one_v4 = Cidr::parse("1.2.3.4/32");
  EXPECT_TRUE(one_v4.contains(ip("1.2.3.4")));
  EXPECT_FALSE(one_v4.contains(ip("1.2.3.5")));
  EXPECT_FALSE(one_v4.contains(ip("::1.2.3.4")));

  const Cidr one_v6 = Cidr::parse("2001:db8::1/128");
  EXPECT_TRUE(one_v6.contains(ip("2001:db8::1")));
  EXPECT_FALSE(one_v6.contains(ip("2001:db8::2")));
  EXPECT_FALSE(one_v6.contains(ip("2001:db8::")));

  const Cidr v6_net = Cidr::parse("2001:db8::/32");
  EXPECT_TRUE(v6_net.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
  EXPECT_FALSE(v6_net.contains(ip("2001:db9::")));

  const Cidr seven = Cidr::parse("fc00::/7");
  EXPECT_TRUE(seven.contains(ip("fd12::1")));
  EXPECT_FALSE(seven.contains(ip("fe00::1")));
}

TEST(Cidr, ConstructorValidates) {
  EXPECT_EQ(Cidr(ip("10.9.8.7"), 16).to_string(), "10.9.0.0/16");
  EXPECT_THROW(Cidr(ip("10.9.8.7"), 33), std::invalid_argument);
  EXPECT_THROW(Cidr(ip("::1"), -1), std::invalid_argument);
}

// ---- TrustedProxies ---------------------------------------------------------------------------

TEST(TrustedProxies, DefaultTrustsNobody) {
  const TrustedProxies nobody;
  EXPECT_TRUE(nobody.empty());
  EXPECT_FALSE(nobody.contains(ip("127.0.0.1")));
  EXPECT_TRUE(TrustedProxies::parse("").empty());
  EXPECT_TRUE(TrustedProxies::parse(" , ,\t\n").empty());
}

TEST(TrustedProxies, ParseListsAndWords) {
  EXPECT_EQ(TrustedProxies::loopback().to_string(), "127.0.0.0/8, ::1/128");
  EXPECT_EQ(TrustedProxies::parse("loopback").to_string(), "127.0.0.0/8, ::1/128");
  EXPECT_EQ(TrustedProxies::parse("PRIVATE").to_string(),
            "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7");
  EXPECT_EQ(TrustedProxies::parse("10.0.0.1, 192.168.0.0/16 2001:db8::/32,,\tLoopback").to_string(),
            "10.0.0.1/32, 192.168.0.0/16, 2001:db8::/32, 127.0.0.0/8, ::1/128");
  // Duplicates collapse.
  EXPECT_EQ(TrustedProxies::parse("loopback 127.0.0.0/8 127.1.2.3/8").to_string(),
            "127.0.0.0/8, ::1/128");
  // to_string reads back.
  const auto list = TrustedProxies::parse("private, loopback, 203.0.113.9");
  EXPECT_EQ(TrustedProxies::parse(list.to_string()).to_string(), list.to_string());
}

TEST(TrustedProxies, Contains) {
  const auto trusted = TrustedProxies::parse("loopback, 10.0.0.0/8, 2001:db8::/32");
  EXPECT_TRUE(trusted.contains(ip("127.0.0.1")));
  EXPECT_TRUE(trusted.contains(ip("127.255.0.1")));
  EXPECT_TRUE(trusted.contains(ip("::1")));
  EXPECT_TRUE(trusted.contains(ip("::ffff:127.0.0.1")));
  EXPECT_TRUE(trusted.contains(ip("10.200.0.1")));
  EXPECT_TRUE(trusted.contains(ip("2001:db8::99")));
  EXPECT_FALSE(trusted.contains(ip("11.0.0.1")));
  EXPECT_FALSE(trusted.contains(ip("::2")));
  EXPECT_FALSE(trusted.contains(ip("2001:db9::1")));
}

TEST(TrustedProxies, Add) {
  TrustedProxies trusted;
  trusted.add(Cidr::parse("203.0.113.0/24"));
  EXPECT_FALSE(trusted.empty());
  EXPECT_TRUE(trusted.contains(ip("203.0.113.77")));
  EXPECT_FALSE(trusted.contains(ip("127.0.0.1")));
}

TEST(TrustedProxies, ErrorsNameTheBadValue) {
  auto message_of = [](std::string_view list) -> std::string {
    try {
      TrustedProxies::parse(list);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "<no error>";
  };
  EXPECT_EQ(message_of("loopback, lookback"), "invalid CIDR 'lookback': not an IP address");
  EXPECT_EQ(message_of("10.0.0.0/8 10.0.0.0/40"),
            "invalid CIDR '10.0.0.0/40': prefix length must be 0..32 for IPv4");
  EXPECT_EQ(message_of("10.0.0.0/8;192.168.0.0/16"),
            "invalid CIDR '10.0.0.0/8;192.168.0.0/16': prefix length is not a number");
  EXPECT_EQ(message_of("*"), "invalid CIDR '*': not an IP address");
}

// contains() agrees with comparing masked addresses, for every prefix length.
TEST(Cidr, ContainsAgreesWithMasked) {
  const std::vector<std::string> v4 = {"0.0.0.0",      "10.1.2.3",        "10.1.2.4",
                                       "172.31.255.1", "255.255.255.255", "128.0.0.0"};
  const std::vector<std::string> v6 = {"::",           "::1",
                                       "2001:db8::1",  "2001:db8:8000::",
                                       "fd12:3456::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"};
  for (const auto* family : {&v4, &v6}) {
    const int width = family == &v4 ? 32 : 128;
    for (const std::string& network : *family) {
      for (int bits = 0; bits <= width; ++bits) {
        const Cidr cidr(ip(network), bits);
        for (const auto* other : {&v4, &v6}) {
          for (const std::string& address : *other) {
            const bool expected =
                other == family && ip(address).masked(bits) == ip(network).masked(bits);
            EXPECT_EQ(cidr.contains(ip(address)), expected)
                << network << "/" << bits << " " << address;
          }
        }
      }
    }
  }
}

// ---- client_ip: who may speak for the client ----------------------------------------------------

TEST(ClientIp, PeerWithoutHeaders) {
  EXPECT_EQ(client(request("203.0.113.7")), "203.0.113.7");
  EXPECT_EQ(client(request("2001:db8::7")), "2001:db8::7");
  EXPECT_EQ(client(request("::ffff:203.0.113.7")), "203.0.113.7");
  EXPECT_EQ(client(request("127.0.0.1")), "127.0.0.1");  // trusted, but nothing forwarded
}

// An adapter that has the peer parsed already (pacer::beast) hands it over: the text is not
// parsed again, and the answer is the same.
TEST(ClientIp, PeerParsedByTheAdapter) {
  struct ParsedPeer final : RequestView {
    SimpleRequest request;
    IpAddress peer = ip("203.0.113.7");
    mutable int text_reads = 0;
    std::string_view method() const override { return request.method(); }
    std::string_view path() const override { return request.path(); }
    std::string_view query() const override { return request.query(); }
    std::string_view peer_address() const override {
      ++text_reads;
      return "203.0.113.7";
    }
    const IpAddress* peer_ip() const override { return &peer; }
    std::optional<std::string_view> header(std::string_view name) const override {
      return request.header(name);
    }
    std::string header_list(std::string_view name) const override {
      return request.header_list(name);
    }
    std::optional<std::string_view> attribute(std::string_view name) const override {
      return request.attribute(name);
    }
  };
  ParsedPeer view;
  EXPECT_EQ(client_ip(view, {}), ip("203.0.113.7"));
  EXPECT_EQ(view.text_reads, 0);
  // A trusted proxy's headers are still read.
  view.peer = ip("127.0.0.1");
  view.request.headers_ = {{"X-Forwarded-For", "198.51.100.1"}};
  EXPECT_EQ(client_ip(view, {}), ip("198.51.100.1"));
  EXPECT_EQ(view.text_reads, 0);
  EXPECT_EQ(request("203.0.113.7").peer_ip(), nullptr);  // SimpleRequest: the text is parsed

  // This view counts header lines with RequestView's default (from header() and
  // header_list()): repeated lines are still one list, and a single-value header sent twice is
  // still refused.
  view.request.headers_ = {{"X-Forwarded-For", "198.51.100.1"},
                           {"x-forwarded-for", "198.51.100.2"}};
  EXPECT_EQ(view.header_count("X-Forwarded-For"), 2U);
  EXPECT_EQ(client_ip(view, {}), ip("198.51.100.2"));
  ClientIpOptions real_ip;
  real_ip.headers = {"X-Real-IP"};
  view.request.headers_ = {{"X-Real-IP", "198.51.100.1"}};
  EXPECT_EQ(view.header_count("X-Real-IP"), 1U);
  EXPECT_EQ(client_ip(view, real_ip), ip("198.51.100.1"));
  view.request.headers_ = {{"X-Real-IP", "198.51.100.1"}, {"X-Real-IP", "198.51.100.2"}};
  EXPECT_EQ(client_ip(view, real_ip), ip("127.0.0.1"));
  EXPECT_EQ(view.header_count("X-Forwarded-For"), 0U);
}

TEST(ClientIp, SimpleRequestCountsHeaderLinesIgnoringCase) {
  const SimpleRequest r = request(
      "127.0.0.1",
      {{"X-Forwarded-For", "1.1.1.1"}, {"x-forwarded-for", "2.2.2.2"}, {"X-Real-IP", "3.3.3.3"}});
  EXPECT_EQ(r.header_count("X-FORWARDED-FOR"), 2U);
  EXPECT_EQ(r.header_count("x-real-ip"), 1U);
  EXPECT_EQ(r.header_count("Forwarded"), 0U);
}

TEST(ClientIp, UnparseablePeerIsNullopt) {
  EXPECT_EQ(client(request("")), "<none>");
  EXPECT_EQ(client(request("unix:/run/app.sock")), "<none>");
  EXPECT_EQ(client(request("not an ip", {{"X-Forwarded-For", "1.2.3.4"}})), "<none>");
}

TEST(ClientIp, UntrustedPeerSpoofingIsIgnored) {
  const Headers spoof = {{"X-Forwarded-For", "1.1.1.1"},
                         {"Forwarded", "for=2.2.2.2"},
                         {"X-Real-IP", "3.3.3.3"},
                         {"CF-Connecting-IP", "4.4.4.4"}};
  EXPECT_EQ(client(request("203.0.113.7", spoof)), "203.0.113.7");
  EXPECT_EQ(client(request("2001:db8::7", spoof)), "2001:db8::7");
  // Trusting nobody ignores headers even from loopback.
  EXPECT_EQ(client(request("127.0.0.1", spoof), trusting("")), "127.0.0.1");
  // A peer that merely claims to be a proxy in the header is not one.
  EXPECT_EQ(client(request("203.0.113.7", {{"X-Forwarded-For", "1.1.1.1, 127.0.0.1"}})),
            "203.0.113.7");
}

TEST(ClientIp, TrustedPeerSingleXff) {
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Forwarded-For", "203.0.113.7"}})), "203.0.113.7");
  EXPECT_EQ(client(request("::1", {{"x-forwarded-for", " 203.0.113.7 "}})), "203.0.113.7");
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Forwarded-For", "2001:db8::7"}})), "2001:db8::7");
}

TEST(ClientIp, XffWalkedFromTheRightPastTrustedHops) {
  const auto options = trusting("loopback, 10.0.0.0/8, 2001:db8:ffff::/48");
  // The client put 6.6.6.6 in front itself; 203.0.113.7 connected to our first proxy.
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For",
                                   "6.6.6.6, 203.0.113.7, 10.1.1.1, 2001:db8:ffff::5, 10.2.2.2"}}),
             options),
      "203.0.113.7");
  // Hops may carry ports and brackets.
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For",
                                   "[2001:db8::7]:5555, [2001:db8:ffff::1]:80, 10.0.0.9:80"}}),
             options),
      "2001:db8::7");
  // The first untrusted hop from the right wins, even if it is not the left-most.
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For", "1.1.1.1, 2.2.2.2, 10.0.0.5"}}), options),
      "2.2.2.2");
}

TEST(ClientIp, AllHopsTrustedYieldsTheLeftMost) {
  const auto options = trusting("loopback, 10.0.0.0/8");
  EXPECT_EQ(
      client(request("127.0.0.1", {{"X-Forwarded-For", "10.0.0.3, 10.0.0.2, 127.0.0.1"}}), options),
      "10.0.0.3");
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Forwarded-For", "127.0.0.2"}}), options), "127.0.0.2");
}

TEST(ClientIp, GarbageInXff) {
  const auto options = trusting("loopback, 10.0.0.0/8");
  auto xff = [&](std::string value) {
    return client(request("10.0.0.1", {{"X-Forwarded-For", std::move(value)}}), options);
  };
  // Garbage right of the client: a proxy-written hop is broken, so nothing can be believed.
  EXPECT_EQ(xff("203.0.113.7, garbage"), "10.0.0.1");
  EXPECT_EQ(xff("203.0.113.7, 10.0.0.2, unknown"), "10.0.0.1");
  EXPECT_EQ(xff("203.0.113.7, 10.0.0.2 10.0.0.3"), "10.0.0.1");
  EXPECT_EQ(xff("203.0.113.7, \"10.0.0.2\""), "10.0.0.1");
  EXPECT_EQ(xff("203.0.113.7, 10.0.0.2;x"), "10.0.0.1");
  EXPECT_EQ(xff(std::string("203.0.113.7, 10.0.0.2\0", 22)), "10.0.0.1");
  EXPECT_EQ(xff("203.0.113.7, 10.0.0.2\r\n"), "10.0.0.1");
  // Garbage left of the first untrusted hop is never examined.
  EXPECT_EQ(xff("<script>, 203.0.113.7, 10.0.0.2"), "203.0.113.7");
  EXPECT_EQ(xff("\xff\xfe, 203.0.113.7"), "203.0.113.7");
  // Garbage reached while walking trusted hops: the client wrote it, so fall back to the peer
  // rather than trusting a client-controlled value or returning the left-most trusted hop.
  EXPECT_EQ(xff("garbage, 10.0.0.3, 10.0.0.2"), "10.0.0.1");
  EXPECT_EQ(xff("1.2.3.4.5, 10.0.0.2"), "10.0.0.1");
  EXPECT_EQ(xff("256.1.1.1"), "10.0.0.1");
  EXPECT_EQ(xff("fe80::1%eth0"), "10.0.0.1");
}

TEST(ClientIp, EmptyXffElementsAreNotHops) {
  const auto options = trusting("loopback, 10.0.0.0/8");
  auto xff = [&](std::string value) {
    return client(request("10.0.0.1", {{"X-Forwarded-For", std::move(value)}}), options);
  };
  EXPECT_EQ(xff("203.0.113.7,,10.0.0.2"), "203.0.113.7");
  EXPECT_EQ(xff(",203.0.113.7, ,\t,"), "203.0.113.7");
  EXPECT_EQ(xff(""), "10.0.0.1");
  EXPECT_EQ(xff(" , , "), "10.0.0.1");
}

TEST(ClientIp, MultipleXffLinesAreOneList) {
  const auto options = trusting("loopback, 10.0.0.0/8");
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", "6.6.6.6, 203.0.113.7"},
                                        {"X-Forwarded-For", "10.0.0.3"},
                                        {"X-Forwarded-For", "10.0.0.2, 10.0.0.4"}}),
                   options),
            "203.0.113.7");
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", "203.0.113.7"},
                                        {"X-Forwarded-For", "198.51.100.1"}}),
                   options),
            "198.51.100.1");
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For", "203.0.113.7"}, {"X-Forwarded-For", ""}}),
             options),
      "203.0.113.7");
}

TEST(ClientIp, HopLimit) {
  const auto options = trusting("loopback, 10.0.0.0/8");
  auto chain = [](std::size_t trusted_hops) {
    std::string value = "203.0.113.7";
    for (std::size_t i = 0; i < trusted_hops; ++i) value += ", 10.0.0." + std::to_string(i % 250);
    return value;
  };
  // The client is the 64th hop from the right: found.
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For", chain(kMaxForwardedHops - 1)}}), options),
      "203.0.113.7");
  // The client would be the 65th: too deep, use the peer.
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", chain(kMaxForwardedHops)}}), options),
            "10.0.0.1");
  // Exactly 64 hops, all trusted: the left-most.
  std::string all_trusted = "10.0.0.200";
  for (std::size_t i = 1; i < kMaxForwardedHops; ++i) all_trusted += ", 10.0.0.1";
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", all_trusted}}), options), "10.0.0.200");
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For", "10.0.0.99, " + all_trusted}}), options),
      "10.0.0.1");
  // Many hops, but the client is near the right: found without examining the rest.
  std::string long_tail;
  for (int i = 0; i < 1000; ++i) long_tail += "1.1.1.1, ";
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", long_tail + "203.0.113.7, 10.0.0.2"}}),
                   options),
            "203.0.113.7");
}

TEST(ClientIp, HugeXffHeader) {
  const auto options = trusting("loopback, 10.0.0.0/8");
  std::string value;
  while (value.size() < 64 * 1024) value += "198.51.100.23, ";
  value += "203.0.113.7";
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", value}}), options), "203.0.113.7");

  std::string trusted_only;
  while (trusted_only.size() < 64 * 1024) trusted_only += "10.1.2.3,";
  EXPECT_EQ(client(request("10.0.0.1", {{"X-Forwarded-For", trusted_only}}), options), "10.0.0.1");

  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For", std::string(64 * 1024, 'A')}}), options),
      "10.0.0.1");
  EXPECT_EQ(
      client(request("10.0.0.1", {{"X-Forwarded-For", std::string(64 * 1024, ',')}}), options),
      "10.0.0.1");
  EXPECT_EQ(client(request("10.0.0.1", {{"Forwarded", std::string(64 * 1024, '"')}}), options),
            "10.0.0.1");
  std::string forwarded;
  while (forwarded.size() < 64 * 1024) forwarded += "for=198.51.100.23;proto=https, ";
  EXPECT_EQ(client(request("10.0.0.1", {{"Forwarded", forwarded + "for=10.0.0.9"}}), options),
            "198.51.100.23");
}

// ---- client_ip: Forwarded (RFC 7239) ------------------------------------------------------------

std::string forwarded(std::string value, std::string peer = "127.0.0.1") {
  return client(request(std::move(peer), {{"Forwarded", std::move(value)}}),
                trusting("loopback, 10.0.0.0/8, 2001:db8:ffff::/48"));
}

TEST(ClientIpForwarded, Basic) {
  EXPECT_EQ(forwarded("for=192.0.2.60;proto=http;by=203.0.113.43"), "192.0.2.60");
  EXPECT_EQ(forwarded("for=\"192.0.2.60\""), "192.0.2.60");
  EXPECT_EQ(forwarded("For=192.0.2.60"), "192.0.2.60");
  EXPECT_EQ(forwarded("proto=https; FOR=192.0.2.60 ;by=10.0.0.1"), "192.0.2.60");
  EXPECT_EQ(forwarded("for=\"192.0.2.43:47011\""), "192.0.2.43");
  EXPECT_EQ(forwarded(";;for=192.0.2.60;"), "192.0.2.60");
}

TEST(ClientIpForwarded, QuotedIpv6WithPort) {
  EXPECT_EQ(forwarded("for=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
  EXPECT_EQ(forwarded("for=\"[2001:db8:cafe::17]\""), "2001:db8:cafe::17");
  EXPECT_EQ(forwarded("for=\"[2001:db8:cafe::17]:4711\", for=\"[2001:db8:ffff::1]:80\""),
            "2001:db8:cafe::17");
  // Unquoted IPv6 is not valid RFC 7239, but trusted proxies do send it; accept it.
  EXPECT_EQ(forwarded("for=[2001:db8:cafe::17]"), "2001:db8:cafe::17");
}

TEST(ClientIpForwarded, ChainWalkedFromTheRight) {
  EXPECT_EQ(forwarded("for=6.6.6.6, for=192.0.2.60;proto=https, for=10.0.0.2;by=10.0.0.1, "
                      "for=\"[2001:db8:ffff::3]\""),
            "192.0.2.60");
  EXPECT_EQ(forwarded("for=10.0.0.3, for=10.0.0.2"), "10.0.0.3");
  // Repeated header lines form one list.
  EXPECT_EQ(
      client(request("127.0.0.1", {{"Forwarded", "for=192.0.2.60"}, {"Forwarded", "for=10.0.0.2"}}),
             trusting("loopback, 10.0.0.0/8")),
      "192.0.2.60");
  // Commas inside quoted values do not split elements.
  EXPECT_EQ(forwarded("for=192.0.2.60;ext=\"a, for=6.6.6.6\""), "192.0.2.60");
  EXPECT_EQ(forwarded("for=192.0.2.60;ext=\"a\\\", for=6.6.6.6\""), "192.0.2.60");
}

TEST(ClientIpForwarded, ObfuscatedAndUnknownIdentifiers) {
  EXPECT_EQ(forwarded("for=unknown"), "127.0.0.1");
  EXPECT_EQ(forwarded("for=_hidden"), "127.0.0.1");
  EXPECT_EQ(forwarded("for=\"_gazonk\""), "127.0.0.1");
  EXPECT_EQ(forwarded("for=192.0.2.60, for=_hidden"), "127.0.0.1");
  EXPECT_EQ(forwarded("for=192.0.2.60, for=unknown;proto=https"), "127.0.0.1");
  // Left of the client they do not matter.
  EXPECT_EQ(forwarded("for=unknown, for=192.0.2.60, for=10.0.0.2"), "192.0.2.60");
  // An obfuscated port does not hide a real address.
  EXPECT_EQ(forwarded("for=\"192.0.2.60:_port\""), "192.0.2.60");
  EXPECT_EQ(forwarded("for=\"[2001:db8:cafe::17]:_p1\""), "2001:db8:cafe::17");
  EXPECT_EQ(forwarded("for=\"_hidden:_port\""), "127.0.0.1");
}

TEST(ClientIpForwarded, MalformedElements) {
  for (std::string bad : {
           "for=192.0.2.60, proto=https",     // right-most element has no for=
           "for=192.0.2.60;for=192.0.2.61",   // repeated parameter
           "for=\"192.0.2.60",                // unbalanced quote
           "for=192.0.2.60\"",                // stray quote
           "for=\"192.0.2.60\"x",             // junk after the quoted string
           "for=\"192.0.2.\\60\"",            // escapes: no address needs them
           "for=",                            // empty value
           "for",                             // no value
           "=192.0.2.60",                     // no name
           "f r=1.2.3.4;for=192.0.2.60",      // bad parameter name
           "for=192.0.2.60 ;proto=\"https",   // unbalanced later in the element
           "for=192.0.2.60, for=\"10.0.0.2",  // unbalanced in the next element
           "for=192.0.2.60 192.0.2.61",       // two values
           "192.0.2.60",                      // X-Forwarded-For syntax
           "for=192.0.2.60:99999",            // bad port
           "for=\"\"",                        // empty quoted value
           "for=\"",                          // lone quote
       })
    EXPECT_EQ(forwarded(bad), "127.0.0.1") << bad;
}

TEST(ClientIpForwarded, EmptyElementsAreNotHops) {
  EXPECT_EQ(forwarded("for=192.0.2.60,, ,for=10.0.0.2,"), "192.0.2.60");
  EXPECT_EQ(forwarded(""), "127.0.0.1");
  EXPECT_EQ(forwarded(" , "), "127.0.0.1");
}

// ---- client_ip: single-value headers and header order
// ---------------------------------------------

TEST(ClientIp, XRealIp) {
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Real-IP", "203.0.113.7"}})), "203.0.113.7");
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Real-IP", " [2001:db8::7]:443 "}})), "2001:db8::7");
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Real-IP", "garbage"}})), "127.0.0.1");
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Real-IP", ""}})), "127.0.0.1");
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Real-IP", "1.1.1.1, 2.2.2.2"}})), "127.0.0.1");
  // Two copies: one may be the client's own, so neither is believed.
  EXPECT_EQ(client(request("127.0.0.1", {{"X-Real-IP", "1.1.1.1"}, {"X-Real-IP", "2.2.2.2"}})),
            "127.0.0.1");
}

TEST(ClientIp, CfConnectingIp) {
  EXPECT_EQ(client(request("::1", {{"CF-Connecting-IP", "198.51.100.9"}})), "198.51.100.9");
  EXPECT_EQ(client(request("::1", {{"cf-connecting-ip", "2001:db8::9"}})), "2001:db8::9");
  EXPECT_EQ(client(request("::1", {{"CF-Connecting-IP", "unknown"}})), "::1");
}

TEST(ClientIp, HeaderOrderPreference) {
  const Headers all = {{"CF-Connecting-IP", "4.4.4.4"},
                       {"X-Real-IP", "3.3.3.3"},
                       {"X-Forwarded-For", "2.2.2.2"},
                       {"Forwarded", "for=1.1.1.1"}};
  EXPECT_EQ(client(request("127.0.0.1", all)), "1.1.1.1");
  ClientIpOptions options;
  options.headers = {"CF-Connecting-IP", "X-Forwarded-For"};
  EXPECT_EQ(client(request("127.0.0.1", all), options), "4.4.4.4");
  options.headers = {"X-Real-IP"};
  EXPECT_EQ(client(request("127.0.0.1", all), options), "3.3.3.3");
  options.headers = {};
  EXPECT_EQ(client(request("127.0.0.1", all), options), "127.0.0.1");
  options.headers = {"X-Client-IP", "X-Forwarded-For"};  // absent headers are skipped
  EXPECT_EQ(client(request("127.0.0.1", all), options), "2.2.2.2");
  // Without Forwarded, X-Forwarded-For is next.
  EXPECT_EQ(client(request("127.0.0.1", {all[0], all[1], all[2]})), "2.2.2.2");
}

TEST(ClientIp, FirstPresentHeaderDecidesEvenWhenUnusable) {
  // Falling through to a later header would let a client pick the header that suits it.
  EXPECT_EQ(
      client(request("127.0.0.1", {{"Forwarded", "for=unknown"}, {"X-Forwarded-For", "2.2.2.2"}})),
      "127.0.0.1");
  EXPECT_EQ(client(request("127.0.0.1", {{"Forwarded", ""}, {"X-Forwarded-For", "2.2.2.2"}})),
            "127.0.0.1");
}

TEST(ClientIp, CustomForwardedForHeaderIsAList) {
  ClientIpOptions options = trusting("loopback, 10.0.0.0/8");
  options.headers = {"X-Original-Forwarded-For"};
  EXPECT_EQ(
      client(request("127.0.0.1", {{"X-Original-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.2"}}),
             options),
      "203.0.113.7");
}

// ---- client_ip: IPv6 aggregation ----------------------------------------------------------------

TEST(ClientIp, Ipv6Aggregation) {
  ClientIpOptions options;
  options.ipv6_prefix = 64;
  EXPECT_EQ(client(request("2001:db8:1:2:aaaa::1"), options), "2001:db8:1:2::");
  EXPECT_EQ(client(request("2001:db8:1:2:bbbb::2"), options), "2001:db8:1:2::");
  EXPECT_EQ(client(request("2001:db8:1:3::1"), options), "2001:db8:1:3::");
  // IPv4 (including mapped) is never aggregated.
  EXPECT_EQ(client(request("203.0.113.7"), options), "203.0.113.7");
  EXPECT_EQ(client(request("::ffff:203.0.113.7"), options), "203.0.113.7");
  // Forwarded IPv6 clients are aggregated too; trust is decided on the full address.
  EXPECT_EQ(client(request("::1", {{"X-Forwarded-For", "2001:db8:1:2:3:4:5:6"}}), options),
            "2001:db8:1:2::");
  options.ipv6_prefix = 0;
  EXPECT_EQ(client(request("2001:db8::1"), options), "::");
  options.ipv6_prefix = 128;
  EXPECT_EQ(client(request("2001:db8::1"), options), "2001:db8::1");
}

TEST(ClientIp, Ipv6AggregationDoesNotAffectTrust) {
  // 2001:db8::1 is a trusted proxy but 2001:db8::2 in the same /64 is not.
  ClientIpOptions options = trusting("2001:db8::1");
  options.ipv6_prefix = 64;
  EXPECT_EQ(client(request("2001:db8::1", {{"X-Forwarded-For", "2001:db8::2"}}), options),
            "2001:db8::");
  EXPECT_EQ(client(request("2001:db8::2", {{"X-Forwarded-For", "203.0.113.7"}}), options),
            "2001:db8::");
}

TEST(ClientIp, InvalidIpv6PrefixThrows) {
  ClientIpOptions options;
  options.ipv6_prefix = 129;
  EXPECT_THROW(client_ip(request("203.0.113.7"), options), std::invalid_argument);
  options.ipv6_prefix = -1;
  EXPECT_THROW(client_ip(request("203.0.113.7"), options), std::invalid_argument);
}

}  // namespace
}  // namespace pacer::http
