// The Redis GCRA script (src/redis/script.h) against a real redis-server, compared with the C++
// gcra_step: the shared table of cases (tests/support/gcra_cases.h) and random rates, costs,
// stored TATs and times (RapidCheck). Every field of the decision, the raw reply, the stored
// TATs and the key's TTL are checked.
//
// The script reads Redis TIME. To run it at a chosen instant, the test runs a copy of the
// script's text in which the one `redis.call('TIME')` is replaced by two extra ARGV values that
// the wrapper takes off again before the script sees ARGV; production sends the script
// unchanged (its SHA-1 is of the text in script.cc). The wrapper also records the PX argument
// of the script's SET (through a local `redis` that passes every call on), returns the stored
// value and PTTL from inside the same script, and then PERSISTs the key so that the real clock
// cannot expire state that the test's clock still needs.
#include "script.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../support/gcra_cases.h"
#include "pacer/gcra.h"
#include "pacer/redis/client.h"
#include "redis_server.h"
#include "replies.h"
#include "script_harness.h"

namespace pacer::redis::internal {
namespace {

using namespace script_harness;

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test_replies::array;
using test_replies::integer;
using testing::RedisServer;

constexpr std::int64_t kMicro = 1'000;

#define SKIP_WITHOUT_REDIS() \
  if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed"

// The reply script.h promises for a step from `tats_before_us` (nullopt: no key) at `now_us`:
// max(tat - now, 0) per rate, written here as -1 - x when a write was asked and denied.
std::vector<std::int64_t> expected_reply(const std::optional<std::vector<std::int64_t>>& before_us,
                                         std::size_t n, std::int64_t now_us, bool denied) {
  std::vector<std::int64_t> out(n, 0);
  for (std::size_t i = 0; i < n && before_us; ++i)
    out[i] = std::max<std::int64_t>((*before_us)[i] - now_us, 0);
  if (denied)
    for (auto& x : out) x = -1 - x;
  return out;
}

// The script's reply in the same form, read from the wire format of script.h (one rate: an
// integer; several: the integer 0 when every offset is 0 and admitted, else 8 bytes per rate,
// '-' first when denied). Anything else comes back empty.
std::vector<std::int64_t> reply_integers(const Reply& reply, std::size_t n) {
  if (n == 1)
    return reply.type == Reply::Type::kInteger ? std::vector{reply.integer}
                                               : std::vector<std::int64_t>{};
  if (reply.type == Reply::Type::kInteger)
    return reply.integer == 0 ? std::vector<std::int64_t>(n, 0) : std::vector<std::int64_t>{};
  std::string packed = reply.str;
  const bool denied = !packed.empty() && packed[0] == '-';
  if (denied) packed.erase(0, 1);
  if (reply.type != Reply::Type::kString || packed.size() != 8 * n) return {};
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    double x = 0;
    std::memcpy(&x, packed.data() + 8 * i, 8);
    out.push_back(denied ? -1 - static_cast<std::int64_t>(x) : static_cast<std::int64_t>(x));
  }
  // A fresh or idle key that is admitted is answered with the integer 0, not a string.
  if (!denied && std::all_of(out.begin(), out.end(), [](std::int64_t x) { return x == 0; }))
    return {};
  return out;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------------
// The shared table: every case, with the state stored in the script's format and in the
// earlier decimal one.

TEST(GcraScript, AgreesWithTheTableOfCases) {
  SKIP_WITHOUT_REDIS();
  ScriptHarness redis;
  const std::int64_t now_us = pacer::testing::kGcraCaseNow / kMicro;
  int index = 0;
  for (const auto& c : pacer::testing::gcra_cases()) {
    for (const Format format : {Format::kBinary, Format::kDecimal}) {
      SCOPED_TRACE(c.name + (format == Format::kBinary ? " (binary)" : " (decimal)"));
      std::vector<Rate> rates;
      for (const auto& r : c.rates) rates.push_back(r.rate());
      const std::string key = "case:{" + std::to_string(index++) + "}";
      std::optional<std::vector<std::int64_t>> before;
      if (c.tats) {
        before.emplace();
        for (const std::int64_t off : *c.tats) before->push_back(now_us + off / kMicro);
      }
      redis.store(key, before, format);

      const ScriptCall call(rates, c.cost);
      const StepResult result = redis.step(key, call, now_us);
      const auto decision = call.decode(result.reply);
      ASSERT_TRUE(decision) << describe(result.reply);
      EXPECT_EQ(to_string(decision->outcome), to_string(c.outcome));
      EXPECT_EQ(decision->remaining, c.remaining);
      EXPECT_EQ(decision->retry_after.count(), c.retry_after_ns);
      EXPECT_EQ(decision->reset_after.count(), c.reset_after_ns);
      EXPECT_EQ(decision->rate_index, c.rate_index);
      EXPECT_EQ(decision->limit, c.rates.at(c.rate_index).permits);
      EXPECT_EQ(reply_integers(result.reply, rates.size()),
                expected_reply(before, rates.size(), now_us,
                               call.writes() && c.outcome == Outcome::kDenied));

      const bool written = c.outcome == Outcome::kAllowed && c.cost > 0;
      if (!written) {
        // Nothing written: the value is what the test stored, without a TTL.
        EXPECT_EQ(result.value,
                  before ? std::optional(encode_tats(*before, format)) : std::nullopt);
        EXPECT_EQ(result.px, std::nullopt);
        EXPECT_EQ(result.pttl, before ? -1 : -2);
        continue;
      }
      ASSERT_TRUE(c.tats_after);
      ASSERT_TRUE(result.value);
      std::vector<std::int64_t> after;
      std::int64_t longest = 0;
      for (const std::int64_t off : *c.tats_after) {
        after.push_back(now_us + off / kMicro);
        longest = std::max(longest, off / kMicro);
      }
      EXPECT_EQ(decode_tats(*result.value, rates.size()), after);
      // PX = ceil((max TAT - now) / 1 ms).
      EXPECT_EQ(result.px, std::to_string(ceil_div(longest, 1000)));
      EXPECT_GE(result.pttl, 0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Random rates (1-3), stored TATs, times and costs: the script and gcra_step agree on every
// field, on the reply and on the stored TATs, over sequences of steps.

struct RandomRate {
  Rate rate;
  std::int64_t t_us;
  std::int64_t tau_us;
};

// T in whole microseconds: tiny, usual, up to a day, and huge (about 47 years); permits 1..1000
// (1 for the huge ones); burst 0..50, sometimes large, within the tolerance cap.
RandomRate GenRandomRate() {
  const auto t_us = *rc::gen::weightedOneOf<std::int64_t>({
      {3, rc::gen::element<std::int64_t>(1, 7, 1'000, 1'000'000, 60'000'000, 86'400'000'000)},
      {3, rc::gen::inRange<std::int64_t>(1, 1'000'000'000)},
      {1, rc::gen::just<std::int64_t>(1'500'000'000'000'000)},
  });
  const auto permits = t_us > 1'000'000'000'000 ? 1 : *rc::gen::inRange<std::int64_t>(1, 1001);
  auto burst = *rc::gen::weightedOneOf<std::int64_t>({
      {6, rc::gen::inRange<std::int64_t>(0, 51)},
      {1, rc::gen::element<std::int64_t>(1'000, 1'000'000)},
  });
  burst = std::min(burst, 2'000'000'000'000'000 / t_us - 1);
  const Rate rate(permits, Nanos{t_us * kMicro * permits}, burst);
  return {rate, t_us, t_us * (burst + 1)};
}

// A TAT offset (us) around the rate's scales: past, now, inside tau, on and near the admission
// boundary, beyond tau (a clock that stepped back).
std::int64_t GenOffset(const RandomRate& r) {
  const std::int64_t t = r.t_us, tau = r.tau_us;
  return *rc::gen::weightedOneOf<std::int64_t>({
      {2, rc::gen::just<std::int64_t>(0)},
      {2, rc::gen::inRange<std::int64_t>(-2 * tau, 0)},
      {4, rc::gen::inRange<std::int64_t>(0, tau + 1)},
      {2, rc::gen::element<std::int64_t>(tau - t, tau - t + 1, tau - t - 1, tau, tau + 1)},
      {1, rc::gen::inRange<std::int64_t>(tau, 2 * tau + 1)},
  });
}

TEST(GcraScript, AgreesWithGcraStepOnRandomRatesStatesTimesAndCosts) {
  SKIP_WITHOUT_REDIS();
  ScriptHarness redis;
  int run = 0;
  const bool ok = rc::check("the script and gcra_step agree", [&] {
    const int n = *rc::gen::inRange(1, 4);
    std::vector<RandomRate> random_rates;
    std::vector<Rate> rates;
    for (int i = 0; i < n; ++i) {
      random_rates.push_back(GenRandomRate());
      rates.push_back(random_rates.back().rate);
    }
    std::int64_t now_us =
        *rc::gen::inRange<std::int64_t>(1'600'000'000'000'000, 1'800'000'000'000'000);
    // The first state in the script's format or the earlier one; the script writes its own.
    Format format = *rc::gen::arbitrary<bool>() ? Format::kBinary : Format::kDecimal;
    std::optional<std::vector<std::int64_t>> stored;  // us, as in Redis
    if (*rc::gen::inRange(0, 5) != 0) {
      stored.emplace();
      // TATs are times since the epoch: never negative (the decimal format has no sign).
      for (const auto& r : random_rates)
        stored->push_back(now_us + std::max(GenOffset(r), -now_us));
    }
    const std::string key = "prop:{" + std::to_string(run++) + "}";
    redis.store(key, stored, format);
    // gcra_step's state: a missing key is TATs at now.
    std::vector<std::int64_t> tats_ns(rates.size(), now_us * kMicro);
    if (stored)
      for (std::size_t i = 0; i < rates.size(); ++i) tats_ns[i] = (*stored)[i] * kMicro;

    const int steps = *rc::gen::inRange(1, 9);
    for (int s = 0; s < steps; ++s) {
      const RandomRate& scale = random_rates[*rc::gen::inRange<std::size_t>(0, rates.size())];
      const auto gap = *rc::gen::weightedOneOf<std::int64_t>({
          {3, rc::gen::just<std::int64_t>(0)},
          {2, rc::gen::just(scale.t_us)},
          {3, rc::gen::inRange<std::int64_t>(0, scale.tau_us + 1)},
      });
      // Times stay below 4e15 us (year 2096) so that TATs stay below 2^53 us (Lua's doubles)
      // and 2^63 ns (gcra_step) whatever the huge rates add.
      if (now_us + gap < 4'000'000'000'000'000) now_us += gap;
      std::int64_t max_burst = 0;
      for (const auto& r : random_rates) max_burst = std::max(max_burst, r.rate.burst());
      const auto cost = *rc::gen::weightedOneOf<std::int64_t>({
          {3, rc::gen::just<std::int64_t>(0)},
          {12, rc::gen::inRange<std::int64_t>(1, std::min<std::int64_t>(max_burst, 60) + 3)},
          {1,
           rc::gen::element<std::int64_t>(max_burst + 1, std::numeric_limits<std::int64_t>::max())},
      });

      std::optional<std::vector<std::int64_t>> before_us;
      if (stored) before_us = stored;
      const Decision expected = gcra_step(rates, tats_ns, now_us * kMicro, cost);
      const ScriptCall call(rates, cost);
      const StepResult result = redis.step(key, call, now_us);

      const auto decision = call.decode(result.reply);
      RC_ASSERT(decision.has_value());
      RC_ASSERT(to_string(decision->outcome) == to_string(expected.outcome));
      RC_ASSERT(decision->remaining == expected.remaining);
      RC_ASSERT(decision->retry_after == expected.retry_after);
      RC_ASSERT(decision->reset_after == expected.reset_after);
      RC_ASSERT(decision->rate_index == expected.rate_index);
      RC_ASSERT(decision->limit == expected.limit);
      RC_ASSERT(reply_integers(result.reply, rates.size()) ==
                expected_reply(before_us, rates.size(), now_us,
                               call.writes() && expected.outcome == Outcome::kDenied));

      const bool written = expected.allowed() && cost > 0;
      if (written) {
        RC_ASSERT(result.value.has_value());
        std::vector<std::int64_t> want;
        std::int64_t longest = 0;
        for (const std::int64_t tat : tats_ns) {
          want.push_back(tat / kMicro);
          longest = std::max(longest, tat / kMicro - now_us);
        }
        RC_ASSERT(decode_tats(*result.value, rates.size()) == std::optional(want));
        RC_ASSERT(result.px == std::optional(std::to_string(ceil_div(longest, 1000))));
        RC_ASSERT(result.pttl >= 0);
        stored = want;
        format = Format::kBinary;
      } else {
        RC_ASSERT(!result.px.has_value());
        RC_ASSERT(result.pttl == (stored ? -1 : -2));
        if (stored) RC_ASSERT(result.value == std::optional(encode_tats(*stored, format)));
      }
    }
  });
  EXPECT_TRUE(ok);
}

// ---------------------------------------------------------------------------------------------
// Stored values the script did not write in its current format.

TEST(GcraScript, ForeignValuesAreReadOrTreatedAsAFreshKey) {
  SKIP_WITHOUT_REDIS();
  ScriptHarness redis;
  const std::int64_t now_us = 1'700'000'000'000'000;
  const std::vector<Rate> one = {Rate(10, std::chrono::seconds(1), 4)};  // T 100 ms, tau 500 ms
  const std::vector<Rate> two = {one[0], Rate(1, std::chrono::seconds(1), 2)};
  const ScriptCall peek_one(one, 0);
  const ScriptCall peek_two(two, 0);
  auto remaining = [&](const ScriptCall& call, const std::string& value) {
    redis.call({"SET", "foreign", value}, "foreign");
    const auto d = call.decode(redis.step("foreign", call, now_us).reply);
    return d ? d->remaining : -1;
  };
  const std::string busy = std::to_string(now_us + 250'000);  // 250 ms ahead: 2 left of 5
  // The earlier decimal format is read: one TAT, and two separated by a space.
  EXPECT_EQ(remaining(peek_one, busy), 2);
  EXPECT_EQ(remaining(peek_two, busy + " " + std::to_string(now_us + 1'000'000)), 2);
  // The wrong number of TATs (the policy's rates changed) is a fresh key, in either format
  // (fresh: 5 left of the first rate, 3 of the second).
  EXPECT_EQ(remaining(peek_two, busy), 3);
  EXPECT_EQ(remaining(peek_one, busy + " " + busy), 5);
  EXPECT_EQ(remaining(peek_one, encode_tats({now_us + 250'000, now_us}, Format::kBinary)), 5);
  EXPECT_EQ(remaining(peek_two, encode_tats({now_us + 250'000}, Format::kBinary)), 3);
  // Not a time at all: a fresh key, not a script error.
  EXPECT_EQ(remaining(peek_one, "garbage"), 5);
  EXPECT_EQ(remaining(peek_one, "nan"), 5);
  EXPECT_EQ(remaining(peek_one, "inf"), 5);
  EXPECT_EQ(remaining(peek_one, "-1e300"), 5);
  EXPECT_EQ(remaining(peek_two, "1 2 x"), 3);
  // And the next admitted request writes the script's own format over it.
  const ScriptCall admit(one, 1);
  redis.call({"SET", "foreign", "garbage"}, "foreign");
  const StepResult written = redis.step("foreign", admit, now_us);
  ASSERT_TRUE(written.value);
  EXPECT_EQ(decode_tats(*written.value, 1),
            std::optional(std::vector<std::int64_t>{now_us + 100'000}));
}

// ---------------------------------------------------------------------------------------------
// The client refuses replies that are not the script's answer, or whose verdict contradicts
// gcra_step (no server needed).

TEST(GcraScriptReply, DecodesOffsetsThroughGcraStep) {
  const std::vector<Rate> one = {Rate(10, std::chrono::seconds(1), 4)};  // T 100 ms, tau 500 ms
  const ScriptCall call(one, 1);
  ASSERT_TRUE(call.writes());
  EXPECT_EQ(std::vector<std::int64_t>(call.arguments().begin(), call.arguments().end()),
            (std::vector<std::int64_t>{100'000, 400'000}));  // inc, room in us
  const auto allowed = call.decode(integer(250'000));        // 250 ms ahead
  ASSERT_TRUE(allowed);
  EXPECT_EQ(to_string(allowed->outcome), "allowed");
  EXPECT_EQ(allowed->remaining, 1);
  EXPECT_EQ(allowed->reset_after, std::chrono::milliseconds(350));
  EXPECT_EQ(allowed->limit, 10);
  const auto denied = call.decode(integer(-1 - 450'000));
  ASSERT_TRUE(denied);
  EXPECT_EQ(to_string(denied->outcome), "denied");
  EXPECT_EQ(denied->retry_after, std::chrono::milliseconds(50));
  EXPECT_EQ(denied->reset_after, std::chrono::milliseconds(450));
}

TEST(GcraScriptReply, RefusesRepliesThatContradictTheStep) {
  const std::vector<Rate> one = {Rate(10, std::chrono::seconds(1), 4)};
  const std::vector<Rate> two = {one[0], Rate(1, std::chrono::seconds(1), 2)};
  const ScriptCall call(one, 1);
  EXPECT_FALSE(call.decode(integer(450'000)));                // admitted, but the step denies
  EXPECT_FALSE(call.decode(integer(-1 - 250'000)));           // denied, but the step admits
  EXPECT_FALSE(call.decode(integer(std::int64_t{1} << 53)));  // not an offset the script sends
  EXPECT_FALSE(call.decode(array({integer(0)})));             // one rate: an integer
  Reply error;
  error.type = Reply::Type::kError;
  error.str = "ERR something";
  EXPECT_FALSE(call.decode(error));
  // A peek or a cost above capacity only reads: it is never denied.
  EXPECT_FALSE(ScriptCall(one, 0).decode(integer(-1)));
  const ScriptCall exceeds(one, 6);
  EXPECT_FALSE(exceeds.writes());
  EXPECT_FALSE(exceeds.decode(integer(-1)));
  EXPECT_EQ(to_string(exceeds.decode(integer(0))->outcome), "exceeds_capacity");
  // Several rates: 8 bytes per rate ('-' first when denied), or 0 when all are 0.
  const ScriptCall both(two, 1);
  auto packed = [](std::vector<double> offsets, bool denied) {
    Reply r;
    r.type = Reply::Type::kString;
    r.str = denied ? "-" : "";
    for (const double x : offsets) r.str.append(reinterpret_cast<const char*>(&x), 8);
    return r;
  };
  EXPECT_TRUE(both.decode(integer(0)));
  EXPECT_TRUE(both.decode(packed({250'000, 0}, false)));
  const auto denied_both = both.decode(packed({450'000, 0}, true));
  ASSERT_TRUE(denied_both);
  EXPECT_EQ(denied_both->retry_after, std::chrono::milliseconds(50));
  EXPECT_FALSE(both.decode(packed({450'000, 0}, false)));  // the step denies
  EXPECT_FALSE(both.decode(packed({250'000, 0}, true)));   // the step admits
  EXPECT_FALSE(both.decode(packed({0.5, 0}, false)));      // not whole microseconds
  EXPECT_FALSE(both.decode(packed({-1, 0}, false)));       // offsets are >= 0
  EXPECT_FALSE(both.decode(packed({0}, false)));           // one per rate
  EXPECT_FALSE(both.decode(integer(1)));
  EXPECT_FALSE(both.decode(array({integer(0), integer(0)})));
}

}  // namespace
}  // namespace pacer::redis::internal
