// src/core/text.h: the small parsers every configuration and reply parser shares.
#include "core/text.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>

namespace pacer::internal {
namespace {

// The byte-at-a-time definition iequals must agree with.
bool iequals_reference(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

TEST(TextTest, IequalsIgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("X-Forwarded-For", "x-forwarded-for"));
  EXPECT_TRUE(iequals("CF-Connecting-IP", "cf-connecting-ip"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("X-Forwarded-For", "X-Forwarded-Fo"));
  EXPECT_FALSE(iequals("X-Forwarded-For", "X-Forwarded-Fox"));
  // Neighbours of the letters differ by 0x20 too, and are not letters: '@' '`', '[' '{'.
  EXPECT_FALSE(iequals("abcdefgh@", "abcdefgh`"));
  EXPECT_FALSE(iequals("[abcdefgh", "{abcdefgh"));
  // Bytes above 0x7f that differ by 0x20 (Latin-1 capitals and small letters) are not ASCII.
  EXPECT_FALSE(iequals(std::string(1, '\xc1') + "bcdefgh", std::string(1, '\xe1') + "bcdefgh"));
  EXPECT_FALSE(iequals("\xc1", "\xe1"));
}

// Random pairs of the same length over the bytes that matter: letters of both cases, their
// neighbours '@' '`' '[' '{', digits, '-', and non-ASCII bytes 0x20 apart. The second string is
// the first in another case; in half the pairs one byte is then changed by 0x20, which keeps
// them equal only when that byte is an ASCII letter. Half the strings are shorter than the
// 8-byte words the comparison reads.
RC_GTEST_PROP(TextTest, IequalsAgreesWithTheByteAtATimeDefinition, ()) {
  const auto byte = rc::gen::element<char>('a', 'z', 'A', 'Z', 'm', 'M', '@', '`', '[', '{', '0',
                                           '-', '\xc1', '\xe1', '\x80', '\xff');
  const auto length =
      *rc::gen::oneOf(rc::gen::inRange<std::size_t>(0, 8), rc::gen::inRange<std::size_t>(8, 41));
  const auto a = *rc::gen::container<std::string>(length, byte);
  std::string b = a;
  for (char& c : b) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter && *rc::gen::arbitrary<bool>()) c = static_cast<char>(c ^ 0x20);
  }
  if (!b.empty() && *rc::gen::arbitrary<bool>()) {
    char& c = b[*rc::gen::inRange<std::size_t>(0, b.size())];
    c = static_cast<char>(c ^ 0x20);
  }
  RC_ASSERT(iequals(a, b) == iequals_reference(a, b));
  RC_ASSERT(iequals(b, a) == iequals(a, b));
}

TEST(TextTest, PortsAreDecimalDigitsInRange) {
  EXPECT_EQ(parse_port("6379"), 6379);
  EXPECT_EQ(parse_port("1"), 1);
  EXPECT_EQ(parse_port("65535"), 65535);
  EXPECT_EQ(parse_port("00080"), 80);
  for (const char* bad : {"", "0", "65536", "99999", "100000", "-1", "+80", " 80", "80 ", "8o",
                          "0x50", "4294967297", "18446744073709551617"})
    EXPECT_FALSE(parse_port(bad).has_value()) << bad;
  // A listener may ask for any free port.
  EXPECT_EQ(parse_port("0", /*allow_zero=*/true), 0);
  EXPECT_FALSE(parse_port("", /*allow_zero=*/true).has_value());
}

TEST(TextTest, PrintableQuotesAnythingSafely) {
  EXPECT_EQ(printable("abc"), "abc");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable(std::string(200, 'x')).size() <= 100, true);
}

}  // namespace
}  // namespace pacer::internal
