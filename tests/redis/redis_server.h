// Real redis-server processes for integration tests: started on free loopback ports in a
// temporary directory, stopped (SIGTERM, then SIGKILL) when the object goes away.
//
//   RedisServer server;                                 // plain, waits until PING works
//   RedisServer secured({"--requirepass", "pw"}, {.password = "pw"});
//   TestCertificates certs;                             // CA + server cert via the openssl CLI
//   RedisServer tls({}, {.tls = &certs});               // TLS only (--port 0 --tls-port P)
//   RedisCluster cluster(3);                            // 3 masters, slots assigned, state ok
//   RedisSentinelGroup group;                           // master + replica + 3 sentinels
//
// Helpers: kill() (SIGKILL, a crash), restart() (same port and arguments), pause(ms) (CLIENT
// PAUSE), cli(args) (redis-cli output). Tests skip themselves when redis-server is missing:
//   if (!RedisServer::available()) GTEST_SKIP() << "redis-server not installed";
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../support/shell.h"

extern char** environ;

namespace pacer::redis::testing {

namespace detail {

using ::pacer::testing::shell_quote;

using ::pacer::testing::run;

inline bool port_free(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace detail

inline bool has_program(const char* name) {
  int status = 0;
  detail::run(std::string("command -v ") + name + " >/dev/null", &status);
  return status == 0;
}

// A port nobody listens on now (and port + 10000, the cluster bus port, when asked).
inline std::uint16_t free_port(bool with_cluster_bus = false) {
  static thread_local std::mt19937 random(std::random_device{}() ^
                                          static_cast<unsigned>(::getpid()));
  std::uniform_int_distribution<int> pick(20000, with_cluster_bus ? 55000 : 60000);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<std::uint16_t>(pick(random));
    if (!detail::port_free(port)) continue;
    if (with_cluster_bus && !detail::port_free(static_cast<std::uint16_t>(port + 10000))) continue;
    return port;
  }
  throw std::runtime_error("no free port found");
}

// Scratch directories for servers' files.
struct TempDir : ::pacer::testing::TempDir {
  TempDir() : ::pacer::testing::TempDir("pacer-redis") {}
};

// A throwaway CA and a server certificate for 127.0.0.1 and localhost, made with the openssl
// CLI (EC keys: fast). `other_ca_file` is a second CA that did not sign anything.
class TestCertificates {
 public:
  TestCertificates() {
    const auto d = dir_.path();
    ca_file = (d / "ca.crt").string();
    cert_file = (d / "server.crt").string();
    key_file = (d / "server.key").string();
    other_ca_file = (d / "other-ca.crt").string();
    std::ofstream(d / "server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                       "extendedKeyUsage=serverAuth\n";
    const std::string q = detail::shell_quote(d.string());
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    const std::string ca_ext =
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign";
    const std::string script =
        "cd " + q + " && openssl req -x509" + ec + "-keyout ca.key -out ca.crt -days 2" +
        " -subj '/CN=Pacer Test CA'" + ca_ext + " && openssl req -x509" + ec +
        "-keyout other-ca.key -out other-ca.crt -days 2 -subj '/CN=Other CA'" + ca_ext +
        " && openssl req" + ec + "-keyout server.key -out server.csr -subj '/CN=pacer-test'" +
        " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial" +
        " -out server.crt -days 2 -extfile server.ext && chmod 644 server.key";
    int status = 0;
    const std::string output = detail::run("sh -c " + detail::shell_quote(script), &status);
    if (status != 0) throw std::runtime_error("openssl failed: " + output);
  }

  std::string ca_file, cert_file, key_file, other_ca_file;

 private:
  TempDir dir_;
};

struct ServerOptions {
  std::string password;                   // for cli() and the PING wait (requirepass)
  const TestCertificates* tls = nullptr;  // TLS only: --port 0 --tls-port P
  bool cluster = false;                   // --cluster-enabled yes, own nodes.conf
  std::uint16_t port = 0;                 // 0: a free one
  // Non-empty: a sentinel (`redis-server sentinel.conf --sentinel`); these lines are its
  // configuration file, which the sentinel rewrites as it learns.
  std::vector<std::string> sentinel_config;
};

class RedisServer {
 public:
  static bool available() { return has_program("redis-server") && has_program("redis-cli"); }

