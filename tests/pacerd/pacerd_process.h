// pacerd as a child process on free loopback ports, with its configuration in a temporary
// directory (rewritten by reload tests), and small JSON helpers over tests/demo/http_client.h.
//
//   Pacerd pacerd(pacerd_config());          // listen = "127.0.0.1:0": any free port
//   ASSERT_TRUE(pacerd.start()) << pacerd.log();
//   HttpClient client(pacerd.port());
//   auto [status, body] = post(client, "/v1/check", R"({"policy":"api","key":"k"})");
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "../demo/demo_process.h"
#include "../demo/http_client.h"

namespace pacer::testing {

using namespace std::chrono_literals;
using nlohmann::json;

// The configuration of issue #8 with slower rates (no token comes back while a test runs, however
// slow the machine), on a free port (and any store / fail mode).
inline std::string pacerd_config(const std::string& store = "memory",
                                 const std::string& fail_mode = "open",
                                 const std::string& extra = "") {
  return "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 2\n\n[store]\nurl = \"" + store +
         "\"\nfail_mode = \"" + fail_mode + "\"\n" + extra +
         R"(
[[policy]]
name = "api"
rates = [{ limit = "10/1h", burst = 5 }]
identity = "header:X-API-Key"

[[policy]]
name = "login"
rates = [{ limit = "5/1h" }, { limit = "20/1d" }]
identity = "client_ip"
shadow = true
)";
}

// Runs a command line; returns its exit code (-1 if it did not exit) and its output.
inline std::pair<int, std::string> run_command(const std::string& command) {
  int status = 0;
  std::string output = run(command, &status);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, std::move(output)};
}

struct ScratchDir : TempDir {
  ScratchDir() : TempDir("pacerd-test") {}
};

class Pacerd {
 public:
  // `shell_prefix`: run by sh before pacerd, e.g. "ulimit -n 1024".
  explicit Pacerd(const std::string& config, std::vector<std::string> extra_args = {},
                  const std::string& shell_prefix = "") {
    config_path_ = (dir_.path() / "pacerd.toml").string();
    write_config(config);
    std::vector<std::string> args{"--config", config_path_};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<DemoProcess>(
        args, DemoProcessOptions{.shell_prefix = shell_prefix, .binary = PACERD_PATH});
  }

  bool start() { return process_->wait_listening(10s); }
  std::uint16_t port() const { return process_->port(); }
  // The admin listener's port, from its "admin on http://127.0.0.1:P" line (0 when none).
  std::uint16_t admin_port() const {
    const std::string text = log();
    const std::string marker = "admin on http://127.0.0.1:";
    const auto at = text.find(marker);
    if (at == std::string::npos) return 0;
    return static_cast<std::uint16_t>(std::stoi(text.substr(at + marker.size())));
  }
  std::string log() const { return process_->log(); }
  DemoProcess& process() { return *process_; }
  const std::string& config_path() const { return config_path_; }

  // Replaces the file in one step (rename), as editors and configuration managers do.
  void write_config(const std::string& text) {
    const std::string temp = config_path_ + ".new";
    std::ofstream(temp, std::ios::binary | std::ios::trunc) << text;
    std::filesystem::rename(temp, config_path_);
  }
  void hup() { process_->signal(SIGHUP); }

 private:
  ScratchDir dir_;
  std::string config_path_;
  std::unique_ptr<DemoProcess> process_;
};

struct JsonReply {
  int status = 0;
  json body;
  Reply raw;
};

inline JsonReply post(HttpClient& client, const std::string& target, const std::string& body,
                      const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  JsonReply r;
  r.raw = client.send(bhttp::verb::post, target, headers, body);
  r.status = r.raw.result_int();
  r.body = json::parse(r.raw.body(), nullptr, /*allow_exceptions=*/false);
  return r;
}

inline JsonReply get(HttpClient& client, const std::string& target,
                     const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  JsonReply r;
  r.raw = client.get(target, headers);
  r.status = r.raw.result_int();
  r.body = json::parse(r.raw.body(), nullptr, /*allow_exceptions=*/false);
  return r;
}

inline std::string check_body(const std::string& policy, const std::string& key, int cost = 1) {
  return json{{"policy", policy}, {"key", key}, {"cost", cost}}.dump();
}

// The value of one Prometheus sample line ("name{labels}"), or -1.
// /v1/peek answers what the next /v1/check of the same cost answers (docs/DESIGN.md §2), and
// spends nothing: on a busy key, for a cost that does not fit, and on an exhausted key
// (allowed false, the check's retry-after within 1 ms). Policy "api" (10/1h, burst 5) and a
// fresh `key`; used on each store.
inline void expect_peek_is_the_next_check(HttpClient& client, const std::string& key) {
  auto body = [&](int cost) {
    return R"({"policy":"api","key":")" + key + R"(","cost":)" + std::to_string(cost) + "}";
  };
  auto same = [&](int cost, const char* when) {
    const auto started = std::chrono::steady_clock::now();
    const JsonReply peek = post(client, "/v1/peek", body(cost));
    const JsonReply again = post(client, "/v1/peek", body(cost));
    const JsonReply check = post(client, "/v1/check", body(cost));
    ASSERT_EQ(peek.status, 200) << peek.raw;
    for (const char* field : {"allowed", "outcome", "limit", "remaining"}) {
      EXPECT_EQ(peek.body[field], check.body[field]) << when << ": " << field;
      EXPECT_EQ(again.body[field], check.body[field]) << when << ": " << field;
    }
    // Within 1 ms, plus the time between the peek and the check (a loaded machine).
    const double slack =
        1.0 + std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                  .count();
    if (check.body["retry_after_ms"].is_number()) {
      EXPECT_NEAR(peek.body["retry_after_ms"].get<double>(),
                  check.body["retry_after_ms"].get<double>(), slack)
          << when;
    }
    EXPECT_EQ(peek.raw.count("Retry-After"), check.raw.count("Retry-After")) << when;
  };
  same(1, "fresh");
  same(3, "busy");
  same(7, "cost above capacity");
  EXPECT_EQ(post(client, "/v1/peek", body(0)).body["remaining"], 2);  // cost 0: the state
  same(2, "the last two permits");
  const JsonReply exhausted = post(client, "/v1/peek", body(1));
  EXPECT_EQ(exhausted.body["allowed"], false) << exhausted.raw;
  EXPECT_EQ(exhausted.body["outcome"], "denied");
  EXPECT_NEAR(exhausted.body["retry_after_ms"].get<double>(), 360'000, 1'000);
  same(1, "exhausted");
}

inline double metric(const std::string& text, const std::string& sample) {
  const auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

}  // namespace pacer::testing
