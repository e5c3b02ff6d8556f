#include "pacer/limiter.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "../support/held_store.h"

namespace pacer {
namespace {

using std::chrono::seconds;

// A store that fails every call, or answers from another thread after a delay.
class ScriptedStore final : public Store {
 public:
  bool fail = true;
  bool answer_from_thread = false;
  MemoryStore backing;

  void check(const Policy& policy, std::string_view key, std::int64_t cost,
             CheckHandler done) override {
    answer(
        key, [&] { return backing.check_now(policy, key, cost); }, std::move(done));
  }
  void peek(const Policy& policy, std::string_view key, std::int64_t cost,
            CheckHandler done) override {
    ++peeks;
    answer(
        key, [&] { return backing.peek_now(policy, key, cost); }, std::move(done));
  }
  template <class Decide>
  void answer(std::string_view key, Decide decide, CheckHandler done) {
    if (never_answers) return;  // a broken store: `done` is dropped without a call
    if (fail) {
      done({make_error_code(Errc::kTimeout), {}, key});
      return;
    }
    CheckResult result = decide();
    if (!answer_from_thread) {
      done(result);
      return;
    }
    std::thread([result, key = std::string(key), done = std::move(done)]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      CheckResult r = result;
      r.key = key;
      done(r);
    }).detach();
  }
  void reset(const Policy&, std::string_view, ResetHandler done) override {
    done(fail ? make_error_code(Errc::kTimeout) : std::error_code{});
  }
  bool connected() const override { return !fail; }
  bool completes_inline() const override { return answers_inline; }
  bool answers_inline = false;  // says so; answer_from_thread must stay false then
  bool never_answers = false;
  int peeks = 0;
};

const Policy kPolicy("p", {Rate(10, seconds(60), 2)});

TEST(Limiter, CountsAllowedAndDenied) {
  MemoryStore store;
  Limiter limiter(store);
  for (int i = 0; i < 5; ++i) limiter.check(kPolicy, "k");
  const MetricsSnapshot m = limiter.metrics().snapshot();
  EXPECT_EQ(m.allowed, 3u);
  EXPECT_EQ(m.denied, 2u);
  EXPECT_EQ(m.errors, 0u);
}

// The in-process store times one decision in kInlineTimingSample per thread: any run of
// 10 * kInlineTimingSample decisions on one thread has exactly 10 timed ones, with real
// (non-zero) durations.
TEST(Limiter, InProcessDecisionsAreSampledForLatency) {
  MemoryStore store;
  Limiter limiter(store);
  const int n = 10 * static_cast<int>(MetricsSnapshot::kInlineTimingSample);
  for (int i = 0; i < n; ++i) limiter.check(kPolicy, "k" + std::to_string(i));
  const MetricsSnapshot m = limiter.metrics().snapshot();
  EXPECT_EQ(m.allowed, static_cast<std::uint64_t>(n));
  EXPECT_EQ(m.latency_count, 10u);
  EXPECT_GT(m.latency_sum_ns, 0);
  EXPECT_NE(m.prometheus().find("one decision in 64 per thread is timed"), std::string::npos);
}

TEST(Limiter, FailOpenAllowsAndMarksDegraded) {
  ScriptedStore store;
  Limiter limiter(store, {.fail_mode = FailMode::kOpen});
  const Decision d = limiter.check(kPolicy, "k");
  EXPECT_TRUE(d.allowed());
  EXPECT_TRUE(d.degraded);
  EXPECT_EQ(d.limit, 10);
  const MetricsSnapshot m = limiter.metrics().snapshot();
  EXPECT_EQ(m.errors, 1u);
  EXPECT_EQ(m.degraded, 1u);
}

TEST(Limiter, FailClosedDeniesAsUnavailable) {
  ScriptedStore store;
  Limiter limiter(store, {.fail_mode = FailMode::kClosed});
  const Decision d = limiter.check(kPolicy, "k");
  EXPECT_EQ(d.outcome, Outcome::kUnavailable);
  EXPECT_TRUE(d.degraded);
}

TEST(Limiter, FailLocalEnforcesTheSamePolicyInProcess) {
  ScriptedStore store;
  Limiter limiter(store, {.fail_mode = FailMode::kLocal});
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += limiter.check(kPolicy, "k").allowed();
  EXPECT_EQ(allowed, 3);  // burst 2 + 1, exactly as the real store would
  EXPECT_TRUE(limiter.check(kPolicy, "k").degraded);
}

TEST(Limiter, ThrowingHooksAreCountedAndNeverBreakTheRequest) {
  ScriptedStore store;
  int decisions = 0;
  Limiter limiter(store, {.fail_mode = FailMode::kOpen,
                          .on_decision =
                              [&](const DecisionEvent& e) {
                                ++decisions;
                                EXPECT_EQ(e.key, "k");
                                throw std::runtime_error("hook bug");
                              },
                          .on_error = [](const ErrorEvent&) { throw 42; }});
  const Decision d = limiter.check(kPolicy, "k");
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(decisions, 1);
  EXPECT_EQ(limiter.metrics().snapshot().hook_errors, 2u);
}

TEST(Limiter, HooksSeeEveryDecision) {
  MemoryStore store;
  int denied = 0;
  Limiter limiter(
      store, {.on_decision = [&](const DecisionEvent& e) { denied += !e.decision.allowed(); }});
  for (int i = 0; i < 4; ++i) limiter.check(kPolicy, "k");
  EXPECT_EQ(denied, 1);
}

// A peek is no decision: no on_decision hook, not counted; its store failure is counted, goes
// to on_error and is answered by the fail mode like a check's.
TEST(Limiter, PeekIsNoDecisionButFailsLikeOne) {
  ScriptedStore store;
  int decisions = 0;
  int errors = 0;
  Limiter limiter(store, {.fail_mode = FailMode::kClosed,
                          .on_decision = [&](const DecisionEvent&) { ++decisions; },
                          .on_error = [&](const ErrorEvent&) { ++errors; }});
  EXPECT_EQ(limiter.peek(kPolicy, "k").outcome, Outcome::kUnavailable);
  EXPECT_EQ(errors, 1);
  store.fail = false;
  EXPECT_TRUE(limiter.peek(kPolicy, "k").allowed());
  EXPECT_EQ(decisions, 0);
  const MetricsSnapshot m = limiter.metrics().snapshot();
  EXPECT_EQ(m.allowed + m.denied, 0u);
  EXPECT_EQ(m.errors, 1u);
}

TEST(Limiter, PeekWithFailModeLocalAsksTheLocalStoreWithoutSpending) {
  ScriptedStore store;
  Limiter limiter(store, {.fail_mode = FailMode::kLocal});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.check(kPolicy, "k").allowed()) << i;
  const Decision peeked = limiter.peek(kPolicy, "k");
  EXPECT_EQ(peeked.outcome, Outcome::kDenied);
  EXPECT_TRUE(peeked.degraded);
  EXPECT_EQ(limiter.peek(kPolicy, "k2", 3).remaining, 0);
  EXPECT_TRUE(limiter.check(kPolicy, "k2", 3).allowed());  // the peek spent nothing
}

