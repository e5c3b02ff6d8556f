// Debian's real nginx with examples/nginx/ (templated with the test's ports) in front of
// pacer-demo's unlimited routes, asking pacerd through auth_request: 200s, then 429 with
// RateLimit-* and Retry-After at the client, whatever X-Forwarded-For the client sends.
#include <gtest/gtest.h>

#include <fstream>
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
  Pacerd pacerd(pacerd_toml);
  ASSERT_TRUE(pacerd.start()) << pacerd.log();

  ScratchDir dir;
  const std::uint16_t port = free_port();
  std::string conf = read_text(examples + "pacerd.conf");
  replace_all(conf, "127.0.0.1:9090", "127.0.0.1:" + std::to_string(pacerd.port()));
  replace_all(conf, "127.0.0.1:8000", "127.0.0.1:" + std::to_string(upstream.port()));
  replace_all(conf, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(port));
  replace_all(conf, "/etc/nginx/pacerd-headers.conf", (dir.path() / "headers.conf").string());
  std::ofstream(dir.path() / "headers.conf") << read_text(examples + "pacerd-headers.conf");
  Nginx nginx(conf, dir);
  ASSERT_TRUE(nginx.wait_listening(port)) << nginx.log();

  // "web": 60/1m with burst 9, per client address: ten pass at once. Every request claims
  // another address; nginx replaces the claim with the real one, so all share one bucket.
  const std::vector<std::pair<std::string, std::string>> spoofs{{"X-Forwarded-For", "203.0.113."},
                                                                {"Forwarded", "for=198.51.100."},
                                                                {"X-Real-IP", "192.0.2."}};
  HttpClient client(port);
  for (int i = 0; i < 10; ++i) {
    const auto& [name, prefix] = spoofs[i % spoofs.size()];
    const auto r = client.get("/", {{name, prefix + std::to_string(i + 1)}});
    ASSERT_EQ(r.result_int(), 200) << i << "\n" << r << nginx.log() << pacerd.log();
    EXPECT_NE(r.body().find("Hello from"), std::string::npos);
    EXPECT_EQ(std::string(r["RateLimit-Limit"]), "60");
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), std::to_string(9 - i)) << i;
  }
  for (const auto& [name, prefix] : spoofs) {
    const auto r = client.get("/", {{name, prefix + "99"}});
    ASSERT_EQ(r.result_int(), 429) << r << nginx.log();
    EXPECT_EQ(std::string(r["Retry-After"]), "1");
    EXPECT_EQ(std::string(r["RateLimit-Limit"]), "60");
    EXPECT_EQ(std::string(r["RateLimit-Remaining"]), "0");
    EXPECT_FALSE(std::string(r["RateLimit-Reset"]).empty());
    EXPECT_EQ(json::parse(r.body())["detail"], "rate_limited");
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
  EXPECT_EQ(std::string(limited["Retry-After"]), "6");
  EXPECT_EQ(api.get("/api/x", {{"X-API-Key", "key-b"}}).result_int(), 404);
  const std::string m = direct.get("/metrics").body();
  EXPECT_EQ(metric(m, "pacerd_decisions_total{policy=\"web\",result=\"denied\"}"), 3) << m;
  EXPECT_EQ(metric(m, "pacerd_decisions_total{policy=\"api\",result=\"denied\"}"), 1) << m;
}

}  // namespace
}  // namespace pacer::testing