  explicit RedisServer(std::vector<std::string> args = {}, ServerOptions options = {})
      : args_(std::move(args)), options_(options) {
    // A port can be taken between probing and binding (parallel tests): try a few.
    for (int attempt = 0;; ++attempt) {
      port_ = options_.port != 0 ? options_.port : free_port(options_.cluster);
      try {
        start();
        return;
      } catch (const std::exception&) {
        if (options_.port != 0 || attempt == 4) throw;
      }
    }
  }
  ~RedisServer() { stop(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0; }
  const std::filesystem::path& dir() const { return dir_.path(); }

  // "redis://127.0.0.1:P" (or rediss://), without credentials.
  std::string url() const {
    return std::string(options_.tls ? "rediss" : "redis") + "://127.0.0.1:" + std::to_string(port_);
  }

  // Graceful: SIGTERM, then SIGKILL if it has not exited within 2 s.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (!wait_exit(std::chrono::seconds(2))) {
      ::kill(pid_, SIGKILL);
      wait_exit(std::chrono::seconds(10));
    }
    pid_ = -1;
  }

  // A crash: SIGKILL, no goodbye to the clients.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    wait_exit(std::chrono::seconds(10));
    pid_ = -1;
  }

  // Starts again on the same port with the same arguments.
  void restart() {
    stop();
    start();
  }
  // Starts again on the same port with other arguments (e.g. without a module).
  void restart(std::vector<std::string> args) {
    stop();
    args_ = std::move(args);
    start();
  }

  // CLIENT PAUSE: the server stops answering clients for `ms`.
  void pause(std::chrono::milliseconds ms) { cli({"CLIENT", "PAUSE", std::to_string(ms.count())}); }

  // redis-cli against this server; returns its output (trailing newline removed).
  std::string cli(const std::vector<std::string>& args) const {
    std::string command = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_);
    if (options_.tls) command += " --tls --cacert " + detail::shell_quote(options_.tls->ca_file);
    if (!options_.password.empty())
      command += " --no-auth-warning -a " + detail::shell_quote(options_.password);
    for (const auto& arg : args) command += " " + detail::shell_quote(arg);
    std::string output = detail::run(command);
    while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
    return output;
  }

  std::string log() const {
    std::ifstream in(dir_.path() / "redis.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  void start() {
    std::vector<std::string> argv = {"redis-server"};
    if (!options_.sentinel_config.empty()) {
      const auto file = dir_.path() / "sentinel.conf";
      std::ofstream out(file);
      for (const auto& line : options_.sentinel_config) out << line << '\n';
      argv.insert(argv.end(), {file.string(), "--sentinel"});
    }
    if (options_.tls) {
      argv.insert(argv.end(),
                  {"--port", "0", "--tls-port", std::to_string(port_), "--tls-cert-file",
                   options_.tls->cert_file, "--tls-key-file", options_.tls->key_file,
                   "--tls-ca-cert-file", options_.tls->ca_file, "--tls-auth-clients", "no"});
      if (options_.cluster) argv.insert(argv.end(), {"--tls-cluster", "yes"});
    } else {
      argv.insert(argv.end(), {"--port", std::to_string(port_)});
    }
    argv.insert(argv.end(),
                {"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", dir_.path().string(), "--logfile", (dir_.path() / "redis.log").string()});
    if (options_.cluster)
      argv.insert(argv.end(),
                  {"--cluster-enabled", "yes", "--cluster-config-file",
                   "nodes-" + std::to_string(port_) + ".conf", "--cluster-node-timeout", "5000"});
    argv.insert(argv.end(), args_.begin(), args_.end());

    std::vector<char*> raw;
    for (auto& arg : argv) raw.push_back(arg.data());
    raw.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (dir_.path() / "stderr.log").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, "redis-server", &actions, nullptr, raw.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start redis-server");
    pid_ = pid;

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start (port " + std::to_string(port_) +
                                 "): " + log());
      }
      const std::string answer = cli({"PING"});
      if (answer.find("PONG") != std::string::npos || answer.find("NOAUTH") != std::string::npos)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill();
    throw std::runtime_error("redis-server did not answer PING on port " + std::to_string(port_));
  }

  bool wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || r < 0) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  std::vector<std::string> args_;
  ServerOptions options_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// N masters (no replicas) joined with `redis-cli --cluster create`, every node reporting
// cluster_state:ok. Slots are split evenly in node order (node 0 has slot 0).
class RedisCluster {
 public:
  // `masters` masters, each with `replicas` replicas (nodes masters..end, assigned by redis-cli).
  explicit RedisCluster(int masters = 3, std::vector<std::string> args = {}, int replicas = 0) {
    for (int i = 0; i < masters * (1 + replicas); ++i) {
      ServerOptions options;
      options.cluster = true;
      nodes_.push_back(std::make_unique<RedisServer>(args, options));
    }
    std::string command = "redis-cli --cluster create";
    for (const auto& node : nodes_) command += " 127.0.0.1:" + std::to_string(node->port());
    command += " --cluster-replicas " + std::to_string(replicas) + " --cluster-yes";
    int status = 0;
    const std::string output = detail::run(command, &status);
    if (status != 0) throw std::runtime_error("redis-cli --cluster create failed: " + output);
    wait_ok();
  }