TEST(Limiter, BlockingCheckWaitsForAnAsyncStore) {
  ScriptedStore store;
  store.fail = false;
  store.answer_from_thread = true;
  Limiter limiter(store);
  EXPECT_TRUE(limiter.check(kPolicy, "k").allowed());
  EXPECT_EQ(limiter.peek(kPolicy, "k").remaining, 1);  // what a check of cost 1 would report
  EXPECT_EQ(limiter.peek(kPolicy, "k", 0).remaining, 2);
  EXPECT_EQ(store.peeks, 2);
}

// A store other than the in-process one that answers inline: both forms of check() get the
// decision, with the fail mode, metrics and hooks of any store.
TEST(Limiter, AnotherInlineStoreIsAnsweredInline) {
  ScriptedStore store;
  store.answers_inline = true;
  int decisions = 0;
  Limiter limiter(store, {.fail_mode = FailMode::kClosed,
                          .on_decision = [&](const DecisionEvent&) { ++decisions; }});
  EXPECT_EQ(limiter.check(kPolicy, "k").outcome, Outcome::kUnavailable);
  bool answered = false;
  limiter.check(kPolicy, "k", 1, [&](const Decision& d) {
    answered = true;
    EXPECT_EQ(d.outcome, Outcome::kUnavailable);
  });
  EXPECT_TRUE(answered);
  store.fail = false;
  EXPECT_TRUE(limiter.check(kPolicy, "k").allowed());
  EXPECT_EQ(decisions, 3);
  const MetricsSnapshot m = limiter.metrics().snapshot();
  EXPECT_EQ(m.errors, 2u);
  EXPECT_EQ(m.allowed, 1u);
  EXPECT_EQ(m.denied, 2u);
}

