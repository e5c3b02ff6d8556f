// pacerd's log lines (apps/pacerd/log.h): the one escaping function against hostile values, both
// formats, the library's lines in the same shape, and every reload written down.
#include "log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config.h"
#include "logfmt.h"
#include "service.h"

namespace pacer::pacerd {
namespace {

using pacer::testing::lines_of;
using pacer::testing::parse_logfmt;
using pacer::testing::value_of;

// Values a client, a header or a file could bring: each must stay one value of one line.
const std::vector<std::string> kHostile = {
    "",
    "plain",
    "two words",
    R"(say "hi")",
    "a=b",
    R"(back\slash)",
    "line one\nline two",
    "cr\rtab\tnul" + std::string(1, '\0') + "bell\x07" + "del\x7f" + "esc\x1b[31m",
    "x\" event=forged level=error",
    "x\n" + std::string("ts=2026-01-01T00:00:00Z level=error event=forged"),
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",  // valid UTF-8 stays as it is
    "bad \xff\xfe utf8 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 cut \xe2\x82",
    std::string(5000, '"'),
};

TEST(PacerdLog, QuoteUsesJsonEscapesAndAlwaysGivesUtf8) {
  EXPECT_EQ(log::quote("a \"b\" \\ c"), R"("a \"b\" \\ c")");
  EXPECT_EQ(log::quote("1\n2\r3\t4"), R"("1\n2\r3\t4")");
  EXPECT_EQ(log::quote(std::string("\0\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001f\u007f")");
  EXPECT_EQ(log::quote("\xc3\xa9"), "\"\xc3\xa9\"");
  EXPECT_EQ(log::quote("a\xff"
                       "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(log::quote("\xe2\x82"), R"("\ufffd\ufffd")");            // cut short
  EXPECT_EQ(log::quote("\xc0\xaf"), R"("\ufffd\ufffd")");            // overlong '/'
  EXPECT_EQ(log::quote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a surrogate
  for (const auto& value : kHostile) {
    const auto parsed = nlohmann::json::parse(log::quote(value), nullptr, false);
    ASSERT_TRUE(parsed.is_string()) << log::quote(value);
    if (value.find('\xff') == std::string::npos && value.find('\xc0') == std::string::npos) {
      EXPECT_EQ(parsed.get<std::string>(), value);
    }
  }
}

TEST(PacerdLog, LogfmtValuesAreBareOnlyWhenNothingNeedsQuoting) {
  EXPECT_EQ(log::logfmt_value("SIGHUP"), "SIGHUP");
  EXPECT_EQ(log::logfmt_value("http://127.0.0.1:9090/x?y"), "http://127.0.0.1:9090/x?y");
  EXPECT_EQ(log::logfmt_value(""), R"("")");
  EXPECT_EQ(log::logfmt_value("a b"), R"("a b")");
  EXPECT_EQ(log::logfmt_value("a=b"), R"("a=b")");
  EXPECT_EQ(log::logfmt_value(R"(a\b)"), R"("a\\b")");
  EXPECT_EQ(log::logfmt_value("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
}

TEST(PacerdLog, EveryHostileValueStaysOneValueOfOneLine) {
  for (const auto& value : kHostile) {
    const std::string line =
        log::render(log::Format::kLogfmt, "shadow_deny", {{"key", value}, {"n", 3}, {"ok", true}});
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    const auto fields = parse_logfmt(line);
    ASSERT_TRUE(fields) << line;
    ASSERT_EQ(fields->size(), 4u) << line;
    EXPECT_EQ(value_of(*fields, "event"), "shadow_deny");
    EXPECT_EQ(value_of(*fields, "n"), "3");
    EXPECT_EQ(value_of(*fields, "ok"), "true");
    const std::string json =
        "{" +
        log::render(log::Format::kJson, "shadow_deny", {{"key", value}, {"n", 3}, {"ok", true}}) +
        "}";
    EXPECT_EQ(json.find('\n'), std::string::npos) << json;
    const auto parsed = nlohmann::json::parse(json, nullptr, false);
    ASSERT_TRUE(parsed.is_object()) << json;
    EXPECT_EQ(parsed.size(), 4u);
    EXPECT_EQ(parsed["n"], 3);
    EXPECT_EQ(parsed["ok"], true);
    EXPECT_EQ(parsed["event"], "shadow_deny");
    if (value.find('\xff') == std::string::npos) {
      EXPECT_EQ(value_of(*fields, "key"), value);
      EXPECT_EQ(parsed["key"], value);
    }
  }
  EXPECT_EQ(log::parse_format("json"), log::Format::kJson);
  EXPECT_EQ(log::parse_format("logfmt"), log::Format::kLogfmt);
  EXPECT_FALSE(log::parse_format("JSON"));
}

// Installs pacerd's logging onto a string for one test, and stdout again after it.
class CapturedLog : public ::testing::Test {
 protected:
  void capture(log::Format format) {
    log::install(format, spdlog::level::info,
                 std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
  }
  void TearDown() override { log::install(log::Format::kLogfmt, spdlog::level::info); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

TEST_F(CapturedLog, PacerdsLinesAndTheLibrarysAreValidLogfmt) {
  capture(log::Format::kLogfmt);
  log::error("config_reload_failed",
             {{"trigger", "SIGHUP"}, {"error", "p.toml:1:2: a\np.toml:3:4: b"}});
  spdlog::warn("redis 127.0.0.1:6379: connection lost (\"reset\")\nnext line");
  log::debug("not_written");
  const auto lines = lines_of(text());
  ASSERT_EQ(lines.size(), 2u) << text();
  for (const auto& line : lines) {
    const auto fields = parse_logfmt(line);
    ASSERT_TRUE(fields) << line;
    EXPECT_EQ(fields->at(0).first, "ts");
    EXPECT_EQ(fields->at(1).first, "level");
  }
  const auto first = *parse_logfmt(lines[0]);
  EXPECT_EQ(value_of(first, "level"), "error");
  EXPECT_EQ(value_of(first, "event"), "config_reload_failed");
  EXPECT_EQ(value_of(first, "error"), "p.toml:1:2: a\np.toml:3:4: b");
  const auto library = *parse_logfmt(lines[1]);
  EXPECT_EQ(value_of(library, "level"), "warning");
  EXPECT_EQ(value_of(library, "event"), "library");
  EXPECT_EQ(value_of(library, "msg"),
            "redis 127.0.0.1:6379: connection lost (\"reset\")\nnext line");
}

TEST_F(CapturedLog, JsonLinesAreJsonObjects) {
  capture(log::Format::kJson);
  log::info("started", {{"listen", "127.0.0.1:9090"}, {"threads", 2}});
  spdlog::error("handler threw: \"x\"\n");
  const auto lines = lines_of(text());
  ASSERT_EQ(lines.size(), 2u) << text();
  const auto a = nlohmann::json::parse(lines[0], nullptr, false);
  const auto b = nlohmann::json::parse(lines[1], nullptr, false);
  ASSERT_TRUE(a.is_object()) << lines[0];
  ASSERT_TRUE(b.is_object()) << lines[1];
  EXPECT_EQ(a["event"], "started");
  EXPECT_EQ(a["threads"], 2);
  EXPECT_EQ(a["level"], "info");
  EXPECT_TRUE(a["ts"].is_string());
  EXPECT_EQ(b["event"], "library");
  EXPECT_EQ(b["msg"], "handler threw: \"x\"\n");
}

// Every reload attempt is written down with its result: an operator who sends SIGHUP always
// learns what it did, also when the file did not change or was refused before.
TEST_F(CapturedLog, EveryReloadIsLoggedWithItsResult) {
  const std::string path =
      ::testing::TempDir() + "pacerd-log-reload-" + std::to_string(::getpid()) + ".toml";
  const std::string policy = "[[policy]]\nname = \"a\"\nrates = [{ limit = \"1/1s\" }]\n";
  auto write = [&](const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  };
  write(policy);
  auto [config, file] = load_config(path);
  Service service(std::move(config), std::move(file));
  capture(log::Format::kLogfmt);
  EXPECT_TRUE(service.reload("SIGHUP"));
  EXPECT_TRUE(service.reload("SIGHUP"));
  write(policy + "colour = \"blue\"\n[server]\nthreads = \"many\"\n");
  EXPECT_FALSE(service.reload("SIGHUP"));
  EXPECT_FALSE(service.reload("SIGHUP"));
  write(policy + "# changed\n");
  EXPECT_TRUE(service.reload("file_changed"));
  std::remove(path.c_str());
  EXPECT_FALSE(service.reload("SIGHUP"));  // gone

  const auto lines = lines_of(text());
  ASSERT_EQ(lines.size(), 6u) << text();
  std::vector<std::string> results;
  for (const auto& line : lines) {
    const auto fields = parse_logfmt(line);
    ASSERT_TRUE(fields) << line;
    results.push_back(value_of(*fields, "event") + " " + value_of(*fields, "result") + " " +
                      value_of(*fields, "trigger"));
  }
  EXPECT_EQ(results, (std::vector<std::string>{
                         "config_unchanged unchanged SIGHUP",
                         "config_unchanged unchanged SIGHUP",
                         "config_reload_failed rejected SIGHUP",
                         "config_reload_failed rejected_again SIGHUP",
                         "config_reloaded applied file_changed",
                         "config_reload_failed rejected SIGHUP",
                     }));
  // The refusal names both problems, one per line of the message, in one log line.
  const auto refused = *parse_logfmt(lines[3]);
  EXPECT_NE(value_of(refused, "error").find(":4:1: policy[0].colour = \"blue\": unknown key\n"),
            std::string::npos)
      << lines[3];
  EXPECT_NE(value_of(refused, "error").find("server.threads = \"many\""), std::string::npos);
  EXPECT_EQ(value_of(*parse_logfmt(lines[4]), "policies"), "a=kept");
  EXPECT_NE(value_of(*parse_logfmt(lines[5]), "error").find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace pacer::pacerd
