// src/core/text.h: the small parsers every configuration and reply parser shares.
#include "core/text.h"

#include <gtest/gtest.h>

namespace pacer::internal {
namespace {

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
