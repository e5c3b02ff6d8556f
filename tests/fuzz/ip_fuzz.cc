// libFuzzer target for pacer/http/ip.h: address, CIDR and trusted-proxy parsing, and client-IP
// resolution with the input as proxy headers from a trusted peer. Beyond "no crash, no
// out-of-bounds read" it checks round trips and that resolution only ever yields an address.
//
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
//     tests/fuzz/ip_fuzz.cc src/http/address.cc src/http/client_ip.cc src/http/request_view.cc \
//     src/core/text.cc -o ip_fuzz
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "pacer/http/ip.h"
#include "pacer/http/request_view.h"

namespace {

using pacer::http::Cidr;
using pacer::http::ClientIpOptions;
using pacer::http::IpAddress;
using pacer::http::SimpleRequest;
using pacer::http::TrustedProxies;

void check(bool condition) {
  if (!condition) std::abort();
}

void fuzz_address(std::string_view text) {
  const auto ip = IpAddress::parse(text);
  if (!ip) return;
  const auto again = IpAddress::parse(ip->to_string());
  check(again && *again == *ip);
  const int width = ip->is_v4() ? 32 : 128;
  for (int bits : {0, 1, 7, 8, 31, width}) {
    const IpAddress masked = ip->masked(bits);
    check(Cidr(*ip, bits).contains(*ip));
    check(masked.masked(bits) == masked);
  }
}

void fuzz_cidr(std::string_view text) {
  try {
    const Cidr cidr = Cidr::parse(text);
    check(Cidr::parse(cidr.to_string()) == cidr);
    check(cidr.contains(cidr.network()));
  } catch (const std::invalid_argument&) {
  }
}

void fuzz_trusted(std::string_view text) {
  try {
    const auto trusted = TrustedProxies::parse(text);
    check(TrustedProxies::parse(trusted.to_string()).to_string() == trusted.to_string());
  } catch (const std::invalid_argument&) {
  }
}

void fuzz_client(std::string_view text, const ClientIpOptions& options) {
  for (const char* header : {"X-Forwarded-For", "Forwarded", "X-Real-IP"}) {
    SimpleRequest request;
    request.peer_ = "127.0.0.1";
    request.headers_.emplace_back(header, std::string(text));
    request.headers_.emplace_back(header, std::string(text));  // as repeated header lines
    const auto ip = pacer::http::client_ip(request, options);
    check(ip.has_value());  // the peer is valid, so there is always an answer
  }
  // The input as the peer itself: an answer only for a valid peer.
  SimpleRequest request;
  request.peer_ = std::string(text);
  const bool answered = pacer::http::client_ip(request, options).has_value();
  check(answered == IpAddress::parse(text).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz_address(text);
  fuzz_cidr(text);
  fuzz_trusted(text);

  static const ClientIpOptions options = [] {
    ClientIpOptions o;
    o.trusted_proxies = TrustedProxies::parse("loopback, 10.0.0.0/8, 2001:db8::/32");
    o.ipv6_prefix = 64;
    return o;
  }();
  fuzz_client(text, options);
  return 0;
}
