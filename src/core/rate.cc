#include "pacer/rate.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <stdexcept>
#include <string>

#include "core/text.h"

namespace pacer {
namespace {

__extension__ typedef __int128 i128;  // exact intermediate products

constexpr std::int64_t kMaxDurationNs = 100LL * 365 * 24 * 3600 * 1'000'000'000LL;  // 100 years
// Keeps now + 2 * tau far from int64 overflow, and tau in microseconds exact as a Lua double.
constexpr std::int64_t kMaxToleranceNs = std::int64_t{1} << 61;  // about 73 years

struct Unit {
  std::string_view suffix;
  std::int64_t ns;
};
// Longest suffixes first so "ms" is not read as "m".
constexpr std::array<Unit, 7> kUnits{{{"ns", 1},
                                      {"us", 1'000},
                                      {"ms", 1'000'000},
                                      {"s", 1'000'000'000},
                                      {"m", 60'000'000'000},
                                      {"h", 3'600'000'000'000},
                                      {"d", 86'400'000'000'000}}};

[[noreturn]] void fail(std::string_view what, std::string_view value, std::string_view why) {
  throw std::invalid_argument(std::string(what) + " '" + internal::printable(value) +
                              "': " + std::string(why));
}

bool all_digits(std::string_view s) {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

using internal::trim;

Nanos parse_duration(std::string_view text) {
  constexpr std::string_view kWhat = "invalid duration";
  const std::string_view s = trim(text);
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits) {
    if (s.size() > u.suffix.size() && s.ends_with(u.suffix)) {
      unit = &u;
      break;
    }
  }
  if (unit == nullptr)
    fail(kWhat, text, "expected a number followed by ns, us, ms, s, m, h or d (e.g. 500ms, 1.5s)");
  const std::string_view number = s.substr(0, s.size() - unit->suffix.size());
  const auto dot = number.find('.');
  const std::string_view whole = number.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  if (whole.empty() || !all_digits(whole) || (dot != std::string_view::npos && fraction.empty()) ||
      !all_digits(fraction))
    fail(kWhat, text, "the number must be a non-negative decimal such as 10 or 1.5");
  if (fraction.size() > 18) fail(kWhat, text, "more than 18 decimal places");

  std::int64_t whole_value = 0;
  if (std::from_chars(whole.data(), whole.data() + whole.size(), whole_value).ec != std::errc{})
    fail(kWhat, text, "longer than 100 years");
  std::int64_t fraction_value = 0;
  i128 scale = 1;
  if (!fraction.empty()) {
    std::from_chars(fraction.data(), fraction.data() + fraction.size(), fraction_value);
    for (std::size_t i = 0; i < fraction.size(); ++i) scale *= 10;
  }
  const i128 fraction_ns = i128{fraction_value} * unit->ns;
  if (fraction_ns % scale != 0) fail(kWhat, text, "finer than one nanosecond");
  const i128 total = i128{whole_value} * unit->ns + fraction_ns / scale;
  if (total <= 0) fail(kWhat, text, "must be greater than zero");
  if (total > kMaxDurationNs) fail(kWhat, text, "longer than 100 years");
  return Nanos{static_cast<std::int64_t>(total)};
}

std::string format_duration(Nanos duration) {
  const std::int64_t ns = duration.count();
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    if (ns != 0 && ns % it->ns == 0) return std::to_string(ns / it->ns) + std::string(it->suffix);
  }
  return std::to_string(ns) + "ns";
}

Rate::Rate(std::int64_t permits, Nanos period, std::int64_t burst)
    : permits_(permits), period_(period), burst_(burst) {
  if (permits < 1) fail("invalid rate permits", std::to_string(permits), "must be at least 1");
  if (burst < 0) fail("invalid rate burst", std::to_string(burst), "must be 0 or more");
  if (period.count() <= 0)
    fail("invalid rate period", std::to_string(period.count()) + "ns", "must be greater than zero");
  if (period.count() < permits) {
    fail("invalid rate", std::to_string(permits) + "/" + format_duration(period),
         "more than one permit per nanosecond");
  }
  if (period.count() > kMaxDurationNs)
    fail("invalid rate period", format_duration(period), "longer than 100 years");
  // Rounded up: when the period does not divide evenly the limiter errs on the strict side by
  // less than 1 ns per permit rather than ever exceeding the configured rate.
  emission_interval_ = Nanos{(period.count() + permits - 1) / permits};
  const i128 tolerance = (i128{burst} + 1) * emission_interval_.count();
  if (tolerance > kMaxToleranceNs) {
    fail("invalid rate burst", std::to_string(burst),
         "burst+1 emission intervals exceed 73 years for " + std::to_string(permits) + "/" +
             format_duration(period));
  }
  tolerance_ = Nanos{static_cast<std::int64_t>(tolerance)};
  // Division by the invariant T: with l = ceil(log2 T) (at most 62 here),
  // magic = floor(2^64 * (2^l - T) / T) + 1, and n / T = (hi + ((n - hi) >> 1)) >> (l - 1)
  // where hi = (magic * n) >> 64; T = 1 (l = 0) works with both shifts 0 and magic 1.
  const auto t = static_cast<std::uint64_t>(emission_interval_.count());
  const int l = t == 1 ? 0 : 64 - std::countl_zero(t - 1);
  __extension__ using Wide = unsigned __int128;
  const Wide scaled = (Wide{1} << 64) * ((Wide{1} << l) - t);
  interval_magic_ = static_cast<std::uint64_t>(scaled / t) + 1;
  interval_shift1_ = static_cast<std::uint8_t>(l == 0 ? 0 : 1);
  interval_shift2_ = static_cast<std::uint8_t>(l == 0 ? 0 : l - 1);
}

Rate Rate::parse(std::string_view text, std::int64_t burst) {
  const std::string_view s = trim(text);
  const auto slash = s.find('/');
  if (slash == std::string_view::npos)
    fail("invalid rate", text, "expected <permits>/<period>, e.g. 100/1m");
  const std::string_view count = trim(s.substr(0, slash));
  std::string_view period = trim(s.substr(slash + 1));
  std::int64_t permits = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), permits);
  if (count.empty() || ec != std::errc{} || end != count.data() + count.size())
    fail("invalid rate", text, "permits must be a whole number");
  // "100/m" reads as "100/1m".
  std::string with_one;
  if (!period.empty() && (period.front() < '0' || period.front() > '9')) {
    with_one = "1" + std::string(period);
    period = with_one;
  }
  return Rate(permits, parse_duration(period), burst);
}

std::string Rate::to_string() const {
  return std::to_string(permits_) + "/" + format_duration(period_) +
         " (burst=" + std::to_string(burst_) + ")";
}

Policy::Policy(std::string name, std::vector<Rate> rates) {
  if (name.empty() || name.size() > 64)
    fail("invalid policy name", name, "must be 1 to 64 characters");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok)
      fail("invalid policy name", name, "only letters, digits, '_', '-' and '.' are allowed");
  }
  if (rates.empty() || rates.size() > kMaxRates)
    fail("invalid policy", name, "needs 1 to 8 rates, got " + std::to_string(rates.size()));
  Nanos finest = rates.front().emission_interval();
  for (const Rate& rate : rates) finest = std::min(finest, rate.emission_interval());
  // FNV-1a: the digest only separates policy names, it need not resist chosen input (the
  // stores mix it into their own keyed hash).
  std::uint64_t digest = 0xcbf29ce484222325ULL;
  for (char c : name) digest = (digest ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  data_ = std::make_shared<const Data>(Data{std::move(name), std::move(rates)});
  rates_ = data_->rates;
  finest_interval_ = finest;
  name_digest_ = digest;
}

}  // namespace pacer