  // Waits until every running node reports cluster_state:ok (e.g. after a restart).
  void wait_ok(std::chrono::seconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      bool ok = true;
      for (const auto& node : nodes_)
        ok = ok && (!node->running() ||
                    node->cli({"CLUSTER", "INFO"}).find("cluster_state:ok") != std::string::npos);
      if (ok) return;
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("cluster did not reach cluster_state:ok");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::size_t size() const { return nodes_.size(); }
  RedisServer& node(std::size_t i) { return *nodes_.at(i); }

  // "redis+cluster://127.0.0.1:P1,127.0.0.1:P2,..." (or only the first `seeds` nodes).
  std::string url(std::size_t seeds = 0) const {
    std::string out = "redis+cluster://";
    if (seeds == 0) seeds = nodes_.size();
    for (std::size_t i = 0; i < seeds && i < nodes_.size(); ++i) {
      if (i > 0) out += ',';
      out += "127.0.0.1:" + std::to_string(nodes_[i]->port());
    }
    return out;
  }

  std::string node_id(std::size_t i) { return node(i).cli({"CLUSTER", "MYID"}); }

  // Whether node `i` is a master now (ROLE's first line).
  bool is_master(std::size_t i) { return node(i).cli({"ROLE"}).starts_with("master"); }
  // Whether node `i` became a master within `timeout` (polled every 10 ms).
  bool wait_master(std::size_t i, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!is_master(i) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return is_master(i);
  }

  // The index of a replica of master `i`.
  std::size_t replica_of(std::size_t i) {
    const std::string port = std::to_string(node(i).port());
    for (std::size_t n = 0; n < nodes_.size(); ++n) {
      if (n == i || !node(n).running()) continue;
      const std::string info = node(n).cli({"INFO", "replication"});
      if (info.find("role:slave") != std::string::npos &&
          info.find("master_port:" + port + "\r") != std::string::npos)
        return n;
    }
    throw std::runtime_error("node " + std::to_string(i) + " has no replica");
  }

  // Waits until replicas have caught up with their masters' replication offsets.
  void wait_replicas_synced(std::chrono::seconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (std::size_t n = 0; n < nodes_.size(); ++n) {
      while (node(n).running() &&
             node(n).cli({"INFO", "replication"}).find("master_link_status:down") !=
                 std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline)
          throw std::runtime_error("replica did not sync");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }

  // The index of the node that serves `slot`, as node `asking` sees it.
  std::size_t owner_of(int slot, std::size_t asking = 0) {
    const std::string slots = node(asking).cli({"CLUSTER", "SLOTS"});
    // redis-cli prints the nested reply flat, one value a line: first, last, host, port, id...
    std::istringstream in(slots);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    for (std::size_t i = 0; i + 3 < lines.size(); ++i) {
      if (lines[i + 2] != "127.0.0.1") continue;
      int first = 0, last = 0, port = 0;
      try {
        first = std::stoi(lines[i]);
        last = std::stoi(lines[i + 1]);
        port = std::stoi(lines[i + 3]);
      } catch (const std::exception&) {
        continue;
      }
      if (slot < first || slot > last) continue;
      for (std::size_t n = 0; n < nodes_.size(); ++n)
        if (nodes_[n]->port() == port) return n;
    }
    throw std::runtime_error("no owner for slot " + std::to_string(slot) + " in: " + slots);
  }

  // Moves `slot` from its owner to node `to` with the documented IMPORTING / MIGRATING /
  // MIGRATE / SETSLOT NODE steps; `between_steps` runs between steps (e.g. to let traffic hit
  // every intermediate state).
  template <class Pause>
  void migrate_slot(int slot, std::size_t to, Pause between_steps) {
    const std::size_t from = owner_of(slot);
    const std::string s = std::to_string(slot);
    const std::string from_id = node_id(from);
    const std::string to_id = node_id(to);
    expect_ok(node(to).cli({"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}));
    expect_ok(node(from).cli({"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}));
    between_steps();
    for (;;) {
      const std::string keys = node(from).cli({"CLUSTER", "GETKEYSINSLOT", s, "1"});
      if (keys.empty()) break;
      // One key at a time: traffic sees the slot half here, half there.
      const std::string result = node(from).cli(
          {"MIGRATE", "127.0.0.1", std::to_string(node(to).port()), "", "0", "5000", "KEYS", keys});
      if (result != "OK" && result != "NOKEY")
        throw std::runtime_error("MIGRATE failed: " + result);
      between_steps();
    }
    expect_ok(node(to).cli({"CLUSTER", "SETSLOT", s, "NODE", to_id}));
    expect_ok(node(from).cli({"CLUSTER", "SETSLOT", s, "NODE", to_id}));
    for (std::size_t n = 0; n < nodes_.size(); ++n)
      if (n != from && n != to) expect_ok(node(n).cli({"CLUSTER", "SETSLOT", s, "NODE", to_id}));
    between_steps();
  }

 private:
  static void expect_ok(const std::string& result) {
    if (result != "OK") throw std::runtime_error("cluster command failed: " + result);
  }

  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// A master, one replica and `sentinels` sentinels monitoring it as `name` (quorum `quorum`), with
// short timeouts: down-after-milliseconds 500, failover-timeout 2000. Ready when every sentinel
// knows the replica and the other sentinels (a failover can then be authorised).
class RedisSentinelGroup {
 public:
  // Sentinel mode is part of redis-server (the redis-sentinel package only adds a service).
  static bool available() { return RedisServer::available(); }

  explicit RedisSentinelGroup(int sentinels = 3, std::string name = "mymaster", int quorum = 2)
      : name_(std::move(name)) {
    data_.push_back(std::make_unique<RedisServer>());
    data_.push_back(std::make_unique<RedisServer>(
        std::vector<std::string>{"--replicaof", "127.0.0.1", std::to_string(data_[0]->port())}));
    wait_for(
        [&] {
          return data_[1]->cli({"INFO", "replication"}).find("master_link_status:up");
        },
        "the replica to sync");
    for (int i = 0; i < sentinels; ++i) {
      ServerOptions options;
      options.sentinel_config = {"sentinel monitor " + name_ + " 127.0.0.1 " +
                                     std::to_string(data_[0]->port()) + " " +
                                     std::to_string(quorum),
                                 "sentinel down-after-milliseconds " + name_ + " 500",
                                 "sentinel failover-timeout " + name_ + " 2000",
                                 "sentinel parallel-syncs " + name_ + " 1"};
      sentinels_.push_back(std::make_unique<RedisServer>(std::vector<std::string>{}, options));
    }
    wait_ready();
  }

  RedisServer& data(std::size_t i) { return *data_.at(i); }  // 0: first master, 1: replica
  RedisServer& sentinel(std::size_t i) { return *sentinels_.at(i); }
  std::size_t sentinels() const { return sentinels_.size(); }
  const std::string& name() const { return name_; }

  // "redis+sentinel://127.0.0.1:P1,...,127.0.0.1:Pn/<name>" (`name` replaces the master name).
  std::string url(const std::string& name = {}) const {
    std::string out = "redis+sentinel://";
    for (std::size_t i = 0; i < sentinels_.size(); ++i) {
      if (i > 0) out += ',';
      out += "127.0.0.1:" + std::to_string(sentinels_[i]->port());
    }
    return out + '/' + (name.empty() ? name_ : name);
  }

  // The master's port as the first running sentinel reports it (0: none answers).
  std::uint16_t master_port() {
    for (const auto& s : sentinels_) {
      if (!s->running()) continue;
      const auto lines = split(s->cli({"SENTINEL", "get-master-addr-by-name", name_}));
      if (lines.size() == 2) return static_cast<std::uint16_t>(std::atoi(lines[1].c_str()));
    }
    return 0;
  }
  // The data node on `port` (throws if none).
  RedisServer& data_on(std::uint16_t port) {
    for (auto& node : data_)
      if (node->port() == port) return *node;
    throw std::runtime_error("no data node on port " + std::to_string(port));
  }

  // Waits until every running sentinel knows the replica and the other sentinels, and the
  // data nodes agree on who is master.
  void wait_ready(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    const std::string others = std::to_string(sentinels_.size() - 1);
    wait_for(
        [&]() -> std::size_t {
          for (const auto& s : sentinels_) {
            if (!s->running()) continue;
            const auto fields = split(s->cli({"SENTINEL", "master", name_}));
            if (field(fields, "num-slaves") != "1" ||
                field(fields, "num-other-sentinels") != others ||
                field(fields, "flags") != "master")
              return std::string::npos;
          }
          return 0;
        },
        "the sentinels to know the replica and each other", timeout);
  }

  static std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  // redis-cli prints a flat list of name / value lines.
  static std::string field(const std::vector<std::string>& lines, const std::string& name) {
    for (std::size_t i = 0; i + 1 < lines.size(); i += 2)
      if (lines[i] == name) return lines[i + 1];
    return {};
  }

  // Polls `probe` (npos: not yet) every 50 ms.
  template <class Probe>
  static void wait_for(Probe probe, const char* what,
                       std::chrono::seconds timeout = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (probe() == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error(std::string("timed out waiting for ") + what);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::string name_;
  std::vector<std::unique_ptr<RedisServer>> data_;
  std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

}  // namespace pacer::redis::testing