// The reporting handler gets the store's failure with the fail mode's answer, and no error
// otherwise: from an I/O thread, from an inline store, and for a peek.
TEST(Limiter, ReportingHandlerCarriesTheStoreError) {
  for (const bool inline_store : {false, true}) {
    ScriptedStore store;
    store.answers_inline = inline_store;
    store.answer_from_thread = !inline_store;
    Limiter limiter(store, {.fail_mode = FailMode::kClosed});
    std::vector<std::pair<Decision, std::error_code>> answers;
    std::mutex mutex;
    std::condition_variable answered;
    auto record = [&](const Decision& d, std::error_code error) {
      std::lock_guard lock(mutex);
      answers.emplace_back(d, error);
      answered.notify_all();
    };
    limiter.check(kPolicy, "k", 1, Limiter::ReportingHandler(record));
    limiter.peek(kPolicy, "k", 1, Limiter::ReportingHandler(record));
    store.fail = false;
    limiter.check(kPolicy, "k", 1, Limiter::ReportingHandler(record));
    std::unique_lock lock(mutex);
    answered.wait_for(lock, seconds(5), [&] { return answers.size() == 3; });
    ASSERT_EQ(answers.size(), 3u) << inline_store;
    int failed = 0;
    for (const auto& [decision, error] : answers) {
      EXPECT_EQ(decision.degraded, static_cast<bool>(error)) << inline_store;
      if (error) {
        ++failed;
        EXPECT_EQ(error, make_error_code(Errc::kTimeout));
        EXPECT_EQ(decision.outcome, Outcome::kUnavailable);
      }
    }
    EXPECT_EQ(failed, 2) << inline_store;
  }
}

// An inline store that breaks its promise and never answers: the fail mode decides, and
// nothing is admitted by default.
TEST(Limiter, InlineStoreThatNeverAnswersGetsTheFailMode) {
  ScriptedStore store;
  store.answers_inline = true;
  store.never_answers = true;
  Limiter closed(store, {.fail_mode = FailMode::kClosed});
  EXPECT_EQ(closed.check(kPolicy, "k").outcome, Outcome::kUnavailable);
  bool answered = false;
  closed.check(kPolicy, "k", 1, [&](const Decision& d) {
    answered = true;
    EXPECT_EQ(d.outcome, Outcome::kUnavailable);
  });
  EXPECT_TRUE(answered);
  EXPECT_EQ(closed.metrics().snapshot().errors, 2u);
  Limiter open(store, {.fail_mode = FailMode::kOpen});
  const Decision d = open.check(kPolicy, "k");
  EXPECT_TRUE(d.allowed());
  EXPECT_TRUE(d.degraded);
}

TEST(Limiter, InvalidArgumentsNameTheValue) {
  MemoryStore store;
  Limiter limiter(store);
  EXPECT_THROW(
      {
        try {
          limiter.check(kPolicy, "k", -3);
        } catch (const std::invalid_argument& e) {
          EXPECT_NE(std::string(e.what()).find("-3"), std::string::npos);
          throw;
        }
      },
      std::invalid_argument);
  EXPECT_THROW(limiter.check(kPolicy, "", 1), std::invalid_argument);
}

TEST(Limiter, ResetReturnsStoreErrors) {
  ScriptedStore store;
  Limiter limiter(store);
  EXPECT_EQ(limiter.reset(kPolicy, "k"), make_error_code(Errc::kTimeout));
  store.fail = false;
  EXPECT_FALSE(limiter.reset(kPolicy, "k"));
}

TEST(Limiter, ParsesFailModes) {
  EXPECT_EQ(parse_fail_mode("open"), FailMode::kOpen);
  EXPECT_EQ(parse_fail_mode("closed"), FailMode::kClosed);
  EXPECT_EQ(parse_fail_mode("local"), FailMode::kLocal);
  try {
    parse_fail_mode("sideways");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("sideways"), std::string::npos);
  }
}

// ---- issue 6: lifetimes, threads and resolution ----------------------------------------------

using testing::HeldStore;

