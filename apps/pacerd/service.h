// pacerd's request handling: the JSON API, the nginx auth_request endpoint, health, metrics
// and the running configuration, with hot reload.
//
// The configuration in force is an immutable Runtime behind an atomic shared pointer: a
// request takes it when it starts and keeps it until it is answered, so a reload never changes
// a request halfway. The store (and with it every count) lives as long as the Service; a reload
// keeps it. Storage keys are `<key_prefix>:{<policy>:<rates digest>:<identity>}`, so a policy
// whose rates change starts from fresh state, and one whose rates stay keeps its counts.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "file_watch.h"
#include "item_window.h"
#include "pacer/beast/server.h"
#include "pacer/store.h"
#include "rls/rls_config.h"
#include "rls/rls_grpc.h"
#include "rls/rls_metrics.h"

namespace pacer::pacerd {

enum class Listener { kMain, kAdmin };

struct PolicyStats;

class Service {
 public:
  // With `io` (the HTTP server's worker contexts, not running yet), a Redis store runs one
  // client on each. Throws std::invalid_argument when the store cannot be set up.
  // `file` is what `config` was read from: its text and stamp tell later changes apart.
  Service(Config config, ConfigFile file, const std::vector<boost::asio::io_context*>& io = {});
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // The handler for both listeners; `listener` decides which routes exist.
  void handle(beast::Request&& request, const beast::ClientEndpoint& connection, beast::Send send,
              Listener listener);

  // Reads the file again and swaps it in when valid; otherwise keeps the running one and
  // records why (shown on /v1/config). Text already tried (or running) is not tried again.
  bool reload(std::string_view why);
  // The file watch, polled: true when the file's modification time, inode or size changed and
  // then stayed the same for server.watch_settle (file_watch.h), so it may be read now.
  bool file_settled(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
  // A reload that does not wait (SIGHUP) is about to read the file as it is now.
  void file_seen();

  // Servers whose connection counters /metrics reports; set before they start.
  void set_servers(const beast::Server* main, const beast::Server* admin);

  std::uint64_t config_version() const;
  std::string last_reload_error() const;

  // Envoy's rate limit service (docs/API.md): what a ShouldRateLimit call decides with now
  // (empty without [grpc]); the gRPC server whose counters /metrics reports.
  rls::RlsSnapshot rls_snapshot() const;
  void set_rls_server(const rls::RlsServer* server);
  bool store_connected() const { return store_->connected(); }

  struct RuntimePolicy;
  struct Runtime;

 private:
  // `rls_files`: the YAML files of grpc.config_dir as read now (empty without [grpc]).
  std::shared_ptr<const Runtime> build(Config config, const Runtime* previous,
                                       const std::vector<rls::SourceFile>& rls_files);
  // The stamp the file watch compares: the TOML file's, changed by any change of the YAML files.
  FileStamp watched_stamp(const Runtime& runtime) const;
  // `stamp` with the stamps of grpc.config_dir's YAML files folded in.
  static FileStamp with_rls_stamps(FileStamp stamp, const Config& config);
  std::shared_ptr<PolicyStats> stats_for(const std::string& name);

  void check(std::shared_ptr<const Runtime> runtime, const beast::Request& request,
             beast::Send send, bool peek);
  void reset(std::shared_ptr<const Runtime> runtime, const beast::Request& request,
             beast::Send send);
  void auth(std::shared_ptr<const Runtime> runtime, std::string_view policy,
            const beast::Request& request, const beast::ClientEndpoint& connection,
            beast::Send send);
  beast::Response metrics(const Runtime& runtime, unsigned version) const;
  beast::Response config_json(const Runtime& runtime, unsigned version) const;
  beast::Response policies_json(const Runtime& runtime, unsigned version) const;

  std::unique_ptr<Store> store_;
  // Batch items at the store at once, all batches together (api.batch_in_flight).
  std::shared_ptr<ItemWindow> batch_window_;
  std::atomic<std::shared_ptr<const Runtime>> runtime_;
  const beast::Server* main_server_ = nullptr;
  const beast::Server* admin_server_ = nullptr;
  const rls::RlsServer* rls_server_ = nullptr;
  mutable rls::RlsMetrics rls_metrics_;  // kept across reloads; counted into by RPCs
  // Shared with the answers not yet sent (they may outlive a request's handler).
  std::shared_ptr<std::atomic<std::int64_t>> requests_in_flight_ =
      std::make_shared<std::atomic<std::int64_t>>(0);

  mutable std::mutex mutex_;  // guards what follows
  std::map<std::string, std::shared_ptr<PolicyStats>, std::less<>> stats_;
  std::string config_text_;          // of the running config (its TOML, then its YAML files)
  std::string last_attempted_text_;  // of the last reload
  std::string last_reload_error_;
  std::chrono::system_clock::time_point last_reload_attempt_{};
  std::uint64_t reloads_ok_ = 0;
  std::uint64_t reloads_failed_ = 0;
  SettledChange file_watch_;  // the file as loaded (or read at start), and a change settling
};

}  // namespace pacer::pacerd
