// The real pacer-demo binary as a child process, for tests that need a process of their own
// (a lower descriptor limit, command-line flags, exit codes).
//
//   DemoProcess demo({"--threads", "2"}, {.shell_prefix = "ulimit -n 256"});
//   ASSERT_TRUE(demo.wait_listening(10s)) << demo.log();
//   ... connect to demo.port() ...
//   // the destructor sends SIGTERM, then SIGKILL after a second
//
// The child writes its log to a file (never a pipe that could fill up and block it); the port
// comes from its "listening on http://host:port" line, so it may listen on port 0.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../support/shell.h"

extern char** environ;

namespace pacer::testing {

struct DemoProcessOptions {
  std::string shell_prefix;  // run by sh before exec, e.g. "ulimit -n 256"
  std::string environment;   // assignments put before the command, e.g. "THREADS=2"
  std::string binary;        // the program to run; empty: PACER_DEMO_PATH
};

class DemoProcess {
 public:
  DemoProcess(const std::vector<std::string>& args, const DemoProcessOptions& options = {}) {
    char name[] = "/tmp/pacer-demo-test-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    log_path_ = name;
    std::string command;
    if (!options.shell_prefix.empty()) command += options.shell_prefix + " && ";
    command += "exec ";
    if (!options.environment.empty()) command += "env " + options.environment + " ";
    command += shell_quote(options.binary.empty() ? std::string(PACER_DEMO_PATH) : options.binary);
    for (const auto& arg : args) command += " " + shell_quote(arg);
    command += " >" + shell_quote(log_path_) + " 2>&1";
    std::vector<std::string> argv_strings{"/bin/sh", "-c", command};
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start " + command);
  }
  ~DemoProcess() {
    stop();
    std::filesystem::remove(log_path_);
  }
  DemoProcess(const DemoProcess&) = delete;
  DemoProcess& operator=(const DemoProcess&) = delete;

  std::string log() const {
    std::ifstream in(log_path_, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Waits for the "listening on" line; false when the child exits or the time runs out.
  bool wait_listening(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = log();
      const std::string marker = "listening on http://";
      if (const auto at = text.find(marker); at != std::string::npos) {
        const auto end = text.find(' ', at + marker.size());
        const std::string address = text.substr(at + marker.size(), end - at - marker.size());
        port_ = static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
        return true;
      }
      if (exited(std::chrono::milliseconds(20))) return false;
    }
    return false;
  }

  // True when the child has exited (within `limit`); its status is then in exit_code().
  bool exited(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return true;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  // SIGTERM, then SIGKILL when it has not exited within a second. Returns the exit code.
  int stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      if (!exited(std::chrono::seconds(1))) {
        ::kill(pid_, SIGKILL);
        exited(std::chrono::seconds(5));
      }
    }
    return exit_code_;
  }

  std::uint16_t port() const { return port_; }
  int exit_code() const { return exit_code_; }
  // Sends `signal` to the child (e.g. SIGHUP, SIGTERM); false when it is not running.
  bool signal(int signal) { return pid_ > 0 && ::kill(pid_, signal) == 0; }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::uint16_t port_ = 0;
  std::string log_path_;
};

}  // namespace pacer::testing
