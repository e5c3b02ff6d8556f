// SipHash (Aumasson & Bernstein), keyed 64-bit hash. Internal to the stores: a per-process
// random key makes slot placement and fingerprints unpredictable to clients who choose keys.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace pacer::internal {

// Inlined into its one caller on the hot path, where its rounds overlap with the work around.
template <int CompressionRounds, int FinalizationRounds>
[[gnu::always_inline]] inline std::uint64_t siphash(std::uint64_t k0, std::uint64_t k1,
                                                    std::string_view data) {
  std::uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
  std::uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
  std::uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
  std::uint64_t v3 = k1 ^ 0x7465646279746573ULL;
  // The lambdas are inlined too: with two callers (check and peek) GCC otherwise calls `round`.
  auto rotl = [](std::uint64_t x, int b) __attribute__((always_inline)) {
    return (x << b) | (x >> (64 - b));
  };
  auto round = [&]() __attribute__((always_inline)) {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  };
  const char* p = data.data();
  const std::size_t len = data.size();
  const char* end = p + (len & ~std::size_t{7});
  for (; p != end; p += 8) {
    std::uint64_t m;
    std::memcpy(&m, p, 8);  // little-endian hosts only (x86-64, aarch64)
    v3 ^= m;
    for (int i = 0; i < CompressionRounds; ++i) round();
    v0 ^= m;
  }
  std::uint64_t b = static_cast<std::uint64_t>(len) << 56;
  for (std::size_t i = 0; i < (len & 7); ++i)
    b |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  v3 ^= b;
  for (int i = 0; i < CompressionRounds; ++i) round();
  v0 ^= b;
  v2 ^= 0xff;
  for (int i = 0; i < FinalizationRounds; ++i) round();
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace pacer::internal
