// Finds the master of a Sentinel-monitored Redis and follows it through failovers.
//
// On the client's io_context (one thread). It asks the sentinels in order for
// `SENTINEL get-master-addr-by-name <name>` (each attempt bounded by connect_timeout +
// command_timeout; on failure, a nil answer or an error the next sentinel is asked, and after a
// full round of failures it waits `ask_interval`), subscribes to `+switch-master` on the sentinel
// that answered, and asks again every `ask_interval` and at once when the subscription drops or
// the owner calls ask_now(), so a missed message cannot leave the client on the old master.
//
// An announced address is verified before it is reported (the Sentinel client guidelines): a
// short connection with the data nodes' credentials sends ROLE, and only a "master" answer calls
// `on_master`. A node that is not (yet) a master is asked about again at the next round.
//
// Failures are logged (at most once a second) and recorded in ClientShared::last_error.
// Completions hold weak pointers and check an epoch: the owner may stop() and drop the monitor
// at any time; after stop() nothing is called.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "connection.h"
#include "sentinel.h"

namespace pacer::redis::internal {

class SentinelSubscriber;

struct SentinelMonitorConfig {
  std::vector<std::pair<std::string, std::uint16_t>> sentinels;  // at least one
  std::string master_name;
  // Template for sentinel connections (host and port are set per sentinel): the sentinels'
  // credentials, TLS, timeouts.
  ConnectionConfig sentinel;
  // Template for the ROLE check of an announced master: the data nodes' credentials, TLS.
  ConnectionConfig data;
  std::chrono::milliseconds ask_interval{1000};
};

class SentinelMonitor final : public ConnectionListener,
                              public std::enable_shared_from_this<SentinelMonitor> {
 public:
  using MasterHandler = std::function<void(const MasterAddress& master)>;

  SentinelMonitor(boost::asio::io_context& io, SentinelMonitorConfig config,
                  std::shared_ptr<ClientShared> shared, MasterHandler on_master);
  ~SentinelMonitor();  // NOLINT(bugprone-exception-escape): see sentinel_monitor.cc
  SentinelMonitor(const SentinelMonitor&) = delete;
  SentinelMonitor& operator=(const SentinelMonitor&) = delete;

  void start();
  // Final: closes every connection; `on_master` is not called any more.
  void stop();
  // Asks the sentinels now (unless a question is already out), e.g. when the master's
  // connection dropped.
  void ask_now();
  // The last verified master, if any.
  const std::optional<MasterAddress>& master() const { return master_; }

 private:
  using Timer = Connection::Timer;

  void on_up(Connection& connection) override;
  void on_down(Connection& connection) override;

  void ask();
  void send_query();
  void on_answer(std::uint64_t epoch, std::error_code ec, Reply&& reply);
  void attempt_failed(const std::string& text);
  void schedule_ask(std::chrono::milliseconds delay);

  void subscribe(std::size_t index);
  void on_switch_master(std::size_t index, std::string_view payload);
  void on_subscription_closed(std::size_t index, const std::string& why);

  void consider(const MasterAddress& address, const char* source);
  void send_role();
  void on_role(std::uint64_t epoch, std::error_code ec, Reply&& reply);
  void verify_failed(const std::string& text);
  void stop_verifier();

  ConnectionConfig sentinel_config(std::size_t index) const;
  std::string sentinel_name(std::size_t index) const;
  std::chrono::milliseconds attempt_timeout() const;
  void report(const std::string& text);

  boost::asio::io_context& io_;
  const SentinelMonitorConfig config_;
  std::shared_ptr<ClientShared> shared_;
  MasterHandler on_master_;
  bool stopped_ = false;
  bool started_ = false;

  SentinelRotation rotation_;
  std::shared_ptr<Connection> query_;  // to sentinel `query_index_`
  std::size_t query_index_ = 0;
  bool asking_ = false;
  bool query_sent_ = false;
  std::uint64_t ask_epoch_ = 0;  // one per attempt: answers and timeouts of older ones are stale
  Timer attempt_timer_;
  Timer ask_timer_;
  std::uint64_t ask_timer_generation_ = 0;

  std::shared_ptr<SentinelSubscriber> subscriber_;
  std::chrono::steady_clock::time_point last_subscribe_{};

  std::shared_ptr<Connection> verifier_;  // ROLE check of `candidate_`
  MasterAddress candidate_;
  bool role_sent_ = false;
  std::uint64_t verify_epoch_ = 0;
  Timer verify_timer_;

  std::optional<MasterAddress> master_;
  std::chrono::steady_clock::time_point last_warning_{};
  int suppressed_warnings_ = 0;
};

}  // namespace pacer::redis::internal
