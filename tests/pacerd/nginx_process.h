// Debian's real nginx in the foreground on a free loopback port, with its own prefix, logs and
// temp paths; and examples/nginx/ templated with the ports of a test's pacerd and upstream.
//
//   auto nginx = NginxWithExample::start(pacerd.port(), upstream.port());
//   ASSERT_TRUE(nginx) << ...;   HttpClient client(nginx->port());
#pragma once

#include <fstream>
#include <memory>
#include <sstream>

#include "../redis/redis_server.h"
#include "pacerd_process.h"

namespace pacer::testing {

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

// examples/nginx/pacerd.conf (and pacerd-headers.conf) with the test's ports.
struct NginxWithExample {
  std::unique_ptr<ScratchDir> dir;
  std::unique_ptr<Nginx> nginx;
  std::uint16_t port = 0;
  std::string failures;  // nginx's logs of the attempts that failed

  // nginx cannot take port 0 and tell: a free port, and another one should someone take it
  // before nginx binds it.
  static NginxWithExample start(std::uint16_t pacerd_port, std::uint16_t upstream_port) {
    const std::string examples = std::string(PACER_SOURCE_DIR) + "/examples/nginx/";
    NginxWithExample out;
    for (int attempt = 0; attempt < 5 && !out.nginx; ++attempt) {
      out.dir = std::make_unique<ScratchDir>();
      out.port = free_port();
      std::string conf = read_text(examples + "pacerd.conf");
      replace_all(conf, "127.0.0.1:9090", "127.0.0.1:" + std::to_string(pacerd_port));
      replace_all(conf, "127.0.0.1:8000", "127.0.0.1:" + std::to_string(upstream_port));
      replace_all(conf, "127.0.0.1:8080", "127.0.0.1:" + std::to_string(out.port));
      replace_all(conf, "/etc/nginx/pacerd-headers.conf",
                  (out.dir->path() / "headers.conf").string());
      std::ofstream(out.dir->path() / "headers.conf")
          << read_text(examples + "pacerd-headers.conf");
      out.nginx = std::make_unique<Nginx>(conf, *out.dir);
      if (!out.nginx->wait_listening(out.port)) {
        out.failures += out.nginx->log();
        const bool port_taken =
            out.nginx->log().find("Address already in use") != std::string::npos;
        out.nginx.reset();
        if (!port_taken) break;
      }
    }
    return out;
  }

  // examples/nginx/pacerd.toml on a free port, per hour instead of per minute: no token comes
  // back while a test runs, however slow the machine.
  static std::string pacerd_toml() {
    std::string toml = read_text(std::string(PACER_SOURCE_DIR) + "/examples/nginx/pacerd.toml");
    replace_all(toml, "127.0.0.1:9090", "127.0.0.1:0");
    replace_all(toml, "\"60/1m\"", "\"60/1h\"");
    replace_all(toml, "\"10/1m\"", "\"10/1h\"");
    return toml;
  }
};

}  // namespace pacer::testing
