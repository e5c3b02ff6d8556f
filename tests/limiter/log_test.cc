// pacer/log.h: the library's lines reach the embedding program's sink, and the default is
// spdlog's default logger.
#include "pacer/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/logging.h"
#include "pacer/limiter.h"
#include "pacer/memory_store.h"

namespace pacer {
namespace {

struct Line {
  LogLevel level;
  std::string message;
};

// A handler that keeps what it receives (thread-safe).
struct Recorder {
  std::mutex mutex;
  std::vector<Line> lines;

  LogHandler handler() {
    return [this](LogLevel level, std::string_view message) {
      std::lock_guard lock(mutex);
      lines.push_back({level, std::string(message)});
    };
  }
};

// A real code path: a hook that throws is logged at warning level by the Limiter.
void run_throwing_hook() {
  MemoryStore store;
  Limiter limiter(
      store, {.on_decision = [](const DecisionEvent&) { throw std::runtime_error("hook bug"); }});
  limiter.check(Policy("api", {Rate(10, std::chrono::seconds(1))}), "k");
}

// Each test leaves the default in place, whatever it set.
class LogTest : public ::testing::Test {
 protected:
  void TearDown() override {
    set_logger(nullptr);
    spdlog::set_default_logger(previous_default_);
  }
  std::shared_ptr<spdlog::logger> previous_default_ = spdlog::default_logger();
};

// The default logger is replaced by one writing into `out`.
std::shared_ptr<spdlog::logger> capture_default(std::ostringstream& out) {
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_pattern("%l %v");
  spdlog::set_default_logger(logger);
  return logger;
}

TEST_F(LogTest, HandlerReceivesAWarningFromTheLimiter) {
  Recorder recorder;
  set_log_handler(recorder.handler(), LogLevel::kWarn);
  run_throwing_hook();
  ASSERT_EQ(recorder.lines.size(), 1u);
  EXPECT_EQ(recorder.lines[0].level, LogLevel::kWarn);
  EXPECT_EQ(recorder.lines[0].message, "pacer: hook for policy 'api' threw: hook bug");
}

TEST_F(LogTest, HandlerBelowItsLevelGetsNothing) {
  Recorder recorder;
  set_log_handler(recorder.handler(), LogLevel::kError);
  run_throwing_hook();
  internal::log_info("not formatted: {}", 1);
  EXPECT_TRUE(recorder.lines.empty());
  EXPECT_FALSE(internal::log_enabled(LogLevel::kWarn));
  EXPECT_TRUE(internal::log_enabled(LogLevel::kError));
}

TEST_F(LogTest, DefaultIsSpdlogsDefaultLoggerAndResettingRestoresIt) {
  std::ostringstream out;
  capture_default(out);
  run_throwing_hook();
  EXPECT_EQ(out.str(), "warning pacer: hook for policy 'api' threw: hook bug\n");

  Recorder recorder;
  set_log_handler(recorder.handler());
  run_throwing_hook();
  EXPECT_EQ(recorder.lines.size(), 1u);
  EXPECT_EQ(out.str(), "warning pacer: hook for policy 'api' threw: hook bug\n");  // not here

  set_log_handler(nullptr);  // an empty handler: the default again
  run_throwing_hook();
  EXPECT_EQ(recorder.lines.size(), 1u);
  EXPECT_EQ(out.str(),
            "warning pacer: hook for policy 'api' threw: hook bug\n"
            "warning pacer: hook for policy 'api' threw: hook bug\n");
}

TEST_F(LogTest, SpdlogLoggerOfItsOwnAndItsLevel) {
  std::ostringstream def;
  capture_default(def);
  std::ostringstream out;
  auto mine = std::make_shared<spdlog::logger>(
      "mine", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  mine->set_pattern("%n %l %v");
  set_logger(mine);
  run_throwing_hook();
  EXPECT_EQ(out.str(), "mine warning pacer: hook for policy 'api' threw: hook bug\n");
  mine->set_level(spdlog::level::err);  // the logger's own level decides
  run_throwing_hook();
  EXPECT_EQ(out.str(), "mine warning pacer: hook for policy 'api' threw: hook bug\n");
  set_logger(nullptr);
  run_throwing_hook();
  EXPECT_EQ(def.str(), "warning pacer: hook for policy 'api' threw: hook bug\n");
}

TEST_F(LogTest, HandlerThatThrowsIsDropped) {
  set_log_handler([](LogLevel, std::string_view) { throw std::runtime_error("sink bug"); });
  EXPECT_NO_THROW(run_throwing_hook());
}

// Swapping sinks while other threads log: every line reaches exactly one sink, whole, and a
// replaced handler (with what it captured) lives until its last line is written.
TEST_F(LogTest, SettingWhileThreadsLog) {
  std::ostringstream def;
  capture_default(def);
  constexpr int kThreads = 4;
  constexpr int kLines = 2000;
  auto received = std::make_shared<std::atomic<int>>(0);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&go] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kLines; ++i) internal::log_warn("line {}", i);
    });
  }
  go = true;
  for (int i = 0; i < 200; ++i) {
    auto owned = std::make_shared<std::string>("line ");  // freed with the replaced handler
    set_log_handler([owned, received](LogLevel, std::string_view message) {
      if (message.starts_with(*owned)) received->fetch_add(1);
    });
    if (i % 3 == 0) set_logger(nullptr);
  }
  for (auto& thread : threads) thread.join();
  set_logger(nullptr);
  std::size_t default_lines = 0;
  for (char c : def.str()) default_lines += c == '\n';
  EXPECT_EQ(received->load() + static_cast<int>(default_lines), kThreads * kLines);
}

TEST(LogLevelText, Names) {
  EXPECT_EQ(to_string(LogLevel::kWarn), "warning");
  EXPECT_EQ(to_string(LogLevel::kCritical), "critical");
}

}  // namespace
}  // namespace pacer