// Item 2: the completion used to capture the Limiter's `this` and the caller's policy by
// reference; a Limiter (or a temporary policy) gone before the answer meant a use after free
// (ASan: heap-use-after-free in Metrics::count_decision).
TEST(Limiter, CheckInFlightOutlivesTheLimiterAndThePolicy) {
  HeldStore store;
  int called = 0;
  Decision seen;
  {
    auto limiter = std::make_unique<Limiter>(store, LimiterOptions{.fail_mode = FailMode::kClosed});
    auto policy = std::make_unique<Policy>("gone", std::vector<Rate>{Rate(1, seconds(60))});
    limiter->check(*policy, "k", 1, [&](const Decision& d) {
      ++called;
      seen = d;
    });
    limiter->check(*policy, "k", 1, [&](const Decision&) { ++called; });
    policy.reset();
    limiter.reset();
  }
  EXPECT_EQ(store.held(), 2u);
  EXPECT_EQ(store.answer_all(), 2u);
  EXPECT_EQ(called, 2);
  EXPECT_TRUE(seen.allowed());
  // Store failures after the Limiter is gone still reach the fail mode.
  {
    Limiter limiter(store, {.fail_mode = FailMode::kClosed});
    limiter.check(Policy("p", {Rate(1, seconds(60))}), "k2", 1, [&](const Decision& d) {
      ++called;
      seen = d;
    });
  }
  store.answer_all(make_error_code(Errc::kStoreUnavailable));
  EXPECT_EQ(called, 3);
  EXPECT_EQ(seen.outcome, Outcome::kUnavailable);
}

TEST(Limiter, CopiesShareOneState) {
  MemoryStore store;
  Limiter a(store);
  const Limiter b = a;
  const Policy policy("p", {Rate(1, seconds(60))});
  EXPECT_TRUE(a.check(policy, "k").allowed());
  EXPECT_FALSE(b.check(policy, "k").allowed());
  EXPECT_EQ(a.metrics().snapshot().denied, 1u);
}

// A completion handler that throws on an I/O thread must not escape into the store (which, for
// Redis, would stop the connection's read loop): it is counted and logged.
TEST(Limiter, ThrowingAsyncHandlerIsCountedAndStopsHere) {
  HeldStore store;
  Limiter limiter(store);
  const Policy policy("p", {Rate(10, seconds(60))});
  limiter.check(policy, "k", 1, [](const Decision&) { throw std::runtime_error("handler bug"); });
  EXPECT_NO_THROW(store.answer_all());
  EXPECT_EQ(limiter.metrics().snapshot().hook_errors, 1u);
  bool called = false;
  limiter.check(policy, "k", 1, [&](const Decision&) { called = true; });
  store.answer_all();
  EXPECT_TRUE(called);
}

// Item 7: a blocking call on the thread that runs the store's I/O used to wait for itself
// forever; now it fails loudly.
TEST(Limiter, BlockingCallsOnTheStoresIoThreadFailLoudly) {
  HeldStore store;
  store.io_thread_ = true;
  Limiter limiter(store);
  const Policy policy("p", {Rate(10, seconds(60))});
  EXPECT_THROW(limiter.check(policy, "k"), std::logic_error);
  EXPECT_THROW(limiter.peek(policy, "k"), std::logic_error);
  EXPECT_THROW(limiter.reset(policy, "k"), std::logic_error);
  EXPECT_EQ(store.held(), 0u);  // refused before anything was started
  // The asynchronous form is what belongs there.
  bool called = false;
  limiter.check(policy, "k", 1, [&](const Decision&) { called = true; });
  store.answer_all();
  EXPECT_TRUE(called);
}

// Item 5: a rate finer than the store's clock used to fail every check at run time, so fail
// open admitted everything. It is refused when first used, naming it.
TEST(Limiter, RateFinerThanTheStoreResolutionIsRefusedNamingIt) {
  HeldStore store;
  store.resolution_ = std::chrono::microseconds(1);
  Limiter limiter(store, {.fail_mode = FailMode::kOpen});
  const Policy fine("fine", {Rate(10, seconds(1)), Rate(2'000'000, seconds(1))});
  try {
    limiter.check(fine, "k", 1, [](const Decision&) {});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("2000000/1s"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'fine'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(limiter.validate(fine), std::invalid_argument);
  EXPECT_EQ(store.held(), 0u);
  EXPECT_EQ(limiter.metrics().snapshot().allowed, 0u);
  EXPECT_NO_THROW(limiter.validate(Policy("ok", {Rate(1'000'000, seconds(1))})));
}

TEST(Metrics, PrometheusTextHasCountersAndCumulativeHistogram) {
  Metrics metrics;
  metrics.count_decision(true, false, std::chrono::microseconds(3));
  metrics.count_decision(false, false, std::chrono::milliseconds(20));
  const std::string text = metrics.snapshot().prometheus("pacer");
  EXPECT_NE(text.find("pacer_requests_allowed_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("pacer_requests_denied_total 1\n"), std::string::npos);
  EXPECT_NE(text.find("pacer_check_duration_seconds_bucket{le=\"5e-06\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("pacer_check_duration_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("pacer_check_duration_seconds_count 2\n"), std::string::npos);
}

}  // namespace
}  // namespace pacer
