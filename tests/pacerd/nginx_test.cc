// Debian's real nginx with examples/nginx/ (templated with the test's ports) in front of
// pacer-demo's unlimited routes, asking pacerd through auth_request: 200s, then 429 with
// RateLimit-* and Retry-After at the client, whatever X-Forwarded-For the client sends.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "../redis/redis_server.h"
#include "pacerd_process.h"

namespace pacer::testing {
namespace {

using pacer::redis::testing::free_port;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

std::string nginx_binary() {
  for (const char* path : {"/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"})
    if (::access(path, X_OK) == 0) return path;
  return "";
}

// nginx in the foreground with its own prefix, configuration, logs and temp paths.
class Nginx {
 public:
  Nginx(const std::string& server_block, const ScratchDir& dir) : dir_(dir.path()) {
    const std::string d = dir_.string();
    std::ofstream(dir_ / "servers.conf") << server_block;
    std::ofstream(dir_ / "nginx.conf")
        << "worker_processes 1;\nerror_log " << d << "/error.log warn;\npid " << d
        << "/nginx.pid;\nevents { worker_connections 512; }\nhttp {\n  access_log off;\n"
        << "  client_body_temp_path " << d << "/body;\n  proxy_temp_path " << d << "/proxy;\n"
        << "  fastcgi_temp_path " << d << "/fastcgi;\n  uwsgi_temp_path " << d << "/uwsgi;\n"
        << "  scgi_temp_path " << d << "/scgi;\n  include " << d << "/servers.conf;\n}\n";
    const std::string command = "exec " + shell_quote(nginx_binary()) + " -p " + shell_quote(d) +
                                " -c " + shell_quote(d + "/nginx.conf") + " -e " +
                                shell_quote(d + "/error.log") + " -g 'daemon off;' >" +
                                shell_quote(d + "/stdout.log") + " 2>&1";
    std::vector<std::string> argv_strings{"/bin/sh", "-c", command};
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start nginx");
  }
  ~Nginx() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool wait_listening(std::uint16_t port) {
    for (int i = 0; i < 500; ++i) {
      try {
        HttpClient probe(port);
        return true;
      } catch (const std::exception&) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          return false;
        }
        std::this_thread::sleep_for(10ms);
      }
    }
    return false;
  }
  std::string log() const {
    return read_text((dir_ / "error.log").string()) + read_text((dir_ / "stdout.log").string());
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

TEST(PacerdNginx, AuthRequestTurnsDenialsInto429WithHeadersAndIgnoresSpoofedAddresses) {
  if (nginx_binary().empty()) GTEST_SKIP() << "nginx not installed";
  const std::string examples = std::string(PACER_SOURCE_DIR) + "/examples/nginx/";

  DemoProcess upstream({"--port", "0", "--threads", "1"});
  ASSERT_TRUE(upstream.wait_listening(10s)) << upstream.log();
  std::string pacerd_toml = read_text(examples + "pacerd.toml");
  replace_all(pacerd_toml, "127.0.0.1:9090", "127.0.0.1:0");
  // Per hour instead of per minute: no token comes back while the test runs, however slow.
  ASSERT_NE(pacerd_toml.find("\"60/1m\""), std::string::npos);
  ASSERT_NE(pacerd_toml.find("\"10/1m\""), std::string::npos);
  replace_all(pacerd_toml, "\"60/1m\"", "\"60/1h\"");
  replace_all(pacerd_toml, "\"10/1m\"", "\"10/1h\"");
  Pacerd pacerd(pacerd_toml);
  ASSERT_TRUE(pacerd.start()) << pacerd.log();

  // nginx cannot take port 0 and tell: a free port, and another one should someone take it
  // before nginx binds it.
  std::unique_ptr<ScratchDir> dir;
  std::unique_ptr<Nginx> nginx;
  std::uint16_t port = 0;
  std::string nginx_log;
  for (int attempt = 0; attempt < 5 && !nginx; ++attempt) {
    dir = std::make_unique<ScratchDir>();
    port = free_port();
    std::string conf = read_text(examples + "pacerd.conf");
    replace_all(conf, "127.0.0.1:9090", "127.0.0.1:" + std::to_string(pacerd.port()));
    replace_all(conf, "127.0.0.1:8000", "127.0.0.1:" + std::to_string(upstream.port()));
    replace_all(conf, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(port));
    replace_all(conf, "/etc/nginx/pacerd-headers.conf", (dir->path() / "headers.conf").string());
    std::ofstream(dir->path() / "headers.conf") << read_text(examples + "pacerd-headers.conf");
    nginx = std::make_unique<Nginx>(conf, *dir);
    if (!nginx->wait_listening(port)) {
      nginx_log += nginx->log();
      const bool port_taken = nginx->log().find("Address already in use") != std::string::npos;
      nginx.reset();
      if (!port_taken) break;
    }
  }
  ASSERT_TRUE(nginx) << nginx_log;

  // "web": 60/1h with burst 9, per client address: ten pass at once. Every request claims
  // another address; nginx replaces the claim with the real one, so all share one bucket.
  const std::vector<std::pair<std::string, std::string>> spoofs{{"X-Forwarded-For", "203.0.113."},
                                                                {"Forwarded", "for=198.51.100."},
                                                                {"X-Real-IP", "192.0.2."}};
  HttpClient client(port);
  for (int i = 0; i < 10; ++i) {
    const auto& [name, prefix] = spoofs[i % spoofs.size()];
    const auto r = client.get("/", {{name, prefix + std::to_string(i + 1)}});
    ASSERT_EQ(r.result_int(), 200) << i << "\n" << r << nginx->log() << pacerd.log();
    EXPECT_NE(r.body().find("\"Request successful\""), std::string::npos) << r.body();
    EXPECT_EQ(std::string(r["RateLimit-Limit"]), "60");
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), std::to_string(9 - i)) << i;
  }
  for (const auto& [name, prefix] : spoofs) {
    const auto r = client.get("/", {{name, prefix + "99"}});
    ASSERT_EQ(r.result_int(), 429) << r << nginx->log();
    // One token a minute: the next in a minute less the time the test took so far.
    const int retry_after = std::stoi(std::string(r["Retry-After"]));
    EXPECT_GT(retry_after, 30);
    EXPECT_LE(retry_after, 60);
    EXPECT_EQ(std::string(r["RateLimit-Limit"]), "60");
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), "0");
    EXPECT_FALSE(std::string(r["RateLimit-Reset"]).empty());
    // pacerd's 429 body (DESIGN §7), retry_after_ms included.
    const json body = json::parse(r.body(), nullptr, /*allow_exceptions=*/false);
    EXPECT_EQ(body["detail"], "rate_limited") << r.body();
    ASSERT_TRUE(body["retry_after_ms"].is_number_integer()) << r.body();
    const auto retry_ms = body["retry_after_ms"].get<std::int64_t>();
    EXPECT_GT(retry_ms, 30'000) << r.body();
    EXPECT_LE(retry_ms, 60'000) << r.body();
    EXPECT_EQ((retry_ms + 999) / 1000, retry_after) << r.body();
  }
  // pacerd saw the real address only.
  HttpClient direct(pacerd.port());
  EXPECT_EQ(post(direct, "/v1/peek", R"({"policy":"web","key":"ip:127.0.0.1"})").body["remaining"],
            0);
  EXPECT_EQ(
      post(direct, "/v1/peek", R"({"policy":"web","key":"ip:203.0.113.1"})").body["remaining"],
      10);  // untouched

  // "api" per API key: a missing key is 401 (passed on by auth_request); keys are separate.
  HttpClient api(port);
  EXPECT_EQ(api.get("/api/x").result_int(), 401);
  for (int i = 0; i < 6; ++i) {
    const auto r = api.get("/api/x", {{"X-API-Key", "key-a"}});
    EXPECT_EQ(r.result_int(), 404) << r;  // pacer-demo has no /api/x: the request got through
  }
  const auto limited = api.get("/api/x", {{"X-API-Key", "key-a"}});
  EXPECT_EQ(limited.result_int(), 429);
  // 10/1h: one token every 6 minutes.
  EXPECT_GT(std::stoi(std::string(limited["Retry-After"])), 300);
  EXPECT_LE(std::stoi(std::string(limited["Retry-After"])), 360);
  EXPECT_EQ(json::parse(limited.body(), nullptr, false)["detail"], "rate_limited")
      << limited.body();
  EXPECT_EQ(api.get("/api/x", {{"X-API-Key", "key-b"}}).result_int(), 404);
  const std::string m = direct.get("/metrics").body();
  EXPECT_EQ(metric(m, "pacerd_decisions_total{policy=\"web\",result=\"denied\"}"), 3) << m;
  EXPECT_EQ(metric(m, "pacerd_decisions_total{policy=\"api\",result=\"denied\"}"), 1) << m;
}

}  // namespace
}  // namespace pacer::testing
