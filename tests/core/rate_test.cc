// Unit tests of pacer/rate.h: durations, Rate and Policy validation, GCRA parameters.
//
// Expected values are derived by hand from DESIGN.md section 2 and 3 (T = period / permits,
// rounded up; tau = (burst + 1) * T), never copied from the implementation's output.
#include "pacer/rate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/text.h"

namespace pacer {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

constexpr std::int64_t kNsPerSecond = 1'000'000'000;
constexpr std::int64_t kNsPerDay = 86'400 * kNsPerSecond;

// Runs `f`, which must throw std::invalid_argument, and returns the message so the caller can
// check that it names the bad value. Any other exception escapes and fails the test.
template <typename F>
std::string InvalidArgumentMessage(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected std::invalid_argument, nothing was thrown";
  return "";
}

// The bad value is checked in quotes so that a short value such as "1" or "" cannot be matched
// by accident somewhere else in the message.
// Errors quote the value made printable (control and non-ASCII bytes as \xNN, at most 80 bytes).
std::string Quoted(std::string_view value) { return "'" + internal::printable(value) + "'"; }

// ---------------------------------------------------------------------------------------------
// parse_duration

TEST(PrintableTest, EscapesAndTruncatesForLogs) {
  EXPECT_EQ(internal::printable("tab\t"), "tab\\x09");
  EXPECT_EQ(internal::printable("caf\xc3\xa9"), "caf\\xc3\\xa9");
  EXPECT_EQ(internal::printable(std::string(100, 'a')), std::string(80, 'a') + "...");
}

TEST(ParseDurationTest, AcceptsEveryDocumentedUnit) {
  EXPECT_EQ(parse_duration("500ms"), Nanos{500'000'000});
  EXPECT_EQ(parse_duration("1s"), Nanos{1'000'000'000});
  EXPECT_EQ(parse_duration("10s"), Nanos{10'000'000'000});
  EXPECT_EQ(parse_duration("1m"), Nanos{60'000'000'000});
  EXPECT_EQ(parse_duration("5m"), Nanos{300'000'000'000});
  EXPECT_EQ(parse_duration("1h"), Nanos{3'600'000'000'000});
  EXPECT_EQ(parse_duration("1d"), Nanos{86'400'000'000'000});
  EXPECT_EQ(parse_duration("250us"), Nanos{250'000});
  EXPECT_EQ(parse_duration("100ns"), Nanos{100});
}

TEST(ParseDurationTest, AcceptsExactDecimalFractions) {
  EXPECT_EQ(parse_duration("1.5s"), Nanos{1'500'000'000});
  EXPECT_EQ(parse_duration("0.5s"), Nanos{500'000'000});
  EXPECT_EQ(parse_duration("1.5m"), Nanos{90'000'000'000});
  EXPECT_EQ(parse_duration("0.25h"), Nanos{900'000'000'000});
  EXPECT_EQ(parse_duration("2.5ms"), Nanos{2'500'000});
  // Nine fractional digits of a second are exactly one nanosecond: still representable.
  EXPECT_EQ(parse_duration("1.000000001s"), Nanos{1'000'000'001});
  // Trailing zeros add digits but no precision.
  EXPECT_EQ(parse_duration("1.5000000000s"), Nanos{1'500'000'000});
}

TEST(ParseDurationTest, TrimsSurroundingWhitespace) {
  // Config files often carry stray blanks around values; the parser trims them.
  EXPECT_EQ(parse_duration(" 1s"), Nanos{1'000'000'000});
  EXPECT_EQ(parse_duration("1s "), Nanos{1'000'000'000});
  EXPECT_EQ(parse_duration("\t500ms\t"), Nanos{500'000'000});
}

TEST(ParseDurationTest, AcceptsUpToOneHundredYears) {
  // 100 years of 365 days is the documented ceiling.
  EXPECT_EQ(parse_duration("36500d"), Nanos{36'500 * kNsPerDay});
  EXPECT_EQ(parse_duration("876000h"), Nanos{36'500 * kNsPerDay});
}

TEST(ParseDurationTest, AcceptsLongDigitStringsWithinTheLimit) {
  // 1e18 ns is about 31.7 years, well below the 100-year ceiling. It has 19 digits, which is
  // how format_duration prints such a period, so it must be readable back.
  EXPECT_EQ(parse_duration("1000000000000000000ns"), Nanos{1'000'000'000'000'000'000});
  EXPECT_EQ(parse_duration("3153600000000000000ns"), Nanos{36'500 * kNsPerDay});
}

TEST(ParseDurationTest, RejectsMalformedValuesNamingThem) {
  for (const char* bad : {"", "s", "1", "1x", "-1s", "1.s", ".5s", "1e3s", "1 s", "+1s", "1S", "ms",
                          "1sm", "1..5s", "1.5.5s", "1,5s", "0x10s", "one second"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(InvalidArgumentMessage([&] { parse_duration(bad); }), HasSubstr(Quoted(bad)));
  }
}

TEST(ParseDurationTest, RejectsZeroNamingIt) {
  // A zero period would make the emission interval zero (DESIGN.md: "a zero emission interval
  // is a bug").
  for (const char* bad : {"0s", "0.0s", "0ms", "0d", "0.000000000s"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(InvalidArgumentMessage([&] { parse_duration(bad); }), HasSubstr(Quoted(bad)));
  }
}

TEST(ParseDurationTest, RejectsPrecisionFinerThanOneNanosecond) {
  // Time is integer nanoseconds; silently rounding would change the configured rate.
  for (const char* bad : {"1.0000000001s", "1.5ns", "0.0001us", "0.5ns"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(InvalidArgumentMessage([&] { parse_duration(bad); }), HasSubstr(Quoted(bad)));
  }
}

TEST(ParseDurationTest, RejectsDurationsThatAreTooLong) {
  // 999999999999 days is about 8.6e25 ns: far beyond int64, must be rejected, not wrapped.
  for (const char* bad :
       {"999999999999d", "36501d", "9999999999999999999s", "99999999999999999999999999ns"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(InvalidArgumentMessage([&] { parse_duration(bad); }), HasSubstr(Quoted(bad)));
  }
}

// ---------------------------------------------------------------------------------------------
// format_duration

TEST(FormatDurationTest, ChoosesTheLargestExactUnit) {
  EXPECT_EQ(format_duration(500ms), "500ms");
  EXPECT_EQ(format_duration(1s), "1s");
  EXPECT_EQ(format_duration(10s), "10s");
  EXPECT_EQ(format_duration(60s), "1m");
  EXPECT_EQ(format_duration(90s), "90s");
  EXPECT_EQ(format_duration(5min), "5m");
  EXPECT_EQ(format_duration(1h), "1h");
  EXPECT_EQ(format_duration(36h), "36h");
  EXPECT_EQ(format_duration(48h), "2d");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(250us), "250us");
  EXPECT_EQ(format_duration(1000ns), "1us");
  EXPECT_EQ(format_duration(1001ns), "1001ns");
  EXPECT_EQ(format_duration(1ns), "1ns");
}

TEST(FormatDurationTest, ZeroIsFormattedInNanoseconds) {
  // Zero divides by every unit; "0ns" is the only unambiguous spelling.
  EXPECT_EQ(format_duration(Nanos{0}), "0ns");
}

// Whatever format_duration prints, parse_duration must read back to the same value, so that
// rates survive a round trip through configuration and headers.
RC_GTEST_PROP(FormatDurationProperty, RoundTripsThroughParseDuration, ()) {
  const auto ns = *rc::gen::oneOf(rc::gen::inRange<std::int64_t>(1, 10'000'000),
                                  rc::gen::map(rc::gen::inRange<std::int64_t>(1, 100'000),
                                               [](std::int64_t n) { return n * 1'000'000; }),
                                  rc::gen::map(rc::gen::inRange<std::int64_t>(1, 36'500),
                                               [](std::int64_t n) { return n * kNsPerDay; }),
                                  rc::gen::inRange<std::int64_t>(1, 36'500 * kNsPerDay + 1));
  RC_ASSERT(parse_duration(format_duration(Nanos{ns})) == Nanos{ns});
}

// ---------------------------------------------------------------------------------------------
// Rate construction

TEST(RateTest, KeepsItsParameters) {
  const Rate rate(100, 1min, 10);
  EXPECT_EQ(rate.permits(), 100);
  EXPECT_EQ(rate.period(), Nanos{60'000'000'000});
  EXPECT_EQ(rate.burst(), 10);
}

TEST(RateTest, BurstDefaultsToZero) { EXPECT_EQ(Rate(5, 1s).burst(), 0); }

TEST(RateTest, RejectsPermitsBelowOneNamingThem) {
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(0, 1s); }), HasSubstr(Quoted("0")));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(-1, 1s); }), HasSubstr(Quoted("-1")));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(-12345, 1s); }), HasSubstr("-12345"));
}

TEST(RateTest, RejectsNegativeBurstNamingIt) {
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(10, 1s, -1); }), HasSubstr(Quoted("-1")));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(10, 1s, -777); }), HasSubstr("-777"));
}

TEST(RateTest, RejectsNonPositivePeriodNamingIt) {
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(10, Nanos{0}); }), HasSubstr("0"));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(10, Nanos{-5}); }), HasSubstr("-5"));
}

TEST(RateTest, RejectsMoreThanOnePermitPerNanosecond) {
  // T would round to 0 ns or be rounded up to 1 ns and silently halve the rate; both are bugs.
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(2, Nanos{1}); }), HasSubstr("2"));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(1'000'000'001, 1s); }), HasSubstr("1000000001"));
  // Exactly one permit per nanosecond is the finest representable rate.
  EXPECT_EQ(Rate(1'000'000'000, 1s).emission_interval(), Nanos{1});
  EXPECT_EQ(Rate(1, Nanos{1}).emission_interval(), Nanos{1});
}

TEST(RateTest, RejectsBurstWhoseToleranceWouldOverflow) {
  // tau = (burst + 1) * T = 1e12 * 1e9 = 1e21 ns: does not fit in int64.
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(1, 1s, 999'999'999'999); }),
              HasSubstr("999999999999"));
  // tau = 100001 days = 8.64e18 ns fits in int64, but now + tau does not for any realistic
  // now, so it must be rejected as well.
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(1, 24h, 100'000); }), HasSubstr("100000"));
  EXPECT_THAT(
      InvalidArgumentMessage([] { Rate(1, 1s, std::numeric_limits<std::int64_t>::max() / 2); }),
      HasSubstr(std::to_string(std::numeric_limits<std::int64_t>::max() / 2)));
}

TEST(RateTest, RejectsMaximalBurstWithoutOverflowingWhileValidating) {
  // burst + 1 itself overflows int64 here; validation must reject the value instead of
  // wrapping it to a negative tolerance (DESIGN.md: a value that would overflow is rejected).
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  EXPECT_THAT(InvalidArgumentMessage([] { Rate(1, 1s, kMax); }), HasSubstr(std::to_string(kMax)));
}

TEST(RateTest, RejectsPeriodWhoseRoundingWouldOverflow) {
  // Rounding T up as (period + permits - 1) / permits overflows for a period near int64 max;
  // such a period is far beyond the 100-year limit of parse_duration and must be rejected,
  // never turned into a negative emission interval.
  EXPECT_THROW(Rate(2, Nanos::max()), std::invalid_argument);
  EXPECT_THROW(Rate(1, Nanos::max()), std::invalid_argument);
}

TEST(RateTest, AcceptsLargeButSafeBurst) {
  // tau = 1001 days is about 8.6e16 ns: comfortably representable.
  const Rate rate(1, 24h, 1000);
  EXPECT_EQ(rate.tolerance(), Nanos{1001 * kNsPerDay});
}

// ---------------------------------------------------------------------------------------------
// Emission interval and tolerance

TEST(RateTest, EmissionIntervalIsExactWhenPeriodDividesEvenly) {
  EXPECT_EQ(Rate(10, 1min).emission_interval(), Nanos{6'000'000'000});
  EXPECT_EQ(Rate(100, 1min).emission_interval(), Nanos{600'000'000});
  // DESIGN.md: 100k/s must still work with no precision lost: 1e9 / 1e5 = 10000 ns.
  EXPECT_EQ(Rate(100'000, 1s).emission_interval(), Nanos{10'000});
  // One per day: 86400 * 1e9 ns.
  EXPECT_EQ(Rate(1, 24h).emission_interval(), Nanos{86'400'000'000'000});
  EXPECT_EQ(Rate(1000, 1ms).emission_interval(), Nanos{1'000});
}

TEST(RateTest, EmissionIntervalIsRoundedUpWhenPeriodDoesNotDivide) {
  // 1e9 / 3 = 333333333.33...: rounding up keeps the limiter at or below 3 per second.
  EXPECT_EQ(Rate(3, 1s).emission_interval(), Nanos{333'333'334});
  // 6e10 / 7 = 8571428571.43 -> 8571428572.
  EXPECT_EQ(Rate(7, 1min).emission_interval(), Nanos{8'571'428'572});
  // 1e9 / 999999999 = 1.000000001 -> 2: rounding up always, not to nearest.
  EXPECT_EQ(Rate(999'999'999, 1s).emission_interval(), Nanos{2});
}

TEST(RateTest, ToleranceIsBurstPlusOneEmissionIntervals) {
  EXPECT_EQ(Rate(10, 1min, 5).tolerance(), Nanos{36'000'000'000});
  EXPECT_EQ(Rate(10, 1min).tolerance(), Nanos{6'000'000'000});
  EXPECT_EQ(Rate(100'000, 1s, 0).tolerance(), Nanos{10'000});
  EXPECT_EQ(Rate(1, 24h).tolerance(), Nanos{86'400'000'000'000});
  // Built from the rounded-up T: 3 * 333333334.
  EXPECT_EQ(Rate(3, 1s, 2).tolerance(), Nanos{1'000'000'002});
}

// ---------------------------------------------------------------------------------------------
// Rate::parse and to_string

TEST(RateParseTest, ReadsPermitsAndPeriod) {
  const Rate rate = Rate::parse("100/1m");
  EXPECT_EQ(rate.permits(), 100);
  EXPECT_EQ(rate.period(), Nanos{60'000'000'000});
  EXPECT_EQ(rate.burst(), 0);
  EXPECT_EQ(rate, Rate(100, 1min));
}

TEST(RateParseTest, TakesBurstSeparately) {
  EXPECT_EQ(Rate::parse("100/1m", 10), Rate(100, 1min, 10));
}

TEST(RateParseTest, PeriodWithoutNumberMeansOneUnit) {
  EXPECT_EQ(Rate::parse("100/m"), Rate(100, 1min));
  EXPECT_EQ(Rate::parse("5/s"), Rate(5, 1s));
  EXPECT_EQ(Rate::parse("1/d"), Rate(1, 24h));
  EXPECT_EQ(Rate::parse("10/ms"), Rate(10, 1ms));
}

TEST(RateParseTest, AllowsBlanksAroundTheSlash) {
  EXPECT_EQ(Rate::parse("10 / 1s"), Rate(10, 1s));
  EXPECT_EQ(Rate::parse(" 10/1s "), Rate(10, 1s));
}

TEST(RateParseTest, AcceptsFractionalPeriods) { EXPECT_EQ(Rate::parse("3/1.5s"), Rate(3, 1500ms)); }

TEST(RateParseTest, RejectsMalformedRatesNamingThem) {
  for (const char* bad : {"100", "/1m", "x/1m", "1x/1m", "ten/1s", "", "1.5/1s", "100 per 1m"}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(InvalidArgumentMessage([&] { Rate::parse(bad); }), HasSubstr(Quoted(bad)));
  }
}

TEST(RateParseTest, RejectsMissingPeriod) {
  // The message names the empty period. (A message naming the whole "100/" would be friendlier,
  // but the empty value is the one that is wrong.)
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("100/"); }), HasSubstr("''"));
}

TEST(RateParseTest, RejectsInvalidPartsNamingThem) {
  // A second slash leaves "1s/2" as the period, which is not a duration.
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("10/1s/2"); }), HasSubstr("1s/2"));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("0/1m"); }), HasSubstr(Quoted("0")));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("-5/1m"); }), HasSubstr("-5"));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("10/0s"); }), HasSubstr(Quoted("0s")));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("10/1x"); }), HasSubstr("1x"));
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("10/1m", -1); }), HasSubstr(Quoted("-1")));
  // Permits beyond int64 must be rejected rather than wrapped.
  EXPECT_THAT(InvalidArgumentMessage([] { Rate::parse("99999999999999999999/1s"); }),
              HasSubstr("99999999999999999999"));
}

TEST(RateToStringTest, PrintsPermitsPeriodAndBurst) {
  EXPECT_EQ(Rate::parse("100/1m", 10).to_string(), "100/1m (burst=10)");
  EXPECT_EQ(Rate(3, 1s).to_string(), "3/1s (burst=0)");
  EXPECT_EQ(Rate(1, 90s, 2).to_string(), "1/90s (burst=2)");
  EXPECT_EQ(Rate(100'000, 1s, 1).to_string(), "100000/1s (burst=1)");
  EXPECT_EQ(Rate(1, 24h).to_string(), "1/1d (burst=0)");
}

// ---------------------------------------------------------------------------------------------
// Policy

std::vector<Rate> NRates(std::size_t n) {
  std::vector<Rate> rates;
  for (std::size_t i = 0; i < n; ++i) rates.emplace_back(static_cast<std::int64_t>(i + 1), 1s);
  return rates;
}

TEST(PolicyTest, KeepsNameAndRatesInOrder) {
  const Policy policy("api", {Rate(10, 1s), Rate(100, 1min, 5)});
  EXPECT_EQ(policy.name(), "api");
  ASSERT_EQ(policy.rates().size(), 2u);
  EXPECT_EQ(policy.rates()[0], Rate(10, 1s));
  EXPECT_EQ(policy.rates()[1], Rate(100, 1min, 5));
}

TEST(PolicyTest, AcceptsNamesOfLettersDigitsAndPunctuation) {
  EXPECT_NO_THROW(Policy("a", NRates(1)));
  EXPECT_NO_THROW(Policy("Api_v2.read-only", NRates(1)));
  EXPECT_NO_THROW(Policy(std::string(64, 'x'), NRates(1)));
}

TEST(PolicyTest, RejectsBadNamesNamingThem) {
  // The name becomes part of the storage key "<prefix>:{<policy>:...}", so braces, colons and
  // blanks would break key parsing and Redis Cluster hash tags.
  for (const std::string& bad :
       {std::string("a b"), std::string("a:b"), std::string("a{b}"), std::string("a/b"),
        std::string("caf\xc3\xa9"), std::string("tab\t"), std::string(65, 'x')}) {
    SCOPED_TRACE(bad);
    EXPECT_THAT(InvalidArgumentMessage([&] { Policy(bad, NRates(1)); }), HasSubstr(Quoted(bad)));
  }
  EXPECT_THAT(InvalidArgumentMessage([] { Policy("", NRates(1)); }), HasSubstr("''"));
}

TEST(PolicyTest, RejectsNoRates) {
  const std::string message = InvalidArgumentMessage([] { Policy("api", {}); });
  EXPECT_THAT(message, HasSubstr("api"));
  EXPECT_THAT(message, HasSubstr("0"));
}

TEST(PolicyTest, AcceptsUpToEightRates) {
  const Policy policy("api", NRates(8));
  EXPECT_EQ(policy.rates().size(), 8u);
  EXPECT_EQ(Policy::kMaxRates, 8u);
}

TEST(PolicyTest, RejectsNineRates) {
  const std::string message = InvalidArgumentMessage([] { Policy("api", NRates(9)); });
  EXPECT_THAT(message, HasSubstr("api"));
  EXPECT_THAT(message, HasSubstr("9"));
}

// intervals_in replaces a divide by a multiply and shifts; it must agree with the divide for
// every emission interval a Rate can have and every span the GCRA step can ask about.
TEST(RateIntervalsIn, AgreesWithDivisionAtTheEdges) {
  const std::int64_t intervals[] = {1,
                                    2,
                                    3,
                                    7,
                                    1'000,
                                    1'000'000'007,
                                    (std::int64_t{1} << 32) - 1,
                                    std::int64_t{1} << 32,
                                    (std::int64_t{1} << 60) + 1,
                                    std::int64_t{1} << 61};  // the longest tolerance
  for (const std::int64_t t : intervals) {
    const Rate rate(1, std::chrono::nanoseconds(t));
    ASSERT_EQ(rate.emission_interval().count(), t);
    for (const std::int64_t n : {std::int64_t{0}, std::int64_t{1}, t - 1, t, t + 1, 2 * t - 1,
                                 INT64_MAX / 2, INT64_MAX - 1, INT64_MAX}) {
      if (n < 0) continue;
      EXPECT_EQ(rate.intervals_in(std::chrono::nanoseconds(n)), n / t) << n << " / " << t;
    }
  }
}

RC_GTEST_PROP(RateIntervalsInProperty, AgreesWithDivision, ()) {
  const auto permits = *rc::gen::inRange<std::int64_t>(1, 1'000'000);
  const auto period =
      *rc::gen::oneOf(rc::gen::inRange<std::int64_t>(permits, 1'000'000'000),
                      rc::gen::inRange<std::int64_t>(permits, std::int64_t{1} << 61));
  const Rate rate(permits, std::chrono::nanoseconds(period));
  const std::int64_t t = rate.emission_interval().count();
  const auto n = *rc::gen::oneOf(rc::gen::inRange<std::int64_t>(0, 4 * t),
                                 rc::gen::inRange<std::int64_t>(0, INT64_MAX));
  RC_ASSERT(rate.intervals_in(std::chrono::nanoseconds(n)) == n / t);
}

}  // namespace
}  // namespace pacer
