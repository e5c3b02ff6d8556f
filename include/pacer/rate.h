// pacer/rate.h — what a limit is: Rate (permits per period plus burst) and Policy (1..8 rates).
//
// Both are immutable values validated at construction; invalid input throws
// std::invalid_argument naming the bad value. Durations are integer nanoseconds.
//
//   auto policy = pacer::Policy("api", {pacer::Rate::parse("100/1m", 10),
//                                       pacer::Rate(1000, std::chrono::hours(1))});
//
// GCRA view of a rate (see docs/ALGORITHM.md):
//   emission_interval T = period / permits (rounded up to whole nanoseconds, so the limiter
//                                           never admits more than the configured rate)
//   tolerance       tau = (burst + 1) * T
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pacer {

using Nanos = std::chrono::nanoseconds;

// Parses "500ms", "1s", "1.5s", "10s", "1m", "5m", "1h", "1d" (also "us" and "ns").
// Throws std::invalid_argument naming the value when it is malformed, zero, negative or too
// large (anything above 100 years).
Nanos parse_duration(std::string_view text);

// Formats a duration the way parse_duration reads it, choosing the largest exact unit ("1m").
std::string format_duration(Nanos duration);

class Rate {
 public:
  // Throws std::invalid_argument when permits < 1, burst < 0, period <= 0, the emission
  // interval would be below 1 ns, or the tolerance would overflow.
  Rate(std::int64_t permits, Nanos period, std::int64_t burst = 0);

  // "100/1m" or "100/m"; burst given separately.
  static Rate parse(std::string_view text, std::int64_t burst = 0);

  std::int64_t permits() const { return permits_; }
  Nanos period() const { return period_; }
  std::int64_t burst() const { return burst_; }
  Nanos emission_interval() const { return emission_interval_; }
  Nanos tolerance() const { return tolerance_; }

  // floor(span / emission_interval()) for span >= 0, by a multiply and two shifts instead of a
  // divide (Granlund & Montgomery's method for invariant divisors): the GCRA step needs it on
  // every decision, and a 64-bit divide was half of the step's time.
  std::int64_t intervals_in(Nanos span) const {
    __extension__ using Wide = unsigned __int128;
    const auto n = static_cast<std::uint64_t>(span.count());
    const auto high = static_cast<std::uint64_t>((Wide{interval_magic_} * n) >> 64);
    return static_cast<std::int64_t>((high + ((n - high) >> interval_shift1_)) >> interval_shift2_);
  }

  // "100/1m (burst=10)"
  std::string to_string() const;

  friend bool operator==(const Rate&, const Rate&) = default;

 private:
  std::int64_t permits_;
  Nanos period_;
  std::int64_t burst_;
  Nanos emission_interval_;
  Nanos tolerance_;
  // Derived from emission_interval_ for intervals_in().
  std::uint64_t interval_magic_;
  std::uint8_t interval_shift1_;
  std::uint8_t interval_shift2_;
};

class Policy {
 public:
  static constexpr std::size_t kMaxRates = 8;

  // Throws std::invalid_argument when the name is empty, longer than 64 bytes or contains
  // anything but [A-Za-z0-9_.-], or when there are 0 or more than kMaxRates rates.
  Policy(std::string name, std::vector<Rate> rates);

  const std::string& name() const { return data_->name; }
  std::span<const Rate> rates() const { return rates_; }
  // The shortest emission interval of its rates: what a store's clock must resolve.
  Nanos finest_interval() const { return finest_interval_; }
  // A 64-bit digest of the name. Stores keep one state per (policy name, key), so two
  // policies that meet on one key never share or clobber each other's state.
  std::uint64_t name_digest() const { return name_digest_; }

  friend bool operator==(const Policy& a, const Policy& b) {
    return a.data_ == b.data_ || (a.name() == b.name() && a.data_->rates == b.data_->rates);
  }

 private:
  // Immutable and shared: copying a Policy (as an asynchronous check does, so the policy
  // outlives the call that started it) costs one reference count, not an allocation.
  struct Data {
    std::string name;
    std::vector<Rate> rates;
  };
  std::shared_ptr<const Data> data_;
  // Read on every decision: kept beside the pointer, not behind it.
  std::span<const Rate> rates_;  // data_->rates
  Nanos finest_interval_;
  std::uint64_t name_digest_;
};

}  // namespace pacer
